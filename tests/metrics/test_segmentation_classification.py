"""Tests of common.metrics against hand counts and independent numpy / scipy references."""

from __future__ import annotations

import csv
import math
import warnings

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from monai.data import MetaTensor, list_data_collate
from monai.handlers import MeanIoUHandler, MetricsSaver, from_engine
from monai.metrics import ConfusionMatrixMetric
from scipy.ndimage import binary_erosion
from scipy.spatial.distance import cdist

from common.metrics import (
    ClassificationReport,
    ClassificationReportMetric,
    ConfusionMatrixSaver,
    HausdorffDistance95mm,
    HausdorffDistance95mmMetric,
    MeanPixelAccuracy,
    MeanPixelAccuracyMetric,
    ROCAUCForClass,
    classification_report,
    mean_iou_metric,
)

SPACING = (0.49, 0.7)


def one_hot(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """(B, *spatial) or (N,) integer labels -> one-hot float tensor with the class axis at 1."""
    t = torch.as_tensor(labels, dtype=torch.long)
    return torch.nn.functional.one_hot(t, num_classes).movedim(-1, 1).float()


def meta(x: torch.Tensor, spacing: tuple[float, ...]) -> MetaTensor:
    """A channel-first item carrying an affine with the given pixel spacing."""
    return MetaTensor(x, affine=torch.diag(torch.tensor([*spacing, 1.0], dtype=torch.float64)))


# ------------------------------------------------------------------------------------------ MPA and MIoU


def crafted_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """Two 4x4 images (B, 2, 4, 4): image 0 as in the comments below, image 1 all background in both."""
    truth = np.zeros((2, 4, 4), dtype=int)
    pred = np.zeros((2, 4, 4), dtype=int)
    truth[0, 0:2, 0:2] = 1  # 4 tumour pixels, 12 background
    pred[0, 0, 0] = pred[0, 0, 1] = pred[0, 1, 0] = 1  # 3 of them found ...
    pred[0, 3, 3] = 1  # ... and one false positive
    return one_hot(pred, 2), one_hot(truth, 2)


def test_mpa_and_miou_by_hand() -> None:
    pred, truth = crafted_pair()
    # image 0: tumour 3/4 correct; background 11/12 correct (one background pixel called tumour)
    mpa0 = (3 / 4 + 11 / 12) / 2
    # IoU tumour = 3 / (4 + 4 - 3); background = 11 / (12 + 12 - 11)
    miou0 = (3 / 5 + 11 / 13) / 2
    # image 1: no tumour in the ground truth -> tumour term skipped; background 16/16
    mpa = MeanPixelAccuracyMetric()
    per_image = mpa(pred, truth)
    assert per_image[0].tolist() == pytest.approx([11 / 12, 3 / 4])
    assert per_image[1, 0].item() == 1.0 and math.isnan(per_image[1, 1].item())
    assert mpa.aggregate().item() == pytest.approx((mpa0 + 1.0) / 2)
    assert mpa.aggregate("mean_batch").tolist() == pytest.approx([(11 / 12 + 1) / 2, 3 / 4])

    miou = mean_iou_metric()
    miou(pred, truth)
    assert miou.aggregate().item() == pytest.approx((miou0 + 1.0) / 2)
    assert miou.aggregate("none")[0].tolist() == pytest.approx([11 / 13, 3 / 5])


def numpy_mpa_miou(pred: np.ndarray, truth: np.ndarray, num_classes: int) -> tuple[float, float]:
    """Eq. 18 and 19 from a per-image confusion matrix p_ij (true i, predicted j), skipping absent classes."""
    mpas, mious = [], []
    for p, t in zip(pred, truth):
        cm = np.zeros((num_classes, num_classes))
        np.add.at(cm, (t.ravel(), p.ravel()), 1)
        present = cm.sum(axis=1) > 0
        diag = np.diag(cm)
        mpas.append(np.mean(diag[present] / cm.sum(axis=1)[present]))
        union = cm.sum(axis=1) + cm.sum(axis=0) - diag
        mious.append(np.mean(diag[present] / union[present]))
    return float(np.mean(mpas)), float(np.mean(mious))


@pytest.mark.parametrize("shape,num_classes", [((5, 12, 10), 2), ((3, 6, 7, 5), 3)])
def test_mpa_and_miou_match_numpy_on_random_masks(shape: tuple[int, ...], num_classes: int) -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, num_classes, size=shape)
    truth[0] = 0  # one image with a single class: the other terms must be skipped
    pred = np.where(rng.random(shape) < 0.7, truth, rng.integers(0, num_classes, size=shape))
    mpa_ref, miou_ref = numpy_mpa_miou(pred, truth, num_classes)

    mpa, miou = MeanPixelAccuracyMetric(), mean_iou_metric()
    # as a list of channel-first items, as MONAI's decollation gives them
    mpa(list(one_hot(pred, num_classes)), list(one_hot(truth, num_classes)))
    miou(list(one_hot(pred, num_classes)), list(one_hot(truth, num_classes)))
    assert mpa.aggregate().item() == pytest.approx(mpa_ref, rel=1e-6)
    assert miou.aggregate().item() == pytest.approx(miou_ref, rel=1e-6)


# ------------------------------------------------------------------------------------------ HD95


def reference_hd95(pred: np.ndarray, truth: np.ndarray, spacing: tuple[float, ...]) -> float:
    """Eq. 17 on boundary pixels (mask minus its erosion), brute-force distances in mm, linear percentile."""
    edges = [m ^ binary_erosion(m, border_value=0) for m in (pred.astype(bool), truth.astype(bool))]
    points = [np.argwhere(e) * np.asarray(spacing) for e in edges]
    d = cdist(points[0], points[1])
    return max(np.percentile(d.min(axis=1), 95), np.percentile(d.min(axis=0), 95))


def blob_masks(rng: np.random.Generator, size: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """A prediction and a ground truth made of a few random rectangles, both non-empty."""

    def mask() -> np.ndarray:
        m = np.zeros((size, size), dtype=int)
        for _ in range(rng.integers(1, 4)):
            r, c = rng.integers(0, size - 4, 2)
            h, w = rng.integers(2, 10, 2)
            m[r : r + h, c : c + w] = 1
        return m

    return mask(), mask()


def test_hd95_mm_matches_scipy_reference_and_reads_meta() -> None:
    rng = np.random.default_rng(1)
    for _ in range(3):
        p, t = blob_masks(rng)
        expected = reference_hd95(p, t, SPACING)
        pred, truth = one_hot(p[None], 2)[0], one_hot(t[None], 2)[0]

        in_mm = HausdorffDistance95mmMetric()([pred], [meta(truth, SPACING)])
        in_pixels = HausdorffDistance95mmMetric()([pred], [truth])
        by_default = HausdorffDistance95mmMetric(default_spacing=SPACING)([pred], [truth])
        assert in_mm.shape == (1, 1)
        assert in_mm.item() == pytest.approx(expected, rel=1e-5)
        assert by_default.item() == pytest.approx(expected, rel=1e-5)
        assert in_pixels.item() == pytest.approx(reference_hd95(p, t, (1.0, 1.0)), rel=1e-5)
        assert abs(in_mm.item() - in_pixels.item()) > 1e-3
        # a 2D slice carrying a 3D (4x4) affine: only the in-plane spacing is used
        from_3d_affine = HausdorffDistance95mmMetric()([pred], [meta(truth, (*SPACING, 5.0))])
        assert from_3d_affine.item() == pytest.approx(expected, rel=1e-5)


def test_hd95_uses_per_item_spacing_of_a_collated_batch() -> None:
    rng = np.random.default_rng(2)
    spacings = [SPACING, (2.0, 3.0)]
    masks = [blob_masks(rng) for _ in spacings]
    pred = torch.stack([one_hot(p[None], 2)[0] for p, _ in masks])
    truth = list_data_collate([meta(one_hot(t[None], 2)[0], s) for (_, t), s in zip(masks, spacings)])
    assert isinstance(truth, MetaTensor) and truth.is_batch
    metric = HausdorffDistance95mmMetric(reduction="none")
    metric(pred, truth)
    expected = [reference_hd95(p, t, s) for (p, t), s in zip(masks, spacings)]
    assert metric.aggregate()[:, 0].tolist() == pytest.approx(expected, rel=1e-5)


def test_hd95_empty_mask_conventions() -> None:
    empty = one_hot(np.zeros((1, 8, 8), dtype=int), 2)
    full = np.zeros((1, 8, 8), dtype=int)
    full[0, 2:5, 2:5] = 1
    tumour = one_hot(full, 2)
    pred = torch.cat([empty, tumour, empty, tumour])
    truth = torch.cat([empty, empty, tumour, tumour])
    with warnings.catch_warnings():
        # the empty cases are handled before MONAI could warn about them
        warnings.filterwarnings("error", message=".*is all 0.*")
        default = HausdorffDistance95mmMetric(reduction="none")(pred, truth)[:, 0]
        brats = HausdorffDistance95mmMetric(empty_value=373.13)(pred, truth)[:, 0]
    assert default[0].item() == 0.0 and default[3].item() == 0.0
    assert math.isnan(default[1].item()) and math.isnan(default[2].item())
    assert brats.tolist() == pytest.approx([0.0, 373.13, 373.13, 0.0])

    metric = HausdorffDistance95mmMetric()
    metric(pred, truth)
    assert metric.aggregate().item() == 0.0  # the two nan cases are left out of the mean


def test_segmentation_handlers_in_an_ignite_engine() -> None:
    """List-of-dict outputs as after decollation: the labels are MetaTensors, the predictions plain."""
    rng = np.random.default_rng(3)
    batches = []
    for _ in range(2):
        items = []
        for _ in range(2):
            p, t = blob_masks(rng)
            items.append(
                {"pred_seg": one_hot(p[None], 2)[0], "label_seg": meta(one_hot(t[None], 2)[0], SPACING)}
            )
        batches.append(items)
    flat = [item for batch in batches for item in batch]
    hd_ref = np.mean(
        [reference_hd95(i["pred_seg"][1].numpy(), i["label_seg"][1].numpy(), SPACING) for i in flat]
    )
    labels = [i["label_seg"].argmax(0).numpy() for i in flat]
    mpa_ref, miou_ref = numpy_mpa_miou(
        np.stack([i["pred_seg"].argmax(0).numpy() for i in flat]), np.stack(labels), 2
    )

    engine = Engine(lambda _engine, batch: batch)
    transform = from_engine(["pred_seg", "label_seg"])
    HausdorffDistance95mm(output_transform=transform).attach(engine, "hd95")
    MeanPixelAccuracy(output_transform=transform).attach(engine, "mpa")
    MeanIoUHandler(include_background=True, output_transform=transform).attach(engine, "miou")
    engine.run(batches, max_epochs=1)

    assert engine.state.metrics["hd95"] == pytest.approx(hd_ref, rel=1e-5)
    assert engine.state.metrics["mpa"] == pytest.approx(mpa_ref, rel=1e-6)
    assert engine.state.metrics["miou"] == pytest.approx(miou_ref, rel=1e-6)
    assert tuple(engine.state.metric_details["hd95"].shape) == (4, 1)
    assert tuple(engine.state.metric_details["mpa"].shape) == (4, 2)


# ------------------------------------------------------------------------------------------ classification

# Hand-made example, rows = true class, columns = predicted class:
#            pred 0  pred 1  pred 2
#   true 0      3       1       0      (4 samples)
#   true 1      0       1       2      (3 samples)
#   true 2      1       0       2      (3 samples)
# column sums 4, 2, 4
TRUE = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
PRED = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 0])
CM = np.array([[3, 1, 0], [0, 1, 2], [1, 0, 2]])
PRECISION = [3 / 4, 1 / 2, 2 / 4]
RECALL = [3 / 4, 1 / 3, 2 / 3]
PRE_AVE, REC_AVE = 7 / 12, 7 / 12
F1_EQ23 = 2 * PRE_AVE * REC_AVE / (PRE_AVE + REC_AVE)  # = 7/12
F1_PER_CLASS_MEAN = (3 / 4 + 2 / 5 + 4 / 7) / 3  # per-class F1s 3/4, 2/5, 4/7 -> 241/420


def probabilities(labels: np.ndarray, seed: int = 0) -> torch.Tensor:
    """Random softmax-like scores whose argmax is ``labels``."""
    scores = torch.rand(len(labels), 3, generator=torch.Generator().manual_seed(seed))
    scores[torch.arange(len(labels)), torch.as_tensor(labels)] += 1.0
    return scores / scores.sum(dim=1, keepdim=True)


def test_classification_report_by_hand() -> None:
    report = classification_report(probabilities(PRED), one_hot(TRUE, 3), num_classes=3)
    assert report["confusion_matrix"].dtype == np.int64
    np.testing.assert_array_equal(report["confusion_matrix"], CM)
    assert report["accuracy"] == pytest.approx(6 / 10)
    np.testing.assert_allclose(report["precision_per_class"], PRECISION)
    np.testing.assert_allclose(report["recall_per_class"], RECALL)
    assert report["precision"] == pytest.approx(PRE_AVE)
    assert report["recall"] == pytest.approx(REC_AVE)
    assert report["f1"] == pytest.approx(F1_EQ23)
    assert abs(report["f1"] - F1_PER_CLASS_MEAN) > 5e-3  # eq. 23 is not the mean of per-class F1
    assert classification_report(PRED, TRUE, 3)["f1"] == report["f1"]  # labels work as well


def test_classification_report_never_predicted_class_and_monai_agreement() -> None:
    # true [0, 1, 2, 2], predicted [0, 1, 1, 1]: class 2 never predicted -> precision 0
    report = classification_report(np.array([0, 1, 1, 1]), np.array([0, 1, 2, 2]), 3)
    np.testing.assert_allclose(report["precision_per_class"], [1, 1 / 3, 0])
    np.testing.assert_allclose(report["recall_per_class"], [1, 1, 0])
    assert report["f1"] == pytest.approx(2 * (4 / 9) * (2 / 3) / (4 / 9 + 2 / 3))  # = 8/15

    # per-class values agree with MONAI's one-vs-rest ConfusionMatrixMetric on the hand example
    for name, expected in (("precision", PRECISION), ("recall", RECALL)):
        cmm = ConfusionMatrixMetric(metric_name=name, reduction="sum_batch")
        cmm(one_hot(PRED, 3), one_hot(TRUE, 3))
        np.testing.assert_allclose(cmm.aggregate()[0].numpy(), expected, rtol=1e-6)


def test_classification_report_metric_accumulates_over_iterations() -> None:
    probs, truth = probabilities(PRED), one_hot(TRUE, 3)
    expected = {"accuracy": 0.6, "precision": PRE_AVE, "recall": REC_AVE, "f1": F1_EQ23}
    for name, value in expected.items():
        metric = ClassificationReportMetric(name, num_classes=3)
        for part in np.array_split(np.arange(len(TRUE)), 3):  # batch-first tensors
            metric(probs[part], truth[part])
        assert metric.aggregate() == pytest.approx(value)
        metric.reset()
        metric(list(probs), list(truth))  # decollated list
        assert metric.aggregate() == pytest.approx(value)


def test_classification_handlers_auc_and_metrics_saver(tmp_path) -> None:
    # class-1 scores: positives 0.9, 0.4, 0.6; negatives 0.5, 0.2, 0.6.
    # Mann-Whitney: 0.9 beats 3, 0.4 beats 1, 0.6 beats 2 and ties 1 (counts 1/2) -> 6.5 of 9 pairs
    col1 = torch.tensor([0.9, 0.4, 0.6, 0.5, 0.2, 0.6])
    labels = np.array([1, 1, 1, 0, 2, 0])
    probs = torch.stack([(1 - col1) / 2, col1, (1 - col1) / 2], dim=1)
    items = [{"pred_cls": p, "label_cls": y} for p, y in zip(probs, one_hot(labels, 3))]
    batches = [items[:4], items[4:]]

    engine = Engine(lambda _engine, batch: batch)
    transform = from_engine(["pred_cls", "label_cls"])
    ROCAUCForClass(1, output_transform=transform).attach(engine, "auc_class1")
    for name in ("accuracy", "f1"):
        ClassificationReport(name, num_classes=3, output_transform=transform).attach(engine, name)
    MetricsSaver(save_dir=str(tmp_path)).attach(engine)
    engine.run(batches, max_epochs=1)

    report = classification_report(probs, labels, 3)
    assert engine.state.metrics["auc_class1"] == pytest.approx(6.5 / 9)
    assert isinstance(engine.state.metrics["f1"], float)
    assert engine.state.metrics["f1"] == pytest.approx(report["f1"])
    assert engine.state.metrics["accuracy"] == pytest.approx(report["accuracy"])
    with open(tmp_path / "metrics.csv") as f:
        saved = {row[0]: float(row[1]) for row in csv.reader(f)}
    assert saved["auc_class1"] == pytest.approx(6.5 / 9)
    assert saved["f1"] == pytest.approx(report["f1"])


def test_confusion_matrix_saver_writes_csv_and_png(tmp_path) -> None:
    probs, truth = probabilities(PRED), one_hot(TRUE, 3)
    items = [{"pred_cls": p, "label_cls": y} for p, y in zip(probs, truth)]
    batches = [items[:5], items[5:]]
    names = ["meningioma", "glioma", "pituitary"]
    out = tmp_path / "eval"

    engine = Engine(lambda _engine, batch: batch)
    saver = ConfusionMatrixSaver(out, names)
    saver.attach(engine)
    engine.run(batches, max_epochs=2)  # the counts are reset at each epoch

    with open(out / "confusion_matrix.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["true/predicted", *names]
    assert [r[0] for r in rows[1:]] == names
    np.testing.assert_array_equal(np.array([[int(v) for v in r[1:]] for r in rows[1:]]), CM)
    png = (out / "confusion_matrix.png").read_bytes()
    assert len(png) > 1000 and png.startswith(b"\x89PNG\r\n\x1a\n")
    assert sorted(p.name for p in out.iterdir()) == ["confusion_matrix.csv", "confusion_matrix.png"]
