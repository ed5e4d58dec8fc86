"""Segmentation metrics of the MMRAN paper (§4.2, eq. 16-19) that MONAI lacks, plus their ignite handlers.

What comes from MONAI unchanged:

* Dice (eq. 16): ``monai.metrics.DiceMetric`` / ``monai.handlers.MeanDice``.
* MIoU (eq. 19): ``monai.metrics.MeanIoU(include_background=True)`` / ``monai.handlers.MeanIoUHandler``;
  see :func:`mean_iou_metric` for why it matches eq. 19.

What is written here:

* MPA (eq. 18): :class:`MeanPixelAccuracyMetric` and its handler :class:`MeanPixelAccuracy`.
* HD95 in millimetres (eq. 17): :class:`HausdorffDistance95mmMetric` and :class:`HausdorffDistance95mm`.
  MONAI's ``HausdorffDistanceMetric`` computes the distance but takes the pixel spacing only as a call
  argument, which an ignite handler never passes; this metric reads the spacing of every sample from its
  ``MetaTensor`` label.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.handlers import IgniteMetricHandler
from monai.metrics import CumulativeIterationMetric, MeanIoU, compute_hausdorff_distance
from monai.metrics.utils import do_metric_reduction, ignore_background, prepare_spacing
from monai.utils import MetricReduction, convert_to_tensor

__all__ = [
    "HausdorffDistance95mm",
    "HausdorffDistance95mmMetric",
    "MeanPixelAccuracy",
    "MeanPixelAccuracyMetric",
    "compute_mean_pixel_accuracy",
    "mean_iou_metric",
    "spacing_from_meta",
]

Spacing = float | Sequence[float]


def _plain(x: torch.Tensor) -> torch.Tensor:
    """``x`` as a plain float tensor (no MetaTensor bookkeeping)."""
    return convert_to_tensor(x, dtype=torch.float, track_meta=False)


def _check_shapes(y_pred: torch.Tensor, y: torch.Tensor) -> None:
    if y_pred.shape != y.shape:
        raise ValueError(
            f"y_pred and y should have the same shape, got {tuple(y_pred.shape)} and {tuple(y.shape)}."
        )
    if y_pred.ndim < 3:
        raise ValueError(f"expected one-hot (B, C, spatial...) tensors, got shape {tuple(y_pred.shape)}.")


def _aggregate(
    metric: CumulativeIterationMetric, reduction: MetricReduction | str, get_not_nans: bool
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Reduce the (B, C) buffer of ``metric`` over its not-nan values, as MONAI's metrics do.

    Unlike MONAI (which reports 0), a reduction over no valid value at all is nan: an HD95 of 0 mm when
    every prediction was empty would read as a perfect result.
    """
    data = metric.get_buffer()
    if not isinstance(data, torch.Tensor):
        raise ValueError(f"{metric}: nothing to aggregate, call the metric on some data first.")
    f, not_nans = do_metric_reduction(data, reduction)
    if isinstance(f, torch.Tensor) and isinstance(not_nans, torch.Tensor) and f.shape == not_nans.shape:
        f = torch.where(not_nans > 0, f, torch.full_like(f, float("nan")))
    return (f, not_nans) if get_not_nans else f


# --------------------------------------------------------------------------------------------------- MIoU


def mean_iou_metric(
    reduction: MetricReduction | str = MetricReduction.MEAN, get_not_nans: bool = False
) -> MeanIoU:
    """MONAI's ``MeanIoU`` configured as the MIoU of eq. 19 (no code of our own is needed).

    Eq. 19 is ``mIoU = 1/(k+1) * sum_{i=0..k} p_ii / (sum_j p_ij + sum_j p_ji - p_ii)``, i.e. the mean over
    the k+1 classes *including background* of TP / (GT + Pred - TP) = |P ∩ G| / |P ∪ G|.
    ``monai.metrics.compute_iou`` returns exactly that per image and class; with ``include_background=True``
    and reduction ``"mean"`` the aggregate is the per-image mean over background and tumour, averaged over
    images. (The paper does not say whether it pools pixels over the data set; we average per image, as
    MONAI does for Dice and HD95.)

    Empty classes (``ignore_empty=True``, MONAI's default): a class absent from the ground truth of an image
    gives nan and is left out of that image's mean over classes, the same rule as
    :class:`MeanPixelAccuracyMetric`. An image whose classes are all absent is left out of the mean over
    images.
    In an ignite evaluator use ``monai.handlers.MeanIoUHandler(include_background=True)``, which has the same
    settings.
    """
    return MeanIoU(include_background=True, reduction=reduction, get_not_nans=get_not_nans, ignore_empty=True)


# --------------------------------------------------------------------------------------------------- MPA


def compute_mean_pixel_accuracy(
    y_pred: torch.Tensor, y: torch.Tensor, include_background: bool = True
) -> torch.Tensor:
    """Per-image, per-class pixel accuracy, the terms of eq. 18: ``p_ii / sum_j p_ij``.

    ``p_ij`` counts pixels of ground-truth class ``i`` predicted as class ``j``, so ``sum_j p_ij`` is the
    number of ground-truth pixels of class ``i`` and the term is the recall of class ``i``. This is the
    standard reading of mean pixel accuracy (Long et al., FCN, CVPR 2015; Garcia-Garcia et al.'s survey,
    which the paper's eq. 16-19 follow). The paper's glossary calls ``p_ij`` a false positive, which would
    make the term a per-class precision; we keep the standard reading, which matches the metric's name and
    its usual definition, and the model card says so.

    Args:
        y_pred: binarised one-hot prediction, (B, C, spatial...), 2D or 3D.
        y: one-hot ground truth of the same shape.
        include_background: keep channel 0 (eq. 18 sums over i = 0..k, so the default is ``True``).

    Returns:
        (B, C) float tensor; nan where class ``i`` is absent from the ground truth of that image (0/0).
    """
    _check_shapes(y_pred, y)
    y_pred, y = _plain(y_pred), _plain(y)
    if not include_background:
        y_pred, y = ignore_background(y_pred=y_pred, y=y)
    axes = list(range(2, y.ndim))
    correct = (y_pred * y).sum(dim=axes)
    truth = y.sum(dim=axes)
    nan = torch.tensor(float("nan"), device=y.device)
    return torch.where(truth > 0, correct / truth.clamp_min(1.0), nan)


class MeanPixelAccuracyMetric(CumulativeIterationMetric):
    """Mean pixel accuracy, MMRAN eq. 18: ``mPA = 1/(k+1) * sum_{i=0..k} p_ii / sum_j p_ij``.

    Per image, the accuracy of each class (correct pixels of class i / ground-truth pixels of class i) is
    averaged over the classes, background included; ``aggregate()`` then averages over images.

    Empty classes: a class absent from an image's ground truth has an undefined term (0/0); it is stored as
    nan and *skipped* in that image's mean over classes, which then divides by the number of classes present
    rather than by k+1. (Counting it as 0 or 1 would reward or punish images without tumour arbitrarily.)

    Inputs are binarised one-hot tensors (B, C, H, W[, D]) or lists of (C, H, W[, D]) tensors.

    Args:
        include_background: include channel 0 (the paper does).
        reduction: MONAI reduction over the (B, C) not-nan values: ``"mean"`` (per-image mean over classes,
            then mean over images), ``"mean_batch"`` (per-class means), ``"none"``, ... as in MONAI's
            ``do_metric_reduction``.
        get_not_nans: if ``True``, ``aggregate()`` returns ``(value, not_nans)``.
    """

    def __init__(
        self,
        include_background: bool = True,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
    ) -> None:
        super().__init__()
        self.include_background = include_background
        self.reduction = reduction
        self.get_not_nans = get_not_nans

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor, **kwargs: Any) -> torch.Tensor:  # type: ignore[override]
        return compute_mean_pixel_accuracy(y_pred, y, include_background=self.include_background)

    def aggregate(
        self, reduction: MetricReduction | str | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Reduce the buffered (N, C) per-image, per-class accuracies; see the class docstring."""
        return _aggregate(self, reduction or self.reduction, self.get_not_nans)


# --------------------------------------------------------------------------------------------------- HD95


def spacing_from_meta(item: torch.Tensor, img_dim: int) -> tuple[float, ...] | None:
    """Pixel spacing (mm) of one *unbatched* sample from its ``MetaTensor`` affine, or ``None``.

    Only the first ``img_dim`` entries are kept, so a 2D slice carrying a 4x4 (3D) affine gives its in-plane
    spacing. A plain tensor has no spacing and gives ``None``.
    """
    if not isinstance(item, MetaTensor):
        return None
    pixdim = item.pixdim
    if isinstance(pixdim, list):  # still a batch: the caller must index the sample first
        raise ValueError("spacing_from_meta expects one sample, got a batched MetaTensor.")
    values = np.asarray(convert_to_tensor(pixdim, track_meta=False).cpu(), dtype=float).ravel()
    if values.size < img_dim:
        raise ValueError(f"the affine of the label gives spacing {values.tolist()}, need {img_dim} entries.")
    return tuple(float(v) for v in values[:img_dim])


class HausdorffDistance95mmMetric(CumulativeIterationMetric):
    """95th-percentile symmetric Hausdorff distance in millimetres, MMRAN eq. 17.

    ``HD95 = max(P95_{x in ∂P} min_{y in ∂G} ||x - y||, P95_{y in ∂G} min_{x in ∂P} ||x - y||)`` over the
    boundary pixels of prediction P and ground truth G, computed by
    ``monai.metrics.compute_hausdorff_distance(percentile=95, spacing=...)`` (edges by binary erosion,
    Euclidean distance transform with the physical spacing, ``torch.quantile`` with linear interpolation).

    Spacing, per sample ``b``: the ``spacing`` keyword of the call if given; else ``y[b].pixdim`` when ``y``
    is a ``MetaTensor`` (a MONAI-collated batch keeps one affine per item, and each item of a decollated list
    is its own MetaTensor); else ``default_spacing``; else 1 (the result is then in pixels). Only the first
    ``img_dim`` entries of ``pixdim`` are used.

    Empty masks (per sample and class; MONAI 1.6 itself returns nan in both cases and warns):

    * prediction and ground truth both empty: ``both_empty_value`` (default 0.0, counted in the mean);
    * exactly one empty: ``empty_value`` (default nan, which MONAI's reductions leave out of the mean). BraTS
      style evaluation sets ``empty_value=373.13`` (the image diagonal in mm).

    Args:
        include_background: include channel 0 (default ``False``: HD95 of the tumour channel only).
        percentile: percentile of the surface distances (95 for HD95).
        default_spacing: spacing in mm for samples whose label is not a MetaTensor (a number or one per axis).
        empty_value: value when exactly one of prediction / ground truth is empty.
        both_empty_value: value when both are empty.
        reduction: MONAI reduction over the (B, C) not-nan values (``"mean"``, ``"mean_batch"``, ...).
        get_not_nans: if ``True``, ``aggregate()`` returns ``(value, not_nans)``.
    """

    def __init__(
        self,
        include_background: bool = False,
        percentile: float = 95.0,
        default_spacing: Spacing | None = None,
        empty_value: float = math.nan,
        both_empty_value: float = 0.0,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
    ) -> None:
        super().__init__()
        self.include_background = include_background
        self.percentile = percentile
        self.default_spacing = default_spacing
        self.empty_value = empty_value
        self.both_empty_value = both_empty_value
        self.reduction = reduction
        self.get_not_nans = get_not_nans

    def _sample_spacing(self, y: torch.Tensor, b: int, img_dim: int) -> tuple[float, ...]:
        spacing = spacing_from_meta(y[b], img_dim) if isinstance(y, MetaTensor) else None
        if spacing is not None:
            return spacing
        if self.default_spacing is None:
            return (1.0,) * img_dim
        if isinstance(self.default_spacing, (int, float)):
            return (float(self.default_spacing),) * img_dim
        spacing = tuple(float(s) for s in self.default_spacing)
        if len(spacing) != img_dim:
            raise ValueError(f"default_spacing {spacing} does not match {img_dim} spatial dimensions.")
        return spacing

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor, **kwargs: Any) -> torch.Tensor:  # type: ignore[override]
        """(B, C) HD95 per sample and (non-background) class; ``kwargs["spacing"]`` overrides the meta."""
        _check_shapes(y_pred, y)
        img_dim = y.ndim - 2
        explicit = kwargs.get("spacing")
        if explicit is None:
            spacings = [self._sample_spacing(y, b, img_dim) for b in range(y.shape[0])]
        else:
            spacings = list(prepare_spacing(spacing=explicit, batch_size=y.shape[0], img_dim=img_dim))
        pred, truth = _plain(y_pred) > 0.5, _plain(y) > 0.5
        if not self.include_background:
            pred, truth = pred[:, 1:], truth[:, 1:]
        out = torch.empty(pred.shape[:2], dtype=torch.float)
        for b, c in np.ndindex(*pred.shape[:2]):
            has_pred, has_truth = bool(pred[b, c].any()), bool(truth[b, c].any())
            if not (has_pred or has_truth):
                out[b, c] = self.both_empty_value
            elif not (has_pred and has_truth):
                out[b, c] = self.empty_value
            else:
                hd = compute_hausdorff_distance(
                    pred[b, c][None, None].float(),
                    truth[b, c][None, None].float(),
                    include_background=True,
                    percentile=self.percentile,
                    spacing=spacings[b],
                )
                out[b, c] = hd[0, 0]
        return out.to(y_pred.device)

    def aggregate(
        self, reduction: MetricReduction | str | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Reduce the buffered (N, C) distances over their not-nan values; see the class docstring."""
        return _aggregate(self, reduction or self.reduction, self.get_not_nans)


# --------------------------------------------------------------------------------------------------- handlers


class MeanPixelAccuracy(IgniteMetricHandler):
    """ignite handler for :class:`MeanPixelAccuracyMetric` (MMRAN eq. 18), like ``monai.handlers.MeanDice``.

    Args:
        include_background: include channel 0 (the paper does).
        reduction: see :class:`MeanPixelAccuracyMetric`.
        output_transform: gives ``(y_pred, y)`` from ``engine.state.output``, e.g.
            ``monai.handlers.from_engine(["pred_seg", "label_seg"])``.
        save_details: store the per-image, per-class values in ``engine.state.metric_details[name]``.
    """

    def __init__(
        self,
        include_background: bool = True,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
    ) -> None:
        metric_fn = MeanPixelAccuracyMetric(include_background=include_background, reduction=reduction)
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)


class HausdorffDistance95mm(IgniteMetricHandler):
    """ignite handler for :class:`HausdorffDistance95mmMetric` (MMRAN eq. 17, in mm).

    The spacing is read from the label MetaTensors that ``output_transform`` returns (ignite unrolls a list of
    items into batches of one, and ``MetaTensor.unsqueeze`` keeps each item's affine), falling back to
    ``default_spacing``. Arguments as in :class:`HausdorffDistance95mmMetric`; ``save_details`` stores the
    per-image values in ``engine.state.metric_details[name]``.
    """

    def __init__(
        self,
        include_background: bool = False,
        percentile: float = 95.0,
        default_spacing: Spacing | None = None,
        empty_value: float = math.nan,
        both_empty_value: float = 0.0,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
    ) -> None:
        metric_fn = HausdorffDistance95mmMetric(
            include_background=include_background,
            percentile=percentile,
            default_spacing=default_spacing,
            empty_value=empty_value,
            both_empty_value=both_empty_value,
            reduction=reduction,
        )
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)
