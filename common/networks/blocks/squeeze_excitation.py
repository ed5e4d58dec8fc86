"""Squeeze-and-excitation with dropout, which MONAI's ``ChannelSELayer`` does not cover.

:class:`SEWithDropout`: SE with dropout on the channel weights (Attention R2U-Net, paper 001, §2.1, Fig. 2).
SE and scSE as ablation baselines of MMRAN (paper 000, Table 2) are presets of
:class:`~common.networks.blocks.attention.ComposableAttention`.
"""

from __future__ import annotations

from monai.networks.blocks import ChannelSELayer
from torch import nn


def se_reduction(channels: int, reduction: int) -> int:
    """MONAI's ChannelSELayer needs 1 <= r < channels; narrow (test-size) layers get a smaller ratio."""
    return max(1, min(reduction, channels // 2))


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
