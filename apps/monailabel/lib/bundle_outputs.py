"""What a bundle returns after post-processing, read from its model card and configs.

MONAI Label's stock bundle tasks take the network's first output (``pred``) as the label map and its
``channel_def`` as the label names. Our bundles' network output is logits of several heads (a tumour map
and, for MMRAN, a class vector repeated over the grid); what a user wants is in
``network_data_format.post_processed_outputs``:

* label maps: outputs of ``type`` ``"image"`` with ``format`` ``"segmentation"`` or ``"labels"``
  (MMRAN's ``pred_seg``, the BraTS bundle's ``pred_label``); the app returns the first one;
* class probabilities: outputs of ``type`` ``"probabilities"`` / ``format`` ``"classes"`` (MMRAN's
  ``pred_cls``), whose ``channel_def`` names the classes in order.

A bundle with class outputs and no label map (2D image in, class probabilities out) is a classification
model; anything with a label map is a segmentation model, with its class probabilities returned beside the
mask. Image-level training targets (the datalist key of each ``image_level`` head in ``train.json``'s head
spec, e.g. MMRAN's ``"class"``; ``training_heads`` when the bundle defines it, the heads one run trains) are
read so that the trainer can fill them from the datastore.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monai.bundle import ConfigParser

LABEL_MAP_FORMATS = ("segmentation", "labels")


def _is_label_map(spec: Mapping[str, Any]) -> bool:
    return spec.get("type") == "image" and spec.get("format") in LABEL_MAP_FORMATS


def _is_class_vector(spec: Mapping[str, Any]) -> bool:
    return spec.get("type") == "probabilities" or spec.get("format") == "classes"


def _names(channel_def: Mapping[str, str]) -> list[str]:
    return [channel_def[k] for k in sorted(channel_def, key=int)]


@dataclass(frozen=True)
class BundleOutputs:
    """The served outputs of one bundle.

    Attributes:
        mask_key: key of the label map after post-processing, or None (a classification bundle).
        mask_names: ``channel_def`` names of the label map (MMRAN: ``["tumour"]``).
        class_outputs: key -> class names, in the order of the probabilities.
        image_level_targets: datalist key -> class names, for the trainer (MMRAN: ``{"class": [...]}``).
    """

    mask_key: str | None
    mask_names: list[str] = field(default_factory=list)
    class_outputs: dict[str, list[str]] = field(default_factory=dict)
    image_level_targets: dict[str, list[str]] = field(default_factory=dict)

    @property
    def is_classification(self) -> bool:
        return self.mask_key is None and bool(self.class_outputs)

    @classmethod
    def read(cls, bundle_dir: str | Path) -> BundleOutputs:
        configs = Path(bundle_dir) / "configs"
        metadata = json.loads((configs / "metadata.json").read_text())
        outputs = metadata["network_data_format"].get("post_processed_outputs", {})
        masks = [(k, v) for k, v in outputs.items() if _is_label_map(v)]
        classes = {k: _names(v.get("channel_def", {})) for k, v in outputs.items() if _is_class_vector(v)}
        if not masks and not classes:
            raise ValueError(
                f"{bundle_dir}: metadata.json names no label map nor class probabilities among "
                "network_data_format.post_processed_outputs"
            )
        mask_key, mask_spec = masks[0] if masks else (None, {})
        return cls(
            mask_key=mask_key,
            mask_names=_names(mask_spec.get("channel_def", {})),
            class_outputs=classes,
            image_level_targets=_image_level_targets(configs / "train.json", classes),
        )


def _image_level_targets(train_json: Path, classes: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """Datalist key -> class names of each image-level head of ``train.json``'s head spec.

    A head ``cls`` whose target is ``"class"`` pairs with the post-processed output ``pred_cls``.
    """
    if not train_json.is_file():
        return {}
    # the head spec may be an expression (the MS bundle picks its heads by variant): let MONAI parse it
    parser = ConfigParser()
    parser.read_config(str(train_json))
    # the heads train.json trains: ``training_heads`` where a bundle trains a part of its network (the
    # two-stage classifier trains one stage per run), else all of ``heads``
    spec_id = next((key for key in ("training_heads", "heads") if key in parser), None)
    if spec_id is None:
        return {}
    parser["bundle_root"] = str(train_json.parent.parent)
    targets = {}
    for head in parser.get_parsed_content(spec_id):
        if head.image_level and isinstance(head.target, str):
            names = classes.get(f"pred_{head.name}")
            if names:
                targets[head.target] = names
    return targets
