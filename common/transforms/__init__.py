"""Transforms that MONAI lacks.

Hole filling (MMRAN §3.5, prior-knowledge post-processing) needs nothing new: MONAI's ``FillHolesd`` with
``connectivity=1`` is the 4-connected flood fill the paper describes.
"""

from .heads import SplitHeadsd

__all__ = ["SplitHeadsd"]
from .slice_input import ToSingleChannelSliced  # noqa: E402

__all__ += ["ToSingleChannelSliced"]
