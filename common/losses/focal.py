"""Focal loss for image-level classification with a per-class weight alpha_t.

Lin et al., "Focal loss for dense object detection", ICCV 2017; MMRAN eq. 12:
``FL(p_t) = -alpha_t (1 - p_t)^gamma log(p_t)``, with alpha_t = 0.25 and gamma = 2 in the paper.

alpha_t is the weight *of the sample's true class t*. A scalar alpha gives every class the same weight,
as the paper states. (MONAI's ``FocalLoss`` turns a scalar alpha into ``1 - alpha`` for channel 0 and
``alpha`` for the others, which suits segmentation with a background channel but not tumour types; the
public MMRAN code builds a per-class vector and then overwrites it. Here the vector is built once and
indexed by the target class.)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class ClassificationFocalLoss(nn.Module):
    """Softmax focal loss on (B, C) logits.

    Args:
        num_classes: C.
        alpha: one weight for all classes, or a sequence of C per-class weights; None for no weighting.
        gamma: focusing parameter (>= 0); 0 with alpha None is plain cross-entropy.
        reduction: "mean", "sum" or "none".

    Targets may be class indices of shape (B,) or (B, 1), or one-hot / soft labels of shape (B, C).
    """

    def __init__(
        self,
        num_classes: int,
        alpha: float | Sequence[float] | None = 0.25,
        gamma: float = 2.0,
        reduction: str = "mean",
    ):
        super().__init__()
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        if alpha is None:
            weights = torch.ones(num_classes)
        elif isinstance(alpha, (int, float)):
            weights = torch.full((num_classes,), float(alpha))
        else:
            weights = torch.as_tensor(alpha, dtype=torch.float32)
            if weights.shape != (num_classes,):
                raise ValueError(
                    f"alpha has {weights.numel()} values, expected one per class ({num_classes})"
                )
        self.register_buffer("alpha", weights)
        self.num_classes = num_classes
        self.gamma = gamma
        self.reduction = reduction

    def _one_hot(self, target: torch.Tensor, batch: int) -> torch.Tensor:
        if target.ndim == 2 and target.shape[1] == self.num_classes and self.num_classes > 1:
            return target.float()
        indices = target.reshape(batch).long()
        return F.one_hot(indices, self.num_classes).float()

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.ndim != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(f"expected logits of shape (B, {self.num_classes}), got {tuple(logits.shape)}")
        one_hot = self._one_hot(target, logits.shape[0]).to(logits.device)
        log_p = F.log_softmax(logits.float(), dim=1)
        focal_term = (1.0 - log_p.exp()).pow(self.gamma)
        per_class = -self.alpha.to(logits.device) * focal_term * log_p * one_hot
        per_sample = per_class.sum(dim=1)
        if self.reduction == "mean":
            return per_sample.mean()
        if self.reduction == "sum":
            return per_sample.sum()
        return per_sample
