"""Transforms between a multi-head network's outputs and MONAI's per-key transforms, by the head spec."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from common.heads import HeadSpec


class SplitHeadsd(MapTransform):
    """One key per head: ``d["pred"]`` becomes ``d["pred_seg"]``, ``d["pred_cls"]``, ...

    Two kinds of values are split:

    * an inference output ``pred`` (one decollated item, ``(C, *spatial)``): cut into the heads' channels by
      the head spec (:meth:`HeadSpec.split`; image-level heads become their ``(C,)`` vector), with the head's
      activation applied when ``activate`` is set;
    * a dict of heads (the targets of :class:`common.engines.MultiTaskPrepareBatch`): flattened as it is.

    so that the ordinary MONAI post transforms and metric handlers work on ``pred_seg``, ``label_cls``, etc.

    Args:
        keys: keys to split (typically ``"pred"``, or ``["pred", "label"]`` in validation).
        heads: the head spec; needed to split tensors.
        activate: apply each head's activation (sigmoid / softmax) to the split logits.
        separator: between the key and the head name.
        allow_missing_keys: skip keys absent from the item (e.g. ``label`` at inference).
    """

    def __init__(
        self,
        keys: KeysCollection,
        heads: HeadSpec | None = None,
        activate: bool = False,
        separator: str = "_",
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.spec = heads
        self.activate = activate
        self.separator = separator

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        for key in self.key_iterator(d):
            value = d.pop(key)
            if isinstance(value, Mapping):
                parts = dict(value)
            elif isinstance(value, torch.Tensor) and self.spec is not None:
                parts = self.spec.split(value, channel_dim=0)
                if self.activate:
                    parts = {name: self.spec.activate(name, logits) for name, logits in parts.items()}
            else:
                raise TypeError(
                    f"SplitHeadsd: {key!r} holds {type(value).__name__}; expected a dict of heads, or a "
                    "tensor together with a head spec"
                )
            for head, part in parts.items():
                d[f"{key}{self.separator}{head}"] = part
        return d


class LabelToHeadMasksd(MapTransform):
    """Binary target masks per region head from one label map: ``d["label_wt"] = isin(d["label"], WT)``.

    For networks whose heads each predict one region (whole tumour, enhancing tumour, ...), so that
    :class:`common.engines.MultiTaskPrepareBatch` finds each head's target under ``HeadSpec.targets()``.

    Args:
        keys: label-map keys.
        heads: the head spec (its region heads), or a mapping head name -> label values of its region.
        dtype: of the masks (float32 suits Dice/BCE losses).
        separator: between the key and the head name.
    """

    def __init__(
        self,
        keys: KeysCollection,
        heads: HeadSpec | Mapping[str, Sequence[int]],
        dtype: torch.dtype = torch.float32,
        separator: str = "_",
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        regions = heads.region_heads if isinstance(heads, HeadSpec) else heads
        if not regions:
            raise ValueError("LabelToHeadMasksd needs at least one region head")
        self.regions = {name: torch.as_tensor(list(values)) for name, values in regions.items()}
        self.dtype = dtype
        self.separator = separator

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            label = d[key]
            label_tensor = label if isinstance(label, torch.Tensor) else torch.as_tensor(label)
            for name, values in self.regions.items():
                mask = torch.isin(label_tensor, values.to(label_tensor.device)).to(self.dtype)
                d[f"{key}{self.separator}{name}"] = mask
        return d
