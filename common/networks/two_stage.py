"""Two classifiers chained as one network: tumour presence, then the tumour's source (paper 004, §III.A).

Zhang et al., "Brain Tumors Classification for MR images based on Attention Guided Deep Learning Model"
(paper 004 in ``shared/papers``) train two classifiers separately: one tells whether an image shows a
tumour; the other, for images with a tumour, whether it is primary (intracranial) or secondary
(metastatic). :class:`TwoStageClassifier` holds both so that a bundle has one ``network_def``, one
``models/model.pt`` and one export:

* **training** trains one stage at a time: the bundle's ``task`` picks the sub-network
  (``getattr(network, task)``), its optimiser sees only that stage's parameters, and the saved checkpoint is
  the whole two-stage network, so training the second stage keeps the first stage's weights (loaded from
  ``model.pt`` at the start);
* **inference** runs both: ``pred`` is ``(B, 4)``: the presence logits (absent, present), then the source
  logits (primary, secondary). The source probability is meaningful where presence says "present"; the
  post-processing reports it there only.

:meth:`TwoStageClassifier.heads` returns both stages' heads by name (``{"presence": ..., "source": ...}``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .multihead import MultiHeadNetwork

__all__ = ["STAGES", "TwoStageClassifier"]

STAGES: tuple[str, str] = ("presence", "source")
"""The stages in order; each is a sub-module of :class:`TwoStageClassifier` and a head name."""


class TwoStageClassifier(MultiHeadNetwork):
    """Presence and source classifiers as one network (see the module docstring).

    Args:
        presence: the stage-1 classifier; ``presence(x)`` is ``(B, 2)`` logits (absent, present).
        source: the stage-2 classifier; ``source(x)`` is ``(B, 2)`` logits (primary, secondary).
        pred_heads: the stages in ``pred``, in order (both by default; the bundle passes
            ``$@heads.inference_names``).
    """

    def __init__(self, presence: nn.Module, source: nn.Module, pred_heads: Sequence[str] | None = None):
        super().__init__(STAGES, pred_heads)
        self.presence = presence
        self.source = source

    def heads(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"presence": self.presence(x), "source": self.source(x)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs: list[torch.Tensor] = []
        for name in self.pred_heads:  # a stage missing from pred is not run
            outputs.append(self.presence(x) if name == "presence" else self.source(x))
        return torch.cat(outputs, dim=1)
