"""One loss wrapper for every multi-head network: a weighted sum of per-head losses.

MMRAN eq. 13: ``Loss_MTL = (1 - alpha) Loss_Dice + alpha Loss_FL`` is this wrapper with
``losses={"seg": DiceLoss, "cls": ClassificationFocalLoss}`` and ``weights={"seg": 1 - alpha, "cls": alpha}``.
The weights are plain attributes so that the schedules in :mod:`common.losses.schedules` can change them
between epochs.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


class MultiTaskLoss(nn.Module):
    """``sum_k weights[k] * losses[k](pred[k], target[k])`` over the heads of a dict-returning network.

    Heads with weight 0 are not evaluated at all, so a frozen task gets no gradient (freeze training).
    The last value of each term is kept in ``last_terms`` for logging.

    Args:
        losses: head name -> loss module.
        weights: head name -> weight; heads not named get weight 1. Defaults to 1 for every head.
    """

    def __init__(self, losses: Mapping[str, nn.Module], weights: Mapping[str, float] | None = None):
        super().__init__()
        if not losses:
            raise ValueError("MultiTaskLoss needs at least one head loss")
        self.losses = nn.ModuleDict(dict(losses))
        self.weights: dict[str, float] = {}
        self.set_weights(weights or {})
        self.last_terms: dict[str, float] = {}

    def set_weights(self, weights: Mapping[str, float]) -> None:
        unknown = set(weights) - set(self.losses)
        if unknown:
            raise ValueError(
                f"weights given for unknown heads {sorted(unknown)}; heads are {list(self.losses)}"
            )
        self.weights = {head: float(weights.get(head, 1.0)) for head in self.losses}

    def forward(self, pred: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]) -> torch.Tensor:
        missing = [head for head in self.losses if head not in pred or head not in target]
        if missing:
            raise KeyError(f"heads {missing} missing from the network output or the targets")
        active = [head for head in self.losses if self.weights[head] != 0.0]
        if not active:
            raise ValueError("every loss weight is 0: nothing to train")
        total = 0.0
        for head in active:
            term = self.losses[head](pred[head], target[head])
            self.last_terms[head] = float(term.detach())
            total = total + self.weights[head] * term
        return total
