"""MMRAN: multitask multiscale residual attention network.

G. Li, X. Hui, W. Li, Y. Luo, "Multitask Learning with Multiscale Residual Attention for Brain Tumor
Segmentation and Classification", Machine Intelligence Research 20(6), 2023 (paper 000 in
``shared/papers``), §3.1-3.2, Fig. 1-4.

A U-Net with a shared encoder (3x3 conv + BN + ReLU, max-pool down) whose stages are residual modules
carrying an attention module (the MRAM by default, eq. 10: ``F_out = F_att + F_res``; any composition of
Table 2's ablation, see :mod:`common.networks.blocks.attention`), a segmentation
decoder (transposed convolutions that halve the channels, skip concatenation, two conv units) and a
classification branch from the end of the encoder through spatial pyramid pooling to fully connected
layers, so that any input size works.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Conv, Pool
from torch import nn

from .blocks import (
    DoubleConv,
    SpatialPyramidPooling,
    attention_block,
    attention_options,
    conv_bn_relu,
    has_multiscale,
)
from .multihead import MultiHeadNetwork


class ResidualAttentionStage(nn.Module):
    """Encoder stage of MMRAN (Fig. 4, eq. 10): ``F_out = attention(body(x)) + F_res(x)``.

    ``attention`` is a preset name or a mapping of options
    (:func:`~common.networks.blocks.attention_options`).
    ``body`` is two conv units, except when the attention module has the multiscale module (the MRAM and
    the +scSE+MSM rows of Table 2): its convolutions take the place of the second conv unit, as the paper
    puts the MRAM *into* the residual module "to save the number of parameters" (§3.2.3). The shortcut
    ``F_res`` is a 1x1 convolution + BN when the channel count changes, else the identity. With
    ``attention="none"`` the stage is a plain U-Net stage without a shortcut (the paper's baseline).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        attention: str | Mapping[str, Any],
        reduction: int,
    ):
        super().__init__()
        self.body = (
            conv_bn_relu(spatial_dims, in_channels, out_channels)
            if has_multiscale(attention)
            else DoubleConv(spatial_dims, in_channels, out_channels)
        )
        self.attention = attention_block(attention, spatial_dims, out_channels, reduction)
        self.shortcut: nn.Module | None = None
        if attention_options(attention) is not None:
            self.shortcut = (
                nn.Identity()
                if in_channels == out_channels
                else Convolution(
                    spatial_dims, in_channels, out_channels, kernel_size=1, norm="BATCH", act=None
                )
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.attention(self.body(x))
        return out if self.shortcut is None else out + self.shortcut(x)


class UpStage(nn.Module):
    """Decoder stage: transposed conv to half the channels, concatenate the skip, two conv units."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int):
        super().__init__()
        self.up = Conv[Conv.CONVTRANS, spatial_dims](in_channels, out_channels, kernel_size=2, stride=2)
        self.conv = DoubleConv(spatial_dims, 2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class MMRAN(MultiHeadNetwork):
    """MMRAN for joint tumour segmentation and tumour-type classification.

    Args:
        spatial_dims: 2 (the paper) or 3.
        in_channels: image channels (1 for T1-CE).
        seg_channels: segmentation output channels (1: sigmoid tumour mask).
        num_classes: tumour types (3: meningioma, glioma, pituitary).
        features: channels per encoder level; the last is the bottleneck. The paper's U-Net uses
            (64, 128, 256, 512, 1024).
        attention: attention module in the shared encoder stages (the ablation of Table 2): "none" or a
            preset, "se", "scse" or "mram", or a mapping of the options of
            :class:`~common.networks.blocks.ComposableAttention` (``preset``, ``multiscale``,
            ``max_pool``, ``spatial``, ``arrangement``, ``residual``, ``reduction``, ``kernel_sizes``),
            e.g. ``{"preset": "scse", "multiscale": True}``; see
            :func:`~common.networks.blocks.attention_options`.
        reduction: channel reduction ratio of the attention MLPs.
        spp_levels: spatial pyramid pooling grid sizes of the classification branch.
        cls_hidden: width of the hidden fully connected layer of the classification branch.
        dropout: dropout before each fully connected layer of the classification branch.
        pred_heads: the heads in the inference output (``forward``), default both.

    :meth:`heads` returns ``{"seg": (B, seg_channels, *spatial) logits, "cls": (B, num_classes) logits}``;
    ``forward`` returns ``pred`` = ``(B, seg_channels + num_classes, *spatial)``: the tumour logits, then the
    class logits repeated over the image (see :mod:`common.networks.multihead`). The input's spatial size
    must be divisible by ``2 ** (len(features) - 1)``.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        seg_channels: int = 1,
        num_classes: int = 3,
        features: Sequence[int] = (64, 128, 256, 512, 1024),
        attention: str | Mapping[str, Any] = "mram",
        reduction: int = 16,
        spp_levels: Sequence[int] = (1, 2, 4),
        cls_hidden: int = 128,
        dropout: float = 0.5,
        pred_heads: Sequence[str] | None = None,
    ):
        super().__init__(("seg", "cls"), pred_heads)
        attention_options(attention)  # one ValueError for a bad name, key or value, before any layer is built
        if len(features) < 2:
            raise ValueError("features needs at least two levels (one encoder stage and the bottleneck)")
        self.divisor = 2 ** (len(features) - 1)
        channels = [in_channels, *features]
        self.encoder = nn.ModuleList(
            ResidualAttentionStage(spatial_dims, channels[i], channels[i + 1], attention, reduction)
            for i in range(len(features) - 1)
        )
        self.pool = Pool[Pool.MAX, spatial_dims](kernel_size=2)
        self.bottleneck = DoubleConv(spatial_dims, features[-2], features[-1])
        self.decoder = nn.ModuleList(
            UpStage(spatial_dims, features[i + 1], features[i]) for i in reversed(range(len(features) - 1))
        )
        self.seg_head = Conv[Conv.CONV, spatial_dims](features[0], seg_channels, kernel_size=1)
        self.spp = SpatialPyramidPooling(spatial_dims, spp_levels)
        self.cls_head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(features[-1] * self.spp.bins, cls_hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(cls_hidden, num_classes),
        )

    def heads(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        for size in x.shape[2:]:
            if size % self.divisor != 0:
                raise ValueError(
                    f"MMRAN input size {x.shape[2:]} must be divisible by {self.divisor}; pad it first "
                    "(e.g. monai.transforms.DivisiblePad)"
                )
        skips: list[torch.Tensor] = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        cls_logits = self.cls_head(self.spp(x))
        for up in self.decoder:  # deepest skip first
            x = up(x, skips.pop())
        return {"seg": self.seg_head(x), "cls": cls_logits}


__all__ = ["MMRAN", "ResidualAttentionStage", "UpStage", "conv_bn_relu"]
