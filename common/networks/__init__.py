"""Networks of the bundles: one module per paper architecture, shared blocks in ``blocks``."""

from .blocks import (
    ATTENTION_TYPES,
    ConcurrentSpatialChannelSE,
    DualPoolChannelAttention,
    MultiscaleModule,
    MultiscaleResidualAttention,
    SpatialPyramidPooling,
    attention_block,
)
from .mmran import MMRAN

__all__ = [
    "ATTENTION_TYPES",
    "MMRAN",
    "ConcurrentSpatialChannelSE",
    "DualPoolChannelAttention",
    "MultiscaleModule",
    "MultiscaleResidualAttention",
    "SpatialPyramidPooling",
    "attention_block",
]
