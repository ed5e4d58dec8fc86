"""Transforms that MONAI lacks.

Hole filling (MMRAN §3.5, prior-knowledge post-processing) needs nothing new: MONAI's ``FillHolesd`` with
``connectivity=1`` is the 4-connected flood fill the paper describes.
"""

from .assemble import AssembleLabelsd
from .components import RemoveSmallComponents
from .edge_targets import EdgeTargetsd, edge_band
from .head_crop import CropToHeadd
from .heads import LabelToHeadMasksd, SplitHeadsd
from .slice_input import ToSingleChannelSliced
from .tissue_masks import TissueMasksd

__all__ = [
    "AssembleLabelsd",
    "CropToHeadd",
    "EdgeTargetsd",
    "LabelToHeadMasksd",
    "RemoveSmallComponents",
    "SplitHeadsd",
    "TissueMasksd",
    "ToSingleChannelSliced",
    "edge_band",
]
