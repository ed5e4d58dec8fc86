"""Synthetic data sets in the real files' formats, for tests and for training demos without the data.

One writer per data set, each named by its adapter's ``phantom_writer`` (writers import adapters, never
the reverse): :func:`~common.data.phantoms.figshare.make_figshare_phantoms`,
:func:`~common.data.phantoms.brats.make_brats_phantoms`,
:func:`~common.data.phantoms.isbi2015.make_isbi2015_phantoms`,
:func:`~common.data.phantoms.atlas.make_atlas_phantoms` and
:func:`~common.data.phantoms.ncct.make_ncct_phantoms` (the last two share the head and stroke lesions of
:mod:`~common.data.phantoms.stroke_head`), and for the brain-tumour classes
:func:`~common.data.phantoms.tumour_slices.make_tumour_image_phantoms` (class folders of PNG slices) and
:func:`~common.data.phantoms.tumour_slices.make_tumour_collection_phantoms` (BraTS 2023 GLI/MEN/MET
cases). Importing this package imports none of them; the names below are looked up on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "make_atlas_phantoms": "atlas",
    "make_brats_phantoms": "brats",
    "make_figshare_phantoms": "figshare",
    "make_isbi2015_phantoms": "isbi2015",
    "make_ncct_phantoms": "ncct",
    "make_tumour_collection_phantoms": "tumour_slices",
    "make_tumour_image_phantoms": "tumour_slices",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
