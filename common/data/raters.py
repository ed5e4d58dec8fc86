"""Several raters' reference masks made into one: pick a rater, or their union, intersection or vote.

Data sets with several manual delineations per case (the ISBI 2015 longitudinal MS lesion challenge has two
raters per time point, Carass et al., NeuroImage 148:77-102, 2017, doi:10.1016/j.neuroimage.2016.12.064)
leave the choice of reference to the user. A *rater rule* names it:

* ``1``, ``2``, ...: the mask of that rater (1-based, in the data set's rater order);
* ``"union"``: lesion where **any** rater marked lesion;
* ``"intersection"``: lesion where **every** rater marked lesion;
* ``"vote"``: lesion where a **strict majority** marked lesion, i.e. more than half of the ``R`` raters
  (``count > R / 2``). With two raters a majority is both of them, so ``"vote"`` equals
  ``"intersection"``; with three it is any two. The other reading, "mean of the masks >= 0.5", would
  make a tie count as lesion, so with two raters ``"vote"`` would equal ``"union"``; we keep the strict
  majority, the usual meaning of majority voting (e.g. the baseline STAPLE is compared with in Warfield
  et al., IEEE TMI 23(7):903-921, 2004), and ``"union"`` is there for the other reading.

A voxel is lesion in one rater's mask where the mask is non-zero (the masks are 0/1).

:class:`CombineRatersd` applies a rule to a loaded label whose first axis holds the raters: MONAI's
``LoadImaged`` stacks a list of files on a new first axis, so a datalist item whose ``"label"`` lists the
raters' mask files becomes ``(R, X, Y, Z)`` and the datalist itself keeps only file paths::

    LoadImaged(keys=["image", "label"]),          # label: [mask1, mask2] -> (2, X, Y, Z)
    EnsureChannelFirstd(keys=["image", "label"]),  # a single mask file -> (1, X, Y, Z)
    CombineRatersd(keys="label"),                 # the item's "rater" rule -> (1, X, Y, Z), 0/1
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform
from monai.utils import convert_to_dst_type

__all__ = ["RATER_RULES", "CombineRatersd", "check_rater", "combine_raters"]

RATER_RULES: tuple[str, str, str] = ("union", "intersection", "vote")
"""The rules that combine every rater's mask; an integer ``k`` (1-based) picks rater ``k`` instead."""

RaterRule = int | str


def check_rater(rater: Any, n_raters: int | None = None) -> RaterRule:
    """``rater`` as a valid rule (an ``int`` >= 1, at most ``n_raters`` when given, or one of
    :data:`RATER_RULES`); a digit string such as ``"2"`` (from a command line) counts as the integer.

    Raises:
        ValueError: anything else.
    """
    if isinstance(rater, str) and rater.strip().isdigit():
        rater = int(rater)
    if isinstance(rater, (int, np.integer)) and not isinstance(rater, bool):
        if rater >= 1 and (n_raters is None or rater <= n_raters):
            return int(rater)
    elif rater in RATER_RULES:
        return str(rater)
    known = f"1..{n_raters}" if n_raters else "a rater number (1, 2, ...)"
    raise ValueError(f"rater must be {known} or one of {RATER_RULES}, got {rater!r}")


def combine_raters(masks: Any, rater: RaterRule) -> Any:
    """Combine the raters' masks stacked on the first axis, ``(R, *spatial)``, into ``(1, *spatial)``.

    The result has the input's type (numpy array or tensor, MetaTensor metadata kept) and dtype, with
    values 0 and 1. An input with one rater (``R == 1``) is already the one mask the rule asks for and
    is only binarised, whatever the rule. See the module docstring for the rules.

    Raises:
        ValueError: an unknown rule, a rater number above ``R``, or an input without a rater axis.
    """
    data = masks.as_tensor() if isinstance(masks, MetaTensor) else torch.as_tensor(masks)
    if data.ndim < 2:
        raise ValueError(f"masks must be (raters, *spatial), got shape {tuple(data.shape)}")
    n_raters = int(data.shape[0])
    rule = check_rater(rater)
    marked = data != 0
    if n_raters == 1:
        out = marked
    elif isinstance(rule, int):
        if rule > n_raters:
            raise ValueError(f"rater {rule} asked for, but the label holds only {n_raters} rater masks")
        out = marked[rule - 1 : rule]
    elif rule == "union":
        out = marked.any(dim=0, keepdim=True)
    elif rule == "intersection":
        out = marked.all(dim=0, keepdim=True)
    else:  # strict majority: more than half of the raters
        out = 2 * marked.sum(dim=0, keepdim=True) > n_raters
    return convert_to_dst_type(out.to(torch.uint8), masks, dtype=masks.dtype)[0]


class CombineRatersd(MapTransform):
    """Reduce a label that stacks several raters' masks on its first axis to one mask by a rater rule.

    The rule is ``rater`` when given, else the item's ``rater_key`` value (the ISBI 2015 adapter writes
    its rule into every labelled item as ``"rater"``). A label with one rater passes through binarised,
    with or without a rule, so the same transform serves datalists made for a single rater and items
    without ``"rater"`` (MONAI Label's ``{"image", "label"}``).

    Args:
        keys: keys of the stacked masks (``"label"``).
        rater: a rule (``1``, ``2``, ``"union"``, ``"intersection"``, ``"vote"``), or ``None`` to read it
            from each item.
        rater_key: item key that holds the rule when ``rater`` is ``None``.
        allow_missing_keys: as in MONAI.
    """

    def __init__(
        self,
        keys: KeysCollection = "label",
        rater: RaterRule | None = None,
        rater_key: str = "rater",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.rater = None if rater is None else check_rater(rater)
        self.rater_key = rater_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        rule = self.rater if self.rater is not None else d.get(self.rater_key)
        for key in self.key_iterator(d):
            if rule is None and d[key].shape[0] > 1:
                raise KeyError(
                    f"{type(self).__name__}: {d[key].shape[0]} rater masks in {key!r}, but no rater rule was "
                    f"given and the item has no {self.rater_key!r}"
                )
            # one mask (e.g. an item from MONAI Label's datastore): no rule is needed to pass it through
            d[key] = combine_raters(d[key], 1 if rule is None else rule)
        return d
