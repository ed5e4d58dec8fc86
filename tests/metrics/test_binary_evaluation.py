"""The ResNeSAt paper's binary metrics (eq. 2-6), the ROC curve files and the k-fold table."""

import csv

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from monai.handlers import from_engine
from monai.metrics import compute_roc_auc

from common.metrics import (
    BINARY_REPORT_SCALARS,
    ROCCurveSaver,
    classification_handlers,
    classification_report,
    read_metrics_csv,
    roc_curve,
    summarise_folds,
)

# 10 images, positive class 1: TP 4, FN 1, TN 3, FP 2
TRUE = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0])
PRED = np.array([1, 1, 1, 1, 0, 0, 0, 0, 1, 1])


def test_binary_report_by_hand() -> None:
    report = classification_report(PRED, TRUE, 2, positive_class=1)
    assert report["recall"] == pytest.approx(4 / 5)  # eq. 2, TP / (TP + FN)
    assert report["specificity"] == pytest.approx(3 / 5)  # eq. 3, TN / (TN + FP)
    assert report["precision"] == pytest.approx(4 / 6)  # eq. 4, TP / (TP + FP)
    assert report["f1"] == pytest.approx(2 * (4 / 5) * (4 / 6) / (4 / 5 + 4 / 6))  # eq. 5
    assert report["accuracy"] == pytest.approx(7 / 10)  # eq. 6
    # the other class as positive swaps recall and specificity
    swapped = classification_report(PRED, TRUE, 2, positive_class=0)
    assert swapped["recall"] == pytest.approx(3 / 5) and swapped["specificity"] == pytest.approx(4 / 5)
    assert swapped["precision"] == pytest.approx(3 / 4)
    # without a positive class: macro means (MMRAN), specificity included
    macro = classification_report(PRED, TRUE, 2)
    assert macro["specificity"] == pytest.approx((3 / 5 + 4 / 5) / 2)
    assert macro["precision"] == pytest.approx((4 / 6 + 3 / 4) / 2)
    with pytest.raises(ValueError, match="positive_class"):
        classification_report(PRED, TRUE, 2, positive_class=2)


def test_three_class_specificity_is_one_vs_rest() -> None:
    true, pred = np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 2, 0])
    report = classification_report(pred, true, 3)
    # class 0: negatives are the 3 others, one of them (a 2) predicted 0 -> 2/3; class 1: 3/4; class 2: 3/3
    np.testing.assert_allclose(report["specificity_per_class"], [2 / 3, 3 / 4, 1.0])


def test_binary_handlers_give_the_paper_table() -> None:
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1, 0.55, 0.65])
    probs = torch.stack([1 - scores, scores], dim=1)
    items = [{"pred": p, "label": torch.eye(2)[t]} for p, t in zip(probs, TRUE)]
    engine = Engine(lambda _engine, batch: batch)
    handlers = classification_handlers(
        ["absent", "present"], output_transform=from_engine(["pred", "label"]), positive_class=1
    )
    assert list(handlers) == [*BINARY_REPORT_SCALARS, "auc_present"]
    for name, handler in handlers.items():
        handler.attach(engine, name)
    engine.run([items[:6], items[6:]], max_epochs=1)
    metrics = engine.state.metrics
    assert metrics["specificity"] == pytest.approx(3 / 5) and metrics["recall"] == pytest.approx(4 / 5)
    assert metrics["auc_present"] == pytest.approx(float(compute_roc_auc(scores, torch.as_tensor(TRUE))))


def test_roc_curve_by_hand_with_ties() -> None:
    # positives 0.9, 0.6, 0.4; negatives 0.6, 0.2
    fpr, tpr, thresholds = roc_curve([0.9, 0.6, 0.4, 0.6, 0.2], [1, 1, 1, 0, 0])
    np.testing.assert_allclose(thresholds, [np.inf, 0.9, 0.6, 0.4, 0.2])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 2 / 3, 1, 1])
    np.testing.assert_allclose(fpr, [0, 0, 1 / 2, 1 / 2, 1])
    # pairs: 0.9 beats both, 0.6 beats 0.2 and ties 0.6, 0.4 beats 0.2 -> 4.5 of 6
    assert np.trapezoid(tpr, fpr) == pytest.approx(4.5 / 6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_area_agrees_with_monai(seed) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, 200)
    scores = np.round(rng.random(200) + 0.5 * truth, 1)  # rounding makes many ties
    fpr, tpr, _ = roc_curve(scores, truth)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert (fpr[-1], tpr[-1]) == (1.0, 1.0)
    expected = float(compute_roc_auc(torch.as_tensor(scores), torch.as_tensor(truth)))
    assert np.trapezoid(tpr, fpr) == pytest.approx(expected)


def test_roc_curve_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both classes"):
        roc_curve([0.1, 0.9], [1, 1])
    with pytest.raises(ValueError, match="3 scores but 2 labels"):
        roc_curve([0.1, 0.9, 0.3], [1, 0])


def test_roc_curve_saver_writes_csv_and_png(tmp_path) -> None:
    scores = torch.tensor([0.9, 0.6, 0.4, 0.6, 0.2])
    items = [
        {"pred": torch.stack([1 - s, s]), "label": torch.tensor([t])} for s, t in zip(scores, [1, 1, 1, 0, 0])
    ]
    engine = Engine(lambda _engine, batch: batch)
    saver = ROCCurveSaver(
        tmp_path / "eval", positive_class=1, output_transform=from_engine(["pred", "label"])
    )
    saver.attach(engine)
    engine.run([items[:2], items[2:]], max_epochs=2)  # reset at each epoch: the same curve twice
    assert saver.auc == pytest.approx(4.5 / 6)
    rows = list(csv.DictReader(open(tmp_path / "eval" / "roc_curve.csv")))
    assert [float(r["tpr"]) for r in rows] == pytest.approx([0, 1 / 3, 2 / 3, 1, 1])
    assert (tmp_path / "eval" / "roc_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    one_class = [{"pred": torch.tensor([0.3, 0.7]), "label": torch.tensor([1])}]
    other = ROCCurveSaver(tmp_path / "none", output_transform=from_engine(["pred", "label"]))
    other.attach(engine := Engine(lambda _engine, batch: batch))
    with pytest.warns(UserWarning, match="no ROC curve"):
        engine.run([one_class], max_epochs=1)
    assert not (tmp_path / "none").exists()


def test_summarise_folds(tmp_path) -> None:
    assert summarise_folds(tmp_path) is None and not (tmp_path / "cross_validation.csv").exists()
    for fold, (acc, auc) in {2: (0.5, 0.6), 0: (0.7, 0.8), 1: (0.9, float("nan"))}.items():
        (tmp_path / f"fold_{fold}").mkdir()
        (tmp_path / f"fold_{fold}" / "metrics.csv").write_text(f"accuracy,{acc}\nauc,{auc}\n")
    (tmp_path / "split").mkdir()  # not a fold: left out
    (tmp_path / "split" / "metrics.csv").write_text("accuracy,0.0\n")
    path = summarise_folds(tmp_path)
    rows = list(csv.reader(open(path)))
    assert rows[0] == ["fold", "accuracy", "auc"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "2", "mean", "std"]
    assert rows[2][2] == ""  # fold 1's nan AUC is an empty cell, left out of the mean
    assert float(rows[4][1]) == pytest.approx(0.7) and float(rows[4][2]) == pytest.approx(0.7)
    assert float(rows[5][1]) == pytest.approx(0.2)  # sample std of 0.7, 0.9, 0.5
    assert float(rows[5][2]) == pytest.approx(np.std([0.8, 0.6], ddof=1), rel=1e-5)


def test_read_metrics_csv_names_the_bad_line(tmp_path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text("accuracy,0.5\nthis line is not a metric\n")
    with pytest.raises(ValueError, match=r"metrics.csv: line 2"):
        read_metrics_csv(path)
