"""MONAI Deploy app: MS lesion segmentation of a 4-modality MR time point (multi-input 3D U-Net, paper 002).

Input (``-i``):

* NIfTI: the ISBI 2015 layout (``trainingNN/preprocessed/trainingNN_TT_{flair,mprage,pd,t2}_pp.nii[.gz]``,
  or ``orig/``; the data set root, ``training/`` or one patient folder), or one 4D file with the modalities
  last (FLAIR, MPRAGE, PD, T2);
* DICOM: a folder holding one study with four MR series, told apart by their Series Description
  (:data:`MS_RULES`: "FLAIR", "MPRAGE"/"T1", "PD", "T2"); the four must share one grid.

The bundle's pre-processing makes the tissue masks the multi-input network takes (N4 + Atropos on the MPRAGE,
:class:`common.transforms.TissueMasksd`), so nothing beyond the four images is needed; the app does not cache
them (``tissue_cache_dir`` is ``None``: one run, one computation).

Output (``-o``): ``<case>_lesion.nii.gz`` (0/1) on the input's grid and affine; for DICOM input also a DICOM
SEG with one segment ("MS lesion", SNOMED "Lesion") referencing the FLAIR series. ``<case>`` is the ISBI 2015
time point (``training01_01``), the file name, or the FLAIR series' Series Instance UID.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from monai.deploy.core import Operator
from pydicom.sr.codedict import codes

from apps.deploy.application import BundleApplication
from apps.deploy.operators.inference import BundleInferenceOperator
from apps.deploy.operators.inputs import NiftiCase
from common.data.isbi2015 import ISBI2015_MODALITIES, ISBI2015Adapter

_MR = "(?i)^MR$"
MS_RULES: dict[str, Any] = {
    "selections": [
        {"name": "flair", "conditions": {"Modality": _MR, "SeriesDescription": r"(?i)flair"}},
        {"name": "mprage", "conditions": {"Modality": _MR, "SeriesDescription": r"(?i)mp-?rage|^t1"}},
        {"name": "pd", "conditions": {"Modality": _MR, "SeriesDescription": r"(?i)^pd|proton"}},
        {"name": "t2", "conditions": {"Modality": _MR, "SeriesDescription": r"(?i)^t2(w)?$"}},
    ]
}
"""One selection per channel, in the bundle's channel order (``ISBI2015_MODALITIES``), by description."""

LESION_KEY = "pred_lesion"
"""The bundle's post-processed lesion mask."""


def find_ms_cases(path: Path) -> list[NiftiCase]:
    """ISBI 2015 time points under ``path`` (through the project's adapter, either image folder), or
    ``path`` as one 4D file."""
    if path.is_file():
        return [NiftiCase(path.name.split(".nii")[0], (path,))]
    adapter = ISBI2015Adapter()
    found = adapter.find_cases(path)
    cases = []
    for item in found.items:
        adapter.check_case(item, path)
        cases.append(NiftiCase(str(item["case"]), tuple(path / p for p in item["image"])))
    return cases


class MSLesionSegmentationApp(BundleApplication):
    """The MS lesion bundle (3D sliding window inside, tissue masks made on the way) on NIfTI or DICOM."""

    channels = ISBI2015_MODALITIES
    default_rules = MS_RULES
    config_overrides = {"tissue_cache_dir": None}

    def find_nifti_cases(self, path: Path) -> list[NiftiCase]:
        return find_ms_cases(path)

    def compose_outputs(
        self, inference: BundleInferenceOperator, selector: Operator | None, output_path: Path
    ) -> None:
        self.add_nifti_writer(inference, output_path, keys={LESION_KEY: "lesion"})
        if selector is not None:
            self.add_seg_writer(
                inference, selector, output_path, segments=[("MS lesion", codes.SCT.Lesion)], key=LESION_KEY
            )


def main() -> None:
    MSLesionSegmentationApp().run()


if __name__ == "__main__":
    main()
