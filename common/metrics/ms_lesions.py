"""Per-case metrics of binary lesion segmentations (MS, stroke), per rater, and the ISBI 2015 MS score.

The metrics serve any binary lesion segmentation: the MS bundle scores the ISBI 2015 longitudinal lesion
challenge with them (its default columns, :data:`MS_LESION_METRICS`), and a stroke-lesion bundle the Dice
and IoU (Jaccard) that L. Liu et al., "Multi-task learning improves the brain stroke lesion segmentation",
report, plus lesion counts and the lesion-wise detection rates LTPR / LFPR, with :func:`lesion_handlers`
(one reference mask, no raters). :data:`LESION_METRICS` lists every accepted name.

MS reference: A. Carass et al., "Longitudinal multiple sclerosis lesion segmentation: Resource and challenge",
NeuroImage 148 (2017) 77-102 (the challenge paper, "Carass 2017" below). The challenge's evaluation page
(iacl.ece.jhu.edu/index.php/MSChallenge/evaluation) lists its metrics: Dice and Jaccard overlap, PPV, voxel
TPR, lesion-count LTPR and LFPR, volume difference, average symmetric surface distance, segmentation volume,
volume correlation and the longitudinal new-lesion TPR / FPR. This module implements those that enter the
challenge score (Dice, PPV, LTPR, LFPR, the volumes for the correlation) plus the voxel TPR and the volume
difference, and, outside the MS defaults, the Jaccard index (IoU) and the lesion counts. The formulas below
and the score of :func:`ms_challenge_score` are those of Carass 2017 as stated in issue 9; only the paper's
abstract could be read while writing this module, so the two points the formulas leave open (lesion
connectivity, empty masks) are parameters or documented choices, not quotations.

Per case, with P the predicted lesion voxels, R the rater's lesion voxels and ``|.|`` a voxel count:

* Dice = 2 |P ∩ R| / (|P| + |R|);
* IoU (Jaccard index) = |P ∩ R| / |P ∪ R| (= Dice / (2 - Dice) case by case, not for the means);
* PPV (positive predictive value) = |P ∩ R| / |P|;
* TPR (voxel sensitivity) = |P ∩ R| / |R|;
* LTPR (lesion-wise true positive rate) = (lesions of R that overlap P) / (lesions of R);
* LFPR (lesion-wise false positive rate) = (lesions of P that do not overlap R) / (lesions of P);
* AVD (absolute volume difference) = | |P| - |R| | / |R|;
* ``volume_ml`` = |P| times the voxel volume, in ml; ``ref_volume_ml`` the same for R (the volumes whose
  Pearson correlation over the data set is the challenge's Corr term, see :func:`ms_challenge_score`);
* ``n_lesions`` = the number of lesions of P; ``ref_n_lesions`` the same for R (0 for an empty mask).

A *lesion* is a connected component of a mask, 3D by default with **18-connectivity** (voxels are neighbours
when they share a face or an edge, not only a corner); ``connectivity`` takes 6, 18 or 26 (or 4 and 8 for 2D
masks). The default 18 is issue 9's reading of the MS challenge; it could not be checked against the paper's
text, so it is a parameter rather than a constant (26 is the full 3 x 3 x 3 neighbourhood, e.g. the default
of ``skimage.measure.label``). :func:`lesion_handlers` (stroke) defaults to 26: stroke lesions are usually
counted with full connectivity. Two lesions touching only at a corner are two lesions under 18-connectivity
and one under 26. A lesion *overlaps* the other mask when at least one of its voxels is in that mask (the
challenge's detection rule: a single common voxel is a hit).

Empty masks. Every ratio above is 0/0 for some empty mask; each case is given a finite value, so every case
counts in the means (the BraTS module follows the same principle). The rule: a 0/0 ratio takes its *best*
value when both masks are empty, and its *worst* value when only the other mask is empty.

===========================  =====  =====  =====  =====  =====  =====  ======================
case                         Dice   IoU    PPV    TPR    LTPR   LFPR   AVD
===========================  =====  =====  =====  =====  =====  =====  ======================
P and R both empty           **1**  **1**  **1**  **1**  **1**  **0**  **0**
R empty, P not               0      0      0      **0**  **0**  1      **empty_avd** (1)
P empty, R not               0      0      **0**  0      0      **1**  1
===========================  =====  =====  =====  =====  =====  =====  ======================

Bold entries are 0/0 filled by the rule; the others follow from the formulas. With these values a case whose
masks are both empty gets the full per-case part of the challenge score (Dice/8 + PPV/8 + (1 - LFPR)/4 +
LTPR/4 = 3/4, the last quarter being the data-set Corr term), and one where exactly one mask is empty gets 0
(Dice 0, PPV 0, 1 - LFPR 0, LTPR 0): a false alarm on a lesion-free scan and a missed scan are penalised
alike. (Setting LTPR = 1 for an empty R, "no lesion to miss", would reward predicting
lesions on a lesion-free scan with a quarter of the term; the BraTS sensitivity rule of
:mod:`common.metrics.brats`, 0 when a region absent from the ground truth is predicted, is the same choice.)
AVD has no meaningful value when R is empty and P is not (any relative error is infinite); it is set to
``empty_avd``, by default 1, the AVD of the opposite miss (P empty, R not). AVD is not part of the score.
The volumes and lesion counts need no convention (an empty mask has volume 0 and 0 lesions).

Raters. A data set with several raters carries one label key per rater: ``label_rater1``, ``label_rater2``,
..., or the single (or consensus) ``label``. :func:`ms_lesion_handlers` builds one handler per metric and
rater key, named ``<prefix><metric>_<rater>`` where ``<rater>`` is the key without its ``label_`` prefix
(``dice_rater1``); the plain key ``label`` gives ``<prefix><metric>`` (``dice``); any other key is used
whole (``dice_consensus`` for ``consensus``). :func:`ms_lesion_metric_name` gives that name. A label that
stacks the raters' masks on its first axis, (R, X, Y, Z), before any rater rule is applied, splits into these
keys with MONAI's ``SplitDimd(keys="label", output_postfixes=["rater1", "rater2"], dim=0, keepdim=True)``.
Without raters (one reference mask, e.g. stroke), :func:`lesion_handlers` names the handlers
``<prefix><metric>`` whatever the label key.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.data import MetaTensor
from monai.handlers import IgniteMetricHandler, from_engine
from monai.metrics import CumulativeIterationMetric
from monai.utils import convert_to_tensor
from scipy import ndimage

from .segmentation import Spacing, _aggregate, spacing_from_meta

__all__ = [
    "LESION_METRICS",
    "MS_CHALLENGE_METRICS",
    "MS_LESION_METRICS",
    "MSChallengeScore",
    "MSChallengeScoreHandler",
    "MSLesionHandler",
    "MSLesionMetric",
    "lesion_handlers",
    "lesion_structure",
    "ms_challenge_score",
    "ms_lesion_case_metrics",
    "ms_lesion_handlers",
    "ms_lesion_metric_name",
    "ms_lesion_tables_from_csv",
    "ms_lesion_tables_from_details",
]

MS_LESION_METRICS: tuple[str, ...] = (
    "dice",
    "ppv",
    "tpr",
    "ltpr",
    "lfpr",
    "avd",
    "volume_ml",
    "ref_volume_ml",
)
"""The MS bundle's metrics, in the order the factory uses (the default of :func:`ms_lesion_handlers`)."""

LESION_METRICS: tuple[str, ...] = MS_LESION_METRICS + ("iou", "n_lesions", "ref_n_lesions")
"""Every value of ``metric_name`` accepted by :class:`MSLesionMetric` and the handler factories."""

MS_CHALLENGE_METRICS: tuple[str, ...] = ("dice", "ppv", "ltpr", "lfpr", "volume_ml", "ref_volume_ml")
"""The per-case metrics that :func:`ms_challenge_score` needs for each rater."""

_NEIGHBOURS_TO_RANK = {(2, 4): 1, (2, 8): 2, (3, 6): 1, (3, 18): 2, (3, 26): 3}
_COMPONENT_METRICS = frozenset({"ltpr", "lfpr", "n_lesions", "ref_n_lesions"})  # need lesion labelling


def lesion_structure(ndim: int, connectivity: int = 18) -> np.ndarray:
    """The ``scipy.ndimage.label`` structuring element of a lesion connectivity.

    ``connectivity`` is the number of neighbours of a voxel: 6 (faces), 18 (faces and edges) or 26 (faces,
    edges and corners) in 3D; 4 or 8 in 2D. It is ``generate_binary_structure(ndim, rank)`` with rank 1, 2, 3
    for those three cases (a neighbour differs by at most 1 in at most ``rank`` coordinates).
    """
    rank = _NEIGHBOURS_TO_RANK.get((ndim, connectivity))
    if rank is None:
        allowed = sorted(n for d, n in _NEIGHBOURS_TO_RANK if d == ndim)
        raise ValueError(f"connectivity {connectivity} is not one of {allowed} for {ndim}D masks.")
    return ndimage.generate_binary_structure(ndim, rank)


def _best_or_worst(num: float, den: float, best: float, worst: float, other_empty: bool) -> float:
    """``num / den``, or for 0/0 ``best`` when the other mask is empty too, else ``worst``."""
    if den > 0:
        return num / den
    return best if other_empty else worst


def _overlapped_lesions(
    labelled: tuple[np.ndarray, int], mask: np.ndarray, other: np.ndarray
) -> tuple[int, int]:
    """(number of lesions of ``mask``, how many of them share at least one voxel with ``other``).

    ``labelled`` is ``ndimage.label(mask, structure)``.
    """
    labels, count = labelled
    hit = np.unique(labels[other & mask])
    return int(count), int(np.count_nonzero(hit))


def ms_lesion_case_metrics(
    pred: np.ndarray | torch.Tensor,
    ref: np.ndarray | torch.Tensor,
    spacing: Spacing | None = None,
    connectivity: int = 18,
    empty_avd: float = 1.0,
    metric_names: Sequence[str] = MS_LESION_METRICS,
) -> dict[str, float]:
    """The metrics of one case, ``{name: value}``, from two boolean masks of the same shape.

    See the module docstring for the definitions and the empty-mask conventions.

    Args:
        pred: predicted lesion mask P (spatial dims only; nonzero = lesion).
        ref: rater mask R, same shape.
        spacing: voxel size in mm (one number or one per axis) for the volumes; 1 mm when ``None``.
        connectivity: lesion connectivity (see :func:`lesion_structure`), for LTPR, LFPR and the counts.
        empty_avd: AVD when R is empty and P is not.
        metric_names: which metrics to compute, from :data:`LESION_METRICS` (the lesion labelling runs only
            for LTPR, LFPR, ``n_lesions`` and ``ref_n_lesions``, at most once per mask).
    """
    p = np.asarray(convert_to_tensor(pred, track_meta=False).detach().cpu()) != 0
    r = np.asarray(convert_to_tensor(ref, track_meta=False).detach().cpu()) != 0
    if p.shape != r.shape:
        raise ValueError(f"prediction and rater masks differ in shape: {p.shape} and {r.shape}.")
    unknown = [m for m in metric_names if m not in LESION_METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {LESION_METRICS}.")
    if spacing is None:
        voxel_mm3 = 1.0
    elif isinstance(spacing, (int, float)):
        voxel_mm3 = float(spacing) ** p.ndim
    else:
        if len(spacing) != p.ndim:
            raise ValueError(f"spacing {tuple(spacing)} does not match {p.ndim} spatial dimensions.")
        voxel_mm3 = math.prod(float(s) for s in spacing)

    n_p, n_r = int(p.sum()), int(r.sum())
    tp = int(np.count_nonzero(p & r))
    p_empty, r_empty = n_p == 0, n_r == 0
    out: dict[str, float] = {}
    structure = lesion_structure(p.ndim, connectivity) if _COMPONENT_METRICS & set(metric_names) else None
    labelled: dict[str, tuple[np.ndarray, int]] = {}

    def lesions_of(which: str) -> tuple[np.ndarray, int]:
        """``ndimage.label`` of P (``"p"``) or R (``"r"``), computed once."""
        if which not in labelled:
            labelled[which] = ndimage.label(p if which == "p" else r, structure=structure)
        return labelled[which]

    for name in metric_names:
        if name == "dice":
            value = _best_or_worst(2 * tp, n_p + n_r, 1.0, 0.0, True)  # 0/0 only when both are empty
        elif name == "iou":
            value = _best_or_worst(tp, n_p + n_r - tp, 1.0, 0.0, True)  # |P ∪ R| = 0 only when both are empty
        elif name == "ppv":
            value = _best_or_worst(tp, n_p, 1.0, 0.0, r_empty)
        elif name == "tpr":
            value = _best_or_worst(tp, n_r, 1.0, 0.0, p_empty)
        elif name == "ltpr":
            lesions, detected = _overlapped_lesions(lesions_of("r"), r, p)
            value = _best_or_worst(detected, lesions, 1.0, 0.0, p_empty)
        elif name == "lfpr":
            lesions, true_lesions = _overlapped_lesions(lesions_of("p"), p, r)
            value = _best_or_worst(lesions - true_lesions, lesions, 0.0, 1.0, r_empty)
        elif name == "n_lesions":
            value = lesions_of("p")[1]
        elif name == "ref_n_lesions":
            value = lesions_of("r")[1]
        elif name == "avd":
            value = _best_or_worst(abs(n_p - n_r), n_r, 0.0, float(empty_avd), p_empty)
        elif name == "volume_ml":
            value = n_p * voxel_mm3 / 1000.0
        else:  # ref_volume_ml
            value = n_r * voxel_mm3 / 1000.0
        out[name] = float(value)
    return out


def _lesion_masks(x: torch.Tensor) -> torch.Tensor:
    """(B, spatial...) bool lesion masks from (B, 1, ...) masks / label maps or (B, 2, ...) one-hot."""
    plain = convert_to_tensor(x, track_meta=False)
    if plain.ndim < 3 or plain.shape[1] not in (1, 2):
        raise ValueError(
            f"expected masks (B, 1, spatial...) or one-hot (B, 2, spatial...), got {tuple(plain.shape)}."
        )
    return plain[:, -1] > 0.5


class MSLesionMetric(CumulativeIterationMetric):
    """One lesion metric per case (ISBI 2015 MS metrics, IoU, lesion counts), for evaluators and MetricsSaver.

    Inputs: prediction and rater masks, (B, 1, spatial...) binary masks or lesion label maps (a voxel is a
    lesion where its value is > 0.5), or (B, 2, spatial...) one-hot tensors whose channel 1 is the lesion; or
    lists of channel-first items. Each call buffers a (B, 1) float tensor; see the module docstring for the
    formulas, the lesion connectivity and the empty-mask conventions (every case gets a finite value).

    Voxel spacing (for ``volume_ml`` and ``ref_volume_ml`` only), per case: the ``MetaTensor`` affine of the
    rater mask, else of the prediction, else ``default_spacing``, else 1 mm.

    Args:
        metric_name: one of :data:`LESION_METRICS`.
        connectivity: lesion connectivity, 18 by default (6, 18, 26 in 3D; 4, 8 in 2D).
        default_spacing: voxel size in mm for cases without a ``MetaTensor`` affine.
        empty_avd: AVD when the rater mask is empty and the prediction is not.
    """

    def __init__(
        self,
        metric_name: str,
        connectivity: int = 18,
        default_spacing: Spacing | None = None,
        empty_avd: float = 1.0,
    ) -> None:
        super().__init__()
        if metric_name not in LESION_METRICS:
            raise ValueError(f"metric_name must be one of {LESION_METRICS}, got {metric_name!r}.")
        if connectivity not in {n for _, n in _NEIGHBOURS_TO_RANK}:
            raise ValueError(f"connectivity must be 4, 8 (2D) or 6, 18, 26 (3D), got {connectivity}.")
        self.metric_name = metric_name
        self.connectivity = connectivity
        self.default_spacing = default_spacing
        self.empty_avd = empty_avd

    def _spacing(self, y_pred: torch.Tensor, y: torch.Tensor, b: int, img_dim: int) -> Spacing | None:
        for source in (y, y_pred):
            if isinstance(source, MetaTensor):
                spacing = spacing_from_meta(source[b], img_dim)
                if spacing is not None:
                    return spacing
        return self.default_spacing

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor, **kwargs: Any) -> torch.Tensor:  # type: ignore[override]
        """(B, 1) values of ``metric_name`` for the cases of a batch."""
        pred, ref = _lesion_masks(y_pred), _lesion_masks(y)
        if pred.shape != ref.shape:
            raise ValueError(
                f"prediction and rater masks differ in shape: {tuple(y_pred.shape)} and {tuple(y.shape)}."
            )
        needs_spacing = self.metric_name in ("volume_ml", "ref_volume_ml")
        values = []
        for b in range(pred.shape[0]):
            spacing = self._spacing(y_pred, y, b, pred.ndim - 1) if needs_spacing else None
            case = ms_lesion_case_metrics(
                pred[b],
                ref[b],
                spacing=spacing,
                connectivity=self.connectivity,
                empty_avd=self.empty_avd,
                metric_names=(self.metric_name,),
            )
            values.append(case[self.metric_name])
        return torch.tensor(values, dtype=torch.float64, device=pred.device)[:, None]

    def aggregate(self) -> torch.Tensor:  # type: ignore[override]
        """Mean over the buffered cases (a 0-d tensor); nan before any case was seen."""
        return cast(torch.Tensor, _aggregate(self, "mean", get_not_nans=False))


class MSLesionHandler(IgniteMetricHandler):
    """ignite handler for :class:`MSLesionMetric`: the mean over cases as a float per epoch.

    With ``save_details`` the per-case values go to ``engine.state.metric_details[name]`` as an (N, 1) tensor;
    ``monai.handlers.MetricsSaver(metric_details=[name], batch_transform=...)`` then writes
    ``<name>_raw.csv`` (columns ``filename``, ``class0`` = the value, ``mean``), one row per case.

    Args:
        metric_name: one of :data:`LESION_METRICS`.
        output_transform: gives ``(y_pred, y)`` from ``engine.state.output``; the default reads the ``"pred"``
            and ``"label"`` keys.
        save_details: store the per-case values for ``MetricsSaver`` and :class:`MSChallengeScoreHandler`.
        connectivity, default_spacing, empty_avd: as in :class:`MSLesionMetric`.
    """

    def __init__(
        self,
        metric_name: str,
        output_transform: Callable = from_engine(["pred", "label"]),  # noqa: B008
        save_details: bool = True,
        connectivity: int = 18,
        default_spacing: Spacing | None = None,
        empty_avd: float = 1.0,
    ) -> None:
        metric_fn = MSLesionMetric(
            metric_name, connectivity=connectivity, default_spacing=default_spacing, empty_avd=empty_avd
        )
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)

    def compute(self) -> float:
        """The epoch mean as a float."""
        result = super().compute()
        return float(result.float().mean()) if isinstance(result, torch.Tensor) else float(result)


def _rater_suffix(rater_key: str) -> str:
    if rater_key == "label":
        return ""
    return rater_key[len("label_") :] if rater_key.startswith("label_") else rater_key


def ms_lesion_metric_name(metric: str, rater_key: str = "label", prefix: str = "") -> str:
    """The handler name of ``metric`` scored against ``rater_key``: ``<prefix><metric>[_<rater>]``.

    ``label_rater1`` gives ``dice_rater1``, ``label`` gives ``dice``, any other key ``k`` gives ``dice_k``.
    """
    suffix = _rater_suffix(rater_key)
    return f"{prefix}{metric}_{suffix}" if suffix else f"{prefix}{metric}"


def ms_lesion_handlers(
    metric_names: Sequence[str] = MS_LESION_METRICS,
    rater_keys: Sequence[str] = ("label",),
    pred_key: str = "pred",
    prefix: str = "",
    save_details: bool = True,
    connectivity: int = 18,
    default_spacing: Spacing | None = None,
    empty_avd: float = 1.0,
) -> dict[str, MSLesionHandler]:
    """``{name: MSLesionHandler}`` for every metric and rater key, names by :func:`ms_lesion_metric_name`.

    Each handler reads ``(item[pred_key], item[rater_key])`` from the evaluator output (a list of item dicts
    or a batch dict), so one call in a config scores the prediction against every rater, e.g.
    ``ms_lesion_handlers(rater_keys=["label_rater1", "label_rater2"])`` gives ``dice_rater1``, ...,
    ``ref_volume_ml_rater2``. Keep ``save_details=True`` (and at least :data:`MS_CHALLENGE_METRICS`) for the
    challenge score. ``metric_names`` may be any of :data:`LESION_METRICS`.
    """
    if len(set(rater_keys)) != len(rater_keys):
        raise ValueError(f"rater_keys must be distinct, got {list(rater_keys)}.")
    return {
        ms_lesion_metric_name(metric, key, prefix): MSLesionHandler(
            metric,
            output_transform=from_engine([pred_key, key]),
            save_details=save_details,
            connectivity=connectivity,
            default_spacing=default_spacing,
            empty_avd=empty_avd,
        )
        for key in rater_keys
        for metric in metric_names
    }


def lesion_handlers(
    metric_names: Sequence[str],
    label_key: str = "label",
    pred_key: str = "pred",
    prefix: str = "",
    save_details: bool = True,
    connectivity: int = 26,
    default_spacing: Spacing | None = None,
    empty_avd: float = 1.0,
) -> dict[str, MSLesionHandler]:
    """``{<prefix><metric>: MSLesionHandler}``: the one-reference form, for bundles without raters (stroke).

    The handlers are those of :func:`ms_lesion_handlers` with ``rater_keys=(label_key,)``, each reading
    ``(item[pred_key], item[label_key])``, but always named ``<prefix><metric>`` (no rater suffix, whatever
    ``label_key`` is). E.g. ``lesion_handlers(["dice", "iou", "ltpr", "lfpr", "n_lesions", "ref_n_lesions"],
    prefix="val_")`` gives ``val_dice``, ``val_iou``, ... ``val_ref_n_lesions``.

    ``connectivity`` defaults to 26 here (the MS functions keep 18): 3D stroke lesions are usually counted
    with full connectivity, so voxels touching only at a corner belong to one lesion. For 2D masks (slices)
    pass 4 or 8; the voxel metrics (Dice, IoU, ...) do not use it.

    Args:
        metric_names: metrics from :data:`LESION_METRICS`, distinct.
        label_key: the key of the reference mask in the evaluator output.
        pred_key: the key of the predicted mask.
        prefix: prepended to every handler name.
        save_details, connectivity, default_spacing, empty_avd: as in :class:`MSLesionHandler`.
    """
    if len(set(metric_names)) != len(metric_names):
        raise ValueError(f"metric_names must be distinct, got {list(metric_names)}.")
    return {
        f"{prefix}{metric}": MSLesionHandler(
            metric,
            output_transform=from_engine([pred_key, label_key]),
            save_details=save_details,
            connectivity=connectivity,
            default_spacing=default_spacing,
            empty_avd=empty_avd,
        )
        for metric in metric_names
    }


# ---------------------------------------------------------------------------------------- challenge score


@dataclass(frozen=True)
class MSChallengeScore:
    """The ISBI 2015 challenge score of one method over a data set (see :func:`ms_challenge_score`).

    Attributes:
        score: SC, the mean over raters and cases of the per-case terms plus Corr / 4 (at most 1).
        per_rater: SC restricted to each rater.
        corr: Pearson correlation of predicted and rater lesion volumes over the cases, per rater.
        means: per rater, the case means of ``dice``, ``ppv``, ``ltpr`` and ``lfpr``.
        normalised: ``points * score / inter_rater_score`` when an inter-rater score was given, else ``None``.
    """

    score: float
    per_rater: dict[str, float]
    corr: dict[str, float]
    means: dict[str, dict[str, float]] = field(default_factory=dict)
    normalised: float | None = None


def _float64(values: Any) -> np.ndarray:
    """A flat float64 array of per-case values (lists, arrays or tensors; no float32 detour)."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64).reshape(-1)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r; nan with fewer than two cases or a constant series (r is then undefined)."""
    if x.size < 2:
        return math.nan
    dx, dy = x - x.mean(), y - y.mean()
    den = math.sqrt(float((dx * dx).sum()) * float((dy * dy).sum()))
    return float((dx * dy).sum()) / den if den > 0 else math.nan


def ms_challenge_score(
    tables: Mapping[str, Mapping[str, Sequence[float] | np.ndarray | torch.Tensor]],
    inter_rater_score: float | None = None,
    points: float = 90.0,
) -> MSChallengeScore:
    """The ISBI 2015 challenge score SC from per-case metric tables, one table per rater (Carass 2017).

    ``SC = 1 / (|R| N) * sum over raters r and cases i of
    (Dice/8 + PPV/8 + (1 - LFPR)/4 + LTPR/4 + Corr_r/4)``, with Dice, PPV, LFPR, LTPR of case ``i`` against
    rater ``r`` and ``Corr_r`` the Pearson correlation coefficient, over the N cases, of the predicted lesion
    volumes with rater ``r``'s. Corr is a data-set term, which is why the score is computed here from the
    saved per-case values rather than per case; it is the same for every case of a rater, so
    ``SC_r = mean_i(Dice/8 + PPV/8 + (1 - LFPR)/4 + LTPR/4) + Corr_r/4`` and SC is the mean of the SC_r. The
    weights sum to 1, so SC is at most 1 (Corr < 0 can make it negative).

    Normalisation. The challenge ranks methods on a scale anchored on the agreement of its two human raters
    (90 points for a method that agrees with the raters as well as they agree with each other). That step is
    applied only when ``inter_rater_score`` is given, as the linear map ``points * SC / inter_rater_score``:
    ``inter_rater_score`` is the raw SC of one rater scored against the other, computed with this function
    (e.g. rater 2's masks as predictions against rater 1's table, and the reverse, averaged). The exact
    normalisation of the challenge's leaderboard could not be checked against the paper's text here, so it is
    left to the caller; ``score`` (raw SC in [.., 1]) is what this module guarantees.

    Left out of the score, as in the paper's SC: Jaccard, voxel TPR, AVD, surface distance and the
    longitudinal (new-lesion) metrics.

    Args:
        tables: ``{rater: {metric: per-case values}}`` with at least :data:`MS_CHALLENGE_METRICS`, the same
            cases in the same order for every metric, and the same number of cases for every rater (see
            :func:`ms_lesion_tables_from_details` and :func:`ms_lesion_tables_from_csv`).
        inter_rater_score: raw SC of the raters against each other, for the normalised score.
        points: the normalised score of a method as good as the inter-rater agreement.

    Returns:
        :class:`MSChallengeScore`; its ``score`` is nan when a Corr is undefined (fewer than two cases, or
        constant volumes).
    """
    if not tables:
        raise ValueError("ms_challenge_score needs the per-case table of at least one rater.")
    per_rater, corr, means, counts = {}, {}, {}, set()
    for rater, table in tables.items():
        missing = [m for m in MS_CHALLENGE_METRICS if m not in table]
        if missing:
            raise ValueError(f"the table of rater {rater!r} lacks {missing}.")
        cols = {m: _float64(table[m]) for m in MS_CHALLENGE_METRICS}
        lengths = {m: cols[m].size for m in MS_CHALLENGE_METRICS}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"the metrics of rater {rater!r} have different numbers of cases: {lengths}.")
        n = lengths["dice"]
        if n == 0:
            raise ValueError(f"the table of rater {rater!r} has no case.")
        counts.add(n)
        terms = cols["dice"] / 8 + cols["ppv"] / 8 + (1 - cols["lfpr"]) / 4 + cols["ltpr"] / 4
        corr[rater] = _pearson(cols["volume_ml"], cols["ref_volume_ml"])
        per_rater[rater] = float(terms.mean()) + corr[rater] / 4
        means[rater] = {m: float(cols[m].mean()) for m in ("dice", "ppv", "ltpr", "lfpr")}
    if len(counts) != 1:
        raise ValueError(f"every rater must score the same cases; the tables have {sorted(counts)} cases.")
    score = float(np.mean(list(per_rater.values())))
    normalised = None if inter_rater_score is None else points * score / inter_rater_score
    return MSChallengeScore(score=score, per_rater=per_rater, corr=corr, means=means, normalised=normalised)


def ms_lesion_tables_from_details(
    metric_details: Mapping[str, Any],
    rater_keys: Sequence[str] = ("label",),
    prefix: str = "",
    metric_names: Sequence[str] = MS_CHALLENGE_METRICS,
) -> dict[str, dict[str, np.ndarray]]:
    """``{rater_key: {metric: per-case values}}`` from ``engine.state.metric_details`` (exact values).

    The handlers must have been made by :func:`ms_lesion_handlers` with the same ``rater_keys`` and ``prefix``
    and ``save_details=True``.
    """
    tables: dict[str, dict[str, np.ndarray]] = {}
    for key in rater_keys:
        tables[key] = {}
        for metric in metric_names:
            name = ms_lesion_metric_name(metric, key, prefix)
            if name not in metric_details:
                raise KeyError(f"no per-case values of {name!r}; attach it with save_details=True.")
            tables[key][metric] = _float64(metric_details[name])
    return tables


def ms_lesion_tables_from_csv(
    save_dir: str | os.PathLike,
    rater_keys: Sequence[str] = ("label",),
    prefix: str = "",
    metric_names: Sequence[str] = MS_CHALLENGE_METRICS,
    delimiter: str = ",",
) -> dict[str, dict[str, np.ndarray]]:
    """``{rater_key: {metric: per-case values}}`` from the ``<name>_raw.csv`` files of ``MetricsSaver``.

    Reads column ``class0`` of every file; all files must list the same cases in the same order (checked on
    the ``filename`` column), so that the volumes of a case pair up for Corr. ``MetricsSaver`` writes 4
    decimals, so scores from these files carry that rounding; :func:`ms_lesion_tables_from_details` is exact.
    """
    tables: dict[str, dict[str, np.ndarray]] = {}
    cases: list[str] | None = None
    for key in rater_keys:
        tables[key] = {}
        for metric in metric_names:
            path = os.path.join(os.fspath(save_dir), f"{ms_lesion_metric_name(metric, key, prefix)}_raw.csv")
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f, delimiter=delimiter))
            names = [row["filename"] for row in rows]
            if cases is None:
                cases = names
            elif names != cases:
                raise ValueError(f"{path} does not list the same cases in the same order as the other files.")
            tables[key][metric] = np.array([float(row["class0"]) for row in rows])
    return tables


class MSChallengeScoreHandler:
    """Puts the challenge score (:func:`ms_challenge_score`) in ``engine.state.metrics`` at each epoch end.

    Attach it after the :func:`ms_lesion_handlers` metrics (with ``save_details=True``) and before a
    ``MetricsSaver`` that should write it: ignite runs the epoch-end handlers in the order they were attached,
    and the MONAI evaluators attach their metrics before the ``val_handlers``. It stores the raw SC under
    ``name``, and the normalised score under ``name + "_normalised"`` when ``inter_rater_score`` is given.

    Args:
        rater_keys, prefix: as given to :func:`ms_lesion_handlers`.
        name: the metric name of the score.
        inter_rater_score, points: see :func:`ms_challenge_score`.
    """

    def __init__(
        self,
        rater_keys: Sequence[str] = ("label",),
        prefix: str = "",
        name: str = "ms_challenge_score",
        inter_rater_score: float | None = None,
        points: float = 90.0,
    ) -> None:
        self.rater_keys = list(rater_keys)
        self.prefix = prefix
        self.name = name
        self.inter_rater_score = inter_rater_score
        self.points = points

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        details = getattr(engine.state, "metric_details", None) or {}
        tables = ms_lesion_tables_from_details(details, self.rater_keys, self.prefix)
        result = ms_challenge_score(tables, self.inter_rater_score, self.points)
        engine.state.metrics[self.name] = result.score
        if result.normalised is not None:
            engine.state.metrics[f"{self.name}_normalised"] = result.normalised
