"""BraTS evaluation metrics per tumour region (paper §3.5): Dice, HD95 (mm), sensitivity, specificity.

Inputs are *canonical* label maps (``0`` background, ``1`` NCR/NET, ``2`` oedema, ``3`` enhancing tumour;
see :mod:`common.labels`), and every metric is computed on the three BraTS evaluation regions of
``common.labels.BRATS``, in this channel order:

* ``"wt"`` whole tumour = {1, 2, 3};
* ``"tc"`` tumour core = {1, 3};
* ``"et"`` enhancing tumour = {3}.

Per case and region, with TP, FP, FN, TN counted over all voxels of prediction P and ground truth G:

* Dice = 2 TP / (2 TP + FP + FN);
* sensitivity = TP / (TP + FN);
* specificity = TN / (TN + FP);
* HD95: the 95th-percentile symmetric Hausdorff distance in mm, by
  :class:`~common.metrics.segmentation.HausdorffDistance95mmMetric` (spacing from the label ``MetaTensor``).

Empty masks follow the BraTS challenge conventions, so every case has a finite value and counts in the
means:

==============================  ======  =======================  ===========  ===========
case (per region)               Dice    HD95 (mm)                sensitivity  specificity
==============================  ======  =======================  ===========  ===========
P and G both empty              1       0                        1            formula
G empty, P not                  0       373.13                   **0**        formula
P empty, G not                  0       373.13                   0 (formula)  formula
==============================  ======  =======================  ===========  ===========

373.13 mm (:data:`BRATS_EMPTY_HD95`) is the diagonal of the 240 x 240 x 155 BraTS volume at 1 mm.

Sensitivity with an empty ground truth is 0/0; the rule chosen is the one of the BraTS 2023+ evaluation
code (from GaNDLF: ``TP / (TP + FN + eps)``, set to 1 when both are empty): 1 when the prediction is empty
too, 0 when it predicts any voxel of the absent region. The case is thus never left out of the mean (nan)
and a false detection is penalised, as Dice and HD95 do. Specificity is 0/0 only when the ground truth
fills the whole volume, which never happens in a brain scan; the mirror rule applies (1 when the
prediction fills it too, else 0; that code gives 0).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
from monai.data import MetaTensor
from monai.handlers import IgniteMetricHandler, from_engine
from monai.metrics import CumulativeIterationMetric
from monai.utils import convert_to_tensor

from common.labels import BRATS

from .segmentation import HausdorffDistance95mmMetric, Spacing, _aggregate

__all__ = [
    "BRATS_EMPTY_HD95",
    "brats_region_handlers",
    "BRATS_METRICS",
    "BraTSRegionHandler",
    "BraTSRegionMetric",
    "brats_region_masks",
]

BRATS_METRICS: tuple[str, ...] = ("dice", "hd95", "sensitivity", "specificity")
"""Values of ``metric_name`` accepted by :class:`BraTSRegionMetric`."""

BRATS_EMPTY_HD95 = 373.13
"""HD95 (mm) when exactly one of prediction and ground truth is empty: the 240 x 240 x 155 mm diagonal."""

_REGIONS = tuple(BRATS.regions)  # channel order WT, TC, ET
_MAX_LABEL = BRATS.max_label


def _channel_dim(labels: torch.Tensor, channel_dim: int | None) -> int:
    """The axis of size 1 that holds the labels: 1 for a batch (B, 1, ...), 0 for an item (1, ...)."""
    if channel_dim is not None:
        dim = channel_dim % labels.ndim
    elif labels.ndim >= 3 and labels.shape[1] == 1:
        dim = 1
    elif labels.ndim >= 2 and labels.shape[0] == 1:
        dim = 0
    else:
        raise ValueError(f"expected labels (B, 1, spatial...) or (1, spatial...), got {tuple(labels.shape)}.")
    if labels.shape[dim] != 1:
        raise ValueError(f"labels must have one channel at dim {dim}, got shape {tuple(labels.shape)}.")
    return dim


def _canonical(labels: torch.Tensor) -> torch.Tensor:
    """Plain int64 labels (floats rounded), checked to lie in 0-3."""
    plain = convert_to_tensor(labels, track_meta=False)
    values = plain.round().long() if plain.is_floating_point() else plain.long()
    if values.numel():
        low, high = torch.aminmax(values)
        if int(low) < 0 or int(high) > _MAX_LABEL:
            raise ValueError(
                f"canonical labels must be in 0-{_MAX_LABEL}, got {torch.unique(values).tolist()}; "
                "map dataset label codes with common.data.MapBraTSLabelsd first."
            )
    return values


def _region_counts(
    y_pred: torch.Tensor, y: torch.Tensor, membership: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """TP, FP, FN, TN per case and region, each (B, R) float64, from (B, 1, spatial...) label maps.

    One pass over the voxels: the per-case 4 x 4 confusion matrix of the labels, ``cm[b, i, j]`` = voxels
    predicted ``i`` with truth ``j``, is summed over the label pairs inside / outside each region
    (``membership``: (R, 4), 1 where a label belongs to the region).
    """
    n = _MAX_LABEL + 1
    pred, truth = _canonical(y_pred).flatten(1), _canonical(y).flatten(1)
    offsets = torch.arange(pred.shape[0], device=pred.device)[:, None] * n * n
    joint = (pred * n + truth + offsets).flatten()
    cm = torch.bincount(joint, minlength=pred.shape[0] * n * n).reshape(-1, n, n).double()
    inside = membership.to(cm)
    outside = 1 - inside
    tp = torch.einsum("ri,bij,rj->br", inside, cm, inside)
    fp = torch.einsum("ri,bij,rj->br", inside, cm, outside)
    fn = torch.einsum("ri,bij,rj->br", outside, cm, inside)
    tn = torch.einsum("ri,bij,rj->br", outside, cm, outside)
    return tp, fp, fn, tn


def brats_region_masks(labels: torch.Tensor, channel_dim: int | None = None) -> torch.Tensor:
    """Boolean masks of the BraTS regions [WT, TC, ET] from a canonical label map.

    The regions are those of :data:`common.labels.BRATS`: WT = {1, 2, 3}, TC = {1, 3}, ET = {3}.

    Args:
        labels: canonical labels 0-3 (integer or float), a batch (B, 1, spatial...) or one channel-first item
            (1, spatial...). Float values are rounded.
        channel_dim: the size-1 label axis. By default dim 1 when it has size 1 (a batch, so a (1, 1, ...)
            tensor is read as a batch of one), else dim 0 (an item).

    Returns:
        bool tensor with that axis replaced by the 3 regions, (B, 3, spatial...) or (3, spatial...). A
        ``MetaTensor`` input gives a ``MetaTensor`` with its metadata (affine, batch flag).

    Raises:
        ValueError: for a label outside 0-3 (e.g. BraTS 2020 code 4; map it with ``MapBraTSLabelsd`` first).
    """
    dim = _channel_dim(labels, channel_dim)
    values = _canonical(labels)
    masks = [BRATS.region_mask(values, region) for region in _REGIONS]
    out = torch.cat(masks, dim=dim)
    if isinstance(labels, MetaTensor):
        out = MetaTensor(out).copy_meta_from(labels)
    return out


def _ratio_or_rule(num: torch.Tensor, den: torch.Tensor, rule: torch.Tensor) -> torch.Tensor:
    """``num / den`` where ``den > 0``, else 1 where ``rule`` holds and 0 where it does not."""
    return torch.where(den > 0, num / den.clamp_min(1.0), rule.to(num.dtype))


class BraTSRegionMetric(CumulativeIterationMetric):
    """One BraTS metric per case and region (WT, TC, ET) from canonical label maps.

    See the module docstring for the formulas and the empty-mask conventions.

    Inputs: prediction and ground truth label maps (B, 1, spatial...) or lists of (1, spatial...) items,
    values 0-3. For HD95 the spacing of each case comes from the ``MetaTensor`` ground truth (its affine),
    else from ``default_spacing``, else 1 (then the distance is in voxels).

    Each call buffers a (B, R) float tensor: R = 3 columns WT, TC, ET, or the one column of ``region``
    (only that region is computed, which matters for HD95).

    Args:
        metric_name: ``"dice"``, ``"hd95"``, ``"sensitivity"`` or ``"specificity"``.
        region: ``"wt"``, ``"tc"``, ``"et"``, or ``None`` for all three.
        default_spacing: voxel spacing in mm for ground truths that are not ``MetaTensor``s (HD95 only).
        empty_hd95: HD95 when exactly one of prediction and ground truth is empty.
    """

    def __init__(
        self,
        metric_name: str,
        region: str | None = None,
        default_spacing: Spacing | None = None,
        empty_hd95: float = BRATS_EMPTY_HD95,
    ) -> None:
        super().__init__()
        if metric_name not in BRATS_METRICS:
            raise ValueError(f"metric_name must be one of {BRATS_METRICS}, got {metric_name!r}.")
        if region is not None and region not in _REGIONS:
            raise ValueError(f"region must be one of {_REGIONS} or None, got {region!r}.")
        self.metric_name = metric_name
        self.region = region
        self._columns = [_REGIONS.index(region)] if region is not None else list(range(len(_REGIONS)))
        self._membership = BRATS.membership(_REGIONS)[self._columns]  # (R, labels)
        self._hd95 = HausdorffDistance95mmMetric(
            include_background=True,
            percentile=95.0,
            default_spacing=default_spacing,
            empty_value=empty_hd95,
            both_empty_value=0.0,
        )

    def _masks(self, labels: torch.Tensor) -> torch.Tensor:
        masks = brats_region_masks(labels, channel_dim=1)
        return masks[:, self._columns]

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor, **kwargs: Any) -> torch.Tensor:  # type: ignore[override]
        """(B, R) values of ``metric_name`` for the cases of a (B, 1, spatial...) batch."""
        if y_pred.shape != y.shape or y.ndim < 3 or y.shape[1] != 1:
            raise ValueError(
                "expected label maps (B, 1, spatial...) of the same shape, "
                f"got {tuple(y_pred.shape)} and {tuple(y.shape)}."
            )
        if self.metric_name == "hd95":
            pred, truth = self._masks(y_pred), self._masks(y)
            # the masks of ``y`` keep its MetaTensor affine, from which the HD95 metric reads the spacing;
            # its _compute_tensor is called directly so that it buffers nothing of its own
            return self._hd95._compute_tensor(pred, truth)
        tp, fp, fn, tn = _region_counts(y_pred, y, self._membership)
        if self.metric_name == "dice":
            value = _ratio_or_rule(2 * tp, 2 * tp + fp + fn, torch.ones_like(tp, dtype=torch.bool))
        elif self.metric_name == "sensitivity":
            value = _ratio_or_rule(tp, tp + fn, fp == 0)  # empty G: 1 if P is empty too, else 0
        else:
            value = _ratio_or_rule(tn, tn + fp, fn == 0)  # G fills the volume: 1 if P does too, else 0
        return value.float()

    def aggregate(self) -> torch.Tensor:  # type: ignore[override]
        """Mean over the buffered cases: (3,) for WT, TC, ET, or a 0-d tensor for one ``region``.

        nan for a column without any value (not possible with the BraTS conventions once data was seen).
        """
        means = cast(torch.Tensor, _aggregate(self, "mean_batch", get_not_nans=False))
        return means[0] if self.region is not None else means


class BraTSRegionHandler(IgniteMetricHandler):
    """ignite handler for :class:`BraTSRegionMetric`, giving a float per epoch.

    With a ``region`` the value is the mean over cases of that region; with ``region=None`` it is the mean of
    the three region means (WT, TC, ET), e.g. the "mean Dice" of BraTS papers.

    Per-case values go to ``engine.state.metric_details[name]`` when ``save_details`` is set: an (N, 1)
    tensor for one region, (N, 3) with columns WT, TC, ET otherwise. ``monai.handlers.MetricsSaver(
    metric_details=[name], batch_transform=...)`` then writes ``<name>_raw.csv`` with one row per case
    (columns ``class0`` [, ``class1``, ``class2``] = the regions in that order, and their ``mean``).

    Args:
        metric_name: ``"dice"``, ``"hd95"``, ``"sensitivity"`` or ``"specificity"``.
        region: ``"wt"``, ``"tc"``, ``"et"`` or ``None`` (all three).
        output_transform: gives ``(y_pred, y)`` canonical label maps from ``engine.state.output``; the default
            reads the ``"pred_label"`` and ``"label"`` keys of a list of item dicts or of a batch dict.
        save_details: store the per-case values for ``MetricsSaver``.
        default_spacing: voxel spacing in mm when the label is not a ``MetaTensor`` (HD95 only).
        empty_hd95: HD95 when exactly one of prediction and ground truth is empty.
    """

    def __init__(
        self,
        metric_name: str,
        region: str | None = None,
        output_transform: Callable = from_engine(["pred_label", "label"]),  # noqa: B008
        save_details: bool = True,
        default_spacing: Spacing | None = None,
        empty_hd95: float = BRATS_EMPTY_HD95,
    ) -> None:
        metric_fn = BraTSRegionMetric(
            metric_name=metric_name, region=region, default_spacing=default_spacing, empty_hd95=empty_hd95
        )
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)

    def compute(self) -> float:
        """The epoch value as a float (see the class docstring)."""
        result = super().compute()
        if isinstance(result, torch.Tensor):
            return float(result.float().mean())
        return float(result)


def brats_region_handlers(
    metric_names: Sequence[str] = BRATS_METRICS,
    regions: Sequence[str] = _REGIONS,
    prefix: str = "",
    save_details: bool = True,
    output_transform: Callable = from_engine(["pred_label", "label"]),  # noqa: B008
) -> dict[str, BraTSRegionHandler]:
    """``{"<prefix><metric>_<region>": BraTSRegionHandler}`` for every metric and region, in that order.

    One call in a config gives the evaluation table of a BraTS paper (Dice, HD95, sensitivity and
    specificity of WT, TC and ET) without a handler block per cell.
    """
    return {
        f"{prefix}{metric}_{region}": BraTSRegionHandler(
            metric, region, output_transform=output_transform, save_details=save_details
        )
        for metric in metric_names
        for region in regions
    }
