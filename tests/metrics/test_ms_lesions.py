"""Tests of common.metrics.ms_lesions against hand-counted lesions and a flood-fill reference."""

from __future__ import annotations

import csv
import itertools
import math
from collections import deque

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from monai.data import MetaTensor, list_data_collate
from monai.handlers import MetricsSaver

from common.metrics import (
    LESION_METRICS,
    MS_LESION_METRICS,
    MSChallengeScoreHandler,
    MSLesionHandler,
    MSLesionMetric,
    lesion_handlers,
    lesion_structure,
    ms_challenge_score,
    ms_lesion_case_metrics,
    ms_lesion_handlers,
    ms_lesion_metric_name,
    ms_lesion_tables_from_csv,
    ms_lesion_tables_from_details,
)

SHAPE = (4, 5, 6)
SPACING = (0.5, 2.0, 3.0)  # 3 mm^3 a voxel
VOXEL_ML = 3.0 / 1000

# Hand-made masks, as lists of voxel coordinates.
#
# R1 = {(0,0,0), (0,0,1)}            one lesion (face neighbours)
# R2 = {(3,3,3), (3,4,4)}            edge neighbours: one lesion with 18- or 26-connectivity, two with 6
# P1 = {(0,0,1), (0,1,1), (1,1,1)}   overlaps R1 in the voxel (0,0,1)
# P2 = {(2,0,4), (3,1,5)}            corner neighbours only: two lesions with 6 or 18, one with 26; no overlap
#
# R = R1 + R2: |R| = 4;  P = P1 + P2: |P| = 5;  |P ∩ R| = 1
#   Dice 2/9, PPV 1/5, TPR 1/4, AVD |5 - 4| / 4 = 1/4, volumes 5 and 4 voxels
#   18-connectivity: lesions of R {R1, R2}, R1 hit           -> LTPR 1/2
#                    lesions of P {P1, P2a, P2b}, 2 false    -> LFPR 2/3
#   26-connectivity: R {R1, R2} -> LTPR 1/2;  P {P1, P2} with P2 false -> LFPR 1/2
#   6-connectivity:  R {R1, R2a, R2b} -> LTPR 1/3;  P {P1, P2a, P2b} -> LFPR 2/3
R1 = [(0, 0, 0), (0, 0, 1)]
R2 = [(3, 3, 3), (3, 4, 4)]
P1 = [(0, 0, 1), (0, 1, 1), (1, 1, 1)]
P2 = [(2, 0, 4), (3, 1, 5)]
EXPECTED_18 = {
    "dice": 2 / 9,
    "ppv": 1 / 5,
    "tpr": 1 / 4,
    "ltpr": 1 / 2,
    "lfpr": 2 / 3,
    "avd": 1 / 4,
    "volume_ml": 5 * VOXEL_ML,
    "ref_volume_ml": 4 * VOXEL_ML,
}
# The metrics outside the MS defaults, same case, 18-connectivity: |P ∪ R| = 5 + 4 - 1 = 8 -> IoU 1/8;
# lesions of P {P1, P2a, P2b}, of R {R1, R2}
EXPECTED_EXTRA_18 = {"iou": 1 / 8, "n_lesions": 3, "ref_n_lesions": 2}


@pytest.fixture(autouse=True)
def _one_thread():
    """Two busy cores: keep torch from oversubscribing them."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def mask(voxels: list[tuple[int, ...]], shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    out = np.zeros(shape, dtype=bool)
    for v in voxels:
        out[v] = True
    return out


def item(
    voxels: list[tuple[int, ...]], spacing: tuple[float, ...] = SPACING, name: str = "case"
) -> MetaTensor:
    """A (1, *SHAPE) float mask with an affine of the given spacing and a file name."""
    affine = torch.diag(torch.tensor([*spacing, 1.0], dtype=torch.float64))
    data = torch.as_tensor(mask(voxels), dtype=torch.float32)[None]
    return MetaTensor(data, affine=affine, meta={"filename_or_obj": name})


def flood_fill_lesions(m: np.ndarray, rank: int) -> list[set[tuple[int, ...]]]:
    """Connected components by breadth-first search; neighbours differ by 1 in at most ``rank`` axes."""
    offsets = [o for o in itertools.product((-1, 0, 1), repeat=m.ndim) if 0 < np.count_nonzero(o) <= rank]
    seen: set[tuple[int, ...]] = set()
    lesions = []
    for start in map(tuple, np.argwhere(m)):
        if start in seen:
            continue
        seen.add(start)
        lesion, queue = {start}, deque([start])
        while queue:
            v = queue.popleft()
            for o in offsets:
                w = tuple(a + b for a, b in zip(v, o))
                if all(0 <= c < s for c, s in zip(w, m.shape)) and m[w] and w not in seen:
                    seen.add(w)
                    lesion.add(w)
                    queue.append(w)
        lesions.append(lesion)
    return lesions


# ------------------------------------------------------------------------------------------ one case by hand


def test_every_metric_of_the_hand_case() -> None:
    values = ms_lesion_case_metrics(mask(P1 + P2), mask(R1 + R2), spacing=SPACING)
    assert list(values) == list(MS_LESION_METRICS)
    for name, expected in EXPECTED_18.items():
        assert values[name] == pytest.approx(expected, rel=1e-12), name
    every = ms_lesion_case_metrics(mask(P1 + P2), mask(R1 + R2), spacing=SPACING, metric_names=LESION_METRICS)
    assert list(every) == list(LESION_METRICS)
    for name, expected in (EXPECTED_18 | EXPECTED_EXTRA_18).items():
        assert every[name] == pytest.approx(expected, rel=1e-12), name


def test_ms_defaults_unchanged_and_the_extra_names() -> None:
    """The MS bundle's columns stay the eight ISBI metrics; IoU and the counts are accepted on top."""
    ms = ("dice", "ppv", "tpr", "ltpr", "lfpr", "avd", "volume_ml", "ref_volume_ml")
    assert MS_LESION_METRICS == ms
    assert LESION_METRICS == (*ms, "iou", "n_lesions", "ref_n_lesions")
    assert list(ms_lesion_handlers()) == list(ms)
    assert list(ms_lesion_case_metrics(mask([]), mask([]))) == list(ms)


@pytest.mark.parametrize(
    ("pred", "ref", "iou"),
    [
        (P1 + P2, R1 + R2, 1 / 8),  # 1 common voxel of 8
        ([(0, 0, 0), (0, 0, 1), (0, 0, 2)], [(0, 0, 1), (0, 0, 2), (0, 0, 3)], 2 / 4),
        ([(1, 1, 1)], [(1, 1, 1)], 1.0),
        ([(1, 1, 1)], [(1, 1, 2)], 0.0),  # disjoint
        ([], [], 1.0),  # both empty: best value
        (P2, [], 0.0),  # one empty: worst value
        ([], R2, 0.0),
    ],
    ids=["hand-case", "2-of-4", "equal", "disjoint", "both-empty", "rater-empty", "prediction-empty"],
)
def test_iou_by_hand(pred: list, ref: list, iou: float) -> None:
    values = ms_lesion_case_metrics(mask(pred), mask(ref), metric_names=("iou", "dice"))
    assert values["iou"] == pytest.approx(iou, rel=1e-12)
    assert values["iou"] == pytest.approx(values["dice"] / (2 - values["dice"]), rel=1e-12)  # per case


@pytest.mark.parametrize(("connectivity", "corner_pair"), [(6, 2), (18, 2), (26, 1)])
def test_lesion_counts_of_two_lesions_touching_at_a_corner(connectivity: int, corner_pair: int) -> None:
    corner = [(1, 1, 1), (2, 2, 2)]  # one common corner, no common face or edge
    names = ("n_lesions", "ref_n_lesions")
    values = ms_lesion_case_metrics(mask(corner), mask([]), connectivity=connectivity, metric_names=names)
    assert values == {"n_lesions": corner_pair, "ref_n_lesions": 0}
    values = ms_lesion_case_metrics(mask([]), mask(corner), connectivity=connectivity, metric_names=names)
    assert values == {"n_lesions": 0, "ref_n_lesions": corner_pair}
    # the hand case: P1 + P2 (P2 a corner pair), R1 + R2 (R2 an edge pair)
    expected = {6: (3, 3), 18: (3, 2), 26: (2, 2)}[connectivity]
    values = ms_lesion_case_metrics(
        mask(P1 + P2), mask(R1 + R2), connectivity=connectivity, metric_names=names
    )
    assert (values["n_lesions"], values["ref_n_lesions"]) == expected


@pytest.mark.parametrize(
    ("connectivity", "ltpr", "lfpr"), [(6, 1 / 3, 2 / 3), (18, 1 / 2, 2 / 3), (26, 1 / 2, 1 / 2)]
)
def test_connectivity_decides_which_diagonal_voxels_form_one_lesion(
    connectivity: int, ltpr: float, lfpr: float
) -> None:
    values = ms_lesion_case_metrics(mask(P1 + P2), mask(R1 + R2), connectivity=connectivity)
    assert values["ltpr"] == pytest.approx(ltpr)
    assert values["lfpr"] == pytest.approx(lfpr)
    assert values["dice"] == pytest.approx(2 / 9)  # voxel metrics do not depend on it
    assert lesion_structure(3, connectivity).sum() == connectivity + 1  # the neighbours and the voxel itself


def test_adjacent_but_disjoint_lesions_do_not_overlap() -> None:
    """Overlap needs a common voxel: a predicted lesion next to the rater's (sharing a face) misses it."""
    values = ms_lesion_case_metrics(mask([(2, 2, 2)]), mask([(2, 2, 3)]), connectivity=26)
    assert (values["ltpr"], values["lfpr"], values["dice"]) == (0.0, 1.0, 0.0)


def test_lesion_counts_match_a_flood_fill_on_random_masks() -> None:
    rng = np.random.default_rng(3)
    for trial in range(6):
        p = rng.random((6, 7, 5)) < 0.15
        r = rng.random((6, 7, 5)) < 0.15
        for connectivity, rank in ((6, 1), (18, 2), (26, 3)):
            p_lesions, r_lesions = flood_fill_lesions(p, rank), flood_fill_lesions(r, rank)
            ltpr = sum(any(p[v] for v in les) for les in r_lesions) / len(r_lesions)
            lfpr = sum(not any(r[v] for v in les) for les in p_lesions) / len(p_lesions)
            names = ("ltpr", "lfpr", "n_lesions", "ref_n_lesions")
            values = ms_lesion_case_metrics(p, r, connectivity=connectivity, metric_names=names)
            expected = {
                "ltpr": ltpr,
                "lfpr": lfpr,
                "n_lesions": len(p_lesions),
                "ref_n_lesions": len(r_lesions),
            }
            assert values == pytest.approx(expected), (trial, connectivity)


def test_two_dimensional_masks() -> None:
    p, r = mask([(0, 0), (1, 1)], (3, 3)), mask([(0, 0)], (3, 3))
    assert ms_lesion_case_metrics(p, r, connectivity=4)["lfpr"] == pytest.approx(1 / 2)
    assert ms_lesion_case_metrics(p, r, connectivity=8)["lfpr"] == 0.0
    assert ms_lesion_case_metrics(p, r, connectivity=4, metric_names=("n_lesions",))["n_lesions"] == 2
    assert ms_lesion_case_metrics(p, r, connectivity=8, metric_names=("n_lesions",))["n_lesions"] == 1
    volume = ms_lesion_case_metrics(p, r, spacing=0.5, connectivity=8)["volume_ml"]
    assert volume == pytest.approx(2 * 0.25 / 1000)  # two pixels of 0.25 mm^2


# ------------------------------------------------------------------------------------------- empty masks


@pytest.mark.parametrize(
    ("pred", "ref", "expected"),
    [
        ([], [], {"dice": 1, "iou": 1, "ppv": 1, "tpr": 1, "ltpr": 1, "lfpr": 0, "avd": 0}),
        (P2, [], {"dice": 0, "iou": 0, "ppv": 0, "tpr": 0, "ltpr": 0, "lfpr": 1, "avd": 1}),
        ([], R2, {"dice": 0, "iou": 0, "ppv": 0, "tpr": 0, "ltpr": 0, "lfpr": 1, "avd": 1}),
    ],
    ids=["both-empty", "rater-empty", "prediction-empty"],
)
def test_empty_mask_conventions(pred: list, ref: list, expected: dict[str, float]) -> None:
    values = ms_lesion_case_metrics(mask(pred), mask(ref), spacing=SPACING, metric_names=LESION_METRICS)
    for name, value in expected.items():
        assert values[name] == value, name
    assert values["volume_ml"] == pytest.approx(len(pred) * VOXEL_ML)
    assert values["ref_volume_ml"] == pytest.approx(len(ref) * VOXEL_ML)
    assert values["n_lesions"] == (2 if pred else 0)  # P2: two lesions under 18-connectivity
    assert values["ref_n_lesions"] == (1 if ref else 0)  # R2: one
    assert all(math.isfinite(v) for v in values.values())
    # the per-case part of the challenge score is its maximum 3/4 when both are empty, 0 when exactly one is
    term = values["dice"] / 8 + values["ppv"] / 8 + (1 - values["lfpr"]) / 4 + values["ltpr"] / 4
    assert term == (0.75 if not pred and not ref else 0.0)


def test_empty_avd_is_a_parameter() -> None:
    assert ms_lesion_case_metrics(mask(P2), mask([]), empty_avd=5.0)["avd"] == 5.0
    assert ms_lesion_case_metrics(mask([]), mask([]), empty_avd=5.0)["avd"] == 0.0


# ------------------------------------------------------------------------------------ metric on batches


def test_metric_on_batches_lists_and_one_hot() -> None:
    pred, ref = item(P1 + P2), item(R1 + R2)
    empty = item([])
    expected_18 = EXPECTED_18 | EXPECTED_EXTRA_18
    for name in LESION_METRICS:
        metric = MSLesionMetric(name)
        batch = list_data_collate([{"p": pred, "r": ref}, {"p": empty, "r": empty}])
        values = metric(batch["p"], batch["r"])  # a collated batch: one affine per item
        assert values.shape == (2, 1)
        both_empty = ms_lesion_case_metrics(mask([]), mask([]), metric_names=(name,))[name]
        np.testing.assert_allclose(values[:, 0].numpy(), [expected_18[name], both_empty], rtol=1e-6)
        metric([pred], [ref])  # a list of channel-first items accumulates alike
        assert metric.get_buffer().shape == (3, 1)
        expected_mean = (2 * expected_18[name] + both_empty) / 3
        assert metric.aggregate().item() == pytest.approx(expected_mean, rel=1e-6)

    one_hot = torch.cat([1 - pred.as_tensor(), pred.as_tensor()])[None]  # (1, 2, ...) background + lesion
    assert MSLesionMetric("lfpr")(one_hot, ref.as_tensor()[None]).item() == pytest.approx(2 / 3)


def test_volume_spacing_sources() -> None:
    pred, ref = item(P1 + P2), item(R1 + R2)
    plain_p, plain_r = pred.as_tensor()[None], ref.as_tensor()[None]
    # the rater mask's affine, else the prediction's, else default_spacing, else 1 mm
    assert MSLesionMetric("volume_ml")(pred[None], ref[None]).item() == pytest.approx(5 * VOXEL_ML)
    assert MSLesionMetric("volume_ml")(pred[None], plain_r).item() == pytest.approx(5 * VOXEL_ML)
    metric = MSLesionMetric("ref_volume_ml", default_spacing=(1.0, 1.0, 0.5))
    assert metric(plain_p, plain_r).item() == pytest.approx(4 * 0.5 / 1000)
    assert MSLesionMetric("ref_volume_ml")(plain_p, plain_r).item() == pytest.approx(4 / 1000)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="metric_name"):
        MSLesionMetric("jaccard")
    with pytest.raises(ValueError, match="connectivity"):
        MSLesionMetric("ltpr", connectivity=10)
    with pytest.raises(ValueError, match="connectivity"):
        lesion_structure(3, 8)
    with pytest.raises(ValueError, match="shape"):
        MSLesionMetric("dice")(torch.zeros(1, 1, 4, 4, 4), torch.zeros(1, 1, 4, 4, 5))
    with pytest.raises(ValueError, match="one-hot"):
        MSLesionMetric("dice")(torch.zeros(1, 3, 4, 4, 4), torch.zeros(1, 3, 4, 4, 4))
    with pytest.raises(ValueError, match="distinct"):
        ms_lesion_handlers(rater_keys=["label", "label"])
    with pytest.raises(ValueError, match="distinct"):
        lesion_handlers(["dice", "iou", "dice"])
    with pytest.raises(ValueError, match="metric_name"):
        lesion_handlers(["dice", "jaccard"])
    with pytest.raises(ValueError, match="unknown"):
        ms_lesion_case_metrics(mask([]), mask([]), metric_names=("jaccard",))


# -------------------------------------------------------------------------------------- challenge score

# Three cases scored against two raters (18-connectivity; v = one voxel's volume):
#
# case  prediction    rater 1            rater 2
# A     P1 + P2       R1 + R2            R1
# B     empty         {(2,2,2)}          empty
# C     {(1,1,1)}     {(1,1,1)}          {(1,1,1), (1,1,2)}
#
# rater 1: A Dice 2/9 PPV 1/5 TPR 1/4 LTPR 1/2 LFPR 2/3 AVD 1/4, volumes 5v / 4v (the hand case above)
#          B Dice 0   PPV 0   TPR 0   LTPR 0   LFPR 1   AVD 1,   volumes 0 / 1v (prediction empty)
#          C Dice 1   PPV 1   TPR 1   LTPR 1   LFPR 0   AVD 0,   volumes 1v / 1v
# rater 2: A |R| 2, |P ∩ R| 1: Dice 2/7 PPV 1/5 TPR 1/2 LTPR 1/1; P1 hits, P2a, P2b do not: LFPR 2/3;
#            AVD |5 - 2| / 2 = 3/2, volumes 5v / 2v
#          B both empty: Dice 1 PPV 1 TPR 1 LTPR 1 LFPR 0 AVD 0, volumes 0 / 0
#          C |R| 2, |P ∩ R| 1: Dice 2/3 PPV 1 TPR 1/2 LTPR 1 LFPR 0 AVD 1/2, volumes 1v / 2v
#
# Corr, rater 1: x = (5, 0, 1), y = (4, 1, 1): dx = (3, -2, -1), dy = (2, -1, -1), r = 9 / sqrt(14 * 6)
# Corr, rater 2: x = (5, 0, 1), y = (2, 0, 2): dy = (2/3, -4/3, 2/3), Σ dx dy = 2 + 8/3 - 2/3 = 4,
#                Σ dy² = 24/9, r = 4 / sqrt(14 * 24/9)
HAND = {
    "label_rater1": {
        "dice": [2 / 9, 0, 1],
        "ppv": [1 / 5, 0, 1],
        "tpr": [1 / 4, 0, 1],
        "ltpr": [1 / 2, 0, 1],
        "lfpr": [2 / 3, 1, 0],
        "avd": [1 / 4, 1, 0],
        "volume_ml": [5 * VOXEL_ML, 0, VOXEL_ML],
        "ref_volume_ml": [4 * VOXEL_ML, VOXEL_ML, VOXEL_ML],
    },
    "label_rater2": {
        "dice": [2 / 7, 1, 2 / 3],
        "ppv": [1 / 5, 1, 1],
        "tpr": [1 / 2, 1, 1 / 2],
        "ltpr": [1, 1, 1],
        "lfpr": [2 / 3, 0, 0],
        "avd": [3 / 2, 0, 1 / 2],
        "volume_ml": [5 * VOXEL_ML, 0, VOXEL_ML],
        "ref_volume_ml": [2 * VOXEL_ML, 0, 2 * VOXEL_ML],
    },
}
CORR = {"label_rater1": 9 / math.sqrt(14 * 6), "label_rater2": 4 / math.sqrt(14 * 24 / 9)}
TERMS = {  # Dice/8 + PPV/8 + (1 - LFPR)/4 + LTPR/4 per case (at most 3/4), by hand from the table above
    "label_rater1": [(2 / 9) / 8 + (1 / 5) / 8 + (1 / 3) / 4 + (1 / 2) / 4, 0.0, 3 / 4],
    "label_rater2": [
        (2 / 7) / 8 + (1 / 5) / 8 + (1 / 3) / 4 + 1 / 4,
        3 / 4,
        (2 / 3) / 8 + 1 / 8 + 1 / 4 + 1 / 4,
    ],
}
SC_RATER = {k: sum(TERMS[k]) / 3 + CORR[k] / 4 for k in TERMS}
SC = (SC_RATER["label_rater1"] + SC_RATER["label_rater2"]) / 2
CASES = {
    "A": (P1 + P2, R1 + R2, R1),
    "B": ([], [(2, 2, 2)], []),
    "C": ([(1, 1, 1)], [(1, 1, 1)], [(1, 1, 1), (1, 1, 2)]),
}


def test_challenge_score_by_hand() -> None:
    result = ms_challenge_score(HAND)
    assert CORR["label_rater1"] == pytest.approx(0.98198, abs=1e-5)  # the hand values themselves
    assert CORR["label_rater2"] == pytest.approx(0.65465, abs=1e-5)
    for rater in HAND:
        assert result.corr[rater] == pytest.approx(CORR[rater], rel=1e-12)
        assert result.per_rater[rater] == pytest.approx(SC_RATER[rater], rel=1e-12)
        assert result.means[rater]["lfpr"] == pytest.approx(sum(HAND[rater]["lfpr"]) / 3)
    assert result.score == pytest.approx(SC, rel=1e-12)
    assert result.normalised is None
    # normalised against an inter-rater score: points * SC / inter-rater SC
    assert ms_challenge_score(HAND, inter_rater_score=0.8).normalised == pytest.approx(90 * SC / 0.8)
    assert ms_challenge_score(HAND, inter_rater_score=SC, points=100).normalised == pytest.approx(100)
    # a perfect method: every term 1, Corr 1
    perfect = {"dice": [1, 1], "ppv": [1, 1], "ltpr": [1, 1], "lfpr": [0, 0]}
    perfect |= {"volume_ml": [1.0, 2.0], "ref_volume_ml": [1.0, 2.0]}
    assert ms_challenge_score({"r": perfect}).score == pytest.approx(1.0)


def test_challenge_score_edge_cases() -> None:
    one_case = {m: v[:1] for m, v in HAND["label_rater1"].items()}
    assert math.isnan(ms_challenge_score({"r": one_case}).score)  # Corr undefined for one case
    with pytest.raises(ValueError, match="lacks"):
        ms_challenge_score({"r": {"dice": [1.0]}})
    with pytest.raises(ValueError, match="same cases"):
        ms_challenge_score({"a": HAND["label_rater1"], "b": one_case})
    with pytest.raises(ValueError, match="numbers of cases"):
        ms_challenge_score({"r": {**HAND["label_rater1"], "ppv": [1.0]}})


# ------------------------------------------------------------------------------------- handlers in an engine


def test_handlers_in_engine_metrics_saver_and_score(tmp_path) -> None:
    items = [
        {
            "pred": item(p, name=f"case_{n}"),
            "label_rater1": item(r1, name=f"case_{n}"),
            "label_rater2": item(r2, name=f"case_{n}"),
        }
        for n, (p, r1, r2) in CASES.items()
    ]
    raters = ["label_rater1", "label_rater2"]
    handlers = ms_lesion_handlers(rater_keys=raters, prefix="val_")
    assert list(handlers)[:2] == ["val_dice_rater1", "val_ppv_rater1"]
    assert len(handlers) == 2 * len(MS_LESION_METRICS)

    engine = Engine(lambda _engine, batch: batch)
    for name, handler in handlers.items():
        handler.attach(engine, name)
    MSChallengeScoreHandler(
        rater_keys=raters, prefix="val_", name="val_score", inter_rater_score=0.75
    ).attach(engine)
    MetricsSaver(
        save_dir=str(tmp_path),
        metrics="*",
        metric_details="*",
        batch_transform=lambda batch: [it["label_rater1"].meta for it in batch],
    ).attach(engine)
    engine.run([items[:2], items[2:]], max_epochs=1)  # lists of item dicts, as after decollating

    metrics = engine.state.metrics
    for rater in raters:
        for metric, values in HAND[rater].items():
            name = ms_lesion_metric_name(metric, rater, "val_")
            assert isinstance(metrics[name], float)
            assert metrics[name] == pytest.approx(sum(values) / 3, rel=1e-6), name
    assert metrics["val_score"] == pytest.approx(SC, rel=1e-9)
    assert metrics["val_score_normalised"] == pytest.approx(90 * SC / 0.75, rel=1e-9)

    tables = ms_lesion_tables_from_details(engine.state.metric_details, raters, "val_")
    np.testing.assert_allclose(tables["label_rater2"]["dice"], HAND["label_rater2"]["dice"], rtol=1e-9)

    with open(tmp_path / "metrics.csv") as f:
        overall = {row[0]: float(row[1]) for row in csv.reader(f)}
    assert overall["val_score"] == pytest.approx(SC, rel=1e-6)
    with open(tmp_path / "val_lfpr_rater1_raw.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["filename", "class0", "mean"]
    assert [r[0] for r in rows[1:]] == ["case_A", "case_B", "case_C"]
    np.testing.assert_allclose([float(r[1]) for r in rows[1:]], HAND["label_rater1"]["lfpr"], atol=1e-4)

    from_csv = ms_lesion_tables_from_csv(tmp_path, raters, "val_")
    assert ms_challenge_score(from_csv).score == pytest.approx(SC, abs=1e-3)  # CSV values carry 4 decimals


def test_single_label_key_names_and_batch_dict_output() -> None:
    handlers = ms_lesion_handlers(["dice", "ltpr"], pred_key="pred_seg", rater_keys=["label", "consensus"])
    assert list(handlers) == ["dice", "ltpr", "dice_consensus", "ltpr_consensus"]
    pred, ref = item(P1 + P2), item(R1 + R2)
    batch = list_data_collate([{"pred_seg": pred, "label": ref, "consensus": pred}])
    engine = Engine(lambda _engine, b: b)  # a batch dict, as a non-decollating evaluator gives
    for name, handler in handlers.items():
        handler.attach(engine, name)
    engine.run([batch], max_epochs=1)
    assert engine.state.metrics["dice"] == pytest.approx(2 / 9)
    assert engine.state.metrics["ltpr"] == pytest.approx(1 / 2)
    assert engine.state.metrics["dice_consensus"] == pytest.approx(1.0)
    assert isinstance(handlers["dice"], MSLesionHandler)


# One reference, no raters (stroke), 26-connectivity by default; case D has both masks empty:
#
# case  prediction  reference   Dice  IoU  n_lesions  ref_n_lesions  LTPR  LFPR
# A     P1 + P2     R1 + R2     2/9   1/8  2          2              1/2   1/2   (P2 one lesion under 26)
# B     empty       {(2,2,2)}   0     0    0          1              0     1
# C     {(1,1,1)}   {(1,1,1)}   1     1    1          1              1     0
# D     empty       empty       1     1    0          0              1     0
STROKE_CASES = {
    "A": (P1 + P2, R1 + R2),
    "B": ([], [(2, 2, 2)]),
    "C": ([(1, 1, 1)], [(1, 1, 1)]),
    "D": ([], []),
}
STROKE_HAND = {
    "dice": [2 / 9, 0, 1, 1],
    "iou": [1 / 8, 0, 1, 1],
    "n_lesions": [2, 0, 1, 0],
    "ref_n_lesions": [2, 1, 1, 0],
    "ltpr": [1 / 2, 0, 1, 1],
    "lfpr": [1 / 2, 1, 0, 0],
}


def test_lesion_handlers_names_and_engine(tmp_path) -> None:
    items = [
        {"pred_seg": item(p, name=f"case_{n}"), "seg": item(r, name=f"case_{n}")}
        for n, (p, r) in STROKE_CASES.items()
    ]
    handlers = lesion_handlers(list(STROKE_HAND), label_key="seg", pred_key="pred_seg", prefix="val_")
    assert list(handlers) == [f"val_{m}" for m in STROKE_HAND]  # no rater suffix, whatever the label key
    assert all(isinstance(h, MSLesionHandler) for h in handlers.values())
    assert list(lesion_handlers(["dice", "iou"])) == ["dice", "iou"]

    engine = Engine(lambda _engine, batch: batch)
    for name, handler in handlers.items():
        handler.attach(engine, name)
    MetricsSaver(
        save_dir=str(tmp_path),
        metrics="*",
        metric_details="*",
        batch_transform=lambda batch: [it["seg"].meta for it in batch],
    ).attach(engine)
    engine.run([items[:2], items[2:]], max_epochs=1)  # lists of item dicts, as after decollating

    for metric, values in STROKE_HAND.items():
        name = f"val_{metric}"
        assert isinstance(engine.state.metrics[name], float)
        assert engine.state.metrics[name] == pytest.approx(sum(values) / 4, rel=1e-6), name
        np.testing.assert_allclose(engine.state.metric_details[name].reshape(-1), values, rtol=1e-6)
    with open(tmp_path / "val_iou_raw.csv") as f:
        rows = list(csv.reader(f))
    assert [r[0] for r in rows[1:]] == ["case_A", "case_B", "case_C", "case_D"]
    np.testing.assert_allclose([float(r[1]) for r in rows[1:]], STROKE_HAND["iou"], atol=1e-4)

    # 26-connectivity is the default here; with 18 the corner pair P2 of case A counts as two lesions
    handlers18 = lesion_handlers(["n_lesions"], label_key="seg", pred_key="pred_seg", connectivity=18)
    engine = Engine(lambda _engine, batch: batch)
    handlers18["n_lesions"].attach(engine, "n_lesions")
    engine.run([items], max_epochs=1)
    assert engine.state.metrics["n_lesions"] == pytest.approx((3 + 0 + 1 + 0) / 4)
