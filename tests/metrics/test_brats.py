"""Tests of common.metrics.brats against hand counts and a brute-force surface-distance reference."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from monai.data import MetaTensor, list_data_collate
from monai.handlers import MetricsSaver
from scipy.ndimage import binary_erosion
from scipy.spatial.distance import cdist

from common.metrics import (
    BRATS_EMPTY_HD95,
    BraTSRegionHandler,
    BraTSRegionMetric,
    brats_region_masks,
)

SHAPE = (2, 3, 4)  # 24 voxels; the hand cases below list them in C order
SPACING = (0.8, 1.3, 2.5)

# Hand-made cases (canonical labels of the first voxels, the rest background):
#
# A  truth [3, 3, 1, 1, 2, 2, 2, 2]           pred [3, 1, 1, 0, 2, 2, 3, 0, 2]
#    WT: G {0..7}, P {0,1,2,4,5,6,8}  TP 6 FP 1 FN 2 TN 15 -> Dice 12/15, sens 6/8, spec 15/16
#    TC: G {0,1,2,3}, P {0,1,2,6}     TP 3 FP 1 FN 1 TN 19 -> Dice 6/8,   sens 3/4, spec 19/20
#    ET: G {0,1}, P {0,6}             TP 1 FP 1 FN 1 TN 21 -> Dice 2/4,   sens 1/2, spec 21/22
# B  truth [2, 2]                              pred [2, 3]
#    WT: equal                                              -> Dice 1, sens 1, spec 1, HD95 0
#    TC, ET: G empty, P {1}            TP 0 FP 1 FN 0 TN 23 -> Dice 0, sens 0, spec 23/24, HD95 373.13
# C  truth all background                      pred all background
#    all regions both empty                                 -> Dice 1, sens 1, spec 1, HD95 0
# D  truth [1]                                 pred all background
#    WT, TC: P empty, G {0}            TP 0 FP 0 FN 1 TN 23 -> Dice 0, sens 0, spec 1, HD95 373.13
#    ET: both empty                                         -> Dice 1, sens 1, spec 1, HD95 0
CASES = {
    "A": ([3, 3, 1, 1, 2, 2, 2, 2], [3, 1, 1, 0, 2, 2, 3, 0, 2]),
    "B": ([2, 2], [2, 3]),
    "C": ([], []),
    "D": ([1], []),
}
EXPECTED = {  # metric -> case -> [WT, TC, ET]
    "dice": {"A": [12 / 15, 6 / 8, 2 / 4], "B": [1, 0, 0], "C": [1, 1, 1], "D": [0, 0, 1]},
    "sensitivity": {"A": [6 / 8, 3 / 4, 1 / 2], "B": [1, 0, 0], "C": [1, 1, 1], "D": [0, 0, 1]},
    "specificity": {
        "A": [15 / 16, 19 / 20, 21 / 22],
        "B": [1, 23 / 24, 23 / 24],
        "C": [1, 1, 1],
        "D": [1, 1, 1],
    },
    "hd95": {"B": [0, BRATS_EMPTY_HD95, BRATS_EMPTY_HD95], "C": [0, 0, 0], "D": [BRATS_EMPTY_HD95] * 2 + [0]},
}


@pytest.fixture(autouse=True)
def _one_thread():
    """Two busy cores: keep torch from oversubscribing them."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def volume(first: list[int]) -> torch.Tensor:
    """A (1, *SHAPE) label item whose first voxels (C order) are ``first``, the rest 0."""
    flat = torch.zeros(math.prod(SHAPE), dtype=torch.long)
    flat[: len(first)] = torch.as_tensor(first, dtype=torch.long)
    return flat.reshape(1, *SHAPE)


def meta(x: torch.Tensor, spacing: tuple[float, ...], name: str = "case") -> MetaTensor:
    """A channel-first item with an affine of the given spacing and a file name."""
    affine = torch.diag(torch.tensor([*spacing, 1.0], dtype=torch.float64))
    return MetaTensor(x, affine=affine, meta={"filename_or_obj": name})


def batch(names: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 1, *SHAPE) predictions and ground truths of the named hand cases."""
    preds = torch.stack([volume(CASES[n][1]) for n in names])
    truths = torch.stack([volume(CASES[n][0]) for n in names])
    return preds, truths


def reference_hd95(pred: np.ndarray, truth: np.ndarray, spacing: tuple[float, ...]) -> float:
    """Brute force: boundary voxels (mask minus its erosion) in mm, all pairwise distances, linear P95."""
    points = []
    for mask in (pred, truth):
        boundary = mask & ~binary_erosion(mask, border_value=0)
        points.append(np.argwhere(boundary) * np.asarray(spacing))
    d = cdist(points[0], points[1])
    return float(max(np.percentile(d.min(axis=1), 95), np.percentile(d.min(axis=0), 95)))


def random_labels(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    """Nested boxes: oedema around a core of NCR and enhancing tumour (each region non-empty)."""
    labels = np.zeros(shape, dtype=np.int64)
    lo = rng.integers(0, 3, 3)
    hi = lo + rng.integers(6, 9, 3)
    labels[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = 2
    c = lo + rng.integers(1, 3, 3)
    labels[c[0] : c[0] + 4, c[1] : c[1] + 3, c[2] : c[2] + 4] = 1
    labels[c[0] : c[0] + 2, c[1] : c[1] + 3, c[2] + 1 : c[2] + 3] = 3
    labels[rng.integers(0, shape[0]), rng.integers(0, shape[1]), shape[2] - 1] = 3  # a stray ET voxel
    return labels


# ------------------------------------------------------------------------------------------ region masks


@pytest.mark.parametrize(
    ("label", "regions"), [(0, [0, 0, 0]), (1, [1, 1, 0]), (2, [1, 0, 0]), (3, [1, 1, 1])]
)
def test_region_masks_of_each_label(label: int, regions: list[int]) -> None:
    labels = torch.full((2, 1, 2, 2, 2), label)
    masks = brats_region_masks(labels)
    assert masks.dtype == torch.bool and masks.shape == (2, 3, 2, 2, 2)
    for channel, expected in enumerate(regions):
        assert bool(masks[:, channel].all()) == bool(expected)
        assert bool(masks[:, channel].any()) == bool(expected)
    item = brats_region_masks(labels[0].float())  # a channel-first item; float labels work too
    assert item.shape == (3, 2, 2, 2)
    assert torch.equal(item, masks[0])


def test_region_masks_keep_meta_match_data_module_and_reject_raw_codes() -> None:
    labels = volume([0, 1, 2, 3, 3, 2])
    item = meta(labels.float(), SPACING)
    masks = brats_region_masks(item)
    assert isinstance(masks, MetaTensor)
    np.testing.assert_allclose(masks.pixdim, SPACING)
    assert masks.meta["filename_or_obj"] == "case"

    data = pytest.importorskip("common.data")
    if hasattr(data, "brats_regions"):
        reference = data.brats_regions(labels.numpy()[0])
        for channel, key in enumerate(("wt", "tc", "et")):
            np.testing.assert_array_equal(masks[channel].numpy(), np.asarray(reference[key], dtype=bool))

    with pytest.raises(ValueError, match="MapBraTSLabelsd"):
        brats_region_masks(volume([4])[None])  # BraTS 2020 ET code, not canonical
    with pytest.raises(ValueError):
        brats_region_masks(torch.zeros(2, 3, 4, 4))  # no size-1 label axis


# ---------------------------------------------------------------------------- Dice, sensitivity, specificity


@pytest.mark.parametrize("name", ["dice", "sensitivity", "specificity"])
def test_counting_metrics_by_hand(name: str) -> None:
    names = "ABCD"
    metric = BraTSRegionMetric(name)
    values = metric(*batch(names))
    expected = np.array([EXPECTED[name][n] for n in names])
    assert values.shape == (4, 3)
    np.testing.assert_allclose(values.numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(metric.aggregate().numpy(), expected.mean(axis=0), rtol=1e-6)

    for column, region in enumerate(("wt", "tc", "et")):
        single = BraTSRegionMetric(name, region=region)
        preds, truths = batch(names)
        single(list(preds[:2]), list(truths[:2]))  # lists of (1, X, Y, Z) items ...
        single(preds[2:], truths[2:])  # ... and a batch accumulate alike
        assert single.get_buffer().shape == (4, 1)
        assert single.aggregate().ndim == 0
        assert single.aggregate().item() == pytest.approx(expected[:, column].mean(), rel=1e-6)


def test_counting_metrics_match_numpy_masks_on_random_labels() -> None:
    rng = np.random.default_rng(5)
    preds, truths = rng.integers(0, 4, (3, 1, 6, 5, 4)), rng.integers(0, 4, (3, 1, 6, 5, 4))
    truths[2] = 0  # a case without tumour
    regions = [(1, 2, 3), (1, 3), (3,)]
    for name in ("dice", "sensitivity", "specificity"):
        values = BraTSRegionMetric(name)(torch.as_tensor(preds).float(), torch.as_tensor(truths))
        for b, r in np.ndindex(3, 3):
            p, t = np.isin(preds[b], regions[r]), np.isin(truths[b], regions[r])
            tp, fp, fn, tn = (p & t).sum(), (p & ~t).sum(), (~p & t).sum(), (~p & ~t).sum()
            if name == "dice":
                expected = 2 * tp / (2 * tp + fp + fn)
            elif name == "sensitivity":
                expected = tp / (tp + fn) if t.any() else float(not p.any())
            else:
                expected = tn / (tn + fp)
            assert values[b, r].item() == pytest.approx(expected, rel=1e-6), (name, b, r)


def test_empty_conventions() -> None:
    for name in ("dice", "sensitivity", "specificity", "hd95"):
        values = BraTSRegionMetric(name)(*batch("BCD"))
        np.testing.assert_allclose(values.numpy(), [EXPECTED[name][n] for n in "BCD"], rtol=1e-6)
    # both empty: Dice 1, HD95 0; exactly one empty (either way round): Dice 0, HD95 373.13
    empty, full = torch.zeros(1, 1, *SHAPE), torch.full((1, 1, *SHAPE), 3)
    for pred, truth, dice, hd in ((empty, empty, 1, 0), (full, empty, 0, 373.13), (empty, full, 0, 373.13)):
        assert BraTSRegionMetric("dice", region="et")(pred, truth).item() == dice
        assert BraTSRegionMetric("hd95", region="et")(pred, truth).item() == pytest.approx(hd)
    # ground truth filling the volume (0/0 specificity): 1 when the prediction fills it too, else 0
    assert BraTSRegionMetric("specificity", region="wt")(full, full).item() == 1
    assert BraTSRegionMetric("specificity", region="wt")(empty, full).item() == 0


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="metric_name"):
        BraTSRegionMetric("iou")
    with pytest.raises(ValueError, match="region"):
        BraTSRegionMetric("dice", region="ed")
    with pytest.raises(ValueError, match="same shape"):
        BraTSRegionMetric("dice")(torch.zeros(1, 1, 4, 4, 4), torch.zeros(1, 1, 4, 4, 5))


# ------------------------------------------------------------------------------------------------- HD95


def test_hd95_matches_brute_force_with_anisotropic_spacing() -> None:
    rng = np.random.default_rng(7)
    shape = (14, 12, 11)
    other = (1.0, 0.6, 3.0)
    preds, truths, expected = [], [], []
    for spacing in (SPACING, other):
        p, t = random_labels(rng, shape), random_labels(rng, shape)
        preds.append(torch.as_tensor(p)[None])
        truths.append(meta(torch.as_tensor(t)[None], spacing))
        truth_masks, pred_masks = [t > 0, np.isin(t, (1, 3)), t == 3], [p > 0, np.isin(p, (1, 3)), p == 3]
        expected.append([reference_hd95(pm, tm, spacing) for pm, tm in zip(pred_masks, truth_masks)])
    expected = np.array(expected)
    assert (expected > 0).all()

    # a list of items, each with its own affine
    listed = BraTSRegionMetric("hd95")(preds, truths)
    np.testing.assert_allclose(listed.numpy(), expected, rtol=1e-5)
    # a collated batch keeps one affine per item
    collated = list_data_collate([{"p": p, "t": t} for p, t in zip(preds, truths)])
    batched = BraTSRegionMetric("hd95")(collated["p"], collated["t"])
    np.testing.assert_allclose(batched.numpy(), expected, rtol=1e-5)
    # plain tensors use default_spacing
    plain = BraTSRegionMetric("hd95", region="tc", default_spacing=SPACING)(
        preds[0][None], truths[0].as_tensor()[None]
    )
    assert plain.item() == pytest.approx(expected[0, 1], rel=1e-5)


# ------------------------------------------------------------------------------------- handler and saver


def test_handler_in_engine_and_metrics_saver_rows(tmp_path) -> None:
    names = "ABCD"
    items = [
        {
            "pred_label": meta(volume(CASES[n][1]).float(), SPACING, f"case_{n}"),
            "label": meta(volume(CASES[n][0]), SPACING, f"case_{n}"),
        }
        for n in names
    ]
    batches = [items[:3], items[3:]]  # lists of item dicts, as after decollating

    engine = Engine(lambda _engine, batch: batch)
    BraTSRegionHandler("dice", region="wt").attach(engine, "dice_wt")
    BraTSRegionHandler("sensitivity", region="et").attach(engine, "sensitivity_et")
    BraTSRegionHandler("dice").attach(engine, "dice_mean")
    MetricsSaver(
        save_dir=str(tmp_path),
        metric_details="*",
        batch_transform=lambda batch: [item["label"].meta for item in batch],
    ).attach(engine)
    engine.run(batches, max_epochs=1)

    dice = np.array([EXPECTED["dice"][n] for n in names])
    sensitivity = np.array([EXPECTED["sensitivity"][n] for n in names])
    metrics = engine.state.metrics
    assert isinstance(metrics["dice_wt"], float) and isinstance(metrics["dice_mean"], float)
    assert metrics["dice_wt"] == pytest.approx(dice[:, 0].mean())
    assert metrics["sensitivity_et"] == pytest.approx(sensitivity[:, 2].mean())
    assert metrics["dice_mean"] == pytest.approx(dice.mean())

    with open(tmp_path / "metrics.csv") as f:
        overall = {row[0]: float(row[1]) for row in csv.reader(f)}
    assert overall["dice_wt"] == pytest.approx(dice[:, 0].mean())

    with open(tmp_path / "dice_wt_raw.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["filename", "class0", "mean"]
    assert [r[0] for r in rows[1:]] == [f"case_{n}" for n in names]
    np.testing.assert_allclose([float(r[1]) for r in rows[1:]], dice[:, 0], atol=1e-4)

    with open(tmp_path / "dice_mean_raw.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["filename", "class0", "class1", "class2", "mean"]  # WT, TC, ET
    np.testing.assert_allclose([[float(v) for v in r[1:4]] for r in rows[1:]], dice, atol=1e-4)
