"""Networks of the bundles: one module per paper architecture, shared blocks in ``blocks``."""

from .attention_r2unet import (
    APRAttentionGate,
    AttentionPreActivationResidual,
    AttentionR2UNet,
    PreActivationConvBlock,
    PreActivationResidualUnit,
)
from .blocks import (
    ATTENTION_TYPES,
    ConcurrentSpatialChannelSE,
    DualPoolChannelAttention,
    MultiscaleModule,
    MultiscaleResidualAttention,
    SEWithDropout,
    SpatialPyramidPooling,
    attention_block,
)
from .mmran import MMRAN

__all__ = [
    "ATTENTION_TYPES",
    "MMRAN",
    "APRAttentionGate",
    "AttentionPreActivationResidual",
    "AttentionR2UNet",
    "ConcurrentSpatialChannelSE",
    "DualPoolChannelAttention",
    "MultiscaleModule",
    "MultiscaleResidualAttention",
    "PreActivationConvBlock",
    "PreActivationResidualUnit",
    "SEWithDropout",
    "SpatialPyramidPooling",
    "attention_block",
]
