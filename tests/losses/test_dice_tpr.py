"""Paper 002's lesion loss (eq. 1-3: generalised Dice + (1 - TPR)) and the tissue head's configuration."""

import numpy as np
import pytest
import torch
from monai.losses import GeneralizedDiceLoss

from common.losses import GeneralizedDiceTPRLoss

# the tissue head's loss, as the bundle configures it (see common/losses/dice_tpr.py)
TISSUE_LOSS = {"softmax": True, "to_onehot_y": True, "smooth_nr": 0.0, "smooth_dr": 1e-12}

# one patch of 8 voxels: two lesion voxels
R = [1, 1, 0, 0, 0, 0, 0, 0]
P = [0.9, 0.5, 0.2, 0.1, 0.0, 0.0, 0.1, 0.2]


def as_map(values, batch=1):
    return torch.tensor(values, dtype=torch.float64).reshape(batch, 1, 2, -1)


def sudre_gdl(probs: np.ndarray, onehot: np.ndarray) -> float:
    """Sudre et al. 2017 written out: 1 - 2 sum_l w_l sum_n r p / sum_l w_l sum_n (r + p), w_l = 1/|R_l|^2;
    an absent class takes the largest weight of the present ones (MONAI's convention). (C, N) arrays."""
    volume = onehot.sum(axis=1).astype(np.float64)
    w = np.zeros_like(volume)
    w[volume > 0] = 1.0 / volume[volume > 0] ** 2
    w[volume == 0] = w.max()
    return 1.0 - 2.0 * (w * (probs * onehot).sum(1)).sum() / (w * (probs + onehot).sum(1)).sum()


def test_hand_computed_value():
    """Lesion class: |R| = 2, w = 1/4, sum p r = 0.9 + 0.5 = 1.4, sum p + |R| = 2.0 + 2 = 4.
    Background: |R| = 6, w = 1/36, sum (1-p)(1-r) = 0.8 + 0.9 + 1 + 1 + 0.9 + 0.8 = 5.4, sum (1-p) + 6 = 12.
    GDL = 1 - 2 (1.4/4 + 5.4/36) / (4/4 + 12/36) = 1 - 1.0 / (4/3) = 0.25.
    TPR = 1.4 / 2 = 0.7, so the TPR term is 0.3, and the loss 0.25 + 0.3 = 0.55."""
    loss = GeneralizedDiceTPRLoss(sigmoid=False)
    terms = loss.terms(as_map(P), as_map(R))
    assert terms["dice"].item() == pytest.approx(0.25, abs=1e-9)
    assert terms["tpr"].item() == pytest.approx(0.3, abs=1e-9)
    assert loss(as_map(P), as_map(R)).item() == pytest.approx(0.55, abs=1e-9)
    half = GeneralizedDiceTPRLoss(sigmoid=False, tpr_weight=0.5)
    assert half(as_map(P), as_map(R)).item() == pytest.approx(0.25 + 0.5 * 0.3, abs=1e-9)
    # the weights matter: the plain soft Dice of the lesion would be 1 - 2 * 1.4 / 4 = 0.3
    plain = GeneralizedDiceLoss(w_type="uniform", smooth_nr=0, smooth_dr=0)(as_map(P), as_map(R))
    assert plain.item() == pytest.approx(0.3, abs=1e-9)


def test_logits_get_a_sigmoid():
    logits = torch.logit(as_map([0.9, 0.5, 0.2, 0.1, 0.05, 0.05, 0.1, 0.2]))
    probs = torch.sigmoid(logits)
    torch.testing.assert_close(
        GeneralizedDiceTPRLoss()(logits, as_map(R)), GeneralizedDiceTPRLoss(sigmoid=False)(probs, as_map(R))
    )


def test_empty_target_gives_mean_probability_and_no_tpr_term():
    """No lesion: TPR is 0/0 and its term is 0 by convention; the lesion class is absent and takes the
    background's weight 1/N^2, so GDL = 1 - 2 (N - S) / (N + N) = S / N with S = sum p: the mean lesion
    probability, here (0.5 + 0.1 + 0.3 + 0.1 + 0 + 0 + 0.2 + 0.2) / 8 = 0.175."""
    probs = as_map([0.5, 0.1, 0.3, 0.1, 0.0, 0.0, 0.2, 0.2])
    loss = GeneralizedDiceTPRLoss(sigmoid=False)
    terms = loss.terms(probs, torch.zeros_like(probs))
    assert terms["tpr"].item() == 0.0
    assert terms["dice"].item() == pytest.approx(0.175, abs=1e-9)
    # logits: finite gradient everywhere, every voxel pushed towards background
    logits = torch.randn(2, 1, 4, 4, 4, requires_grad=True)
    value = GeneralizedDiceTPRLoss()(logits, torch.zeros_like(logits))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()
    assert (logits.grad > 0).all()
    assert value.item() == pytest.approx(torch.sigmoid(logits).mean().item(), rel=1e-5)


def test_all_empty_batch_pooled_is_finite():
    logits = torch.randn(3, 1, 4, 4, 4, requires_grad=True)
    loss = GeneralizedDiceTPRLoss(batch=True)
    terms = loss.terms(logits, torch.zeros_like(logits))
    assert terms["tpr"].item() == 0.0
    value = loss(logits, torch.zeros_like(logits))
    value.backward()
    assert torch.isfinite(logits.grad).all()
    assert value.item() == pytest.approx(torch.sigmoid(logits).mean().item(), rel=1e-5)


def test_perfect_prediction_is_zero():
    target = as_map(R)
    assert GeneralizedDiceTPRLoss(sigmoid=False)(target.clone(), target).item() == pytest.approx(
        0.0, abs=1e-9
    )
    logits = torch.where(target > 0, 30.0, -30.0).float()
    assert GeneralizedDiceTPRLoss()(logits, target.float()).item() == pytest.approx(0.0, abs=1e-6)
    empty = torch.zeros(1, 1, 4, 4, 4)
    assert GeneralizedDiceTPRLoss(sigmoid=False)(empty, empty).item() == pytest.approx(0.0, abs=1e-9)


def test_batch_per_patch_mean_and_pooled():
    """Patch A is empty with p = 0.25 everywhere, patch B is the hand-computed patch above.

    Per patch (batch=False): A gives 0.25 (mean probability) + 0 (TPR term), B gives 0.25 + 0.3; mean 0.4.
    Pooled (batch=True): lesion |R| = 2, w = 1/4, sum p r = 1.4, sum p + |R| = (2 + 2) + 2 = 6; background
    |R| = 14, w = 1/196, sum (1-p)(1-r) = 6 + 5.4 = 11.4, sum (1-p) + |R| = (6 + 6) + 14 = 26;
    GDL = 1 - 2 (1.4/4 + 11.4/196) / (6/4 + 26/196) = 1 - 0.8163265 / 1.6326531 = 0.5; TPR = 1.4/2 -> 0.3."""
    probs = as_map([0.25] * 8 + P, batch=2)
    target = as_map([0] * 8 + R, batch=2)
    assert GeneralizedDiceTPRLoss(sigmoid=False)(probs, target).item() == pytest.approx(0.4, abs=1e-9)
    pooled = GeneralizedDiceTPRLoss(sigmoid=False, batch=True).terms(probs, target)
    assert pooled["dice"].item() == pytest.approx(0.5, abs=1e-9)
    assert pooled["tpr"].item() == pytest.approx(0.3, abs=1e-9)


@pytest.mark.parametrize("batch", [False, True])
def test_dice_part_is_sudres_two_class_gdl(batch):
    """tpr_weight=0 leaves eq. 1 as Sudre et al.'s two-class generalised Dice (lesion and background),
    checked against the formula written out in numpy on random maps, with and without a lesion."""
    torch.manual_seed(0)
    probs = torch.rand(3, 1, 6, 5, 4, dtype=torch.float64)
    target = (torch.rand(3, 1, 6, 5, 4) > 0.8).double()
    target[1] = 0  # one patch without lesion
    p, r = probs.numpy(), target.numpy()
    if batch:
        expected = sudre_gdl(np.stack([1 - p.ravel(), p.ravel()]), np.stack([1 - r.ravel(), r.ravel()]))
    else:
        expected = np.mean(
            [
                sudre_gdl(
                    np.stack([1 - p[b].ravel(), p[b].ravel()]), np.stack([1 - r[b].ravel(), r[b].ravel()])
                )
                for b in range(3)
            ]
        )
    value = GeneralizedDiceTPRLoss(tpr_weight=0.0, sigmoid=False, batch=batch)(probs, target)
    assert value.item() == pytest.approx(expected, abs=1e-9)


def test_loss_falls_as_tpr_rises():
    """1 - TPR, not eq. 3's literal + TPR: raising the lesion probability inside the lesion (more true
    positives, same everything else) lowers the TPR term and the loss; the TPR term's gradient is
    -r_n / |R| (zero outside the lesion)."""
    target = as_map(R)
    low = as_map([0.5, 0.4, 0.2, 0.1, 0.0, 0.0, 0.1, 0.2])
    high = as_map([0.9, 0.8, 0.2, 0.1, 0.0, 0.0, 0.1, 0.2])
    loss = GeneralizedDiceTPRLoss(sigmoid=False)
    assert loss.terms(high, target)["tpr"] < loss.terms(low, target)["tpr"]
    assert loss(high, target) < loss(low, target)
    probs = low.clone().requires_grad_(True)
    loss.terms(probs, target)["tpr"].backward()
    torch.testing.assert_close(probs.grad, -target / 2)
    logits = torch.zeros(1, 1, 2, 4, requires_grad=True)
    loss_value = GeneralizedDiceTPRLoss()(logits, target.float())
    loss_value.backward()
    assert (logits.grad[target > 0] < 0).all() and (logits.grad[target == 0] > 0).all()


def test_rejects_bad_shapes_and_weight():
    loss = GeneralizedDiceTPRLoss()
    with pytest.raises(ValueError, match="shape"):
        loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match="differs"):
        loss(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match="tpr_weight"):
        GeneralizedDiceTPRLoss(tpr_weight=-1)


def test_tissue_configuration_hand_computed():
    """The tissue head's loss: MONAI's generalised Dice over the four classes on the softmax.

    Four voxels with labels (0, 0, 3, 1) and class probabilities (rows: voxels)
        (0.7, 0.1, 0.1, 0.1), (0.4, 0.2, 0.2, 0.2), (0.1, 0.1, 0.2, 0.6), (0.2, 0.5, 0.1, 0.2).
    class 0: |R| = 2, w = 1/4, sum p r = 1.1, sum p + |R| = 1.4 + 2 = 3.4
    class 1: |R| = 1, w = 1,   sum p r = 0.5, sum p + |R| = 0.9 + 1 = 1.9
    class 2: absent, w = the largest present weight 1, sum p r = 0, sum p + |R| = 0.6
    class 3: |R| = 1, w = 1,   sum p r = 0.6, sum p + |R| = 1.1 + 1 = 2.1
    GDL = 1 - 2 (1.1/4 + 0.5 + 0 + 0.6) / (3.4/4 + 1.9 + 0.6 + 2.1) = 1 - 2.75 / 5.45."""
    probs = torch.tensor(
        [[0.7, 0.1, 0.1, 0.1], [0.4, 0.2, 0.2, 0.2], [0.1, 0.1, 0.2, 0.6], [0.2, 0.5, 0.1, 0.2]],
        dtype=torch.float64,
    )
    logits = torch.log(probs).T.reshape(1, 4, 2, 2)  # softmax(log p) = p
    labels = torch.tensor([0, 0, 3, 1]).reshape(1, 1, 2, 2)
    value = GeneralizedDiceLoss(**TISSUE_LOSS)(logits, labels)
    assert value.item() == pytest.approx(1 - 2.75 / 5.45, abs=1e-9)
    perfect = torch.nn.functional.one_hot(labels[:, 0], 4).permute(0, 3, 1, 2).double() * 60.0
    assert GeneralizedDiceLoss(**TISSUE_LOSS)(perfect, labels).item() == pytest.approx(0.0, abs=1e-9)


def test_tissue_configuration_matches_sudre_on_random_maps():
    torch.manual_seed(1)
    logits = torch.randn(2, 4, 5, 6, 3, dtype=torch.float64)
    labels = torch.randint(0, 3, (2, 1, 5, 6, 3))  # class 3 absent
    probs = torch.softmax(logits, dim=1).numpy()
    onehot = torch.nn.functional.one_hot(labels[:, 0], 4).movedim(-1, 1).numpy()
    expected = np.mean([sudre_gdl(probs[b].reshape(4, -1), onehot[b].reshape(4, -1)) for b in range(2)])
    assert GeneralizedDiceLoss(**TISSUE_LOSS)(logits, labels).item() == pytest.approx(expected, abs=1e-9)


def test_monai_default_smoothing_would_shrink_the_squared_weight_loss():
    """Why smooth_nr = 0, smooth_dr = 1e-12: on an empty 64^3 patch with p = 0.3 the loss is the mean
    probability 0.3; MONAI's default 1e-5 is of the order of w (|R| + |A|) = 2/N = 7.6e-6 and gives ~0.13."""
    probs = torch.full((1, 1, 64, 64, 64), 0.3)
    empty = torch.zeros_like(probs)
    assert GeneralizedDiceTPRLoss(sigmoid=False)(probs, empty).item() == pytest.approx(0.3, rel=1e-4)
    default = GeneralizedDiceLoss()(torch.cat([1 - probs, probs], 1), torch.cat([1 - empty, empty], 1))
    assert default.item() < 0.5 * 0.3


def test_half_precision_logits_are_computed_in_float32():
    """Under mixed precision the head gives float16 logits; 1/N^2 of a 64^3 background (1.5e-11) would
    underflow in float16, so the loss computes in float32 and agrees with the float32 input."""
    torch.manual_seed(2)
    logits = torch.randn(1, 1, 64, 64, 64)
    target = torch.zeros_like(logits)
    target[..., 20:26, 20:26, 20:26] = 1
    half = GeneralizedDiceTPRLoss()(logits.half(), target.half())
    assert half.dtype == torch.float32
    full = GeneralizedDiceTPRLoss()(logits.half().float(), target)
    assert half.item() == pytest.approx(full.item(), rel=1e-6)
