"""Multi-head networks: a dict of named heads in training, one tensor ``pred`` at inference.

A bundle network subclasses :class:`MultiHeadNetwork` and implements :meth:`~MultiHeadNetwork.heads`, which
returns every head the paper trains. Its ``forward`` is what the bundle's inference ``network_def`` runs,
what ``verify_net_in_out`` checks and what TorchScript and ONNX export: the heads named in ``pred_heads``
(the head spec's inference heads, see :mod:`common.heads`) concatenated on the channel axis. Image-level
heads (a ``(B, C)`` vector, e.g. tumour-type logits) are repeated over the image grid, so that a single
tensor carries every result of the network.

Training runs :class:`TrainingHeads` around the same network object, so the loss sees the dict of all heads
while the checkpoint is the plain ``state_dict`` of the inference network (the wrapper has no parameters of
its own and :func:`common.engines.unwrap` strips it like DDP's wrapper). This follows MONAI's DynUNet and
SegResNetDS, whose deep-supervision outputs exist only in training.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["MultiHeadNetwork", "TrainingHeads", "heads_to_pred"]


def heads_to_pred(outputs: dict[str, torch.Tensor], names: list[str]) -> torch.Tensor:
    """Concatenate ``outputs[name]`` for ``names`` on dim 1; ``(B, C)`` vectors are repeated over the grid.

    The grid is that of the first spatial output among ``names``.
    """
    grid: list[int] = []
    for name in names:
        if outputs[name].dim() > 2:
            grid = outputs[name].shape[2:]
            break
    if len(grid) == 0:
        raise ValueError("pred needs at least one spatial head to give the image grid")
    parts: list[torch.Tensor] = []
    for name in names:
        value = outputs[name]
        if value.dim() == 2:
            for _ in range(len(grid)):
                value = value.unsqueeze(-1)
            value = value.expand([-1, -1] + list(grid))
        parts.append(value)
    return torch.cat(parts, dim=1)


class MultiHeadNetwork(nn.Module):
    """Base class of the bundle networks (see the module docstring).

    Args:
        head_names: every head :meth:`heads` returns, in order.
        pred_heads: the heads that make up ``pred``, in channel order; all heads when None.
    """

    def __init__(self, head_names: Sequence[str], pred_heads: Sequence[str] | None = None):
        super().__init__()
        self.head_names: list[str] = list(head_names)
        pred = self.head_names if pred_heads is None else list(pred_heads)
        unknown = [name for name in pred if name not in self.head_names]
        if unknown or not pred:
            raise ValueError(f"pred_heads {pred} must be a non-empty subset of the heads {self.head_names}")
        self.pred_heads: list[str] = pred

    def heads(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every head's logits: ``(B, C, *spatial)`` maps or ``(B, C)`` image-level vectors."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return heads_to_pred(self.heads(x), self.pred_heads)


class TrainingHeads(nn.Module):
    """Runs ``module.heads`` as its forward: the dict of every head, for the training loss.

    The network sits in the attribute ``module`` (as in DataParallel), so :func:`common.engines.unwrap`
    reaches it and checkpoints hold the network's own ``state_dict``.
    """

    def __init__(self, module: MultiHeadNetwork):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.module.heads(x)
