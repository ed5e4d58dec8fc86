"""The MS lesion bundle end to end through ``monai.bundle`` on small phantoms: train -> evaluate -> inference.

One short training of the default (multi-input) variant, reduced network, 48 x 56 x 48 phantoms of 5
patients with 2 time points each and 32³ patches, serves the first tests and is the learning test: lesion
Dice on the held-out phantom patient must be clearly above chance. The other variants and the tissue masks
computed with ANTs (phantoms without tissue maps) get one-epoch runs of their own.
"""

import csv
import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch

from common.data import make_isbi2015_phantoms
from common.networks import MultiTaskUNet3D

from .conftest import assert_fast_paths_agree, fast_path_agreement, run_bundle

BUNDLE = "multitask_unet3d_ms_lesion_segmentation"
SMALL = {"features": [8, 16, 32, 64], "patch_size": [32, 32, 32], "sw_batch_size": 4}
PHANTOM = {"n_patients": 5, "timepoints": 2, "shape": [48, 56, 48], "seed": 0}
EPOCHS = 18
pytestmark = pytest.mark.slow


def train_overrides(root, **extra):
    return {
        **SMALL,
        "phantom_dir": str(root / "phantoms"),
        "output_dir": str(root / "runs"),
        "ckpt_dir": str(root / "models"),
        "tissue_cache_dir": str(root / "tissue_cache"),
        "phantom": PHANTOM,
        "batch_size": 8,
        "patches_per_case": 4,
        "case_visits": 2,
        "num_workers": 0,
        "learning_rate": 0.01,
        "val_interval": 2,
        **extra,
    }


def load(path) -> np.ndarray:
    return np.asarray(nib.load(str(path)).dataobj)


def union_mask(patient_dir, case) -> np.ndarray:
    return (load(patient_dir / "masks" / f"{case}_mask1.nii") > 0) | (
        load(patient_dir / "masks" / f"{case}_mask2.nii") > 0
    )


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("ms")
    workflow = run_bundle(BUNDLE, "train.json", epochs=EPOCHS, **train_overrides(root))
    return root, workflow


def test_training_checkpoints_and_learning(trained):
    root, workflow = trained
    assert workflow.trainer.state.epoch == EPOCHS
    state = torch.load(root / "models" / "model.pt", map_location="cpu", weights_only=True)
    MultiTaskUNet3D(variant="multi_input", features=SMALL["features"]).load_state_dict(state)
    datalist = json.loads((root / "runs" / "datalist.json").read_text())
    patients = {s: {item["patient"] for item in datalist[s]} for s in ("training", "validation", "testing")}
    assert [len(patients[s]) for s in patients] == [3, 1, 1]  # whole patients, 3:1:1
    assert not (patients["training"] & (patients["validation"] | patients["testing"]))
    # lesions are well under 1 % of a phantom, so a mask that ignores the image scores Dice < 0.02
    best = workflow.parser.get_parsed_content("validate#best_model").best
    assert best > 0.5, best
    # the phantoms' own tissue maps were used: ANTs never ran, nothing was cached
    assert not (root / "tissue_cache").exists()


def test_evaluation_per_case_and_rater_matches_inference(trained, tmp_path):
    root, _ = trained
    out = root / "eval"
    overrides = {
        **train_overrides(root),
        "output_dir": str(out),
        "datalist_file": str(root / "runs" / "datalist.json"),
    }
    run_bundle(BUNDLE, ["train.json", "evaluate.json"], **overrides)
    metrics = {row[0]: float(row[1]) for row in csv.reader(open(out / "metrics.csv"))}
    names = {
        f"{m}{r}" for m in ("dice", "ppv", "tpr", "ltpr", "lfpr", "avd") for r in ("", "_rater1", "_rater2")
    }
    assert names | {"ms_challenge_score"} <= set(metrics)
    assert metrics["dice"] > 0.5 and metrics["ltpr"] > 0.5 and 0 <= metrics["lfpr"] < 0.5, metrics
    assert 0 < metrics["ms_challenge_score"] <= 1
    cases = json.loads((root / "runs" / "datalist.json").read_text())["testing"]
    per_case = {name: list(csv.DictReader(open(out / f"{name}_raw.csv"))) for name in ("dice", "dice_rater2")}
    assert [row["filename"] for row in per_case["dice"]] == [c["case"] for c in cases]

    # the same model through inference.json: the written masks give the evaluation's per-case Dice
    inputs = tmp_path / "inputs" / "training"
    patient = cases[0]["patient"]
    shutil.copytree(root / "phantoms" / "training" / patient, inputs / patient)
    predictions = tmp_path / "predictions"
    run_bundle(
        BUNDLE,
        "inference.json",
        **SMALL,
        dataset_dir=str(inputs.parent),
        output_dir=str(predictions),
        ckpt_path=str(root / "models" / "model.pt"),
        tissue_cache_dir=str(tmp_path / "tissue_cache"),
        runtime="torch",  # the evaluator runs PyTorch fp32; the fast runtimes have their own gate below
        precision="fp32",
    )
    for row, row2 in zip(per_case["dice"], per_case["dice_rater2"]):
        case = row["filename"]
        pred = load(predictions / f"{case}_lesion.nii.gz") > 0
        rater2 = load(inputs / patient / "masks" / f"{case}_mask2.nii") > 0
        assert dice(pred, union_mask(inputs / patient, case)) == pytest.approx(float(row["class0"]), abs=1e-4)
        assert dice(pred, rater2) == pytest.approx(float(row2["class0"]), abs=1e-4)


def test_inference_keeps_geometry_pads_small_volumes_and_computes_tissue_masks(trained, tmp_path):
    """Inputs of another shape and an oblique affine, without tissue maps (so ANTs makes the masks), through
    windows larger than the volume (64³ on 40 x 52 x 36: the inferer pads and crops back)."""
    root, _ = trained
    inputs = tmp_path / "inputs"
    [patient] = make_isbi2015_phantoms(inputs, n_patients=1, timepoints=2, shape=(40, 52, 36), seed=7)
    shutil.rmtree(patient / "tissues")
    angle = np.deg2rad(10.0)
    affine = np.array(
        [
            [0.9 * np.cos(angle), -1.1 * np.sin(angle), 0.0, -20.0],
            [0.9 * np.sin(angle), 1.1 * np.cos(angle), 0.0, -30.0],
            [0.0, 0.0, -1.2, 25.0],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    for path in sorted((patient / "preprocessed").iterdir()) + sorted((patient / "masks").iterdir()):
        data = np.array(
            nib.load(str(path)).dataobj
        )  # a copy: the .nii would be memory-mapped while rewritten
        nib.save(nib.Nifti1Image(data, affine), str(path))
    run = {
        **SMALL,
        "patch_size": [64, 64, 64],
        "dataset_dir": str(inputs),
        "ckpt_path": str(root / "models" / "model.pt"),
        "tissue_cache_dir": str(tmp_path / "tissue_cache"),
    }
    run_bundle(BUNDLE, "inference.json", output_dir=str(tmp_path / "first"), **run)
    cached = sorted((tmp_path / "tissue_cache").iterdir())
    assert len(cached) == 2  # one label map per time point, computed once
    run_bundle(BUNDLE, "inference.json", output_dir=str(tmp_path / "second"), **run)
    assert sorted((tmp_path / "tissue_cache").iterdir()) == cached  # the second run read them back
    for case in ("training01_01", "training01_02"):
        out = nib.load(str(tmp_path / "first" / f"{case}_lesion.nii.gz"))
        assert out.shape == (40, 52, 36) and out.get_data_dtype() == np.uint8
        np.testing.assert_allclose(out.affine, affine, atol=1e-4)
        pred = np.asarray(out.dataobj)
        assert set(np.unique(pred).tolist()) <= {0, 1} and pred.any()
        np.testing.assert_array_equal(pred, load(tmp_path / "second" / f"{case}_lesion.nii.gz"))


def test_inference_goes_on_past_a_bad_case(trained, tmp_path):
    root, _ = trained
    inputs = tmp_path / "inputs"
    make_isbi2015_phantoms(inputs, n_patients=0, n_test_patients=1, timepoints=2, shape=(40, 48, 40), seed=6)
    bad = inputs / "testdata_website" / "test01" / "preprocessed" / "test01_01_t2_pp.nii"
    bad.unlink()
    out = tmp_path / "predictions"
    run_bundle(
        BUNDLE,
        "inference.json",
        **SMALL,
        dataset_dir=str(inputs),
        output_dir=str(out),
        ckpt_path=str(root / "models" / "model.pt"),
        tissue_cache_dir=str(tmp_path / "tissue_cache"),
    )
    failed = list(csv.DictReader(open(out / "failed_inputs.csv")))
    assert (
        len(failed) == 1
        and failed[0]["input"] == "test01_01"
        and "missing modality t2" in failed[0]["problem"]
    )
    assert [p.name for p in out.glob("*.nii.gz")] == ["test01_02_lesion.nii.gz"]


SMOKE = {
    "features": [4, 8, 16, 32],
    "patch_size": [32, 32, 32],
    "sw_batch_size": 2,
    "epochs": 1,
    "batch_size": 4,
    "patches_per_case": 2,
    "case_visits": 1,
    "num_workers": 0,
    "split_ratios": [1, 1, 1],
}


@pytest.mark.parametrize(
    "variant, heads, uses_tissue",
    [("plain", ["lesion"], False), ("multi_output", ["lesion", "tissue"], True)],
)
def test_each_variant_trains_and_infers(tmp_path, variant, heads, uses_tissue):
    """One override selects the variant; without tissue maps only the variants that use tissue run ANTs."""
    data = tmp_path / "phantoms"
    patients = make_isbi2015_phantoms(data, n_patients=3, timepoints=1, shape=(32, 40, 32), seed=3)
    for patient in patients:
        shutil.rmtree(patient / "tissues")
    paths = {
        "dataset_dir": str(data),
        "output_dir": str(tmp_path / "runs"),
        "ckpt_dir": str(tmp_path / "models"),
        "tissue_cache_dir": str(tmp_path / "tissue_cache"),
    }
    workflow = run_bundle(BUNDLE, "train.json", variant=variant, **SMOKE, **paths)
    assert workflow.parser.get_parsed_content("heads").names == heads
    state = torch.load(tmp_path / "models" / "model.pt", map_location="cpu", weights_only=True)
    MultiTaskUNet3D(variant=variant, features=SMOKE["features"]).load_state_dict(state)
    # multi-output learns the tissue map it computed for its training cases (and only for those)
    n_train = len(json.loads((tmp_path / "runs" / "datalist.json").read_text())["training"])
    cache = tmp_path / "tissue_cache"
    assert (len(list(cache.iterdir())) if cache.exists() else 0) == (n_train if uses_tissue else 0)

    out = tmp_path / "predictions"
    infer = {k: SMOKE[k] for k in ("features", "patch_size", "sw_batch_size")}
    run_bundle(
        BUNDLE,
        "inference.json",
        variant=variant,
        **infer,
        dataset_dir=str(data),
        output_dir=str(out),
        ckpt_path=str(tmp_path / "models" / "model.pt"),
        tissue_cache_dir=str(cache),
    )
    cases = [f"training0{i}_01" for i in (1, 2, 3)]
    expected = {f"{c}_lesion.nii.gz" for c in cases} | (
        {f"{c}_tissues.nii.gz" for c in cases} if uses_tissue else set()
    )
    assert {p.name for p in out.iterdir()} == expected
    reference = nib.load(
        str(data / "training" / "training01" / "preprocessed" / "training01_01_flair_pp.nii")
    )
    for path in out.iterdir():
        image = nib.load(str(path))
        assert image.shape == reference.shape
        np.testing.assert_allclose(image.affine, reference.affine, atol=1e-4)
        codes = {0, 1, 2, 3} if "tissues" in path.name else {0, 1}
        assert set(np.unique(np.asarray(image.dataobj)).tolist()) <= codes


def test_fast_inference_agrees_with_pytorch_fp32(trained, tmp_path):
    root, _ = trained
    inputs = tmp_path / "inputs" / "training"
    patient = sorted(p.name for p in (root / "phantoms" / "training").iterdir())[0]
    shutil.copytree(root / "phantoms" / "training" / patient, inputs / patient)
    overrides = {
        **SMALL, "dataset_dir": str(inputs.parent), "ckpt_path": str(root / "models" / "model.pt"),
        "tissue_cache_dir": str(tmp_path / "tissue_cache"),
    }  # fmt: skip
    assert_fast_paths_agree(fast_path_agreement(BUNDLE, tmp_path, overrides))
