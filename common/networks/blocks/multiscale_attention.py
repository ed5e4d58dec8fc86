"""The parts of MMRAN's multiscale residual attention module (MRAM) that scSE lacks.

G. Li, X. Hui, W. Li, Y. Luo, "Multitask Learning with Multiscale Residual Attention for Brain Tumor
Segmentation and Classification", Machine Intelligence Research 20(6), 2023 (paper 000), §3.2: the
multiscale module (eq. 1-2) and the channel attention with its optional GMP branch (eq. 3-5). They are put
together with the spatial gate, in parallel or in sequence and with or without the residual sum, by
:class:`~common.networks.blocks.attention.ComposableAttention` (eq. 6-9).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .convolution import conv_bn_relu


class MultiscaleModule(nn.Module):
    """MSM, eq. 1-2: parallel convolutions with kernels k_i = 2(i+1)+1 = 3, 5, 7, 9, concatenated.

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
    """Channel attention, eq. 3-5: ``M_c = sigmoid(MLP(GAP(F'))) * sigmoid(MLP'(GMP(F')))``.

    Unlike CBAM, the GAP and GMP descriptors go through *separate* MLPs and are combined by an elementwise
    product, which keeps a channel prominent only when both branches rate it highly. With
    ``max_pool=False`` only the GAP branch is left, ``M_c = sigmoid(MLP(GAP(F')))``: the excitation of SE
    (Hu, Shen and Sun, CVPR 2018) and of scSE's channel half. Each MLP is ``Linear(C, h) -> ReLU ->
    Linear(h, C)`` with ``h = max(C // reduction, 1)``, so that narrow (test-size) layers work.
    Returns the attention map ``M_c`` of shape (B, C, 1, ...).
    """

    def __init__(self, spatial_dims: int, channels: int, reduction: int = 16, max_pool: bool = True):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.spatial_dims = spatial_dims
        self.avg_mlp = self._mlp(channels, hidden)
        self.max_mlp: nn.Module | None = self._mlp(channels, hidden) if max_pool else None

    @staticmethod
    def _mlp(channels: int, hidden: int) -> nn.Module:
        return nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(2)
        gate = torch.sigmoid(self.avg_mlp(flat.mean(dim=2)))
        if self.max_mlp is not None:
            gate = gate * torch.sigmoid(self.max_mlp(flat.amax(dim=2)))
        for _ in range(self.spatial_dims):  # (B, C) -> (B, C, 1, ...); a loop keeps it TorchScript-friendly
            gate = gate.unsqueeze(-1)
        return gate
