"""Building blocks shared by the bundle networks.

Every block works in 2D and 3D (``spatial_dims``) and reuses MONAI's ``Convolution`` and
``ChannelSELayer`` where they do the job. Only the modules MONAI lacks are written here:

* :class:`ConcurrentSpatialChannelSE` - scSE (Roy et al., MICCAI 2018), an ablation baseline of MMRAN.
* :class:`MultiscaleModule`, :class:`DualPoolChannelAttention`, :class:`MultiscaleResidualAttention` -
  the MRAM of MMRAN (Zhou et al., Int. J. Autom. Comput. / MIR, eq. 1-9).
* :class:`SpatialPyramidPooling` - SPP (He et al., TPAMI 2015), fixed-length features from any input size.
* :class:`SEWithDropout` - SE with dropout on the channel weights (Attention R2U-Net, Fig. 2).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import ChannelSELayer, Convolution
from monai.networks.layers.factories import Conv, Pool
from torch import nn

ATTENTION_TYPES = ("none", "se", "scse", "mram")


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


def _se_ratio(channels: int, reduction: int) -> int:
    """MONAI's ChannelSELayer needs 1 <= r < channels; narrow (test-size) layers get a smaller ratio."""
    return max(1, min(reduction, channels // 2))


class ConcurrentSpatialChannelSE(nn.Module):
    """scSE: ``x * cSE(x) + x * sSE(x)`` (Roy, Navab and Wachinger, MICCAI 2018).

    cSE is MONAI's ``ChannelSELayer``; sSE is a 1x1 convolution to one channel and a sigmoid.
    """

    def __init__(self, spatial_dims: int, channels: int, reduction: int = 16):
        super().__init__()
        self.channel_se = ChannelSELayer(spatial_dims, channels, r=_se_ratio(channels, reduction))
        self.spatial_gate = nn.Sequential(
            Conv[Conv.CONV, spatial_dims](channels, 1, kernel_size=1), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.channel_se(x) + x * self.spatial_gate(x)


class MultiscaleModule(nn.Module):
    """MSM of MMRAN, eq. 1-2: parallel convolutions with kernels k_i = 2(i+1)+1 = 3, 5, 7, 9, concatenated.

    Each branch gives ``channels // len(kernel_sizes)`` maps so that ``F'`` keeps the channel count of ``F``
    (needed for the residual sums of eq. 9-10). Each branch is conv + BN + ReLU.
    """

    def __init__(self, spatial_dims: int, channels: int, kernel_sizes: Sequence[int] = (3, 5, 7, 9)):
        super().__init__()
        if channels % len(kernel_sizes):
            raise ValueError(
                f"channels ({channels}) must be divisible by the number of branches ({len(kernel_sizes)})"
            )
        branch_channels = channels // len(kernel_sizes)
        self.branches = nn.ModuleList(
            conv_bn_relu(spatial_dims, channels, branch_channels, kernel_size=k) for k in kernel_sizes
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class DualPoolChannelAttention(nn.Module):
    """Channel attention of MRAM, eq. 3-5: ``M_c = sigmoid(MLP(GAP(F'))) * sigmoid(MLP'(GMP(F')))``.

    Unlike CBAM, the GAP and GMP descriptors go through *separate* MLPs and are combined by an elementwise
    product, which keeps a channel prominent only when both branches rate it highly.
    Returns the attention map ``M_c`` of shape (B, C, 1, ...).
    """

    def __init__(self, spatial_dims: int, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.spatial_dims = spatial_dims
        self.avg_mlp = self._mlp(channels, hidden)
        self.max_mlp = self._mlp(channels, hidden)

    @staticmethod
    def _mlp(channels: int, hidden: int) -> nn.Module:
        return nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(2)
        avg_gate = torch.sigmoid(self.avg_mlp(flat.mean(dim=2)))
        max_gate = torch.sigmoid(self.max_mlp(flat.amax(dim=2)))
        return (avg_gate * max_gate).view(*x.shape[:2], *([1] * self.spatial_dims))


class MultiscaleResidualAttention(nn.Module):
    """MRAM of MMRAN (§3.2): multiscale features, channel then spatial attention, residual sum.

    ``F' = MSM(F)`` (eq. 2); ``F_cSE = M_c(F') * F'`` (eq. 5-6); ``F^ = sigmoid(conv1x1(F_cSE)) * F_cSE``
    (eq. 7-8); output ``F_att = F' + F^`` (eq. 9).
    """

    def __init__(self, spatial_dims: int, channels: int, reduction: int = 16, kernel_sizes=(3, 5, 7, 9)):
        super().__init__()
        self.multiscale = MultiscaleModule(spatial_dims, channels, kernel_sizes)
        self.channel_attention = DualPoolChannelAttention(spatial_dims, channels, reduction)
        self.spatial_gate = nn.Sequential(
            Conv[Conv.CONV, spatial_dims](channels, 1, kernel_size=1), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        multiscale = self.multiscale(x)
        channel_weighted = self.channel_attention(multiscale) * multiscale
        spatially_weighted = self.spatial_gate(channel_weighted) * channel_weighted
        return multiscale + spatially_weighted


def attention_block(kind: str, spatial_dims: int, channels: int, reduction: int = 16) -> nn.Module:
    """The attention module named by ``kind`` (one of ``ATTENTION_TYPES``); identity for ``"none"``."""
    if kind == "none":
        return nn.Identity()
    if kind == "se":
        return ChannelSELayer(spatial_dims, channels, r=_se_ratio(channels, reduction))
    if kind == "scse":
        return ConcurrentSpatialChannelSE(spatial_dims, channels, reduction)
    if kind == "mram":
        return MultiscaleResidualAttention(spatial_dims, channels, reduction)
    raise ValueError(f"attention must be one of {ATTENTION_TYPES}, got {kind!r}")


class SpatialPyramidPooling(nn.Module):
    """SPP (He et al., 2015): max-pool to ``n x n`` grids for each level and concatenate, so that the
    fully connected layers after it accept feature maps of any spatial size.
    """

    def __init__(self, spatial_dims: int, levels: Sequence[int] = (1, 2, 4)):
        super().__init__()
        pool = Pool[Pool.ADAPTIVEMAX, spatial_dims]
        self.pools = nn.ModuleList(pool(level) for level in levels)
        self.bins = sum(level**spatial_dims for level in levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([pool(x).flatten(1) for pool in self.pools], dim=1)


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
        super().__init__(spatial_dims, channels, r=_se_ratio(channels, reduction))
        self.fc.append(nn.Dropout(dropout))
