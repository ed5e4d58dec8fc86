"""The MMRAN bundle end to end through ``monai.bundle``: train -> evaluate -> inference, on tiny phantoms.

One short training (reduced network, 64 x 64 input, 25 epochs, flips only) serves every test here; it
also is the learning test: on held-out phantom patients, Dice and accuracy must be clearly above chance.
"""

import csv
import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from common.data import DataFormatError, read_figshare_mat
from common.networks import MMRAN

from .conftest import assert_fast_paths_agree, configs, fast_path_agreement, run_bundle

BUNDLE = "mmran_brain_tumor_segmentation_classification"
SMALL = {"image_size": 64, "features": [16, 32, 64, 128], "num_workers": 0}
EPOCHS = 25
pytestmark = pytest.mark.slow


def train_overrides(root):
    return {
        **SMALL,
        "phantom_dir": str(root / "phantoms"),
        "output_dir": str(root / "runs"),
        "ckpt_dir": str(root / "models"),
        "batch_size": 8,
        "phantom": {"n_patients": 24, "slices_per_patient": 4, "size": 128, "seed": 0},
        # elastic deformation and rotation cost more CPU time than this test can afford
        "train#random_transforms": [
            {"_target_": "RandFlipd", "keys": ["image", "label"], "prob": 0.5, "spatial_axis": 0}
        ],
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("mmran")
    workflow = run_bundle(BUNDLE, "train.json", epochs=EPOCHS, **train_overrides(root))
    return root, workflow


def test_training_writes_cpu_state_dicts(trained):
    root, workflow = trained
    assert workflow.trainer.state.epoch == EPOCHS
    state = torch.load(root / "models" / "model.pt", map_location="cpu", weights_only=True)
    net = MMRAN(features=SMALL["features"])
    net.load_state_dict(state)  # a plain state_dict of the network, nothing else
    assert all(t.device.type == "cpu" for t in state.values())
    checkpoint = torch.load(root / "models" / "last.pt", weights_only=True)
    assert {"network", "optimizer", "loss_schedule", "best_model", "trainer"} <= set(checkpoint)
    assert checkpoint["loss_schedule"]["weights"]["cls"] == pytest.approx((EPOCHS - 1) / EPOCHS)


def test_evaluation_learns_well_above_chance(trained):
    root, _ = trained
    out = root / "eval"
    overrides = {
        **train_overrides(root),
        "output_dir": str(out),
        "datalist_file": str(root / "runs" / "datalist.json"),
    }
    run_bundle(BUNDLE, ["train.json", "evaluate.json"], **overrides)
    metrics = {row[0]: float(row[1]) for row in csv.reader(open(out / "metrics.csv"))}
    expected = {"dice", "hd95_mm", "miou", "mpa", "accuracy", "precision", "recall", "f1"}
    assert expected | {"auc_meningioma", "auc_glioma", "auc_pituitary"} <= set(metrics)
    # chance: accuracy 1/3; an empty or all-brain mask gives Dice < 0.1 on these phantoms
    assert metrics["dice"] > 0.6, metrics
    assert metrics["accuracy"] > 0.6, metrics
    assert metrics["miou"] > 0.7 and metrics["mpa"] > 0.7, metrics
    assert 0 <= metrics["hd95_mm"] < 20, metrics
    n_test = len(json.loads((root / "runs" / "datalist.json").read_text())["testing"])
    confusion = list(csv.reader(open(out / "confusion_matrix.csv")))
    assert len(confusion) == 4 and sum(int(v) for row in confusion[1:] for v in row[1:]) == n_test
    assert (out / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    per_image = list(csv.reader(open(out / "dice_raw.csv")))
    assert len(per_image) == 1 + n_test


def test_inference_on_mat_nifti_png_skips_bad_inputs(trained, tmp_path):
    root, _ = trained
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    phantom = sorted((root / "phantoms").glob("[0-9]*.mat"), key=lambda p: int(p.stem))
    for path in phantom[:2]:
        shutil.copy(path, inputs / path.name)
    image = read_figshare_mat(phantom[0]).image.astype(np.float32)
    nifti_affine = np.diag([0.7, 0.7, 3.0, 1.0])
    nib.save(nib.Nifti1Image(image[:, :96, None], nifti_affine), inputs / "slice.nii.gz")
    Image.fromarray((255 * image / image.max()).astype(np.uint8).T[:100]).save(inputs / "rendered.png")
    Image.open(inputs / "rendered.png").convert("RGBA").save(inputs / "rendered.tif.png")  # RGBA rendering
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(inputs / "slice.png")  # same stem as slice.nii.gz
    (inputs / "broken.mat").write_bytes(phantom[2].read_bytes()[:2000])
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 4), np.float32), np.eye(4)), inputs / "volume.nii.gz")
    out = tmp_path / "predictions"

    run_bundle(
        BUNDLE,
        "inference.json",
        **SMALL,
        dataset_dir=str(inputs),
        output_dir=str(out),
        ckpt_path=str(root / "models" / "model.pt"),
    )

    rows = list(csv.DictReader(open(out / "class_probabilities.csv")))
    written = sorted(r["file"].split("/")[-1] for r in rows)
    assert written == ["1.mat", "2.mat", "rendered.png", "rendered.tif.png", "slice.nii.gz"]
    for r in rows:
        probs = [float(r[f"p_{c}"]) for c in ("meningioma", "glioma", "pituitary")]
        assert sum(probs) == pytest.approx(1.0, abs=1e-4)
    failures = csv.DictReader(open(out / "failed_inputs.csv"))
    failed = {r["input"].split("/")[-1]: r["problem"] for r in failures}
    assert set(failed) == {"broken.mat", "volume.nii.gz", "slice.png"}
    assert "expected a 2D image" in failed["volume.nii.gz"]
    assert "same name stem as" in failed["slice.png"]

    # masks come back at the input's own size and geometry
    mat_mask = nib.load(out / "1_seg.nii.gz")
    assert mat_mask.shape == image.shape and set(np.unique(mat_mask.get_fdata())) <= {0.0, 1.0}
    nifti_mask = nib.load(out / "slice_seg.nii.gz")
    assert nifti_mask.shape[:2] == (image.shape[0], 96)
    np.testing.assert_allclose(nifti_mask.affine, nifti_affine, atol=1e-6)
    for name in ("rendered_seg.nii.gz", "rendered.tif_seg.nii.gz"):
        assert nib.load(out / name).shape == (image.shape[0], 100)
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"
    # the trained model finds the tumour on a held-out style slice
    truth = read_figshare_mat(phantom[0]).mask
    pred = mat_mask.get_fdata() > 0
    assert 2 * (pred & (truth > 0)).sum() / (pred.sum() + truth.sum()) > 0.5


def test_training_resumes_from_last_checkpoint(trained):
    root, _ = trained
    workflow = run_bundle(BUNDLE, "train.json", epochs=EPOCHS + 1, **train_overrides(root))
    assert workflow.trainer.state.epoch == EPOCHS + 1
    assert workflow.trainer.state.iteration == (EPOCHS + 1) * len(workflow.trainer.data_loader)


def test_empty_dataset_dir_is_a_clear_error(tmp_path):
    empty = tmp_path / "real_data"
    empty.mkdir()
    with pytest.raises(Exception) as info:
        run_bundle(
            BUNDLE,
            "train.json",
            **SMALL,
            dataset_dir=str(empty),
            output_dir=str(tmp_path / "runs"),
            ckpt_dir=str(tmp_path / "models"),
            epochs=1,
        )
    chain = [info.value]
    while chain[-1].__cause__ is not None:
        chain.append(chain[-1].__cause__)
    errors = [e for e in chain if isinstance(e, DataFormatError)]
    assert errors and str(empty) in str(errors[0]) and "no Figshare .mat files" in str(errors[0])
    assert not (tmp_path / "models").exists()


def test_paper_augmentation_pipeline_produces_training_pairs(tmp_path):
    """The default train transforms (flips, rotation, noise, elastic; p = 0.5 each) on real config wiring."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(configs(BUNDLE) / "train.json"))
    parser.update(
        {
            "phantom_dir": str(tmp_path / "phantoms"),
            "output_dir": str(tmp_path / "runs"),
            "image_size": 64,
            "cache_rate": 0.0,
            "num_workers": 0,
            "phantom": {"n_patients": 6, "slices_per_patient": 1, "size": 96, "seed": 1},
        }
    )
    dataset = parser.get_parsed_content("train#dataset")
    assert len(dataset) == 4
    for item in (dataset[0], dataset[1], dataset[3]):
        assert item["image"].shape == item["label"].shape == (1, 64, 64)
        assert set(torch.unique(item["label"]).tolist()) <= {0.0, 1.0} and item["label"].sum() > 0
        assert int(item["class"]) in (0, 1, 2)
    torch.manual_seed(0)
    assert not torch.equal(dataset[0]["image"], dataset[0]["image"])  # random augmentation is applied


def test_fast_inference_agrees_with_pytorch_fp32(trained, tmp_path):
    root, _ = trained
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for path in sorted((root / "phantoms").glob("[0-9]*.mat"), key=lambda p: int(p.stem))[:3]:
        shutil.copy(path, inputs / path.name)
    overrides = {**SMALL, "dataset_dir": str(inputs), "ckpt_path": str(root / "models" / "model.pt")}
    assert_fast_paths_agree(fast_path_agreement(BUNDLE, tmp_path, overrides))
