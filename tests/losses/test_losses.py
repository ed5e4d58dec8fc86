"""The focal loss, the multi-task loss of eq. 13 and the three training schedules of §3.4."""

import math

import pytest
import torch
from ignite.engine import Engine, Events
from monai.losses import FocalLoss

from common.losses import ClassificationFocalLoss, DynamicWeight, FixedWeights, FreezeTraining, MultiTaskLoss


def test_focal_loss_matches_hand_computation():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
    target = torch.tensor([0, 2])
    p = torch.softmax(logits, dim=1)
    p_t = torch.stack([p[0, 0], p[1, 2]])
    expected = (-0.25 * (1 - p_t) ** 2 * torch.log(p_t)).mean()
    loss = ClassificationFocalLoss(num_classes=3, alpha=0.25, gamma=2.0)(logits, target)
    torch.testing.assert_close(loss, expected)


def test_focal_loss_alpha_is_weight_of_the_true_class():
    """With per-class alpha, each sample is weighted by the alpha of its own class (not overwritten)."""
    torch.manual_seed(0)
    logits = torch.randn(6, 3)
    target = torch.tensor([0, 1, 2, 0, 1, 2])
    alpha = [0.2, 0.5, 0.3]
    per_sample = ClassificationFocalLoss(3, alpha=alpha, reduction="none")(logits, target)
    unweighted = ClassificationFocalLoss(3, alpha=None, reduction="none")(logits, target)
    torch.testing.assert_close(per_sample, unweighted * torch.tensor(alpha)[target])
    # agrees with MONAI's softmax focal loss given the same explicit vector
    monai_loss = FocalLoss(use_softmax=True, to_onehot_y=True, alpha=alpha, gamma=2.0, reduction="none")
    reference = monai_loss(logits, target[:, None]).sum(dim=1).reshape(-1)
    torch.testing.assert_close(per_sample, reference)


def test_focal_loss_with_gamma_zero_and_no_alpha_is_cross_entropy():
    torch.manual_seed(1)
    logits, target = torch.randn(5, 3), torch.tensor([2, 0, 1, 1, 0])
    loss = ClassificationFocalLoss(3, alpha=None, gamma=0.0)(logits, target)
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits, target))


def test_focal_loss_accepts_one_hot_and_column_targets():
    logits, target = torch.randn(4, 3), torch.tensor([0, 2, 1, 2])
    loss = ClassificationFocalLoss(3)
    one_hot = torch.nn.functional.one_hot(target, 3)
    torch.testing.assert_close(loss(logits, target[:, None]), loss(logits, one_hot))


def test_multitask_loss_is_weighted_sum_and_skips_frozen_heads():
    seg_loss, cls_loss = torch.nn.L1Loss(), torch.nn.MSELoss()
    loss = MultiTaskLoss({"seg": seg_loss, "cls": cls_loss}, {"seg": 0.7, "cls": 0.3})
    pred = {"seg": torch.randn(2, 1, 4, 4, requires_grad=True), "cls": torch.randn(2, 3, requires_grad=True)}
    target = {"seg": torch.rand(2, 1, 4, 4), "cls": torch.rand(2, 3)}
    expected = 0.7 * seg_loss(pred["seg"], target["seg"]) + 0.3 * cls_loss(pred["cls"], target["cls"])
    torch.testing.assert_close(loss(pred, target), expected)
    loss.set_weights({"seg": 1.0, "cls": 0.0})
    loss(pred, target).backward()
    assert pred["cls"].grad is None and pred["seg"].grad is not None


def test_multitask_loss_rejects_unknown_heads():
    loss = MultiTaskLoss({"seg": torch.nn.L1Loss()})
    with pytest.raises(ValueError, match="unknown heads"):
        loss.set_weights({"edge": 1.0})


def run_schedule(schedule, epochs):
    seen = []
    engine = Engine(lambda e, b: None)
    schedule.attach(engine)
    engine.add_event_handler(Events.EPOCH_STARTED, lambda e: seen.append(dict(schedule.loss.weights)))
    engine.run([0], max_epochs=epochs)
    return seen


def two_head_loss():
    return MultiTaskLoss({"seg": torch.nn.L1Loss(), "cls": torch.nn.L1Loss()})


def test_dynamic_weight_alpha_is_epoch_over_epochs():
    """eq. 15 with epoch_now counted from 0: epoch 1 trains segmentation only."""
    seen = run_schedule(DynamicWeight(two_head_loss(), epochs=4), 4)
    assert [w["cls"] for w in seen] == [0.0, 0.25, 0.5, 0.75]
    assert all(math.isclose(w["seg"] + w["cls"], 1.0) for w in seen)


def test_freeze_training_stages():
    """eq. 14: N = 240 / 3 = 80; seg alone, then cls alone, then both with alpha = 0.5."""
    schedule = FreezeTraining(two_head_loss(), epochs=240)
    assert schedule.weights_at(1) == schedule.weights_at(80) == {"seg": 1.0, "cls": 0.0}
    assert schedule.weights_at(81) == schedule.weights_at(160) == {"seg": 0.0, "cls": 1.0}
    assert schedule.weights_at(161) == schedule.weights_at(240) == {"seg": 0.5, "cls": 0.5}
    seen = run_schedule(FreezeTraining(two_head_loss(), epochs=7), 7)  # N = 2, last 3 epochs together
    assert [w["cls"] for w in seen] == [0.0, 0.0, 1.0, 1.0, 0.5, 0.5, 0.5]


def test_fixed_weights_hold_every_epoch():
    seen = run_schedule(FixedWeights(two_head_loss(), {"seg": 0.6, "cls": 0.4}), 3)
    assert seen == [{"seg": 0.6, "cls": 0.4}] * 3


def test_schedule_state_round_trip():
    first = DynamicWeight(two_head_loss(), epochs=10)
    first.loss.set_weights(first.weights_at(4))
    second = DynamicWeight(two_head_loss(), epochs=10)
    second.load_state_dict(first.state_dict())
    assert second.loss.weights == {"seg": 0.7, "cls": pytest.approx(0.3)}
