"""The losses of paper 003 (§2.3, eq. 2-6): the Laplacian consistency loss against hand computations, the
lesion head's Dice + CE + Laplacian, and eq. 6 through the head spec."""

import numpy as np
import pytest
import torch
from monai.losses import DiceCELoss

from common.heads import HeadSpec
from common.losses import DiceCELaplacianLoss, LaplacianConsistencyLoss, laplacian
from common.losses.edge_lesion import laplacian_kernel


def numpy_laplacian(a: np.ndarray) -> np.ndarray:
    """The 5-point Laplacian of a 2D array, neighbours outside the array counting as 0, by explicit loops."""
    h, w = a.shape
    out = np.zeros_like(a, dtype=np.float64)
    for i in range(h):
        for j in range(w):
            total = -4.0 * a[i, j]
            for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                if 0 <= i + di < h and 0 <= j + dj < w:
                    total += a[i + di, j + dj]
            out[i, j] = total
    return out


def as_batch(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float32))[None, None]


SQUARE = np.zeros((4, 4))
SQUARE[1:3, 1:3] = 1.0


def test_kernels():
    torch.testing.assert_close(
        laplacian_kernel(2), torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
    )
    k3 = laplacian_kernel(3)
    assert k3[1, 1, 1] == -6 and k3.sum() == 0 and (k3 == 1).sum() == 6
    assert k3[0, 1, 1] == k3[1, 0, 1] == k3[1, 1, 0] == k3[2, 1, 1] == 1 and k3[0, 0, 0] == 0
    with pytest.raises(ValueError, match="2D and 3D"):
        laplacian_kernel(1)


def test_laplacian_of_the_square_by_hand():
    """A 2x2 square in a 4x4 map: -2 on its four pixels (two lesion neighbours each), +1 on the eight pixels
    beside it, 0 on the corners."""
    expected = [[0, 1, 1, 0], [1, -2, -2, 1], [1, -2, -2, 1], [0, 1, 1, 0]]
    torch.testing.assert_close(laplacian(as_batch(SQUARE)), as_batch(expected))


def test_laplacian_matches_loops_with_zero_padding():
    rng = np.random.default_rng(0)
    a = rng.random((2, 3, 5, 4))
    out = laplacian(torch.as_tensor(a))
    for b in range(2):
        for c in range(3):
            np.testing.assert_allclose(out[b, c].numpy(), numpy_laplacian(a[b, c]), atol=1e-12)


def test_laplacian_3d_on_a_point():
    x = torch.zeros(1, 1, 3, 3, 3, dtype=torch.float64)
    x[0, 0, 1, 1, 1] = 1.0
    out = laplacian(x)[0, 0]
    assert out[1, 1, 1] == -6 and out.sum() == 0 and (out == 1).sum() == 6


def test_consistency_loss_hand_computed_cases():
    loss = LaplacianConsistencyLoss(sigmoid=False)
    # p = 0 on the square's target: mean |lap(y)| = (4 * 2 + 8 * 1) / 16 = 1
    assert loss(as_batch(np.zeros((4, 4))), as_batch(SQUARE)).item() == pytest.approx(1.0)
    # constant p = c, empty target: with zero padding each border pixel misses neighbours valued c:
    # corners -2c (4 of them), other border pixels -c (8), inside 0 -> mean (8c + 8c) / 16 = c
    c = 0.3
    assert loss(as_batch(np.full((4, 4), c)), as_batch(np.zeros((4, 4)))).item() == pytest.approx(c)
    # a perfect prediction costs nothing
    assert loss(as_batch(SQUARE), as_batch(SQUARE)).item() == 0.0


def test_consistency_loss_against_numpy_on_a_4x4_case():
    p = np.array(
        [[0.1, 0.2, 0.1, 0.0], [0.3, 0.9, 0.7, 0.1], [0.2, 0.8, 0.6, 0.2], [0.0, 0.1, 0.3, 0.1]],
        dtype=np.float32,
    )
    expected = np.mean(np.abs(numpy_laplacian(p) - numpy_laplacian(SQUARE)))
    loss = LaplacianConsistencyLoss(sigmoid=False)(as_batch(p), as_batch(SQUARE))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # from logits: the sigmoid comes first
    logits = np.log(p.clip(1e-3) / (1 - p.clip(1e-3)))
    p_back = 1 / (1 + np.exp(-logits))
    expected = np.mean(np.abs(numpy_laplacian(p_back) - numpy_laplacian(SQUARE)))
    assert LaplacianConsistencyLoss()(as_batch(logits), as_batch(SQUARE)).item() == pytest.approx(
        expected, rel=1e-5
    )


def test_consistency_loss_on_an_empty_target_and_its_gradient():
    logits = torch.randn(2, 1, 6, 6, generator=torch.Generator().manual_seed(0), requires_grad=True)
    target = torch.zeros(2, 1, 6, 6)
    loss = LaplacianConsistencyLoss()(logits, target)
    expected = laplacian(torch.sigmoid(logits.detach())).abs().mean()  # lap(y) = 0
    torch.testing.assert_close(loss.detach(), expected)
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_consistency_loss_runs_in_float32_under_reduced_precision():
    logits = torch.randn(1, 1, 8, 8).to(torch.bfloat16)
    loss = LaplacianConsistencyLoss()(logits, torch.zeros(1, 1, 8, 8, dtype=torch.bfloat16))
    assert loss.dtype == torch.float32
    with pytest.raises(ValueError, match="differs"):
        LaplacianConsistencyLoss()(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match="expected input"):
        LaplacianConsistencyLoss()(torch.zeros(1, 4, 4), torch.zeros(1, 4, 4))


def test_lesion_loss_is_gamma_dice_ce_plus_delta_laplacian():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 1, 8, 8, generator=generator)
    target = (torch.rand(3, 1, 8, 8, generator=generator) > 0.7).float()
    target[2] = 0.0  # an empty slice
    dice_ce = DiceCELoss(sigmoid=True, batch=True)(logits, target)
    lap = LaplacianConsistencyLoss()(logits, target)
    loss_fn = DiceCELaplacianLoss(mask_weight=2.0, laplacian_weight=10.0)
    torch.testing.assert_close(loss_fn(logits, target), 2.0 * dice_ce + 10.0 * lap)
    assert loss_fn.last_terms == pytest.approx({"mask": dice_ce.item(), "laplacian": lap.item()})
    # δ = 0: Table 2's rows without the consistency loss
    no_lap = DiceCELaplacianLoss(laplacian_weight=0.0)
    torch.testing.assert_close(no_lap(logits, target), dice_ce)
    assert no_lap.last_terms["laplacian"] == 0.0
    # per-item Dice when asked
    per_item = DiceCELaplacianLoss(laplacian_weight=0.0, batch=False)(logits, target)
    torch.testing.assert_close(per_item, DiceCELoss(sigmoid=True)(logits, target))
    with pytest.raises(ValueError, match=">= 0"):
        DiceCELaplacianLoss(laplacian_weight=-1.0)


def test_lesion_loss_on_empty_and_perfect_targets():
    empty = torch.zeros(2, 1, 8, 8)
    # (with MONAI's smoothing 1e-5 the Dice of an empty batch is 0 only when the summed probability is far
    # below 1e-5: sigmoid(-30) = 9e-14 per pixel)
    sure_empty = DiceCELaplacianLoss()(torch.full((2, 1, 8, 8), -30.0), empty)
    assert 0 <= sure_empty.item() < 1e-3
    unsure = DiceCELaplacianLoss()(torch.zeros(2, 1, 8, 8, requires_grad=True), empty)
    assert torch.isfinite(unsure) and unsure.item() > 0.5
    unsure.backward()
    target = torch.zeros(2, 1, 8, 8)
    target[:, :, 2:6, 3:7] = 1.0
    perfect = DiceCELaplacianLoss()(40.0 * (2 * target - 1), target)
    assert perfect.item() < 1e-3


def test_eq6_through_the_head_spec():
    """The head spec's loss is eq. 6: lesion head (weight 1) γ L_mask + δ L_lap, edge head λ L_edge."""
    gamma, lam, delta = 1.0, 0.5, 10.0
    spec = HeadSpec(
        {
            "lesion": {
                "channel_names": ["stroke lesion"],
                "loss": DiceCELaplacianLoss(mask_weight=gamma, laplacian_weight=delta),
            },
            "edge": {
                "channel_names": ["lesion edge"],
                "target": "edge",
                "loss": DiceCELoss(sigmoid=True, batch=True),
                "weight": lam,
                "inference": False,
            },
        }
    )
    assert spec.inference_names == ["lesion"] and spec.targets() == {"lesion": "label", "edge": "edge"}
    generator = torch.Generator().manual_seed(2)
    pred = {name: torch.randn(2, 1, 8, 8, generator=generator) for name in ("lesion", "edge")}
    target = {
        name: (torch.rand(2, 1, 8, 8, generator=generator) > 0.6).float() for name in ("lesion", "edge")
    }
    dice_ce = DiceCELoss(sigmoid=True, batch=True)
    expected = (
        gamma * dice_ce(pred["lesion"], target["lesion"])
        + lam * dice_ce(pred["edge"], target["edge"])
        + delta * LaplacianConsistencyLoss()(pred["lesion"], target["lesion"])
    )
    torch.testing.assert_close(spec.loss()(pred, target), expected)
