"""Training of one of our bundles from the MONAI Label datastore.

MONAI Label's ``BundleTrainTask`` runs the bundle's ``train.json`` with the datastore's labelled images as
``train#dataset#data``/``validate#dataset#data`` (items ``{"image", "label"}``), ``max_epochs`` from the
request and a ``CheckpointLoader`` of ``models/model.pt`` in ``train#handlers``; the bundle's own
``BestModelSaver`` rewrites ``models/model.pt``. This task adds what our bundles need beyond that:

* **image-level targets** (MMRAN's tumour type, a classification bundle's class): each item gets the
  head's datalist key (``"class"``) from the label's info, else the image's info, in the datastore
  (``{"class": "glioma"}`` or the class index), as saved with ``PUT /datastore/label`` (``params``) or
  ``PUT /datastore/label/info``; labelled images without it are left out, with a warning. A bundle without
  a label map trains on the images whose info has the class.
* **one run per request**: ``TrainingCheckpoint`` entries get ``resume: false``, so a request fine-tunes
  ``model.pt`` for its ``max_epochs`` instead of resuming an earlier run's ``last.pt`` (which would stop at
  once when that run already reached the epoch count);
* **schedules over the run**: ``epochs`` (what the bundles' learning-rate and loss-weight schedules span)
  is set to the request's ``max_epochs``.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from monailabel.interfaces.datastore import Datastore, DefaultLabelTag
from monailabel.tasks.train.bundle import BundleTrainTask

from lib.bundle_outputs import BundleOutputs

logger = logging.getLogger(__name__)

CHECKPOINT_HANDLERS = ("common.engines.TrainingCheckpoint", "TrainingCheckpoint")


def class_index(value: Any, names: Sequence[str]) -> int | None:
    """A class given as its name (any case) or index, as an index into ``names``; None if not one."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value if 0 <= value < len(names) else None
    if isinstance(value, str):
        lowered = [n.lower() for n in names]
        if value.strip().lower() in lowered:
            return lowered.index(value.strip().lower())
        if value.strip().isdigit():
            return class_index(int(value.strip()), names)
    return None


class BundleOutputsTrain(BundleTrainTask):
    """``BundleTrainTask`` that fills image-level targets from the datastore and runs one run per request."""

    def __init__(self, path: str, conf: dict[str, str], **kwargs: Any):
        super().__init__(path, conf, **kwargs)
        self.outputs = BundleOutputs.read(path) if self.is_valid() else None

    def _targets(self, infos: Sequence[Mapping[str, Any]]) -> dict[str, int] | None:
        targets = {}
        for key, names in self.outputs.image_level_targets.items():
            value = next((info[key] for info in infos if info and key in info), None)
            index = class_index(value, names)
            if index is None:
                return None
            targets[key] = index
        return targets

    def _fetch_datalist(self, request, datastore: Datastore):
        tag = DefaultLabelTag.FINAL.value
        with_mask = self.outputs.mask_key is not None
        image_ids = datastore.get_labeled_images(tag) if with_mask else datastore.list_images()
        items, skipped = [], []
        for image_id in image_ids:
            infos = []
            item = {"image": datastore.get_image_uri(image_id)}
            label_id = datastore.get_labels_by_image_id(image_id).get(tag)
            if with_mask:
                label_id = label_id or image_id
                item["label"] = datastore.get_label_uri(label_id, tag)
            if label_id is not None:  # a classification bundle's class may come with a submitted label too
                infos.append(datastore.get_label_info(label_id, tag))
            infos.append(datastore.get_image_info(image_id))
            targets = self._targets(infos)
            if targets is None:
                skipped.append(image_id)
                continue
            items.append({**item, **targets})
        if skipped:
            wanted = {k: v for k, v in self.outputs.image_level_targets.items()}
            logger.warning(
                f"{len(skipped)} images have no class {wanted} in their label/image info: {skipped}"
            )
        logger.info(f"Training items: {len(items)}")
        return items

    def _update_overrides(self, overrides: dict[str, Any]) -> dict[str, Any]:
        max_epochs = overrides[self.const.key_train_trainer_max_epochs()]
        if "epochs" in self.bundle_config.config:
            overrides["epochs"] = max_epochs
        handlers = []
        for h in overrides.get(self.const.key_train_handlers(), []):
            if isinstance(h, dict) and h.get("_target_") in CHECKPOINT_HANDLERS:
                h = {**copy.deepcopy(h), "resume": False}
            handlers.append(h)
        overrides[self.const.key_train_handlers()] = handlers
        return overrides
