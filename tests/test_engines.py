"""Batch preparation, head splitting, checkpoint/resume and output writers of the shared engine layer."""

import csv

import pytest
import torch
from ignite.engine import Engine, Events
from monai.data import MetaTensor
from monai.transforms import FillHoles

from common.engines import (
    BestModelSaver,
    ClassProbabilityWriter,
    MultiTaskPrepareBatch,
    TrainingCheckpoint,
    load_network_weights,
)
from common.losses import DynamicWeight, MultiTaskLoss
from common.transforms import LabelToHeadMasksd, SplitHeadsd, ToSingleChannelSliced


def test_prepare_batch_builds_per_head_targets():
    batch = {"image": torch.rand(2, 1, 8, 8), "label": torch.ones(2, 1, 8, 8), "class": torch.tensor([0, 2])}
    image, targets = MultiTaskPrepareBatch({"seg": "label", "cls": "class"})(batch, torch.device("cpu"))
    assert image.shape == (2, 1, 8, 8)
    assert set(targets) == {"seg", "cls"} and targets["cls"].tolist() == [0, 2]
    # inference: no label keys in the batch, no targets
    _, targets = MultiTaskPrepareBatch({"seg": "label"})({"image": torch.rand(1, 1, 4, 4)})
    assert targets == {}


def test_split_heads_flattens_dicts():
    item = {"pred": {"seg": 1, "cls": 2}, "label": {"seg": 3}, "image": 0}
    out = SplitHeadsd(keys=["pred", "label"])(item)
    assert out == {"pred_seg": 1, "pred_cls": 2, "label_seg": 3, "image": 0}
    with pytest.raises(TypeError, match="dict of heads"):
        SplitHeadsd(keys="image")(item)


def test_to_single_channel_slice():
    nifti_slice = MetaTensor(torch.rand(1, 10, 12, 1))
    assert ToSingleChannelSliced("image")({"image": nifti_slice})["image"].shape == (1, 10, 12)
    rgb = torch.stack([torch.full((4, 4), v) for v in (0.0, 0.3, 0.6)])
    out = ToSingleChannelSliced("image")({"image": rgb})["image"]
    torch.testing.assert_close(out, torch.full((1, 4, 4), 0.3))
    with pytest.raises(ValueError, match="expected a 2D image"):
        ToSingleChannelSliced("image")({"image": torch.rand(1, 4, 4, 3)})


def test_monai_fill_holes_is_the_papers_flood_fill():
    """§3.5: holes enclosed by the tumour are filled; background open to the border is not."""
    mask = torch.zeros(1, 12, 12)
    mask[0, 2:9, 2:9] = 1
    mask[0, 4:6, 4:7] = 0  # necrotic hole
    mask[0, 0:5, 10] = 1
    mask[0, 2, 10] = 0  # gap touching the border stays
    filled = FillHoles(connectivity=1)(mask.clone())
    assert filled[0, 4:6, 4:7].eq(1).all()
    assert filled[0, 2, 10] == 0 and filled.sum() == mask.sum() + 6


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


def test_label_to_head_masks():
    label = torch.tensor([[[0, 1], [2, 3]]])
    out = LabelToHeadMasksd("label", heads={"wt": [1, 2, 3], "et": [3], "ncr": [1]})({"label": label})
    assert out["label_wt"].tolist() == [[[0.0, 1.0], [1.0, 1.0]]]
    assert out["label_et"].tolist() == [[[0.0, 0.0], [0.0, 1.0]]]
    assert out["label_ncr"].tolist() == [[[0.0, 1.0], [0.0, 0.0]]]
    assert out["label_wt"].dtype == torch.float32
