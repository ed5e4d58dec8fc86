"""MONAI Deploy app: BraTS tumour sub-region segmentation of a 4-modality MR case (Attention R2U-Net).

Input (``-i``):

* NIfTI: a BraTS case folder (``<case>_{flair,t1,t1ce,t2}.nii.gz``, any BraTS layout), a folder of such cases,
  an MSD ``imagesTr``/``imagesTs`` folder, or one 4D file with the modalities last (FLAIR, T1, T1ce, T2);
* DICOM: a folder holding one study with four MR series, told apart by their Series Description
  (:data:`BRATS_RULES`: "FLAIR", "T1", "T1ce"/"T1c"/"T1 Gd"/"T1 post", "T2"); the four must share one grid.

Output (``-o``): ``<case>_seg.nii.gz`` (labels 1 NCR/NET, 2 oedema, 3 enhancing tumour: the canonical codes,
which are BraTS 2023's) and ``<case>_wt_mask.nii.gz`` (whole tumour) on the input's grid and affine; for DICOM
input also a DICOM SEG with three segments referencing the FLAIR series. ``<case>`` is the BraTS case id,
the file name, or the FLAIR series' Series Instance UID.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from monai.deploy.core import Operator
from pydicom.sr.codedict import codes

from apps.deploy.application import BundleApplication
from apps.deploy.operators.inference import BundleInferenceOperator
from apps.deploy.operators.inputs import NiftiCase
from common.data.brats import ADAPTER, BRATS_MODALITIES
from common.labels import BRATS

_MR = "(?i)^MR$"
BRATS_RULES: dict[str, Any] = {
    "selections": [
        {"name": "flair", "conditions": {"Modality": _MR, "SeriesDescription": r"(?i)flair|^t2[-_ ]?f$"}},
        {
            "name": "t1",
            "conditions": {"Modality": _MR, "SeriesDescription": r"(?i)^t1(w|n)?([-_ ](pre|native))?$"},
        },
        {
            "name": "t1ce",
            "conditions": {
                "Modality": _MR,
                "SeriesDescription": r"(?i)^t1[-_ ]?(ce|c|gd|gad|post|contrast)|\+c",
            },
        },
        {"name": "t2", "conditions": {"Modality": _MR, "SeriesDescription": r"(?i)^t2(w)?$"}},
    ]
}
"""One selection per channel, in the bundle's channel order (``BRATS_MODALITIES``), by description."""

OUTPUT_LAYOUT = "brats2023"
"""Label codes written: BraTS 2023's (1 NCR/NET, 2 ED, 3 ET), equal to the canonical ones, so the DICOM SEG's
segment numbers are the label values."""

_SEGMENT_CODES = {"ncr": codes.SCT.Necrosis, "ed": codes.SCT.Edema, "et": codes.SCT.Neoplasm}


def find_brats_cases(path: Path) -> list[NiftiCase]:
    """BraTS cases under ``path`` (through the project's BraTS adapter), or ``path`` as one 4D file."""
    if path.is_file():
        return [NiftiCase(path.name.split(".nii")[0], (path,))]
    found = ADAPTER.find_cases(path)
    cases = []
    for item in found.items:
        ADAPTER.check_case(item, path)
        images = item["image"] if isinstance(item["image"], list) else [item["image"]]
        cases.append(NiftiCase(str(item["case"]), tuple(path / p for p in images)))
    return cases


class VolumeSegmentationApp(BundleApplication):
    """The BraTS bundle (slice-wise 2D network inside, 3D label volume out) on NIfTI or DICOM cases."""

    channels = BRATS_MODALITIES
    default_rules = BRATS_RULES

    def find_nifti_cases(self, path: Path) -> list[NiftiCase]:
        return find_brats_cases(path)

    def extra_items(self) -> dict[str, Any]:
        return {"layout": OUTPUT_LAYOUT}

    def compose_outputs(
        self, inference: BundleInferenceOperator, selector: Operator | None, output_path: Path
    ) -> None:
        self.add_nifti_writer(inference, output_path)
        if selector is not None:
            labels = sorted((v, k) for k, v in BRATS.labels.items() if v > 0)
            segments = [(BRATS.descriptions[name], _SEGMENT_CODES[name]) for _, name in labels]
            self.add_seg_writer(inference, selector, output_path, segments=segments, key="pred_label")


def main() -> None:
    VolumeSegmentationApp().run()


if __name__ == "__main__":
    main()
