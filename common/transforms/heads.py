"""Post-processing helper for dict-of-heads networks."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

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
