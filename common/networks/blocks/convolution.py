"""Convolution units of U-Net style encoders and decoders."""

from __future__ import annotations

from monai.networks.blocks import Convolution
from torch import nn


def conv_bn_relu(spatial_dims: int, in_channels: int, out_channels: int, kernel_size: int = 3) -> nn.Module:
    """Convolution -> batch norm -> ReLU, the basic unit of U-Net style encoders and decoders."""
    return Convolution(
        spatial_dims, in_channels, out_channels, kernel_size=kernel_size, act="RELU", norm="BATCH", bias=False
    )


class DoubleConv(nn.Sequential):
    """Two ``conv_bn_relu`` units: the U-Net stage."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int):
        super().__init__(
            conv_bn_relu(spatial_dims, in_channels, out_channels),
            conv_bn_relu(spatial_dims, out_channels, out_channels),
        )
