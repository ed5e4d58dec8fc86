"""Squeeze-and-excitation variants that MONAI's ``ChannelSELayer`` does not cover.

* :class:`ConcurrentSpatialChannelSE`: scSE (Roy, Navab and Wachinger, MICCAI 2018), an ablation baseline of
  MMRAN (paper 000, Table 2).
* :class:`SEWithDropout`: SE with dropout on the channel weights (Attention R2U-Net, paper 001, §2.1, Fig. 2).
"""

from __future__ import annotations

import torch
from monai.networks.blocks import ChannelSELayer
from monai.networks.layers.factories import Conv
from torch import nn


def se_reduction(channels: int, reduction: int) -> int:
    """MONAI's ChannelSELayer needs 1 <= r < channels; narrow (test-size) layers get a smaller ratio."""
    return max(1, min(reduction, channels // 2))


class ConcurrentSpatialChannelSE(nn.Module):
    """scSE: ``x * cSE(x) + x * sSE(x)`` (Roy, Navab and Wachinger, MICCAI 2018).

    cSE is MONAI's ``ChannelSELayer``; sSE is a 1x1 convolution to one channel and a sigmoid.
    """

    def __init__(self, spatial_dims: int, channels: int, reduction: int = 16):
        super().__init__()
        self.channel_se = ChannelSELayer(spatial_dims, channels, r=se_reduction(channels, reduction))
        self.spatial_gate = nn.Sequential(
            Conv[Conv.CONV, spatial_dims](channels, 1, kernel_size=1), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.channel_se(x) + x * self.spatial_gate(x)


class SEWithDropout(ChannelSELayer):
    """Squeeze-and-excitation with dropout on the channel weights (Attention R2U-Net, §2.1 and Fig. 2).

    ``s = Dropout(sigmoid(W2 ReLU(W1 GAP(x))))`` and the output is ``x * s``. MONAI's ``ChannelSELayer``
    gives the squeeze (global average pooling) and the excitation MLP; the dropout is appended to the
    excitation, so it acts on the channel weights themselves. The paper motivates it in exactly those
    terms: "The random change of channel weight helps the network learn the visual expression of
    different channel features" (§2.1). The paper gives no rate in its text (Table 1 compares with and
    without dropout only), so ``dropout`` is a parameter; as usual the kept weights are scaled by
    ``1 / (1 - p)`` in training and the layer is deterministic in eval mode.
    """

    def __init__(self, spatial_dims: int, channels: int, reduction: int = 16, dropout: float = 0.2):
        super().__init__(spatial_dims, channels, r=se_reduction(channels, reduction))
        self.fc.append(nn.Dropout(dropout))
