"""Batch preparation, checkpoint/resume, multi-process handler choice and output writers."""

import csv

import pytest
import torch
from ignite.engine import Engine, Events
from monai.data import MetaTensor
from monai.handlers import StatsHandler, ValidationHandler

from common.engines import (
    BestModelSaver,
    ClassProbabilityWriter,
    MultiTaskPrepareBatch,
    TrainingCheckpoint,
    handlers_for_rank,
    load_network_weights,
)
from common.losses import DynamicWeight, MultiTaskLoss


def test_prepare_batch_builds_per_head_targets():
    batch = {"image": torch.rand(2, 1, 8, 8), "label": torch.ones(2, 1, 8, 8), "class": torch.tensor([0, 2])}
    image, targets = MultiTaskPrepareBatch({"seg": "label", "cls": "class"})(batch, torch.device("cpu"))
    assert image.shape == (2, 1, 8, 8)
    assert set(targets) == {"seg", "cls"} and targets["cls"].tolist() == [0, 2]
    # inference: no label keys in the batch, no targets
    _, targets = MultiTaskPrepareBatch({"seg": "label"})({"image": torch.rand(1, 1, 4, 4)})
    assert targets == {}


def tiny_training(tmp_path, max_epochs, stop_after=None):
    """A 1-parameter 'network' trained by an ignite engine with a dynamic loss schedule and checkpoints."""
    torch.manual_seed(0)
    net = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    loss = MultiTaskLoss({"seg": torch.nn.MSELoss(), "cls": torch.nn.L1Loss()})
    schedule = DynamicWeight(loss, epochs=max_epochs)
    alphas = []

    def step(engine, batch):
        optimizer.zero_grad()
        out = net(batch)
        value = loss({"seg": out, "cls": out}, {"seg": 2 * batch, "cls": 2 * batch})
        value.backward()
        optimizer.step()
        return value.item()

    engine = Engine(step)
    schedule.attach(engine)
    engine.add_event_handler(Events.EPOCH_STARTED, lambda e: alphas.append(loss.weights["cls"]))
    TrainingCheckpoint(tmp_path, {"network": net, "optimizer": optimizer, "loss_schedule": schedule}).attach(
        engine
    )
    if stop_after is not None:
        engine.add_event_handler(Events.EPOCH_COMPLETED(once=stop_after), lambda e: e.terminate())
    engine.run([torch.ones(4, 1), torch.zeros(4, 1)], max_epochs=max_epochs)
    return net, alphas, engine


def test_training_resumes_schedule_and_weights(tmp_path):
    reference_net, reference_alphas, _ = tiny_training(tmp_path / "straight", max_epochs=5)
    _, first_alphas, _ = tiny_training(tmp_path / "resumed", max_epochs=5, stop_after=2)
    resumed_net, resumed_alphas, engine = tiny_training(tmp_path / "resumed", max_epochs=5)
    assert first_alphas == reference_alphas[:2]
    assert resumed_alphas == reference_alphas[2:]
    assert engine.state.epoch == 5
    torch.testing.assert_close(resumed_net.weight, reference_net.weight)
    checkpoint = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)
    assert set(checkpoint) == {"network", "optimizer", "loss_schedule", "trainer"}
    assert all(t.device.type == "cpu" for t in checkpoint["network"].values())


def test_best_model_saver_keeps_only_improvements(tmp_path):
    net = torch.nn.Linear(2, 1)
    saver = BestModelSaver(net, tmp_path / "model.pt", metric_name="score")
    engine = Engine(lambda e, b: None)
    saver.attach(engine)
    scores = iter([0.5, 0.3, 0.8])
    engine.add_event_handler(
        Events.EPOCH_STARTED, lambda e: torch.nn.init.constant_(net.weight, e.state.epoch)
    )
    engine.add_event_handler(Events.EPOCH_COMPLETED(before=True), lambda e: None)

    @engine.on(Events.ITERATION_COMPLETED)
    def set_metric(e):
        e.state.metrics["score"] = next(scores)

    engine.run([0], max_epochs=3)
    assert saver.best == 0.8 and saver.best_epoch == 3
    fresh = torch.nn.Linear(2, 1)
    load_network_weights(fresh, tmp_path / "model.pt")
    assert fresh.weight.eq(3).all()
    assert list(tmp_path.iterdir()) == [tmp_path / "model.pt"]  # no temporary files left


def test_class_probability_writer(tmp_path):
    writer = ClassProbabilityWriter(tmp_path / "probs.csv", ["a", "b", "c"])
    engine = Engine(
        lambda e, b: [
            {
                "pred_cls": torch.tensor([0.1, 0.7, 0.2]),
                "image": MetaTensor(torch.zeros(1), meta={"filename_or_obj": "x.mat"}),
            },
            {
                "pred_cls": torch.tensor([0.6, 0.3, 0.1]),
                "image": MetaTensor(torch.zeros(1), meta={"filename_or_obj": "y.png"}),
            },
        ]
    )
    writer.attach(engine)
    engine.run([0], max_epochs=1)
    rows = list(csv.reader(open(tmp_path / "probs.csv")))
    assert rows[0] == ["file", "predicted_class", "p_a", "p_b", "p_c"]
    assert rows[1][:2] == ["x.mat", "b"] and rows[2][:2] == ["y.png", "a"]
    assert float(rows[1][3]) == pytest.approx(0.7)


def test_prepare_batch_with_a_single_label_key():
    batch = {"image": torch.rand(1, 4, 8, 8, 3), "label": torch.ones(1, 1, 8, 8, 3)}
    image, label = MultiTaskPrepareBatch("label")(batch)
    assert isinstance(label, torch.Tensor) and label.shape == (1, 1, 8, 8, 3)
    assert MultiTaskPrepareBatch("label")({"image": batch["image"]})[1] is None


def test_handlers_for_rank_drops_only_logging_handlers_on_other_ranks(tmp_path):
    stats = StatsHandler()
    validation = ValidationHandler(interval=1)
    checkpoint = TrainingCheckpoint(tmp_path, {})
    handlers = [validation, stats, checkpoint]
    assert handlers_for_rank(handlers, rank=0) == handlers
    assert handlers_for_rank(handlers, rank=1) == [validation, checkpoint]
    assert checkpoint.write  # a single process writes its checkpoint
