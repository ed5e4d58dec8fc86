"""Losses of the stroke-lesion network with an edge branch: Dice + cross-entropy, Laplacian consistency.

L. Liu, C. Huang, C. Cai, X. Zhang, Q. Hu, "Multi-task learning improves the brain stroke lesion
segmentation" (paper 003 in ``shared/papers``), §2.3 eq. 2-6::

    (2) Loss_segment = α DiceLoss + β CE,                 α = β = 1
    (3) CE = -log(p) if y = 1 else -log(1 - p)
    (4) DiceLoss = 1 - 2 |p ∩ y| / (|p| + |y|)
    (5) Loss_lap = | f_laplace(p) - f_laplace(y) |
    (6) Loss = γ Loss_mask + λ Loss_edge + δ Loss_lap,    γ, λ, δ = 1, 1, 10

``Loss_mask`` and ``Loss_edge`` are eq. 2 on the lesion head and on the edge head; ``Loss_lap`` (the
"consistency loss") compares the second derivatives of the lesion probability and of the lesion mask.

**In the head spec** (:mod:`common.heads`, :class:`~common.losses.MultiTaskLoss`: ``sum_k weight_k
loss_k(pred_k, target_k)``) eq. 6 is two head losses::

    "lesion": {"loss": DiceCELaplacianLoss(mask_weight=γ, laplacian_weight=δ), "weight": 1.0, ...}
    "edge":   {"loss": DiceCELoss(sigmoid=True, batch=True), "weight": λ, "inference": false, ...}

The Laplacian term belongs to the lesion head because it is computed on the lesion head's output and
target; each coefficient appears once (the lesion head's weight stays 1), and ``laplacian_weight=0``
gives Table 2's rows without the consistency loss. :class:`DiceCELaplacianLoss` keeps its two terms in
``last_terms`` for logging.

**Eq. 2-4** is MONAI's ``DiceCELoss(sigmoid=True)``: with one channel its cross-entropy is the binary one
(``BCEWithLogitsLoss``, eq. 3) and its Dice the soft Dice of eq. 4, ``lambda_dice = α``, ``lambda_ce = β``.
Here the Dice counts are pooled over the batch (``batch=True``) by default: the training items are 2D slices
and most hold no lesion, where a per-slice Dice (MONAI's default) is about 1 whatever the prediction, unless
it is exactly empty (the usual Keras Dice of the paper's implementation flattens the batch as well).

**Eq. 5, as implemented.** ``p`` is the lesion probability (the sigmoid of the lesion logits), ``y`` the
binary mask; ``f_laplace`` is the discrete Laplacian, a convolution (``conv2d``, one channel at a time) with
the 3x3 kernel::

    [[0,  1, 0],
     [1, -4, 1],
     [0,  1, 0]]

(3D inputs: the 7-point kernel, -6 at the centre and 1 at the six face neighbours), stride 1, **zero padding
of 1** (the output has the input's size, as a TF/Keras ``"same"`` convolution: outside the image the maps
count as 0, so a non-zero probability on the image border reads as an edge there, in ``p`` and ``y`` alike).
``| . |`` is the mean absolute error over every pixel, channel and batch item ("calculate their mean
absolute error", §2.3). As the Laplacian is linear this is ``mean |f_laplace(p - y)|``, one convolution.
An empty target has ``f_laplace(y) = 0`` and the term is the mean absolute Laplacian of ``p``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss
from torch import nn

__all__ = ["DiceCELaplacianLoss", "LaplacianConsistencyLoss", "laplacian", "laplacian_kernel"]


def laplacian_kernel(spatial_dims: int = 2) -> torch.Tensor:
    """The discrete Laplacian stencil: ``[[0, 1, 0], [1, -4, 1], [0, 1, 0]]`` (2D) or the 7-point one (3D)."""
    if spatial_dims not in (2, 3):
        raise ValueError(f"the Laplacian is defined here for 2D and 3D maps, got {spatial_dims} spatial dims")
    kernel = torch.zeros((3,) * spatial_dims)
    centre = (1,) * spatial_dims
    for axis in range(spatial_dims):
        for offset in (0, 2):
            index = list(centre)
            index[axis] = offset
            kernel[tuple(index)] = 1.0
    kernel[centre] = -2.0 * spatial_dims
    return kernel


def laplacian(x: torch.Tensor) -> torch.Tensor:
    """``f_laplace`` of eq. 5 on each channel of ``x`` (``(B, C, H, W)`` or ``(B, C, H, W, D)``).

    A convolution with :func:`laplacian_kernel`, stride 1, zero padding 1: the output has ``x``'s shape.
    """
    spatial_dims = x.ndim - 2
    kernel = laplacian_kernel(spatial_dims).to(device=x.device, dtype=x.dtype)
    channels = x.shape[1]
    weight = kernel.expand(channels, 1, *kernel.shape)  # depthwise: each channel on its own
    conv = F.conv2d if spatial_dims == 2 else F.conv3d
    return conv(x, weight, padding=1, groups=channels)


class LaplacianConsistencyLoss(nn.Module):
    """Eq. 5: ``mean |f_laplace(p) - f_laplace(y)|`` (see the module docstring for the kernel and padding).

    Args:
        sigmoid: the input is the lesion logits and gets a sigmoid (``p``); False: it is a probability.

    ``forward(input, target)``: ``input`` ``(B, C, *spatial)`` (2D or 3D), ``target`` the same shape, values
    in [0, 1]; returns a scalar.
    """

    def __init__(self, sigmoid: bool = True):
        super().__init__()
        self.sigmoid = sigmoid

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if input.ndim not in (4, 5):
            raise ValueError(f"expected input of shape (B, C, H, W[, D]), got {tuple(input.shape)}")
        if target.shape != input.shape:
            raise ValueError(f"target shape {tuple(target.shape)} differs from input {tuple(input.shape)}")
        # float32 at least: under AMP the -4 centre and the sums of neighbours lose digits in float16
        dtype = torch.promote_types(input.dtype, torch.float32)
        p = torch.sigmoid(input.to(dtype)) if self.sigmoid else input.to(dtype)
        return laplacian(p - target.to(dtype)).abs().mean()  # f(p) - f(y) = f(p - y): f is linear


class DiceCELaplacianLoss(nn.Module):
    """The lesion head's part of eq. 6: ``γ Loss_mask + δ Loss_lap`` (eq. 2-5).

    ``Loss_mask`` is ``DiceCELoss(sigmoid=True)`` (eq. 2-4, ``lambda_dice = α``, ``lambda_ce = β``),
    ``Loss_lap`` is :class:`LaplacianConsistencyLoss` (eq. 5). With the head spec's lesion weight 1 and the
    edge head's weight λ, :class:`~common.losses.MultiTaskLoss` sums to eq. 6 (see the module docstring).

    Args:
        mask_weight: γ (1 in §2.3).
        laplacian_weight: δ (10 in §2.3); 0 for Table 2's rows without the consistency loss (the term is
            then not computed).
        lambda_dice, lambda_ce: α and β of eq. 2 (1 and 1).
        batch: pool the Dice counts over the batch (default; see the module docstring), else average
            per-item Dice losses as MONAI's default.
        smooth_nr, smooth_dr: MONAI's Dice smoothing constants.

    ``forward(input, target)``: the lesion logits ``(B, 1, *spatial)`` and the binary mask of the same shape;
    returns a scalar. ``last_terms`` holds the last ``{"mask": Loss_mask, "laplacian": Loss_lap}`` (before the
    weights) for logging.
    """

    def __init__(
        self,
        mask_weight: float = 1.0,
        laplacian_weight: float = 10.0,
        lambda_dice: float = 1.0,
        lambda_ce: float = 1.0,
        batch: bool = True,
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
    ):
        super().__init__()
        if mask_weight < 0 or laplacian_weight < 0:
            raise ValueError(f"loss weights must be >= 0, got γ={mask_weight}, δ={laplacian_weight}")
        self.mask_weight = float(mask_weight)
        self.laplacian_weight = float(laplacian_weight)
        self.mask_loss = DiceCELoss(
            sigmoid=True,
            lambda_dice=lambda_dice,
            lambda_ce=lambda_ce,
            batch=batch,
            smooth_nr=smooth_nr,
            smooth_dr=smooth_dr,
        )
        self.laplacian_loss = LaplacianConsistencyLoss(sigmoid=True)
        self.last_terms: dict[str, float] = {}

    def terms(self, input: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"mask": Loss_mask, "laplacian": Loss_lap}``, before γ and δ (Loss_lap is 0 when δ = 0)."""
        mask = self.mask_loss(input, target)
        if self.laplacian_weight == 0.0:
            return {"mask": mask, "laplacian": torch.zeros_like(mask)}
        return {"mask": mask, "laplacian": self.laplacian_loss(input, target)}

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        terms = self.terms(input, target)
        self.last_terms = {name: float(value.detach()) for name, value in terms.items()}
        return self.mask_weight * terms["mask"] + self.laplacian_weight * terms["laplacian"]
