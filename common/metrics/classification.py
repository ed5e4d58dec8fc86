"""Classification metrics of the MMRAN paper (§4.2, eq. 20-23) and the ResNeSAt paper (§III.D, eq. 2-6).

MMRAN reports macro averages over its three tumour types; the ResNeSAt paper reports a binary task's recall,
specificity, precision, F1 and accuracy of the positive class (tumour present, secondary source): both come
from :func:`classification_report` (``positive_class`` chooses the second).

MONAI's ``ConfusionMatrixMetric`` works per class (one-vs-rest TP/FP/TN/FN) and has neither the multi-class
accuracy of eq. 20 nor the F1 of eq. 23 (harmonic mean of the *macro* precision and recall), so the report is
computed here from the C x C confusion matrix; its per-class precision and recall agree with
``ConfusionMatrixMetric(metric_name="precision"/"recall")`` (checked in the tests). ROC AUC comes from
MONAI's ``compute_roc_auc``; :class:`ROCAUCForClass` only turns one class's AUC into a scalar that ignite's
``state.metrics`` and MONAI's ``MetricsSaver`` (which writes ``str(value)`` per line of ``metrics.csv``)
can hold.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Sequence
from typing import IO, Any

import numpy as np
import torch
from ignite import distributed as idist
from ignite.engine import Engine, Events
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from monai.handlers import IgniteMetricHandler, from_engine
from monai.metrics import CumulativeIterationMetric, ROCAUCMetric, compute_roc_auc
from monai.utils import convert_to_numpy, convert_to_tensor

from common.data.atomic import atomic_output

__all__ = [
    "BINARY_REPORT_SCALARS",
    "REPORT_SCALARS",
    "classification_handlers",
    "ClassificationReport",
    "ClassificationReportMetric",
    "ConfusionMatrixSaver",
    "ROCAUCForClass",
    "ROCAUCForClassMetric",
    "classification_report",
    "save_confusion_matrix",
    "to_class_labels",
]

REPORT_SCALARS = ("accuracy", "precision", "recall", "f1")
"""The scalars of MMRAN's table (eq. 20-23): macro averages over the classes."""

BINARY_REPORT_SCALARS = ("accuracy", "recall", "specificity", "precision", "f1")
"""The scalars of the ResNeSAt paper's Tables III and IV (eq. 2-6), of one positive class."""

_ALL_SCALARS = (*REPORT_SCALARS, "specificity")

_CLS_OUTPUT = from_engine(["pred_cls", "label_cls"])


def to_class_labels(x: Any, num_classes: int) -> np.ndarray:
    """Integer class labels (N,) from labels (N,), scores / one-hot (N, C), or a list of per-item values.

    Rows of (N, C) input are reduced with argmax (probabilities, logits and one-hot vectors alike).
    """
    if isinstance(x, (list, tuple)):
        x = [convert_to_numpy(i) for i in x]
    arr = np.asarray(convert_to_numpy(x, wrap_sequence=True))
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim == 2:
        if arr.shape[1] != num_classes:
            raise ValueError(f"expected {num_classes} columns, got shape {arr.shape}.")
        return arr.argmax(axis=1).astype(np.int64)
    if arr.ndim != 1:
        raise ValueError(f"expected labels (N,) or scores (N, C), got shape {arr.shape}.")
    labels = arr.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes or not np.all(labels == arr)):
        raise ValueError(f"labels must be integers in [0, {num_classes}), got {np.unique(arr).tolist()}.")
    return labels


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with 0 where ``den == 0``."""
    return np.divide(num, den, out=np.zeros(num.shape, dtype=np.float64), where=den > 0)


def classification_report(
    y_pred: Any, y: Any, num_classes: int, positive_class: int | None = None
) -> dict[str, Any]:
    """Data-set level classification metrics of MMRAN eq. 20-23, or of one positive class (ResNeSAt eq. 2-6).

    Args:
        y_pred: predicted labels (N,) or class scores / probabilities (N, C) (argmax is taken).
        y: true labels (N,) or one-hot (N, C).
        num_classes: C.
        positive_class: ``None`` (MMRAN): precision, recall and specificity are means over the classes.
            A class index (ResNeSAt): they are those of that class against the rest, TP / (TP + FP),
            TP / (TP + FN) and TN / (TN + FP) (eq. 4, 2, 3), and F1 (eq. 5) is their harmonic mean.

    Returns:
        dict with

        * ``"confusion_matrix"``: (C, C) ``np.int64``, rows = true class, columns = predicted class;
        * ``"accuracy"`` (eq. 20): sum_i TP_i / N (= sum TP_i / sum (TP_i + FP_i));
        * ``"precision_per_class"`` / ``"recall_per_class"`` (eq. 21, 22): (C,) float64, TP / (TP + FP)
          and TP / (TP + FN);
        * ``"precision"`` / ``"recall"``: their unweighted means over the C classes (Pre_ave, Rec_ave);
        * ``"f1"`` (eq. 23): 2 Pre_ave Rec_ave / (Pre_ave + Rec_ave), the harmonic mean of the macro averages,
          not the mean of per-class F1 scores (0 when both averages are 0);
        * ``"specificity_per_class"``: (C,) TN / (TN + FP), each class against the rest; ``"specificity"``
          their mean.

        With ``positive_class`` the scalars ``precision``, ``recall``, ``specificity`` and ``f1`` are those
        of that class; ``accuracy`` (eq. 6, (TP + TN) / N for two classes) is unchanged.

        Scalars are Python floats. Zero division: a class never predicted has precision 0, a class absent
        from ``y`` has recall 0 (both still count in the macro means, as scikit-learn's ``zero_division=0``).
    """
    pred, true = to_class_labels(y_pred, num_classes), to_class_labels(y, num_classes)
    if pred.shape != true.shape:
        raise ValueError(f"y_pred and y hold {pred.size} and {true.size} samples.")
    cm = np.bincount(true * num_classes + pred, minlength=num_classes * num_classes)
    cm = cm.reshape(num_classes, num_classes).astype(np.int64)
    tp = np.diag(cm).astype(np.float64)
    predicted, actual = cm.sum(axis=0).astype(np.float64), cm.sum(axis=1).astype(np.float64)
    total = int(cm.sum())
    precision_pc = _safe_ratio(tp, predicted)
    recall_pc = _safe_ratio(tp, actual)
    # TN of a class: everything neither labelled nor predicted as it
    specificity_pc = _safe_ratio(total - actual - predicted + tp, total - actual)
    if positive_class is None:
        pre, rec, spec = (float(v.mean()) for v in (precision_pc, recall_pc, specificity_pc))
    elif 0 <= positive_class < num_classes:
        pre, rec, spec = (float(v[positive_class]) for v in (precision_pc, recall_pc, specificity_pc))
    else:
        raise ValueError(f"positive_class must be in [0, {num_classes}), got {positive_class}.")
    return {
        "accuracy": float(tp.sum() / total) if total else float("nan"),
        "precision": pre,
        "recall": rec,
        "specificity": spec,
        "f1": 2 * pre * rec / (pre + rec) if pre + rec > 0 else 0.0,
        "precision_per_class": precision_pc,
        "recall_per_class": recall_pc,
        "specificity_per_class": specificity_pc,
        "confusion_matrix": cm,
    }


class ClassificationReportMetric(CumulativeIterationMetric):
    """One scalar of :func:`classification_report` (eq. 20-23) over all samples seen since ``reset()``.

    Every call buffers the predicted and true labels (argmax of (B, C) probabilities / one-hot inputs, or
    (B,) labels); ``aggregate()`` computes the named value from the whole epoch's confusion matrix. These
    are data-set level quantities, not means of per-batch values.

    Args:
        metric_name: one of ``"accuracy"``, ``"precision"``, ``"recall"``, ``"specificity"``, ``"f1"``.
        num_classes: number of classes C.
        positive_class: see :func:`classification_report`.
    """

    def __init__(self, metric_name: str, num_classes: int, positive_class: int | None = None) -> None:
        super().__init__()
        if metric_name not in _ALL_SCALARS:
            raise ValueError(f"metric_name must be one of {_ALL_SCALARS}, got {metric_name!r}.")
        self.metric_name = metric_name
        self.num_classes = num_classes
        self.positive_class = positive_class

    def _labels(self, x: torch.Tensor) -> torch.Tensor:
        x = convert_to_tensor(x, track_meta=False)
        if x.ndim == 2 and x.shape[1] > 1:
            return x.argmax(dim=1)
        return x.reshape(x.shape[0]).round().long()

    def _compute_tensor(  # type: ignore[override]
        self, y_pred: torch.Tensor, y: torch.Tensor, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch-first (B,) predicted and true labels, buffered for ``aggregate()``."""
        return self._labels(y_pred), self._labels(y)

    def report(self) -> dict[str, Any]:
        """The full :func:`classification_report` of the buffered samples."""
        buffers = self.get_buffer()
        if buffers is None:
            raise ValueError(f"{self}: nothing to aggregate, call the metric on some data first.")
        pred, true = buffers
        return classification_report(pred, true, self.num_classes, self.positive_class)

    def aggregate(self) -> float:  # type: ignore[override]
        """The ``metric_name`` entry of :meth:`report`."""
        return float(self.report()[self.metric_name])


class ClassificationReport(IgniteMetricHandler):
    """ignite handler giving one scalar of :func:`classification_report` per epoch as a float.

    Args:
        metric_name: ``"accuracy"``, ``"precision"``, ``"recall"``, ``"specificity"`` or ``"f1"``.
        num_classes: number of classes C.
        positive_class: see :func:`classification_report`.
        output_transform: gives ``(y_pred, y)`` from ``engine.state.output``, e.g.
            ``monai.handlers.from_engine(["pred_cls", "label_cls"])``.
        save_details: store the buffered ``[predicted_labels, true_labels]`` tensors in
            ``engine.state.metric_details[name]`` (a list, which ``MetricsSaver(metric_details=...)`` cannot
            write; leave ``False`` when using it).
    """

    def __init__(
        self,
        metric_name: str,
        num_classes: int,
        output_transform: Callable = lambda x: x,
        save_details: bool = False,
        positive_class: int | None = None,
    ) -> None:
        metric_fn = ClassificationReportMetric(metric_name, num_classes, positive_class)
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)


class ROCAUCForClassMetric(ROCAUCMetric):
    """One-vs-rest ROC AUC of class ``class_index``, via ``monai.metrics.compute_roc_auc`` on that column.

    Inputs as for ``ROCAUCMetric``: scores (B, C) and one-hot (B, C) labels; (B,) integer labels are also
    accepted. ``aggregate()`` returns a float (nan, with MONAI's warning, when only one of the two groups is
    present).
    """

    def __init__(self, class_index: int) -> None:
        super().__init__()
        self.class_index = class_index

    def aggregate(self, average: Any = None) -> float:  # type: ignore[override]
        """AUC of column ``class_index`` over all buffered samples (``average`` is ignored)."""
        buffers = self.get_buffer()
        if buffers is None:
            raise ValueError(f"{self}: nothing to aggregate, call the metric on some data first.")
        # the buffers can sit on different devices (scores on the GPU, labels on the CPU): rank on the CPU
        y_pred, y = (b.detach().cpu() for b in buffers)
        k = self.class_index
        y = y.reshape(y.shape[0], -1)
        truth = (y[:, 0].round() == k) if y.shape[1] == 1 else y[:, k]
        return float(compute_roc_auc(y_pred.reshape(y_pred.shape[0], -1)[:, k], truth.float()))


class ROCAUCForClass(IgniteMetricHandler):
    """ignite handler: ROC AUC of one class as a float (MONAI's ``ROCAUC(average="none")`` gives an array).

    Args:
        class_index: the column of the (B, C) scores and one-hot labels.
        output_transform: gives ``(y_pred, y)``, e.g. ``from_engine(["pred_cls", "label_cls"])``.
    """

    def __init__(self, class_index: int, output_transform: Callable = lambda x: x) -> None:
        metric_fn = ROCAUCForClassMetric(class_index=class_index)
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=False)


def classification_handlers(
    class_names: Sequence[str],
    metric_names: Sequence[str] | None = None,
    per_class_auc: bool = True,
    output_transform: Callable = _CLS_OUTPUT,
    positive_class: int | None = None,
) -> dict[str, IgniteMetricHandler]:
    """The classification table of a paper in one call: ``{"accuracy": ..., "f1": ..., "auc_<class>": ...}``.

    The class count comes from ``class_names``; the AUC handlers are named after the classes. Without
    ``positive_class`` the table is MMRAN's macro averages (:data:`REPORT_SCALARS`); with it, the binary
    table of the ResNeSAt paper (:data:`BINARY_REPORT_SCALARS`) and only that class's AUC.
    """
    if metric_names is None:
        metric_names = REPORT_SCALARS if positive_class is None else BINARY_REPORT_SCALARS
    n = len(class_names)
    handlers: dict[str, IgniteMetricHandler] = {
        name: ClassificationReport(name, n, output_transform=output_transform, positive_class=positive_class)
        for name in metric_names
    }
    if per_class_auc:
        auc_classes = range(n) if positive_class is None else [positive_class]
        for index in auc_classes:
            handlers[f"auc_{class_names[index]}"] = ROCAUCForClass(index, output_transform=output_transform)
    return handlers


# ---------------------------------------------------------------------------------- confusion matrix files


def _atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` through a temporary file in the same folder and ``os.replace`` it into place."""
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        write(f)


def _figure(cm: np.ndarray, class_names: Sequence[str]) -> Figure:
    n = len(class_names)
    fig = Figure(figsize=(1.1 * n + 2.5, 1.1 * n + 1.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(cm, cmap="Blues", vmin=0)
    fig.colorbar(image, ax=ax)
    threshold = cm.max() / 2 if cm.size else 0
    for i, j in np.ndindex(cm.shape):
        colour = "white" if cm[i, j] > threshold else "black"
        ax.text(j, i, str(cm[i, j]), ha="center", va="center", color=colour)
    ax.set_xticks(range(n), labels=list(class_names))
    ax.set_yticks(range(n), labels=list(class_names))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    return fig


def save_confusion_matrix(
    confusion_matrix: Any,
    class_names: Sequence[str],
    csv_path: str | os.PathLike,
    png_path: str | os.PathLike,
) -> None:
    """Write a confusion matrix (rows = true, columns = predicted) as CSV and as an annotated PNG figure.

    The CSV header is ``true/predicted,<name_0>,...``, then one row ``<true name>,<counts...>`` per true
    class. The figure (matplotlib, Agg canvas) shows the counts, with axes labelled "true" and "predicted".
    Each file is written to a temporary file in its folder and moved into place with ``os.replace``, so a
    reader never sees a half-written file.
    """
    cm = np.asarray(convert_to_numpy(confusion_matrix)).astype(np.int64)
    n = len(class_names)
    if cm.shape != (n, n):
        raise ValueError(f"confusion matrix of shape {cm.shape} does not match {n} class names.")

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["true/predicted", *class_names])
    for name, row in zip(class_names, cm):
        writer.writerow([name, *(int(v) for v in row)])
    _atomic_write(csv_path, lambda f: f.write(text.getvalue().encode("utf-8")))
    figure = _figure(cm, class_names)
    _atomic_write(png_path, lambda f: figure.savefig(f, format="png"))


class ConfusionMatrixSaver:
    """ignite handler writing the epoch's confusion matrix to ``<output_dir>/<prefix>.csv`` and ``.png``.

    On ``EPOCH_STARTED`` the counts are reset; on ``ITERATION_COMPLETED`` the argmax of predictions and labels
    from ``output_transform(engine.state.output)`` are counted; on ``EPOCH_COMPLETED`` the counts are summed
    over distributed ranks and rank ``save_rank`` calls :func:`save_confusion_matrix`. The last matrix is kept
    in ``self.confusion_matrix``.

    Args:
        output_dir: folder of the files (created when needed).
        class_names: names of the C classes, in label order.
        output_transform: gives ``(y_pred, y)``; default ``from_engine(["pred_cls", "label_cls"])``. Each may
            be a (B, C) tensor, a list of (C,) tensors, or labels.
        prefix: file name without extension.
        save_rank: the rank that writes the files.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        class_names: Sequence[str],
        output_transform: Callable = _CLS_OUTPUT,
        prefix: str = "confusion_matrix",
        save_rank: int = 0,
    ) -> None:
        self.output_dir = os.fspath(output_dir)
        self.class_names = list(class_names)
        self.output_transform = output_transform
        self.prefix = prefix
        self.save_rank = save_rank
        self.confusion_matrix = np.zeros((len(self.class_names),) * 2, dtype=np.int64)

    def attach(self, engine: Engine) -> None:
        """Register the reset, update and save steps on ``engine``."""
        engine.add_event_handler(Events.EPOCH_STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.update)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def reset(self, engine: Engine | None = None) -> None:
        """Zero the counts."""
        self.confusion_matrix[...] = 0

    def update(self, engine: Engine) -> None:
        """Add the current iteration's predictions to the counts."""
        y_pred, y = self.output_transform(engine.state.output)
        n = len(self.class_names)
        self.confusion_matrix += classification_report(y_pred, y, n)["confusion_matrix"]

    def __call__(self, engine: Engine) -> None:
        """Gather the counts from all ranks and write the CSV and PNG files."""
        counts = torch.as_tensor(self.confusion_matrix)
        if idist.get_world_size() > 1:
            counts = idist.all_reduce(counts)
        self.confusion_matrix = counts.cpu().numpy().astype(np.int64)
        if idist.get_rank() == self.save_rank:
            base = os.path.join(self.output_dir, self.prefix)
            save_confusion_matrix(self.confusion_matrix, self.class_names, f"{base}.csv", f"{base}.png")
