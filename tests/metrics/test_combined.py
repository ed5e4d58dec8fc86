"""The multi-task key metric and bundle-root discovery."""

import pytest
import torch
from ignite.engine import Engine
from monai.handlers import MeanDice

from common.metrics import AverageOfMetrics, ClassificationReport


def test_average_of_metrics_weighs_both_tasks_and_keeps_components():
    seg = torch.zeros(1, 2, 4, 4)
    seg[:, 1, :2] = 1
    seg[:, 0, 2:] = 1
    half = seg.clone()
    half[:, 1, :, :2] = 0
    half[:, 0, :, :2] = 1  # half of the tumour found: Dice = 2 * 4 / (4 + 8) = 2/3
    outputs = [
        {
            "pred_seg": half[0],
            "label_seg": seg[0],
            "pred_cls": torch.tensor([1.0, 0, 0]),
            "label_cls": torch.tensor([1.0, 0, 0]),
        },
        {
            "pred_seg": seg[0],
            "label_seg": seg[0],
            "pred_cls": torch.tensor([1.0, 0, 0]),
            "label_cls": torch.tensor([0, 1.0, 0]),
        },
    ]
    engine = Engine(lambda e, batch: batch)
    dice = MeanDice(include_background=False, output_transform=lambda o: ([o["pred_seg"]], [o["label_seg"]]))
    accuracy = ClassificationReport(
        "accuracy", 3, output_transform=lambda o: ([o["pred_cls"]], [o["label_cls"]])
    )
    AverageOfMetrics([dice, accuracy], weights=[3, 1]).attach(engine, "key")
    dice.attach(engine, "dice")
    accuracy.attach(engine, "acc")
    engine.run(outputs, max_epochs=1)
    metrics = engine.state.metrics
    assert metrics["dice"] == pytest.approx((2 / 3 + 1) / 2)
    assert metrics["acc"] == pytest.approx(0.5)
    assert metrics["key"] == pytest.approx((3 * metrics["dice"] + metrics["acc"]) / 4)


def test_average_of_metrics_rejects_bad_weights():
    with pytest.raises(ValueError, match="one non-negative weight per metric"):
        AverageOfMetrics([MeanDice()], weights=[1, 2])
