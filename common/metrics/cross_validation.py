"""The table of a k-fold cross-validation: each fold's evaluation metrics, then their mean and std.

The ResNeSAt paper reports means over ten folds (§IV). Each fold's evaluation writes MONAI's ``MetricsSaver``
file ``<eval_dir>/fold_<k>/metrics.csv`` (``name,value`` lines); :func:`summarise_folds` gathers every fold
found so far into ``<eval_dir>/cross_validation.csv``, so the table grows as folds are evaluated.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from pathlib import Path

import numpy as np

from common.data.atomic import atomic_write_text

__all__ = ["read_metrics_csv", "summarise_folds"]

_FOLD_DIR = re.compile(r"^fold_(\d+)$")


def read_metrics_csv(path: str | os.PathLike, delimiter: str = ",") -> dict[str, float]:
    """The ``name<delimiter>value`` lines of a ``MetricsSaver`` ``metrics.csv`` as floats.

    Raises:
        ValueError: naming the file and line, for a line that is not a name and a number.
    """
    metrics: dict[str, float] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, value = line.rpartition(delimiter)
        try:
            metrics[name] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise ValueError(f"{path}: line {number} is not 'name{delimiter}value': {line!r}") from None
    return metrics


def summarise_folds(
    eval_dir: str | os.PathLike,
    metrics_file: str = "metrics.csv",
    output_name: str = "cross_validation.csv",
    delimiter: str = ",",
) -> Path | None:
    """Write ``<eval_dir>/<output_name>``: a row per ``fold_<k>`` folder with ``metrics_file``, mean, std.

    Columns: ``fold`` and the metric names (the union over folds, in first-seen order); a fold without a
    metric has an empty cell and is left out of that metric's mean. ``std`` is the sample standard
    deviation (ddof 1; empty with one fold). Folds are listed by index. Returns the path, or ``None``
    (and writes nothing) when no fold has been evaluated.
    """
    root = Path(eval_dir)
    folds: list[tuple[int, dict[str, float]]] = []
    for child in root.iterdir() if root.is_dir() else ():
        match = _FOLD_DIR.match(child.name)
        if match and (child / metrics_file).is_file():
            folds.append((int(match.group(1)), read_metrics_csv(child / metrics_file, delimiter)))
    if not folds:
        return None
    folds.sort()
    names = list(dict.fromkeys(name for _, metrics in folds for name in metrics))

    def cell(value: float) -> str:
        return "" if math.isnan(value) else f"{value:.6g}"

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["fold", *names])
    for index, metrics in folds:
        writer.writerow([index, *(cell(metrics.get(name, math.nan)) for name in names)])
    columns = [
        np.array([m[name] for _, m in folds if name in m and not math.isnan(m[name])]) for name in names
    ]
    writer.writerow(["mean", *(cell(float(c.mean())) if c.size else "" for c in columns)])
    writer.writerow(["std", *(cell(float(c.std(ddof=1))) if c.size > 1 else "" for c in columns)])
    return atomic_write_text(root / output_name, text.getvalue())
