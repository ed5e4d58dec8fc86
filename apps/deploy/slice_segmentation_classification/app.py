"""MONAI Deploy app: 2D tumour segmentation and tumour-type classification (MMRAN).

Input (``-i``): a NIfTI slice (2D, or X x Y x 1), a folder of them, a NIfTI volume (each slice is run), or a
folder of DICOM files (the first MR series; a single image or each slice of a series). Output (``-o``):

* ``<case>_seg.nii.gz``: the hole-filled tumour mask (0/1) on the input's grid and affine;
* ``<case>_classification.json``: class probabilities per image, or per slice of a volume or series;
* for DICOM input, a DICOM SEG (one segment, "tumour") referencing the source series.

Model (``-m``): the bundle's TorchScript export (``ckpt_export`` with the configs embedded).
"""

from __future__ import annotations

from pathlib import Path

from monai.deploy.core import Operator
from pydicom.sr.codedict import codes

from apps.deploy.application import BundleApplication
from apps.deploy.operators.inference import BundleInferenceOperator


class SliceSegmentationClassificationApp(BundleApplication):
    """A 2D segmentation + classification bundle (pred = mask logit + class logits) on slices."""

    slice_wise = True

    def compose_outputs(
        self, inference: BundleInferenceOperator, selector: Operator | None, output_path: Path
    ) -> None:
        self.add_nifti_writer(inference, output_path)
        self.add_classification_writer(inference, None, output_path)
        if selector is not None:
            self.add_seg_writer(inference, selector, output_path, segments=[("tumour", codes.SCT.Neoplasm)])


def main() -> None:
    SliceSegmentationClassificationApp().run()


if __name__ == "__main__":
    main()
