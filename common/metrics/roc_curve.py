"""ROC curve of one class: the points, their CSV table and a figure, and an ignite handler that writes them.

MONAI gives the area (``compute_roc_auc``) but not the curve. The curve here is the usual empirical one:
scores sorted in decreasing order, one point per distinct score (a threshold ``t`` calls ``score >= t``
positive), from (0, 0) to (1, 1). Its trapezoidal area equals the Mann-Whitney statistic that
``compute_roc_auc`` computes (ties counted one half), which the tests check.
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from ignite import distributed as idist
from ignite.engine import Engine, Events
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from monai.handlers import from_engine
from monai.utils import convert_to_numpy

from common.data.atomic import atomic_output, atomic_write_text

__all__ = ["ROCCurveSaver", "roc_curve", "save_roc_curve"]

_CLS_OUTPUT = from_engine(["pred_cls", "label_cls"])


def roc_curve(scores: Any, truth: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False- and true-positive rates of the positive class at every distinct score.

    Args:
        scores: (N,) scores of the positive class (probabilities or logits).
        truth: (N,) 1 for positive samples, 0 for negative ones.

    Returns:
        ``(fpr, tpr, thresholds)``, each (K + 1,) for K distinct scores: the first point is (0, 0) at
        threshold ``inf``; point k counts ``score >= thresholds[k]`` as positive.

    Raises:
        ValueError: shapes differ, or the samples are all of one class (the curve is undefined).
    """
    s = np.asarray(convert_to_numpy(scores), dtype=np.float64).reshape(-1)
    t = np.asarray(convert_to_numpy(truth), dtype=np.float64).reshape(-1)
    if s.shape != t.shape:
        raise ValueError(f"{s.size} scores but {t.size} labels.")
    positive = t > 0.5
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            f"a ROC curve needs both classes; got {n_pos} positive and {n_neg} negative samples."
        )
    order = np.argsort(-s, kind="stable")
    s, positive = s[order], positive[order]
    # the last sample of each run of equal scores closes that threshold's point
    last_of_run = np.r_[s[1:] != s[:-1], True]
    tp = np.cumsum(positive)[last_of_run]
    fp = np.cumsum(~positive)[last_of_run]
    fpr = np.r_[0.0, fp / n_neg]
    tpr = np.r_[0.0, tp / n_pos]
    return fpr, tpr, np.r_[np.inf, s[last_of_run]]


def _figure(fpr: np.ndarray, tpr: np.ndarray, auc: float, title: str) -> Figure:
    fig = Figure(figsize=(4.5, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(fpr, tpr, drawstyle="default", label=f"AUC = {auc:.3f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel("false-positive rate (1 - specificity)")
    ax.set_ylabel("true-positive rate (recall)")
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def save_roc_curve(
    scores: Any, truth: Any, csv_path: str | os.PathLike, png_path: str | os.PathLike, title: str = "ROC"
) -> float:
    """Write the ROC curve of :func:`roc_curve` as CSV (``threshold,fpr,tpr``) and as a PNG; return its AUC.

    Each file is written next to its final place and moved there, so no reader sees half a file.
    """
    fpr, tpr, thresholds = roc_curve(scores, truth)
    auc = float(np.trapezoid(tpr, fpr))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["threshold", "fpr", "tpr"])
    writer.writerows(zip(thresholds.tolist(), fpr.tolist(), tpr.tolist()))
    atomic_write_text(csv_path, text.getvalue())
    figure = _figure(fpr, tpr, auc, title)
    with atomic_output(png_path) as tmp, open(tmp, "wb") as f:
        figure.savefig(f, format="png")
    return auc


class ROCCurveSaver:
    """ignite handler writing the epoch's ROC curve of one class to ``<output_dir>/<prefix>.csv`` / ``.png``.

    Scores of column ``positive_class`` and the matching truth are collected every iteration (from
    ``output_transform(engine.state.output)``: (B, C) probabilities and one-hot (B, C) or (B,) labels, or
    lists of per-item tensors), gathered over ranks at the end of the epoch and written by rank ``save_rank``.
    An epoch whose samples are all of one class gets a warning and no files.

    Args:
        output_dir: folder of the files (created when needed).
        positive_class: the column of the scores and the class counted as positive.
        output_transform: gives ``(y_pred, y)``.
        prefix: file name without extension.
        title: the figure's title.
        save_rank: the rank that writes.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        positive_class: int = 1,
        output_transform: Callable = _CLS_OUTPUT,
        prefix: str = "roc_curve",
        title: str = "ROC",
        save_rank: int = 0,
    ) -> None:
        self.output_dir = os.fspath(output_dir)
        self.positive_class = positive_class
        self.output_transform = output_transform
        self.prefix = prefix
        self.title = title
        self.save_rank = save_rank
        self.auc: float | None = None
        self._scores: list[np.ndarray] = []
        self._truth: list[np.ndarray] = []

    def attach(self, engine: Engine) -> None:
        """Register the reset, update and save steps on ``engine``."""
        engine.add_event_handler(Events.EPOCH_STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.update)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def reset(self, engine: Engine | None = None) -> None:
        """Forget the collected samples."""
        self._scores, self._truth = [], []

    def update(self, engine: Engine) -> None:
        """Collect this iteration's scores and truth."""
        y_pred, y = self.output_transform(engine.state.output)
        scores = np.stack([np.asarray(convert_to_numpy(p)).reshape(-1) for p in y_pred])
        labels = [np.asarray(convert_to_numpy(t)).reshape(-1) for t in y]
        k = self.positive_class
        truth = np.array([t[k] if t.size > 1 else float(round(float(t[0])) == k) for t in labels])
        self._scores.append(scores[:, k])
        self._truth.append(truth)

    def __call__(self, engine: Engine) -> None:
        """Gather the samples of all ranks and write the CSV and PNG files."""
        scores = torch.as_tensor(np.concatenate(self._scores) if self._scores else np.zeros(0))
        truth = torch.as_tensor(np.concatenate(self._truth) if self._truth else np.zeros(0))
        if idist.get_world_size() > 1:
            scores, truth = idist.all_gather(scores), idist.all_gather(truth)
        if idist.get_rank() != self.save_rank:
            return
        base = os.path.join(self.output_dir, self.prefix)
        try:
            self.auc = save_roc_curve(scores.numpy(), truth.numpy(), f"{base}.csv", f"{base}.png", self.title)
        except ValueError as error:
            warnings.warn(f"{base}: no ROC curve written, {error}", stacklevel=2)
