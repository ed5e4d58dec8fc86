"""A key metric that weighs several tasks, for picking the best checkpoint of a multi-task model."""

from __future__ import annotations

from collections.abc import Sequence

from ignite.metrics import Metric, MetricsLambda


def _weighted_mean(weights: Sequence[float]):
    total = float(sum(weights))

    def combine(*values: float) -> float:
        return sum(w * float(v) for w, v in zip(weights, values, strict=True)) / total

    return combine


class AverageOfMetrics(MetricsLambda):
    """Weighted mean of ignite metrics, e.g. ``(Dice + accuracy) / 2`` for MMRAN's validation.

    The component metrics are updated once per iteration even when they are also attached under their own
    names (ignite attaches a metric's handlers only once per engine).

    Args:
        metrics: the component metrics (ignite ``Metric`` objects, e.g. MONAI metric handlers).
        weights: one weight per metric; equal weights by default.
    """

    def __init__(self, metrics: Sequence[Metric], weights: Sequence[float] | None = None):
        metrics = list(metrics)
        if not metrics:
            raise ValueError("AverageOfMetrics needs at least one metric")
        weights = [1.0] * len(metrics) if weights is None else [float(w) for w in weights]
        if len(weights) != len(metrics) or sum(weights) <= 0:
            raise ValueError(f"need one non-negative weight per metric with a positive sum, got {weights}")
        super().__init__(_weighted_mean(weights), *metrics)
