"""Spatial pyramid pooling (He et al., "Spatial pyramid pooling in deep convolutional networks for visual
recognition", TPAMI 2015): fixed-length features from feature maps of any size."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.layers.factories import Pool
from torch import nn


class SpatialPyramidPooling(nn.Module):
    """Max-pool to ``n x n`` grids for each level and concatenate, so that the fully connected layers after
    it accept feature maps of any spatial size.
    """

    def __init__(self, spatial_dims: int, levels: Sequence[int] = (1, 2, 4)):
        super().__init__()
        pool = Pool[Pool.ADAPTIVEMAX, spatial_dims]
        self.pools = nn.ModuleList(pool(level) for level in levels)
        self.bins = sum(level**spatial_dims for level in levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([pool(x).flatten(1) for pool in self.pools], dim=1)
