"""Inference of one of our bundles: its label map and its class probabilities.

MONAI Label's ``BundleInferTask`` runs the bundle's ``preprocessing``, ``inferer`` and ``postprocessing``
(less the ``SaveImaged`` writers) and returns ``pred``, labelled by ``pred``'s ``channel_def``. This task
runs the same pipeline but returns what the model card says the bundle outputs
(:class:`lib.bundle_outputs.BundleOutputs`): the label map, restored to the input's grid, and every class
vector as probabilities in the result JSON::

    "class_probabilities": {"meningioma": 0.08, "glioma": 0.85, "pituitary": 0.07},
    "predicted_class": "glioma",
    "classes": {"pred_cls": {"probabilities": {...}, "predicted_class": "glioma"}}

(``class_probabilities``/``predicted_class`` are those of the first class output; ``classes`` has all.)
A bundle without a label map (2D image in, class probabilities out) is served as a classification model:
no label file, only that JSON.

The network runs on the bundles' fast path (:class:`common.engines.FastInferenceNetwork`, with the
``runtime``, ``precision`` and ``inference_network#dynamic_shape`` of the bundle's ``inference.json``): on a
CPU server OpenVINO or ONNX Runtime, exported once beside the checkpoint and again when a new checkpoint
lands (MONAI Label reloads the network when the file changes).

Label names: when the post-processing writes labels in a data set's own codes (a ``MapLabelCodesd`` with
``inverse``, e.g. the BraTS bundle's ``FromCanonicalBraTSLabelsd``), the names are the data set's labels
for the bundle's ``default_layout``; otherwise they are the label map's ``channel_def`` (a one-channel
mask is ``{name: 1}``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from monai.transforms import Compose, SaveImaged
from monailabel.interfaces.tasks.infer_v2 import InferType
from monailabel.tasks.infer.bundle import BundleInferTask
from monailabel.transform.post import Restored
from monailabel.transform.writer import Writer

from common.engines import FastInferenceNetwork, fast_options
from lib.bundle_outputs import BundleOutputs

logger = logging.getLogger(__name__)


class ClassProbabilitiesd:
    """Put each class output of ``data`` into the result JSON ``data[result_key]`` as named probabilities."""

    def __init__(self, class_outputs: Mapping[str, Sequence[str]], result_key: str = "result"):
        self.class_outputs = {k: list(v) for k, v in class_outputs.items()}
        self.result_key = result_key

    def __call__(self, data: Mapping[str, Any]) -> dict[str, Any]:
        d = dict(data)
        result = dict(d.get(self.result_key) or {})
        classes = {}
        for key, names in self.class_outputs.items():
            probabilities = torch.as_tensor(d[key]).detach().float().cpu().flatten()
            if probabilities.numel() != len(names):
                raise ValueError(f"{key}: {probabilities.numel()} values for {len(names)} classes {names}")
            named = {name: float(p) for name, p in zip(names, probabilities.tolist())}
            classes[key] = {"probabilities": named, "predicted_class": names[int(probabilities.argmax())]}
            logger.info(f"{key}: {classes[key]['predicted_class']} {named}")
        if classes:
            first = next(iter(classes.values()))
            result["class_probabilities"] = first["probabilities"]
            result["predicted_class"] = first["predicted_class"]
            result["classes"] = classes
        d[self.result_key] = result
        return d


def _label_code_names(post: Sequence[Callable], layout: str | None) -> dict[str, int] | None:
    """Label name -> code of the data set codes that a ``MapLabelCodesd(inverse=True)`` writes, if any."""
    from common.data.label_transforms import MapLabelCodesd

    for t in post:
        if isinstance(t, MapLabelCodesd) and t.inverse:
            layout = t.layout or layout
            scheme = t.adapter.label_scheme
            if layout is None or scheme is None:
                return None
            by_value = {v: k for k, v in scheme.labels.items()}
            codes = t.adapter.label_codes(layout)
            return {scheme.descriptions.get(by_value[c], by_value[c]): code for code, c in codes.items() if c}
    return None


class BundleOutputsInfer(BundleInferTask):
    """``BundleInferTask`` that serves a bundle's post-processed label map and class probabilities."""

    def __init__(self, path: str, conf: dict[str, str], **kwargs: Any):
        self.outputs = BundleOutputs.read(path)
        self._fast_networks: dict[Any, FastInferenceNetwork] = {}  # before super(): preload builds one
        kwargs.setdefault("type", InferType.CLASSIFICATION if self.outputs.is_classification else "")
        # the label map is already on the input's grid (the bundles invert their preprocessing); Restored
        # is added below on the label map's key rather than on "pred"
        kwargs["add_post_restore"] = False
        super().__init__(path, conf, post_filter=[SaveImaged], **kwargs)
        if not self.is_valid():
            return
        self.labels = self._mask_labels()

    def _get_network(self, device, data):
        """MONAI Label's network (reloaded when the checkpoint changes) wrapped for the fast path."""
        network = super()._get_network(device, data)
        if network is None:
            return None
        fast = self._fast_networks.get(device)
        if fast is None or fast.network is not network:
            cache_dir = os.path.dirname(self.path[0]) if self.path else None
            fast = FastInferenceNetwork(network, cache_dir=cache_dir, **fast_options(self.bundle_config))
            self._fast_networks[device] = fast
        return fast

    def _mask_labels(self) -> dict[str, int]:
        if self.outputs.mask_key is None:
            return {name: i for i, name in enumerate(next(iter(self.outputs.class_outputs.values())))}
        post = self.bundle_config.get_parsed_content("postprocessing", instantiate=True)
        post = list(post.transforms) if isinstance(post, Compose) else list(post)
        coded = _label_code_names(post, self.bundle_config.get("default_layout"))
        if coded is not None:
            return coded
        names = self.outputs.mask_names
        if len(names) == 1:
            return {names[0]: 1}
        return {name: i for i, name in enumerate(names) if name.lower() != "background"}

    def post_transforms(self, data=None) -> Sequence[Callable]:
        post = list(super().post_transforms(data))
        if self.outputs.mask_key is not None:
            post.append(Restored(keys=self.outputs.mask_key, ref_image=self.key_image))
        if self.outputs.class_outputs:
            post.append(ClassProbabilitiesd(self.outputs.class_outputs, result_key=self.output_json_key))
        return post

    def writer(self, data: dict[str, Any], extension=None, dtype=None):
        # the network's output stays in "pred" (self.output_label_key); the file is the label map
        if self.outputs.mask_key is None:  # classification: the result JSON only
            return None, dict(data.get(self.output_json_key) or {})
        if extension is not None:
            data["result_extension"] = extension
        if dtype is not None:
            data["result_dtype"] = dtype
        data["labels"] = self.labels
        return Writer(label=self.outputs.mask_key, json=self.output_json_key)(data)
