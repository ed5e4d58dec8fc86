"""CBAM's spatial attention: where to look, from the channel-wise mean and maximum.

S. Woo, J. Park, J.-Y. Lee, I. S. Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018, §3,
eq. 3; used alone (without CBAM's channel half) in every bottleneck of ResNeSAt (paper 004, §III.C,
Fig. 4, Table II).

:class:`~common.networks.blocks.attention.ComposableAttention`'s spatial gate (scSE's sSE) is a different
map: a 1x1 convolution of all C channels to one, ``sigmoid(conv1x1(F))``. CBAM's pools the channels first
and then looks at a 7x7 neighbourhood of the two pooled maps, so it is written here once.
"""

from __future__ import annotations

import torch
from monai.networks.layers.factories import Conv
from torch import nn

__all__ = ["SpatialAttention"]


class SpatialAttention(nn.Module):
    """CBAM spatial attention (Woo et al. 2018, eq. 3): ``F * sigmoid(f^{k x k}([AvgPool(F); MaxPool(F)]))``.

    ``AvgPool`` and ``MaxPool`` are the mean and the maximum over the channel axis (two ``(B, 1, ...)``
    maps, concatenated in this order, as in eq. 3); ``f^{k x k}`` is one convolution from 2 channels to 1
    with ``kernel_size`` 7 (CBAM's choice, §4.1) and "same" padding ``(k - 1) / 2``. Returns the input
    multiplied by the map, broadcast over the channels.

    The convolution has no bias by default: eq. 3 has none and the authors' code (a convolution followed by
    batch norm) has none on the convolution, so the block adds exactly ``2 * k^d`` parameters (98 in 2D).
    ``bias=True`` adds one more. (The authors' code also puts a one-channel batch norm before the sigmoid
    and concatenates max before mean; neither is in eq. 3 nor in ResNeSAt's description, §III.C, which
    this follows.)

    Args:
        spatial_dims: 2 or 3.
        kernel_size: the odd size of the convolution window.
        bias: whether the convolution has a bias.
    """

    def __init__(self, spatial_dims: int = 2, kernel_size: int = 7, bias: bool = False):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be an odd positive integer, got {kernel_size}")
        self.conv = Conv[Conv.CONV, spatial_dims](
            2, 1, kernel_size=kernel_size, padding=kernel_size // 2, bias=bias
        )

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """``M_s(F)`` of eq. 3: the ``(B, 1, *spatial)`` weights in (0, 1)."""
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention_map(x)
