"""The classification bundle end to end on phantom slices: both stages trained, then chained inference.

A reduced ResNeSAt (one bottleneck per stage) on 64 x 64 phantom slices of 16 patients: stage 1 (presence)
must tell tumour from no tumour on held-out patients; stage 2 (source) then trains into the same
``model.pt`` without moving stage 1; inference writes one row per image, the source only where a tumour is
found.
"""

import csv
import json

import pytest
import torch

from .conftest import assert_fast_paths_agree, fast_path_agreement, run_bundle
from .conftest import configs as configs_dir

BUNDLE = "resnesat_brain_tumor_classification"
SMALL = {"image_size": [64, 64], "layers": [1, 1, 1, 1], "num_workers": 0}
PHANTOM = {"n_patients": 16, "slices_per_patient": 4, "size": 64, "seed": 0}
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("resnesat")
    paths = {
        "phantom_dir": str(root / "phantoms"),
        "output_dir": str(root / "runs"),
        "ckpt_dir": str(root / "models"),
        "phantom": PHANTOM,
        "split_ratios": [10, 3, 3],
        "batch_size": 16,
        "epochs": 12,
        "learning_rates": {"presence": 0.01, "source": 0.01},
    }
    presence = run_bundle(BUNDLE, "train.json", task="presence", **SMALL, **paths)
    after_presence = torch.load(root / "models" / "model.pt", map_location="cpu", weights_only=True)
    source = run_bundle(BUNDLE, "train.json", task="source", **SMALL, **{**paths, "epochs": 2})
    return root, presence, source, after_presence


def test_presence_learns_and_splits_by_patient(trained):
    root, presence, _, _ = trained
    datalist = json.loads((root / "runs" / "datalist.json").read_text())
    patients = {s: {item["patient"] for item in datalist[s]} for s in ("training", "validation", "testing")}
    assert not (patients["training"] & (patients["validation"] | patients["testing"]))
    assert datalist["labels"] == {"0": "absent", "1": "present"}
    best = presence.parser.get_parsed_content("validate#best_model").best
    assert best > 0.8, best  # a constant guess scores the share of the larger class, 0.75 at most here


def test_source_stage_keeps_the_presence_stage(trained):
    root, _, source, after_presence = trained
    state = torch.load(root / "models" / "model.pt", map_location="cpu", weights_only=True)
    for key, value in after_presence.items():
        if key.startswith("presence."):
            torch.testing.assert_close(state[key], value)
    datalist = json.loads((root / "runs" / "datalist_source.json").read_text())
    assert datalist["labels"] == {"0": "primary", "1": "secondary"}
    assert all(
        item["category"] in ("primary", "secondary") for s in ("training", "testing") for item in datalist[s]
    )
    assert (root / "models" / "last_source.pt").is_file() and (root / "models" / "last.pt").is_file()


def test_chained_inference_writes_one_row_per_image(trained, tmp_path):
    root, _, _, _ = trained
    out = tmp_path / "predictions"
    run_bundle(
        BUNDLE, "inference.json", **SMALL, dataset_dir=str(root / "phantoms"), output_dir=str(out),
        ckpt_path=str(root / "models" / "model.pt"),
    )  # fmt: skip
    rows = list(csv.DictReader(open(out / "classification.csv")))
    assert len(rows) == PHANTOM["n_patients"] * PHANTOM["slices_per_patient"]
    for row in rows:
        p_present = float(row["p_present"])
        assert 0.0 <= p_present <= 1.0
        if row["tumour"] == "yes":
            assert p_present >= 0.5 and 0.0 <= float(row["p_secondary"]) <= 1.0
            assert row["source"] == ("secondary" if float(row["p_secondary"]) >= 0.5 else "primary")
        else:
            assert p_present < 0.5 and row["p_secondary"] == "" and row["source"] == ""
    # stage 1 on the training phantoms: the no-tumour folder is mostly "no", the others mostly "yes"
    said = {(r["file"].split("/")[-3], r["tumour"]) for r in rows}
    assert ("no_tumour", "no") in said and any(t == "yes" for c, t in said if c != "no_tumour")


def test_evaluation_per_fold_and_cross_validation_table(trained, tmp_path):
    root, _, _, _ = trained
    eval_dir = tmp_path / "eval" / "presence"
    for fold in (0, 1):
        run_bundle(
            BUNDLE, ["train.json", "evaluate.json"], task="presence", fold=fold, n_folds=2, **SMALL,
            phantom_dir=str(root / "phantoms"), ckpt_dir=str(root / "models"), eval_dir=str(eval_dir),
            phantom=PHANTOM, batch_size=16,
        )  # fmt: skip
    for fold in (0, 1):
        folder = eval_dir / f"fold_{fold}"
        metrics = {row[0]: float(row[1]) for row in csv.reader(open(folder / "metrics.csv"))}
        assert set(metrics) == {"val_accuracy", "recall", "specificity", "precision", "f1", "auc_present"}
        # the confusion matrix written beside them gives the same eq. 2, 3, 6
        cm_rows = list(csv.reader(open(folder / "confusion_matrix.csv")))[1:]  # rows: true absent, present
        (tn, fp), (fn, tp) = [[int(v) for v in row[1:]] for row in cm_rows]
        assert tn + fp + fn + tp == len(
            json.loads((folder / f"datalist_fold{fold}.json").read_text())["testing"]
        )
        assert metrics["val_accuracy"] == pytest.approx((tp + tn) / (tp + tn + fp + fn))
        assert metrics["recall"] == pytest.approx(tp / (tp + fn))
        assert metrics["specificity"] == pytest.approx(tn / (tn + fp))
        roc = list(csv.DictReader(open(folder / "roc_curve.csv")))
        assert (float(roc[0]["fpr"]), float(roc[-1]["tpr"])) == (0.0, 1.0)
        assert (folder / "roc_curve.png").is_file() and (folder / "confusion_matrix.png").is_file()
    table = list(csv.reader(open(eval_dir / "cross_validation.csv")))
    assert [r[0] for r in table] == ["fold", "0", "1", "mean", "std"]
    column = table[0].index("val_accuracy")
    folds = [float(table[i][column]) for i in (1, 2)]
    assert float(table[3][column]) == pytest.approx(sum(folds) / 2, abs=1e-5)


def test_local_imagenet_checkpoint_initialises_the_trained_stage(tmp_path):
    from common.networks import ResNeSt
    from tests.networks.test_resnest import official_name

    from .conftest import copy_bundle, workflow

    tiny = {"layers": [1, 1, 1, 1], "bottleneck_width": 8, "stem_width": 8, "base_planes": 16}
    rgb = ResNeSt(in_channels=3, num_classes=10, **tiny)
    path = tmp_path / "resnest50_imagenet.pth"
    torch.save({official_name(k): v for k, v in rgb.state_dict().items()}, path)
    bundle = copy_bundle(BUNDLE, tmp_path)
    wf = workflow(bundle, ["train.json"], "train", task="source", pretrained_checkpoint=str(path))
    wf.parser.get_parsed_content("train#trainer")  # the stage is made ready when the trainer is built
    network = wf.parser.get_parsed_content("network")
    # the first conv takes the grey channel: the sum of the RGB kernels; the stage not trained stays as it was
    stem = next(k for k in rgb.state_dict() if k.endswith("weight") and rgb.state_dict()[k].ndim == 4)
    torch.testing.assert_close(network.source.state_dict()[stem], rgb.state_dict()[stem].sum(1, keepdim=True))
    loaded = network.source.state_dict()
    for key, value in rgb.state_dict().items():
        if key != stem and loaded[key].shape == value.shape:  # all but the stem and the 10-class classifier
            torch.testing.assert_close(loaded[key], value)
    assert not torch.allclose(
        network.presence.state_dict()[stem], rgb.state_dict()[stem].sum(1, keepdim=True)
    )


def test_slices_of_3d_collections_are_one_setting_away(tmp_path):
    """``--data collection_slices``: BraTS GLI/MEN/MET phantoms sliced, labelled and split by patient."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(configs_dir(BUNDLE) / "train.json"))
    parser.update(
        {
            "bundle_root": str(tmp_path), "data": "collection_slices", "task": "source",
            "phantom": {"n_patients": 6, "shape": [48, 48, 24], "seed": 0},
        }
    )  # fmt: skip
    datalist = json.loads(open(parser.get_parsed_content("datalist")).read())
    assert (tmp_path / "phantom_data" / "collection_slices").is_dir()
    items = [item for s in ("training", "validation", "testing") for item in datalist[s]]
    by_type = {(item["tumour_type"], item["label"]) for item in items}
    assert ("metastasis", 1) in by_type and {("glioma", 0), ("meningioma", 0)} & by_type
    patients = [{item["patient"] for item in datalist[s]} for s in ("training", "validation", "testing")]
    assert not (patients[0] & patients[1]) and not (patients[0] & patients[2])


def test_fast_inference_agrees_with_pytorch_fp32(trained, tmp_path):
    root, _, _, _ = trained
    overrides = {
        **SMALL,
        "dataset_dir": str(root / "phantoms"),
        "ckpt_path": str(root / "models" / "model.pt"),
    }
    assert_fast_paths_agree(fast_path_agreement(BUNDLE, tmp_path, overrides))
