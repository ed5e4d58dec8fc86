"""Building blocks of the bundle networks, one concept per module; all work in 2D and 3D (``spatial_dims``).

Only what MONAI lacks is written here; MONAI's ``Convolution``, ``ChannelSELayer``, ``ADN`` and ``UpSample``
are reused where they do the job.
"""

from .attention import ATTENTION_TYPES, attention_block
from .convolution import DoubleConv, conv_bn_relu
from .multiscale_attention import DualPoolChannelAttention, MultiscaleModule, MultiscaleResidualAttention
from .pyramid_pooling import SpatialPyramidPooling
from .squeeze_excitation import ConcurrentSpatialChannelSE, SEWithDropout, se_reduction

__all__ = [
    "ATTENTION_TYPES",
    "ConcurrentSpatialChannelSE",
    "DoubleConv",
    "DualPoolChannelAttention",
    "MultiscaleModule",
    "MultiscaleResidualAttention",
    "SEWithDropout",
    "SpatialPyramidPooling",
    "attention_block",
    "conv_bn_relu",
    "se_reduction",
]
