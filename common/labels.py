"""Canonical label maps and the regions built from them, each declared once.

A :class:`LabelScheme` names the integer labels a bundle works with inside the project (its *canonical*
labels, whatever codes the data set stores on disk) and the evaluation regions made of them, the way
nnU-Net's ``LabelManager`` does. Every other piece of code (head targets, label assembly, metrics, the
model card's channel names) reads labels and regions from here; dataset adapters map their own codes to
and from these labels.

Every label is also a region of itself, so ``scheme.region("ed")`` is ``(2,)`` for BraTS.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

__all__ = ["BRATS", "BINARY_LESION", "LabelScheme"]


@dataclass(frozen=True)
class LabelScheme:
    """Canonical labels (name -> value, 0 = background) and named regions (name -> label names).

    Args:
        labels: label name -> integer value; values must be distinct and include 0.
        regions: region name -> names of the labels it is made of.
        descriptions: optional long names, for model cards and datalists.
    """

    labels: Mapping[str, int]
    regions: Mapping[str, Sequence[str]] = field(default_factory=dict)
    descriptions: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        values = list(self.labels.values())
        if len(set(values)) != len(values) or 0 not in values:
            raise ValueError(f"label values must be distinct and include 0, got {dict(self.labels)}")
        for region, members in self.regions.items():
            unknown = [m for m in members if m not in self.labels]
            if unknown:
                raise ValueError(f"region {region!r} names unknown labels {unknown}")

    @property
    def max_label(self) -> int:
        return max(self.labels.values())

    def region(self, name: str) -> tuple[int, ...]:
        """The label values of region (or label) ``name``."""
        if name in self.regions:
            return tuple(self.labels[m] for m in self.regions[name])
        if name in self.labels:
            return (self.labels[name],)
        raise KeyError(
            f"unknown region {name!r}; regions are {list(self.regions)}, labels {list(self.labels)}"
        )

    def region_mask(self, labels: torch.Tensor, name: str) -> torch.Tensor:
        """Boolean mask of region ``name`` in a canonical label tensor (any shape)."""
        values = torch.tensor(self.region(name), device=labels.device)
        return torch.isin(labels, values.to(labels.dtype))

    def membership(self, regions: Sequence[str]) -> torch.Tensor:
        """``(R, max_label + 1)`` float matrix: 1 where a label belongs to a region (for confusion counts)."""
        table = torch.zeros(len(regions), self.max_label + 1)
        for row, name in enumerate(regions):
            table[row, list(self.region(name))] = 1.0
        return table

    def describe(self) -> dict[str, str]:
        """``{"0": "background", ...}``: value -> description (or name), as datalists and model cards say."""
        return {
            str(v): self.descriptions.get(k, k) for k, v in sorted(self.labels.items(), key=lambda kv: kv[1])
        }


BRATS = LabelScheme(
    labels={"background": 0, "ncr": 1, "ed": 2, "et": 3},
    regions={"wt": ("ncr", "ed", "et"), "tc": ("ncr", "et"), "et": ("et",)},
    descriptions={
        "background": "background",
        "ncr": "necrotic / non-enhancing tumour core (NCR/NET)",
        "ed": "peritumoral oedema (ED)",
        "et": "enhancing tumour (ET)",
    },
)
"""BraTS tumour sub-regions (canonical 0..3) and the evaluation regions WT, TC, ET of the challenge."""

BINARY_LESION = LabelScheme(labels={"background": 0, "lesion": 1}, regions={"lesion": ("lesion",)})
"""One foreground label: tumour, MS lesion or stroke lesion masks."""
