"""Building blocks of the bundle networks, one concept per module; all work in 2D and 3D (``spatial_dims``).

Only what MONAI lacks is written here; MONAI's ``Convolution``, ``ChannelSELayer``, ``ADN`` and ``UpSample``
are reused where they do the job.
"""

from .attention import (
    ATTENTION_OPTIONS,
    ATTENTION_PRESETS,
    ATTENTION_TYPES,
    ComposableAttention,
    attention_block,
    attention_options,
    has_multiscale,
)
from .convolution import DoubleConv, conv_bn_relu
from .multiscale_attention import DualPoolChannelAttention, MultiscaleModule
from .pyramid_pooling import SpatialPyramidPooling
from .spatial_attention import SpatialAttention
from .split_attention import SplitAttentionConv, split_attention_inter_channels
from .squeeze_excitation import SEWithDropout, se_reduction

__all__ = [
    "ATTENTION_OPTIONS",
    "ATTENTION_PRESETS",
    "ATTENTION_TYPES",
    "ComposableAttention",
    "DoubleConv",
    "DualPoolChannelAttention",
    "MultiscaleModule",
    "SEWithDropout",
    "SpatialAttention",
    "SpatialPyramidPooling",
    "SplitAttentionConv",
    "attention_block",
    "attention_options",
    "conv_bn_relu",
    "has_multiscale",
    "se_reduction",
    "split_attention_inter_channels",
]
