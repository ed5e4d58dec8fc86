"""MONAI Deploy app: a lesion mask from one 3D volume, MRI or CT (the stroke bundle, UNet++ with edge branch).

The bundle runs its 2D network slice by slice itself (its inferer is MONAI's ``SliceInferer``), so the app
hands it the whole volume.

Input (``-i``):

* NIfTI: a data set in a layout the project reads (ATLAS R2.0 or R1.2 T1w scans, or non-contrast CT
  ``images/`` folders; found and checked by their adapters, so masks beside the images are not taken for
  cases), else every NIfTI file under ``-i`` (or ``-i`` itself) as one case;
* DICOM: a folder holding one study; the first MR or CT series (:data:`ANY_MR_OR_CT_SERIES`).

The modality decides the bundle's intensity scaling: for CT (an NCCT folder, or a DICOM series whose
Modality is CT) the app sets the bundle's ``adapter`` to ``"ncct"`` for the run, so the values are checked
to be Hounsfield units and windowed to the brain window; otherwise the bundle's default (ATLAS T1w MRI,
percentile scaling) applies.

Output (``-o``): ``<case>_lesion.nii.gz`` (0/1) on the input's grid and affine; for DICOM input also a DICOM
SEG with one segment ("stroke lesion", SNOMED Lesion) referencing the source series.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from monai.deploy.core import Operator
from pydicom import dcmread
from pydicom.sr.codedict import codes

from apps.deploy.application import BundleApplication
from apps.deploy.operators.inference import BundleInferenceOperator
from apps.deploy.operators.inputs import IMAGE, NiftiCase, find_nifti_slices, input_kind
from common.data import get_adapter

ANY_MR_OR_CT_SERIES: dict[str, Any] = {
    "selections": [{"name": IMAGE, "conditions": {"Modality": "(?i)^(MR|CT)$"}}]
}
"""DICOM selection: the first MR or CT series of the (first) study."""

VOLUME_ADAPTERS = ("atlas", "ncct")
"""Data sets whose layouts the app recognises in a NIfTI input folder, in the order tried."""

LESION_KEY = "pred_lesion"


def _adapter_of(path: Path) -> str | None:
    """The data set whose layout ``path`` holds; None for a file or NIfTI files in no known layout."""
    if path.is_file():
        return None
    for name in VOLUME_ADAPTERS:
        if get_adapter(name).has_data(path):
            return name
    return None


def find_volume_cases(path: Path) -> list[NiftiCase]:
    """The scans under ``path``: through the data set's adapter when its layout is found, else every NIfTI
    file is one case."""
    name = _adapter_of(path)
    if name is None:
        return find_nifti_slices(path)
    adapter = get_adapter(name)
    cases = []
    for item in adapter.find_cases(path).items:
        adapter.check_case(item, path)
        cases.append(NiftiCase(str(item["case"]), (path / item["image"],)))
    return cases


def is_ct(path: Path) -> bool:
    """Whether the input is CT: an NCCT folder, or DICOM whose first image file says Modality CT."""
    if input_kind(path) == "nifti":
        return _adapter_of(path) == "ncct"
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        try:
            return str(dcmread(file, stop_before_pixels=True).get("Modality", "")).upper() == "CT"
        except Exception:  # not a DICOM file: look at the next one
            continue
    return False


class LesionSegmentationApp(BundleApplication):
    """A one-channel 3D lesion segmentation bundle (its own slice-wise or sliding-window inferer inside)."""

    default_rules = ANY_MR_OR_CT_SERIES

    def find_nifti_cases(self, path: Path) -> list[NiftiCase]:
        return find_volume_cases(path)

    def compose(self) -> None:
        from monai.deploy.core import init_app_context

        input_path = Path(init_app_context(self.argv).input_path)
        self.config_overrides = {"adapter": "ncct"} if is_ct(input_path) else {}
        super().compose()

    def compose_outputs(
        self, inference: BundleInferenceOperator, selector: Operator | None, output_path: Path
    ) -> None:
        self.add_nifti_writer(inference, output_path, keys={LESION_KEY: "lesion"})
        if selector is not None:
            segments = [("stroke lesion", codes.SCT.Lesion)]
            self.add_seg_writer(inference, selector, output_path, segments=segments, key=LESION_KEY)


def main() -> None:
    LesionSegmentationApp().run()


if __name__ == "__main__":
    main()
