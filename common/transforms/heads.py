"""Helpers that map between dict-of-heads networks and MONAI's per-key transforms."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform


class SplitHeadsd(MapTransform):
    """Flatten per-head dicts into top-level keys: ``d["pred"]["seg"]`` becomes ``d["pred_seg"]``.

    After MONAI decollates a batch, an item's ``pred`` (the network output) and ``label`` (the targets of
    :class:`common.engines.MultiTaskPrepareBatch`) are dicts keyed by head. Splitting them lets the
    ordinary MONAI post transforms and metric handlers work on ``pred_seg``, ``label_cls``, etc.

    Args:
        keys: keys whose values are dicts of heads (typically ``("pred", "label")``).
        heads: heads to extract; all of them when None.
        separator: between the key and the head name.
        allow_missing_keys: skip keys absent from the item (e.g. ``label`` at inference).
    """

    def __init__(
        self,
        keys: KeysCollection,
        heads: Sequence[str] | None = None,
        separator: str = "_",
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.heads = None if heads is None else list(heads)
        self.separator = separator

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        for key in self.key_iterator(d):
            value = d.pop(key)
            if not isinstance(value, Mapping):
                raise TypeError(
                    f"SplitHeadsd expects {key!r} to hold a dict of heads, got {type(value).__name__}"
                )
            for head in self.heads if self.heads is not None else value:
                if head in value:
                    d[f"{key}{self.separator}{head}"] = value[head]
        return d


class LabelToHeadMasksd(MapTransform):
    """Binary target masks per head from one label map: ``d["label_wt"] = isin(d["label"], [1, 2, 3])``.

    For networks whose heads each predict one region (whole tumour, enhancing tumour, ...), so that
    :class:`common.engines.MultiTaskPrepareBatch` can map each head to its own target key.

    Args:
        keys: label-map keys.
        heads: head name -> label values that make up its region.
        dtype: of the masks (float32 suits Dice/BCE losses).
        separator: between the key and the head name.
    """

    def __init__(
        self,
        keys: KeysCollection,
        heads: Mapping[str, Sequence[int]],
        dtype: torch.dtype = torch.float32,
        separator: str = "_",
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        if not heads:
            raise ValueError("LabelToHeadMasksd needs at least one head")
        self.heads = {name: torch.as_tensor(list(values)) for name, values in heads.items()}
        self.dtype = dtype
        self.separator = separator

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            label = d[key]
            label_tensor = label if isinstance(label, torch.Tensor) else torch.as_tensor(label)
            for name, values in self.heads.items():
                mask = torch.isin(label_tensor, values.to(label_tensor.device)).to(self.dtype)
                d[f"{key}{self.separator}{name}"] = mask
        return d
