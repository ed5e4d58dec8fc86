"""Batch preparation for networks that return a dict of named heads.

MONAI's trainers and evaluators call ``prepare_batch(batch, device, non_blocking)`` and pass the second
element it returns to the loss as ``loss(network_output, targets)``. For a multi-head network the targets
are a dict with one entry per head, built here from datalist keys, e.g. ``{"seg": batch["label"],
"cls": batch["class"]}``. Every bundle uses this one helper with its own key mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from monai.engines.utils import PrepareBatch
from monai.utils import CommonKeys


def _to_device(value: Any, device: str | torch.device | None, non_blocking: bool, **kwargs) -> torch.Tensor:
    tensor = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
    return tensor.to(device=device, non_blocking=non_blocking, **kwargs)


class MultiTaskPrepareBatch(PrepareBatch):
    """Returns ``(batch[image_key], {head: batch[key] for head, key in targets.items()})`` on ``device``.

    Args:
        targets: head name -> batch key holding its ground truth. A key missing from the batch (inference
            without labels) is left out of the target dict. A single key instead of a mapping returns that
            entry as a plain tensor (``None`` when absent): evaluators whose metrics compare an assembled
            prediction with one label map use this, so the label reaches the post transforms unchanged.
        image_key: batch key of the network input.
    """

    def __init__(self, targets: Mapping[str, str] | str, image_key: str = CommonKeys.IMAGE):
        self.targets = targets if isinstance(targets, str) else dict(targets)
        self.image_key = image_key

    def __call__(
        self,
        batchdata: Mapping[str, Any],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | torch.Tensor | None]:
        if self.image_key not in batchdata:
            raise KeyError(f"batch has no {self.image_key!r} entry; keys are {sorted(batchdata)}")
        image = _to_device(batchdata[self.image_key], device, non_blocking, **kwargs)
        if isinstance(self.targets, str):
            label = batchdata.get(self.targets)
            return image, None if label is None else _to_device(label, device, non_blocking, **kwargs)
        targets = {
            head: _to_device(batchdata[key], device, non_blocking, **kwargs)
            for head, key in self.targets.items()
            if key in batchdata
        }
        return image, targets
