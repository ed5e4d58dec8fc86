"""A MONAI transform that maps label codes between a data set's own codes and the canonical labels."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform
from monai.utils import convert_to_dst_type

from common.data.adapter import DatasetAdapter
from common.data.registry import get_adapter

__all__ = ["MapLabelCodesd"]


class MapLabelCodesd(MapTransform):
    """Map segmentations from an item's data-set codes to canonical labels, or back with ``inverse``.

    The adapter of ``dataset`` gives the code table of the item's layout, read from ``data[layout_key]``
    (datalist items of multi-layout data sets carry ``"layout"``) unless a fixed ``layout`` is given; an item
    without one falls back to ``default_layout`` (items that come from elsewhere, e.g. a MONAI Label
    server, carry no layout). The
    result keeps the input's type, dtype and MetaTensor metadata. A value outside the layout's codes is a
    :class:`~common.data.errors.DataFormatError` naming the source file.

    Args:
        keys: keys of the label arrays to map.
        dataset: a registered adapter name or an adapter.
        inverse: map canonical labels to the data set's codes (to write predictions in its convention).
        layout_key: item key that holds the layout.
        layout: a fixed layout, used instead of ``data[layout_key]``.
        allow_missing_keys: as in MONAI.
        default_layout: the layout of items without ``layout_key`` (None: such an item is an error).
    """

    def __init__(
        self,
        keys: KeysCollection,
        dataset: str | DatasetAdapter,
        inverse: bool = False,
        layout_key: str = "layout",
        layout: str | None = None,
        allow_missing_keys: bool = False,
        default_layout: str | None = None,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.adapter = get_adapter(dataset)
        self.inverse = inverse
        self.layout_key = layout_key
        self.layout = self.adapter.check_layout(layout) if layout is not None else None
        self.default_layout = None if default_layout is None else self.adapter.check_layout(default_layout)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        convert = self.adapter.from_canonical if self.inverse else self.adapter.to_canonical
        for key in self.key_iterator(d):
            layout = self.layout or d.get(self.layout_key) or self.default_layout
            if layout is None:
                raise KeyError(
                    f"{type(self).__name__}: the item has no {self.layout_key!r}, and neither layout nor "
                    "default_layout was given"
                )
            value = d[key]
            source = value.meta.get("filename_or_obj") if isinstance(value, MetaTensor) else None
            mapped = convert(value, str(layout), source=source or str(key))
            if isinstance(value, (np.ndarray, torch.Tensor)):
                d[key] = convert_to_dst_type(mapped, value, dtype=value.dtype)[0]
            else:
                d[key] = mapped
        return d
