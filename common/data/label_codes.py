"""Map label codes through a lookup table, rejecting any code the table does not know.

Data sets store their segmentations in their own codes (BraTS 2020 writes enhancing tumour as 4, MSD swaps
oedema and necrosis, ...). An adapter gives a table ``own code -> canonical label``; :func:`remap_labels`
applies it, or its inverse, to a whole array at once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from monai.utils import convert_to_numpy

from common.data.errors import DataFormatError

__all__ = ["invert_codes", "remap_labels"]

_UNKNOWN = 255  # marks voxels whose code is not in the table; no table maps to it


def invert_codes(table: Mapping[int, int]) -> dict[int, int]:
    """``{canonical: own}`` for a one-to-one ``{own: canonical}`` table."""
    inverse = {value: code for code, value in table.items()}
    if len(inverse) != len(table):
        raise ValueError(f"label table {dict(table)} is not one-to-one and cannot be inverted")
    return inverse


def remap_labels(
    values: Any, table: Mapping[int, int], what: str, source: str | os.PathLike | None = None
) -> np.ndarray:
    """``table[values]`` as a uint8 array of the same shape.

    ``values`` may be a numpy array, a torch tensor or anything ``numpy.asarray`` takes; booleans count as
    0/1 and floats are accepted when they hold whole numbers (MONAI loads labels as float32).

    Args:
        values: the labels to map.
        table: code -> new value; values must fit in uint8 (below 255).
        what: the name of the code set, for the error message (e.g. the layout ``"brats2020"``).
        source: the file the labels came from, for the error message.

    Raises:
        DataFormatError: a value that is not a key of ``table`` (or NaN, or not a number); the message
            starts with ``source`` and lists the values found.
    """
    arr = np.asarray(convert_to_numpy(values))
    if arr.dtype.kind == "b":
        arr = arr.astype(np.uint8)
    size = max(table) + 1
    lut = np.full(size + 1, _UNKNOWN, dtype=np.uint8)  # the last entry catches everything out of range
    for code, value in table.items():
        lut[code] = value
    if arr.dtype.kind == "f":
        whole = np.isfinite(arr) & (np.round(arr) == arr)
        index = np.where(whole, np.clip(arr, -1, size), -1).astype(np.int64)
    elif arr.dtype.kind in "iu":
        index = arr
    else:
        raise DataFormatError(source or "label array", f"labels of dtype {arr.dtype} are not numbers")
    out = lut[np.where((index >= 0) & (index < size), index, size)]
    bad = out == _UNKNOWN
    if bad.any():
        found = np.unique(arr[bad])
        shown = ", ".join(f"{v:g}" for v in found[:10]) + (" ..." if found.size > 10 else "")
        raise DataFormatError(
            source or "label array",
            f"{int(bad.sum())} voxels have label values [{shown}] outside the {what} label set "
            f"{sorted(table)}",
        )
    return out
