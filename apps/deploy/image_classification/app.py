"""MONAI Deploy app: image classification (MMRAN's tumour-type head now, any classification bundle later).

Input (``-i``): a NIfTI image (2D, or X x Y x 1), a folder of them, a NIfTI volume (each slice), or a folder
of DICOM files (the first MR series; one image or each slice). Output (``-o``): ``<case>_classification.json``
with the class probabilities per image or slice, and for DICOM input a DICOM Basic Text SR with the same
result in the source study.

The class scores are the bundle's first ``post_processed_outputs`` entry of ``type: probabilities`` (MMRAN:
``pred_cls``); a bundle without one gives its ``pred`` (class logits, softmax applied here). Class names come
from that entry's ``channel_def``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from monai.deploy.core import Operator

from apps.deploy.application import BundleApplication
from apps.deploy.operators.inference import BundleInferenceOperator


class ImageClassificationApp(BundleApplication):
    """A 2D classification bundle on images or slices.

    Args:
        class_key: the output holding the class scores (default: found from the model card).
    """

    slice_wise = True

    def __init__(self, *args: Any, class_key: str | None = None, **kwargs: Any):
        self.class_key = class_key
        super().__init__(*args, **kwargs)

    def compose_outputs(
        self, inference: BundleInferenceOperator, selector: Operator | None, output_path: Path
    ) -> None:
        self.add_classification_writer(inference, selector, output_path, key=self.class_key)


def main() -> None:
    ImageClassificationApp().run()


if __name__ == "__main__":
    main()
