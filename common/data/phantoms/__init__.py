"""Synthetic data sets in the real files' formats, for tests and for training demos without the data."""

from common.data.phantoms.brats import make_brats_phantoms
from common.data.phantoms.figshare import make_figshare_phantoms

__all__ = ["make_brats_phantoms", "make_figshare_phantoms"]
