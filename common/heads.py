"""The head spec: each output head of a multi-task network declared once, in the bundle's config.

A bundle's config lists its heads in one ``heads`` entry::

    "heads": {
        "_target_": "common.heads.HeadSpec",
        "labels": "$common.labels.BRATS",
        "heads": {
            "wt": {"region": "wt", "channel_names": ["whole tumour"], "loss": "@region_loss"},
            "et": {"region": "et", "channel_names": ["enhancing tumour"], "loss": "@region_loss"},
            ...
        }
    }

and everything that depends on the heads is derived from it, so that adding, renaming or dropping a head is
one edit:

* the network's inference output ``pred``: the heads with ``inference: true`` concatenated on the channel
  axis in spec order (:meth:`HeadSpec.pred_layout`, :meth:`HeadSpec.channel_def`, checked against
  ``network_data_format`` by the conformance test);
* the training loss (:meth:`HeadSpec.loss`, a :class:`~common.losses.MultiTaskLoss` of the heads' losses and
  weights);
* the targets: a ``region`` head learns the mask of that region of the canonical label map
  (:class:`~common.transforms.LabelToHeadMasksd`), other heads learn a datalist key such as ``"class"``
  (:meth:`HeadSpec.targets` for :class:`~common.engines.MultiTaskPrepareBatch`);
* the activations and the split of ``pred`` back into one key per head
  (:class:`~common.transforms.SplitHeadsd`).

Image-level heads (``"image_level": true``, e.g. a tumour-type classifier) give a ``(B, C)`` vector in
training; in ``pred`` the vector is repeated over the image grid so that one tensor carries both results
through TorchScript, ONNX, MONAI Label and MONAI Deploy (see docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from common.labels import LabelScheme
from common.losses import MultiTaskLoss

__all__ = ["ACTIVATIONS", "Head", "HeadSpec"]

ACTIVATIONS = ("sigmoid", "softmax")


@dataclass(frozen=True)
class Head:
    """One output head.

    Attributes:
        name: the key of the head in the network's training output dict.
        channel_names: one name per output channel (model card ``channel_def``); their count is the channels.
        activation: ``"sigmoid"`` (independent channels) or ``"softmax"`` (mutually exclusive classes).
        region: the region of the label scheme whose mask is this head's target; ``None`` when the target
            is a datalist key (``target``) used as it is.
        target: the datalist/batch key the target comes from (``"label"`` for a label map, ``"class"``...).
        loss: the loss module of this head (training only).
        weight: its weight in the multi-task loss (loss-weight schedules may change it per epoch).
        inference: whether the head is part of the inference output ``pred``; auxiliary heads that the paper
            drops at inference say ``False``.
        image_level: one vector per image (classification) instead of a map.
    """

    name: str
    channel_names: Sequence[str]
    activation: str = "sigmoid"
    region: str | None = None
    target: str = "label"
    loss: nn.Module | None = None
    weight: float = 1.0
    inference: bool = True
    image_level: bool = False

    @property
    def channels(self) -> int:
        return len(self.channel_names)

    @property
    def target_key(self) -> str:
        """Batch key of this head's ground truth: ``label_<name>`` for a region head, else ``target``."""
        return f"{self.target}_{self.name}" if self.region is not None else self.target


class HeadSpec:
    """The ordered heads of one bundle's network (see the module docstring).

    Args:
        heads: head name -> the fields of :class:`Head` (without ``name``), in output order.
        labels: the canonical label scheme that ``region`` names refer to.
    """

    def __init__(self, heads: Mapping[str, Mapping[str, Any]], labels: LabelScheme | None = None):
        if not heads:
            raise ValueError("a HeadSpec needs at least one head")
        self.labels = labels
        self.heads: dict[str, Head] = {}
        for name, fields in heads.items():
            head = Head(name=name, **dict(fields))
            if head.activation not in ACTIVATIONS:
                raise ValueError(
                    f"head {name!r}: activation must be one of {ACTIVATIONS}, got {head.activation!r}"
                )
            if head.channels < 1:
                raise ValueError(f"head {name!r}: channel_names must name at least one channel")
            if head.region is not None:
                if labels is None:
                    raise ValueError(f"head {name!r} names region {head.region!r} but the spec has no labels")
                labels.region(head.region)  # raises for an unknown region
            self.heads[name] = head
        if not self.inference_heads:
            raise ValueError("at least one head must be present at inference")

    def __iter__(self):
        return iter(self.heads.values())

    def __getitem__(self, name: str) -> Head:
        return self.heads[name]

    @property
    def names(self) -> list[str]:
        return list(self.heads)

    @property
    def inference_heads(self) -> list[Head]:
        return [h for h in self.heads.values() if h.inference]

    @property
    def inference_names(self) -> list[str]:
        return [h.name for h in self.inference_heads]

    @property
    def region_heads(self) -> dict[str, tuple[int, ...]]:
        """Head name -> canonical label values of its target region, for the heads that learn a region.

        (``__init__`` already refused a region head without a label scheme.)
        """
        if self.labels is None:
            return {}
        return {h.name: self.labels.region(h.region) for h in self if h.region is not None}

    # ------------------------------------------------------------------ inference output
    def pred_layout(self) -> dict[str, slice]:
        """Head name -> its channel slice in ``pred`` (inference heads in spec order)."""
        layout, start = {}, 0
        for head in self.inference_heads:
            layout[head.name] = slice(start, start + head.channels)
            start += head.channels
        return layout

    @property
    def pred_channels(self) -> int:
        return sum(h.channels for h in self.inference_heads)

    def channel_def(self) -> dict[str, str]:
        """``{"0": name, ...}`` of the channels of ``pred``, as ``network_data_format`` lists them."""
        names = [c for head in self.inference_heads for c in head.channel_names]
        return {str(i): name for i, name in enumerate(names)}

    # ------------------------------------------------------------------ training
    def targets(self) -> dict[str, str]:
        """Head name -> batch key of its ground truth, for :class:`~common.engines.MultiTaskPrepareBatch`."""
        return {h.name: h.target_key for h in self}

    def loss(self) -> MultiTaskLoss:
        """The multi-task loss ``sum_k weight_k * loss_k`` over the heads that declare a loss."""
        with_loss = [h for h in self if h.loss is not None]
        if not with_loss:
            raise ValueError("no head declares a loss")
        return MultiTaskLoss({h.name: h.loss for h in with_loss}, {h.name: h.weight for h in with_loss})

    # ------------------------------------------------------------------ splitting ``pred``
    def split(self, pred: torch.Tensor, channel_dim: int = 0) -> dict[str, torch.Tensor]:
        """Split an inference output into logits per head.

        ``pred`` is one item ``(C, *spatial)`` (``channel_dim=0``) or a batch ``(B, C, *spatial)``
        (``channel_dim=1``). Image-level heads come back as their ``(C,)`` / ``(B, C)`` vector, read as the
        mean over the grid (every pixel holds the same value); a classifier's ``pred`` without a grid,
        ``(C,)`` or ``(B, C)``, is split as it is.
        """
        if pred.shape[channel_dim] != self.pred_channels:
            raise ValueError(
                f"pred has {pred.shape[channel_dim]} channels, the head spec declares {self.pred_channels} "
                f"({self.channel_def()})"
            )
        out = {}
        for name, channels in self.pred_layout().items():
            part = pred.narrow(channel_dim, channels.start, channels.stop - channels.start)
            if self.heads[name].image_level and part.dim() > channel_dim + 1:  # a classifier: no grid
                part = part.flatten(channel_dim + 1).mean(dim=-1)
            out[name] = part
        return out

    def activate(self, name: str, logits: torch.Tensor, channel_dim: int = 0) -> torch.Tensor:
        """The head's activation applied to its logits."""
        if self.heads[name].activation == "softmax":
            return torch.softmax(logits.float(), dim=channel_dim)
        return torch.sigmoid(logits.float())
