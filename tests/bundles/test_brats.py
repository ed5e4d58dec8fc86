"""The BraTS bundle end to end through ``monai.bundle`` on tiny phantoms: train -> evaluate -> inference.

One short training (reduced network, 64 x 64 x 40 phantoms, 48 x 56 slices) serves every test and is the
learning test: whole-tumour Dice on held-out phantom cases must be clearly above chance.
"""

import csv
import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch

from common.data import make_brats_phantoms
from common.networks import AttentionR2UNet

from .conftest import assert_fast_paths_agree, fast_path_agreement, run_bundle

BUNDLE = "attention_r2unet_brats_segmentation"
SMALL = {"slice_size": [48, 56], "features": [8, 16, 32, 64], "sw_batch_size": 16}
PHANTOM = {"n_cases": 8, "shape": [64, 64, 40], "seed": 0}
EPOCHS = 25
pytestmark = pytest.mark.slow


def train_overrides(root):
    return {
        **SMALL,
        "phantom_dir": str(root / "phantoms"),
        "output_dir": str(root / "runs"),
        "ckpt_dir": str(root / "models"),
        "phantom": PHANTOM,
        "batch_size": 16,
        "slices_per_case": 4,
        "case_visits": 4,
        "num_workers": 0,
        "learning_rate": 0.003,
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("brats")
    workflow = run_bundle(BUNDLE, "train.json", epochs=EPOCHS, **train_overrides(root))
    return root, workflow


def test_training_checkpoints_and_learning(trained):
    root, workflow = trained
    assert workflow.trainer.state.epoch == EPOCHS
    state = torch.load(root / "models" / "model.pt", map_location="cpu", weights_only=True)
    AttentionR2UNet(features=SMALL["features"]).load_state_dict(state)
    # the best model is picked by the mean Dice of WT, TC and ET; chance is a few per cent for each
    best = workflow.parser.get_parsed_content("validate#best_model").best
    assert best > 0.5, best


def test_evaluation_reports_brats_metrics_per_case(trained):
    root, _ = trained
    out = root / "eval"
    overrides = {
        **train_overrides(root),
        "output_dir": str(out),
        "datalist_file": str(root / "runs" / "datalist.json"),
    }
    run_bundle(BUNDLE, ["train.json", "evaluate.json"], **overrides)
    metrics = {row[0]: float(row[1]) for row in csv.reader(open(out / "metrics.csv"))}
    names = {f"{m}_{r}" for m in ("dice", "hd95", "sensitivity", "specificity") for r in ("wt", "tc", "et")}
    assert names <= set(metrics)
    assert metrics["dice_wt"] > 0.7 and metrics["specificity_wt"] > 0.99, metrics
    assert 0 <= metrics["hd95_wt"] < 20, metrics
    cases = json.loads((root / "runs" / "datalist.json").read_text())["testing"]
    per_case = list(csv.reader(open(out / "dice_wt_raw.csv")))
    assert [row[0] for row in per_case[1:]] == [c["case"] for c in cases]


@pytest.mark.parametrize(
    "layout, codes", [("brats2020", {0, 1, 2, 4}), ("brats2023", {0, 1, 2, 3}), ("msd", {0, 1, 2, 3})]
)
def test_inference_keeps_geometry_and_the_datasets_label_codes(trained, tmp_path, layout, codes):
    root, _ = trained
    inputs = tmp_path / "inputs"
    make_brats_phantoms(inputs, n_cases=2, shape=[60, 68, 36], seed=5, layout=layout)
    out = tmp_path / "predictions"
    run_bundle(
        BUNDLE,
        "inference.json",
        **SMALL,
        dataset_dir=str(inputs),
        output_dir=str(out),
        ckpt_path=str(root / "models" / "model.pt"),
    )
    segs = sorted(out.glob("*_seg.nii.gz"))
    assert len(segs) == 2 and len(sorted(out.glob("*_wt.nii.gz"))) == 2
    for seg_path in segs:
        case = seg_path.name[: -len("_seg.nii.gz")]
        source = next(p for p in inputs.rglob("*.nii.gz") if case in p.name and "seg" not in p.name)
        reference = nib.load(source)
        seg = nib.load(seg_path)
        assert seg.shape == reference.shape[:3]
        np.testing.assert_allclose(seg.affine, reference.affine, atol=1e-4)
        values = set(np.unique(np.asarray(seg.dataobj)).tolist())
        assert values <= codes and len(values) > 1, values
        wt = np.asarray(nib.load(out / f"{case}_wt.nii.gz").dataobj)
        np.testing.assert_array_equal(wt > 0, np.asarray(seg.dataobj) > 0)


def test_inference_goes_on_past_a_bad_case(trained, tmp_path):
    root, _ = trained
    inputs = tmp_path / "inputs"
    cases = make_brats_phantoms(inputs, n_cases=2, shape=[60, 68, 36], seed=6)
    bad = cases[0]
    next(bad.glob("*_t1ce.nii.gz")).unlink()
    out = tmp_path / "predictions"
    run_bundle(
        BUNDLE,
        "inference.json",
        **SMALL,
        dataset_dir=str(inputs),
        output_dir=str(out),
        ckpt_path=str(root / "models" / "model.pt"),
    )
    failed = list(csv.DictReader(open(out / "failed_inputs.csv")))
    assert len(failed) == 1 and failed[0]["input"] == bad.name and "t1ce" in failed[0]["problem"]
    assert [p.name for p in out.glob("*_seg.nii.gz")] == [f"{cases[1].name}_seg.nii.gz"]
    shutil.rmtree(inputs)


def test_fast_inference_agrees_with_pytorch_fp32(trained, tmp_path):
    root, _ = trained
    make_brats_phantoms(tmp_path / "inputs", n_cases=1, shape=[60, 68, 36], seed=5, layout="brats2023")
    overrides = {
        **SMALL,
        "dataset_dir": str(tmp_path / "inputs"),
        "ckpt_path": str(root / "models" / "model.pt"),
    }
    assert_fast_paths_agree(fast_path_agreement(BUNDLE, tmp_path, overrides))
