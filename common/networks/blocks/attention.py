"""The attention modules of MMRAN's ablation (paper 000, Table 2), chosen by name."""

from __future__ import annotations

from monai.networks.blocks import ChannelSELayer
from torch import nn

from .multiscale_attention import MultiscaleResidualAttention
from .squeeze_excitation import ConcurrentSpatialChannelSE, se_reduction

ATTENTION_TYPES = ("none", "se", "scse", "mram")


def attention_block(kind: str, spatial_dims: int, channels: int, reduction: int = 16) -> nn.Module:
    """The attention module named by ``kind`` (one of ``ATTENTION_TYPES``); identity for ``"none"``."""
    if kind == "none":
        return nn.Identity()
    if kind == "se":
        return ChannelSELayer(spatial_dims, channels, r=se_reduction(channels, reduction))
    if kind == "scse":
        return ConcurrentSpatialChannelSE(spatial_dims, channels, reduction)
    if kind == "mram":
        return MultiscaleResidualAttention(spatial_dims, channels, reduction)
    raise ValueError(f"attention must be one of {ATTENTION_TYPES}, got {kind!r}")
