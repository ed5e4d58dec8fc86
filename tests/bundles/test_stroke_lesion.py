"""The stroke lesion bundle end to end through ``monai.bundle`` on small phantoms: train, evaluate, infer.

One short training of the default network (UNet++ with the LFFGM edge branch and the Laplacian consistency
loss), reduced features, ATLAS R2.0 phantoms of 8 subjects at 48 x 56 x 40, serves the first tests and is the
learning test: lesion Dice on the held-out subject must be clearly above what a mask that ignores the image
scores. The other rows of the paper's Table 2, the R1.2 layout and CT get one-epoch runs of their own.
"""

import csv
import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.networks.nets import BasicUNetPlusPlus

from common.data import make_atlas_phantoms, make_ncct_phantoms
from common.networks import UNetPlusPlusEdge

from .conftest import FAST_PATHS, assert_fast_paths_agree, configs, fast_path_agreement, run_bundle

BUNDLE = "unetpp_edge_stroke_lesion_segmentation"
FEATURES = [8, 8, 16, 32, 64, 8]
PHANTOMS = {
    "atlas": {"n_subjects": 8, "shape": [48, 56, 40], "seed": 0},
    "ncct": {"n_cases": 4, "shape": [64, 64, 12], "seed": 0},
}
EPOCHS = 20
LEARNING_RATE = 0.003  # the paper's 1e-3 learns too slowly for a test of a few hundred steps
MIN_DICE = 0.3
pytestmark = pytest.mark.slow


def load(path) -> np.ndarray:
    return np.asarray(nib.load(str(path)).dataobj)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("stroke")
    workflow = run_bundle(
        BUNDLE,
        "train.json",
        features=FEATURES,
        phantom_dir=str(root / "phantoms"),
        output_dir=str(root / "runs"),
        ckpt_dir=str(root / "models"),
        phantoms=PHANTOMS,
        split_ratios=[6, 1, 1],
        epochs=EPOCHS,
        batch_size=8,
        slices_per_case=4,
        case_visits=6,
        learning_rate=LEARNING_RATE,
        val_interval=2,
        sw_batch_size=16,
        num_workers=0,
    )
    return root, workflow


def test_training_learns_and_splits_by_subject(trained):
    root, workflow = trained
    assert workflow.trainer.state.epoch == EPOCHS
    state = torch.load(root / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert any(k.startswith("lffgm.") for k in state) and any(k.startswith("edge_head.") for k in state)
    UNetPlusPlusEdge(features=FEATURES).load_state_dict(state)
    datalist = json.loads((root / "runs" / "datalist.json").read_text())
    subjects = {s: {item["patient"] for item in datalist[s]} for s in ("training", "validation", "testing")}
    assert [len(subjects[s]) for s in subjects] == [6, 1, 1]
    assert not (subjects["training"] & (subjects["validation"] | subjects["testing"]))
    # lesions are 0.5-4 % of a phantom head: an all-lesion guess inside the head scores Dice < 0.1
    best = workflow.parser.get_parsed_content("validate#best_model").best
    assert best > MIN_DICE, best


def test_inference_network_is_exactly_a_unetpp():
    """The inference network of every ablation row has a plain UNet++'s parameters, at full size."""
    parser = ConfigParser()
    parser.read_config(str(configs(BUNDLE) / "inference.json"))
    parser["bundle_root"] = "."
    plain = BasicUNetPlusPlus(spatial_dims=2, in_channels=1, out_channels=1, features=parser["features"])
    count = sum(p.numel() for p in plain.parameters())
    for edge in ("none", "simple", "lffgm"):
        parser["edge"] = edge
        network = parser.get_parsed_content("network_def", instantiate=True)
        assert sum(p.numel() for p in network.parameters()) == count == 2_410_180
    training = ConfigParser()
    training.read_config(str(configs(BUNDLE) / "train.json"))
    training["bundle_root"] = "."
    assert sum(p.numel() for p in training.get_parsed_content("network_def").parameters()) > count


def test_evaluation_per_subject_matches_inference(trained, tmp_path):
    """``evaluate.json`` on the test subject: per-subject CSVs of Dice, IoU, HD95, lesion counts and
    detection; its Dice equals the one of ``inference.json``'s mask against the reference mask."""
    root, _ = trained
    paths = {
        "features": FEATURES,
        "phantom_dir": str(root / "phantoms"),
        "phantoms": PHANTOMS,
        "output_dir": str(tmp_path / "eval"),
        "ckpt_dir": str(root / "models"),
        "split_ratios": [6, 1, 1],
        "datalist_file": str(root / "runs" / "datalist.json"),
    }
    run_bundle(BUNDLE, ["train.json", "evaluate.json"], **paths)
    metrics = dict(csv.reader(open(tmp_path / "eval" / "metrics.csv")))
    for name in ("dice", "iou", "hd95", "ltpr", "lfpr", "n_lesions", "ref_n_lesions"):
        assert name in metrics, sorted(metrics)
    rows = {r["filename"]: r for r in csv.DictReader(open(tmp_path / "eval" / "dice_raw.csv"))}
    [test_item] = json.loads((root / "runs" / "datalist.json").read_text())["testing"]
    case = test_item["case"]
    out = tmp_path / "predictions"
    run_bundle(
        BUNDLE, "inference.json", features=FEATURES, dataset_dir=str(root / "phantoms" / "Training"),
        output_dir=str(out), ckpt_path=str(root / "models" / "model.pt"),
        runtime="torch", precision="fp32",  # as the evaluator; the fast runtimes have their own gate
    )  # fmt: skip
    pred = load(out / f"{case}_lesion.nii.gz") > 0
    ref = load(root / "phantoms" / test_item["label"]) > 0
    assert float(rows[case]["mean"]) == pytest.approx(dice(pred, ref), abs=1e-3)
    iou = float(next(csv.DictReader(open(tmp_path / "eval" / "iou_raw.csv")))["mean"])
    assert iou == pytest.approx((pred & ref).sum() / max((pred | ref).sum(), 1), abs=1e-3)


def test_ct_inference_keeps_the_grid_and_skips_a_ct_not_in_hounsfield_units(trained, tmp_path):
    """CT phantoms (anisotropic voxels), windowed as CT: masks on each input's grid and affine; a CT whose
    values were rescaled to [0, 1] is listed in ``failed_inputs.csv`` and the others go on."""
    root, _ = trained
    data = tmp_path / "ct"
    make_ncct_phantoms(data, n_cases=3, shape=(64, 64, 12), seed=5)
    images = sorted((data / "images").glob("*.nii.gz"))
    bad = nib.load(images[0])
    values = np.asarray(bad.dataobj, dtype=np.float32)
    nib.save(nib.Nifti1Image((values - values.min()) / np.ptp(values), bad.affine), images[0])
    out = tmp_path / "predictions"
    run_bundle(
        BUNDLE, "inference.json", features=FEATURES, adapter="ncct", dataset_dir=str(data),
        output_dir=str(out), ckpt_path=str(root / "models" / "model.pt"),
    )  # fmt: skip
    failed = list(csv.DictReader(open(out / "failed_inputs.csv")))
    case = images[0].name.split(".nii")[0]
    assert [f["input"] for f in failed] == [case] and "Hounsfield" in failed[0]["problem"]
    for image in images[1:]:
        source = nib.load(image)
        mask = nib.load(out / f"{image.name.split('.nii')[0]}_lesion.nii.gz")
        assert mask.shape == source.shape and mask.get_data_dtype() == np.uint8
        np.testing.assert_allclose(mask.affine, source.affine, atol=1e-5)
        assert set(np.unique(np.asarray(mask.dataobj)).tolist()) <= {0, 1}


SMOKE = {
    "features": [4, 4, 8, 16, 32, 4],
    "epochs": 1,
    "batch_size": 4,
    "slices_per_case": 2,
    "case_visits": 1,
    "num_workers": 0,
    "sw_batch_size": 8,
    "split_ratios": [2, 1, 1],
}


@pytest.mark.parametrize(
    "overrides, heads",
    [
        ({"edge": "none", "laplacian_weight": 0.0}, ["lesion"]),
        ({"edge": "simple", "laplacian_weight": 0.0}, ["lesion", "edge"]),
        ({"adapter": "ncct"}, ["lesion", "edge"]),
    ],
    ids=["unetpp", "simple_edge", "ct"],
)
def test_other_rows_and_data_sets_train(tmp_path, overrides, heads):
    """The paper's other Table 2 rows and CT data each train one epoch; the checkpoint loads into the
    inference network (edge weights dropped) and inference writes masks."""
    paths = {
        "phantom_dir": str(tmp_path / "phantoms"),
        "output_dir": str(tmp_path / "runs"),
        "ckpt_dir": str(tmp_path / "models"),
        "phantoms": {
            "atlas": {"n_subjects": 4, "shape": [40, 48, 32]},
            "ncct": {"n_cases": 4, "shape": [48, 48, 12]},
        },
    }
    workflow = run_bundle(BUNDLE, "train.json", **SMOKE, **overrides, **paths)
    assert workflow.parser.get_parsed_content("heads").names == heads
    out = tmp_path / "predictions"
    run_bundle(
        BUNDLE,
        "inference.json",
        **{**overrides, "features": SMOKE["features"]},
        phantom_dir=paths["phantom_dir"],
        phantoms=paths["phantoms"],
        output_dir=str(out),
        ckpt_path=str(tmp_path / "models" / "model.pt"),
    )
    assert len(list(out.glob("*_lesion.nii.gz"))) == 4


def test_r12_layout_with_several_masks_trains(tmp_path):
    """ATLAS R1.2 (a scan's lesions in separate files, merged by union) trains as R2.0 does."""
    data = tmp_path / "r12"
    make_atlas_phantoms(data, n_subjects=4, shape=(40, 48, 32), seed=1, layout="r1.2")
    assert any(len(list(t.glob("*LesionSmooth*"))) > 1 for t in data.rglob("t01"))
    run_bundle(
        BUNDLE, "train.json", **SMOKE, dataset_dir=str(data), output_dir=str(tmp_path / "runs"),
        ckpt_dir=str(tmp_path / "models"),
    )  # fmt: skip
    datalist = json.loads((tmp_path / "runs" / "datalist.json").read_text())
    items = datalist["training"] + datalist["validation"] + datalist["testing"]
    assert all(item["layout"] == "r1.2" for item in items)
    assert any(isinstance(item["label"], list) and len(item["label"]) > 1 for item in items)
    assert (tmp_path / "models" / "model.pt").is_file()


def test_fast_inference_agrees_with_pytorch_fp32(trained, tmp_path):
    root, _ = trained
    overrides = {
        "features": FEATURES, "dataset_dir": str(root / "phantoms" / "Training"),
        "ckpt_path": str(root / "models" / "model.pt"),
    }  # fmt: skip
    # bf16 missed the gate here (OpenVINO bf16 Dice 0.989, 2026-12-04): the bundle's precision is fp32
    fp32_paths = [path for path in FAST_PATHS if path[1] == "fp32"]
    assert_fast_paths_agree(fast_path_agreement(BUNDLE, tmp_path, overrides, paths=fp32_paths))


@pytest.mark.parametrize("crop_to_head", [True, False])
def test_a_blank_volume_is_inferred_whole_onto_its_grid(trained, tmp_path, crop_to_head):
    """A volume with nothing above the head threshold is inferred whole (not cropped to nothing, not
    failed) and its mask restored onto its grid, with the crop switched on or off (``crop_to_head``)."""
    root, _ = trained
    data = tmp_path / "Training"
    shutil.copytree(root / "phantoms" / "Training", data)
    images = sorted(data.rglob("*_T1w.nii.gz"))
    blank = nib.load(images[0])
    nib.save(nib.Nifti1Image(np.zeros(blank.shape, np.float32), blank.affine), images[0])
    out = tmp_path / "predictions"
    run_bundle(
        BUNDLE, "inference.json", features=FEATURES, dataset_dir=str(data), output_dir=str(out),
        ckpt_path=str(root / "models" / "model.pt"), crop_to_head=crop_to_head,
        runtime="torch", precision="fp32",
    )  # fmt: skip
    failed = out / "failed_inputs.csv"
    assert not failed.exists() or not list(csv.DictReader(open(failed)))

    def mask_of(image):  # <sub>_<ses>_space-..._T1w.nii.gz -> <sub>_<ses>_lesion.nii.gz
        return out / ("_".join(image.name.split("_")[:2]) + "_lesion.nii.gz")

    for image in images:  # the blank one first
        mask = nib.load(mask_of(image))
        assert mask.shape == nib.load(image).shape
        np.testing.assert_allclose(mask.affine, nib.load(image).affine, atol=1e-5)
