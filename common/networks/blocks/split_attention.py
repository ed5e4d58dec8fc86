"""ResNeSt's split-attention convolution (Zhang et al. 2020, §3.1-3.2, Fig. 2 right, eq. 1-3).

H. Zhang, C. Wu, Z. Zhang, Y. Zhu, H. Lin, Z. Zhang, Y. Sun, T. He, J. Mueller, R. Manmatha, M. Li,
A. Smola, "ResNeSt: Split-Attention Networks", arXiv:2004.08955 (2020), CVPR Workshops 2022; the "SplAtConv"
of ResNeSAt's bottlenecks (paper 004, §III.C, Table II). MONAI has no split attention.
"""

from __future__ import annotations

import torch
from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Conv, Pool
from torch import nn

__all__ = ["SplitAttentionConv", "split_attention_inter_channels"]


def split_attention_inter_channels(
    in_channels: int, radix: int, reduction_factor: int = 4, minimum: int = 32
) -> int:
    """Width of the attention MLP's hidden layer: ``max(in_channels * radix // reduction_factor, minimum)``.

    The official implementation's rule (32 for the first stage of ResNeSt-50, then 64, 128, 256).
    """
    return max(in_channels * radix // reduction_factor, minimum)


class SplitAttentionConv(nn.Module):
    """Split-attention convolution with ``radix`` splits in each of ``cardinality`` cardinal groups.

    With ``C`` = ``channels``, ``r`` = ``radix`` and ``K`` = ``cardinality``:

    1. ``splits``: one grouped ``kernel_size`` convolution (``K * r`` groups, no bias) + BN + ReLU gives
       ``r * C`` maps, the feature-map groups ``U_1 .. U_r`` of ``C`` maps each (radix-major: split ``i``
       is channels ``i*C .. (i+1)*C - 1``);
    2. their sum ``U = sum_i U_i`` is pooled globally, ``s = GAP(U)`` (eq. 1, per cardinal group);
    3. ``squeeze``: a 1x1 convolution (with bias, ``K`` groups) to ``inter_channels`` + BN + ReLU; then
       ``excite``: a 1x1 convolution (with bias, ``K`` groups) to ``r * C`` logits, ordered cardinal group,
       then split, then channel;
    4. the r-softmax: for each channel, a softmax over the ``r`` splits of its cardinal group (eq. 3; a
       sigmoid when ``r == 1``, where the block is SE-like);
    5. the output is ``V = sum_i a_i * U_i`` (eq. 2), ``C`` maps.

    ``inter_channels`` defaults to :func:`split_attention_inter_channels` (``max(in * r / 4, 32)``). The
    layer layout (and so a checkpoint's tensor shapes) is that of the official ``SplAtConv2d``; the
    submodules are ``splits`` (official ``conv`` + ``bn0``), ``squeeze`` (``fc1`` + ``bn1``) and
    ``excite`` (``fc2``).

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels (divisible by ``radix * cardinality``).
        channels: output channels ``C`` (divisible by ``cardinality``).
        kernel_size: the window of the split convolutions.
        stride: their stride (ResNeSt-50 uses 1 and pools afterwards, see :mod:`common.networks.resnest`).
        radix: the number of splits ``r`` per cardinal group.
        cardinality: the number of cardinal groups ``K``.
        reduction_factor: the reduction of the attention MLP (4 in ResNeSt).
        inter_channels: override the MLP's hidden width.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        radix: int = 2,
        cardinality: int = 1,
        reduction_factor: int = 4,
        inter_channels: int | None = None,
    ):
        super().__init__()
        if radix < 1 or cardinality < 1:
            raise ValueError(f"radix and cardinality must be positive, got {radix} and {cardinality}")
        if in_channels % (radix * cardinality) or channels % cardinality:
            raise ValueError(
                f"in_channels ({in_channels}) must be divisible by radix * cardinality "
                f"({radix * cardinality}) and channels ({channels}) by cardinality ({cardinality})"
            )
        inter = (
            split_attention_inter_channels(in_channels, radix, reduction_factor)
            if inter_channels is None
            else inter_channels
        )
        if inter % cardinality:
            raise ValueError(f"inter_channels ({inter}) must be divisible by cardinality ({cardinality})")
        self.spatial_dims = spatial_dims
        self.radix = radix
        self.cardinality = cardinality
        self.channels = channels
        self.splits = Convolution(
            spatial_dims,
            in_channels,
            channels * radix,
            strides=stride,
            kernel_size=kernel_size,
            groups=cardinality * radix,
            act=("RELU", {"inplace": True}),
            norm="BATCH",
            bias=False,
        )
        self.pool = Pool[Pool.ADAPTIVEAVG, spatial_dims](1)
        self.squeeze = Convolution(
            spatial_dims,
            channels,
            inter,
            kernel_size=1,
            groups=cardinality,
            act=("RELU", {"inplace": True}),
            norm="BATCH",
            bias=True,
        )
        self.excite = Conv[Conv.CONV, spatial_dims](
            inter, channels * radix, kernel_size=1, groups=cardinality
        )

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The weights ``a`` of the splits for the split maps ``x`` (``(B, r*C, ...)``): ``(B, r, C)``.

        For ``r > 1`` the weights of each channel sum to one over the ``r`` splits.
        """
        splits = torch.chunk(x, self.radix, dim=1)
        summed = splits[0]
        for i in range(1, self.radix):
            summed = summed + splits[i]
        logits = self.excite(self.squeeze(self.pool(summed))).flatten(
            1
        )  # (B, r*C), [cardinal][split][channel]
        if self.radix == 1:
            return torch.sigmoid(logits).unsqueeze(1)
        grouped = logits.view(-1, self.cardinality, self.radix, self.channels // self.cardinality)
        weights = torch.softmax(grouped, dim=2)  # the r-softmax, per cardinal group and channel
        return weights.transpose(1, 2).reshape(-1, self.radix, self.channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.splits(x)
        weights = self.attention(x)
        splits = torch.chunk(x, self.radix, dim=1)
        for _ in range(
            self.spatial_dims
        ):  # (B, r, C) -> (B, r, C, 1, ...); a loop keeps it TorchScript-friendly
            weights = weights.unsqueeze(-1)
        out = weights[:, 0] * splits[0]
        for i in range(1, self.radix):
            out = out + weights[:, i] * splits[i]
        return out
