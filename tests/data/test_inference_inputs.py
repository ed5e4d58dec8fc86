"""Inference inputs of any adapter: bad ones logged, listed in failed_inputs.csv and skipped."""

from __future__ import annotations

import csv
import logging
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from common.data.errors import DataFormatError
from common.data.inference_inputs import prepare_inputs
from common.data.phantoms.figshare import make_figshare_phantoms
from common.data.slices import check_slice_file, find_slice_files, output_stem
from tests.data.cases import MODALITIES, SHAPE, write_case


def failures(out: Path) -> dict[str, str]:
    """``failed_inputs.csv`` as {input: problem}."""
    with open(out / "failed_inputs.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and list(rows[0]) == ["input", "problem"]
    return {row["input"]: row["problem"] for row in rows}


@pytest.fixture(scope="module")
def figshare_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return make_figshare_phantoms(tmp_path_factory.mktemp("fs"), n_patients=1, slices_per_patient=3, size=32)


# ------------------------------------------------------------------------------------------ 2D slices


def test_slices_skip_and_report_bad_files(
    tmp_path: Path, figshare_files: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    inputs, out = tmp_path / "in", tmp_path / "out"
    (inputs / "sub").mkdir(parents=True)
    shutil.copy(figshare_files[0], inputs / "1.mat")
    shutil.copy(figshare_files[1], inputs / "sub" / "2.mat")
    shutil.copy(figshare_files[0].parent / "cvind.mat", inputs / "cvind.mat")  # not an image
    (inputs / "notes.txt").write_text("not an image either")
    image = np.arange(32 * 24, dtype=np.float32).reshape(32, 24)
    nib.save(nib.Nifti1Image(image[:, :, None], np.eye(4)), inputs / "slice.nii.gz")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(inputs / "slice.png")  # same stem as slice.nii.gz
    Image.fromarray((image / image.max() * 255).astype(np.uint8)).convert("RGBA").save(inputs / "rgba.png")
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 4), np.float32), np.eye(4)), inputs / "volume.nii.gz")
    nan = image.copy()
    nan[3, 4] = np.nan
    nib.save(nib.Nifti1Image(nan, np.eye(4)), inputs / "nan.nii")
    Image.fromarray(np.zeros((4, 30), np.uint8)).save(inputs / "tiny.tif")
    (inputs / "broken.mat").write_bytes(figshare_files[2].read_bytes()[:2000])
    (inputs / "fake.jpg").write_bytes(b"not a jpeg")

    with caplog.at_level(logging.ERROR, logger="common.data.inference_inputs"):
        items = prepare_inputs("slices", inputs, out)

    assert items == [
        {"image": str(inputs / name)} for name in ("1.mat", "rgba.png", "slice.nii.gz", "sub/2.mat")
    ]
    failed = failures(out)
    assert set(failed) == {str(inputs / n) for n in ("broken.mat", "fake.jpg", "nan.nii", "slice.png")} | {
        str(inputs / n) for n in ("tiny.tif", "volume.nii.gz")
    }
    assert "corrupt or truncated" in failed[str(inputs / "broken.mat")]
    assert "cannot be read as an image" in failed[str(inputs / "fake.jpg")]
    assert failed[str(inputs / "nan.nii")] == "image has 1 NaN or infinite pixels"
    assert failed[str(inputs / "slice.png")].startswith(
        f"has the same name stem as {inputs / 'slice.nii.gz'}"
    )
    assert "too small" in failed[str(inputs / "tiny.tif")]
    assert "expected a 2D image, got shape (16, 16, 4)" in failed[str(inputs / "volume.nii.gz")]
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 6 and all("\n" not in m and m.startswith("skipping ") for m in logged)
    assert any(str(inputs / "volume.nii.gz") in m and "expected a 2D image" in m for m in logged)


def test_a_bad_file_does_not_take_the_stem(tmp_path: Path, figshare_files: list[Path]) -> None:
    """``a.mat`` is broken, so ``a.png`` (same stem) is used rather than reported."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.mat").write_bytes(b"garbage")
    Image.fromarray(np.full((16, 16), 7, np.uint8)).save(tmp_path / "in" / "a.png")
    items = prepare_inputs("slices", tmp_path / "in", tmp_path / "out")
    assert items == [{"image": str(tmp_path / "in" / "a.png")}]
    assert list(failures(tmp_path / "out")) == [str(tmp_path / "in" / "a.mat")]


def test_stale_report_removed_and_no_usable_input(tmp_path: Path, figshare_files: list[Path]) -> None:
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    out.mkdir()
    (out / "failed_inputs.csv").write_text("input,problem\nold,stale\n")
    shutil.copy(figshare_files[0], inputs / "1.mat")
    assert prepare_inputs("slices", inputs, out) == [{"image": str(inputs / "1.mat")}]
    assert not (out / "failed_inputs.csv").exists()  # all usable: no stale report
    (inputs / "1.mat").write_bytes(b"garbage")
    with pytest.raises(DataFormatError, match=rf"^{inputs}: no usable 2D slice input among 1 found"):
        prepare_inputs("slices", inputs, out)
    assert list(failures(out)) == [str(inputs / "1.mat")]
    with pytest.raises(DataFormatError, match=r"empty: no image file \(\.mat, \.nii"):
        prepare_inputs("slices", tmp_path / "empty", out)


def test_slices_phantoms_fill_an_empty_folder(tmp_path: Path) -> None:
    kwargs = {"n_patients": 1, "slices_per_patient": 2, "size": 32}
    items = prepare_inputs(
        "slices", tmp_path / "in", tmp_path / "out", generate_phantoms=True, phantom_kwargs=kwargs
    )
    assert [Path(it["image"]).name for it in items] == ["1.mat", "2.mat"]  # cvind.mat is not an input
    assert not (tmp_path / "out" / "failed_inputs.csv").exists()


def test_slice_helpers(tmp_path: Path) -> None:
    assert (
        output_stem("/a/b.nii.gz") == "b" and output_stem("c.tif.png") == "c.tif" and output_stem("d") == "d"
    )
    (tmp_path / "x" / "y").mkdir(parents=True)
    for rel in ("x/y/a.png", "b.PNG", "x/c.nii"):
        (tmp_path / rel).touch()
    assert [p.relative_to(tmp_path).as_posix() for p in find_slice_files(tmp_path)] == [
        "b.PNG",
        "x/c.nii",
        "x/y/a.png",
    ]
    with pytest.raises(DataFormatError, match="missing.png: file does not exist"):
        check_slice_file(tmp_path / "missing.png")
    with pytest.raises(DataFormatError, match="input folder does not exist"):
        find_slice_files(tmp_path / "nowhere")


# ------------------------------------------------------------------------------------------ BraTS


def test_brats_goes_on_past_bad_cases(tmp_path: Path) -> None:
    inputs, out = tmp_path / "in", tmp_path / "out"
    good = write_case(inputs, "brats2020", 1)
    missing = write_case(inputs, "brats2020", 2, skip="flair")
    inf = np.ones(SHAPE, np.float32)
    inf[0, 0, 0] = np.inf
    broken = write_case(inputs, "brats2020", 3, images={"t2": inf})
    unlabelled = write_case(inputs, "brats2020", 4, seg=False)
    items = prepare_inputs("brats", inputs, out)
    assert [it["case"] for it in items] == [good, unlabelled]
    assert items[0]["layout"] == "brats2020"
    assert items[0]["image"] == [str(inputs / good / f"{good}_{m}.nii.gz") for m in MODALITIES]
    assert items[0]["label"] == str(inputs / good / f"{good}_seg.nii.gz") and "label" not in items[1]
    failed = failures(out)
    assert list(failed) == [missing, broken]  # named by case
    assert "missing modality flair" in failed[missing]
    assert (
        failed[broken].startswith(str(inputs / broken / f"{broken}_t2.nii.gz"))
        and "NaN/inf" in failed[broken]
    )


def test_brats_phantoms_and_no_data(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="no BraTS cases found"):
        prepare_inputs("brats", tmp_path / "empty", tmp_path / "out")
    kwargs = {"n_cases": 2, "shape": (24, 24, 24), "layout": "msd", "with_labels": False}
    items = prepare_inputs(
        "brats", tmp_path / "in", tmp_path / "out", generate_phantoms=True, phantom_kwargs=kwargs
    )
    assert [(it["case"], it["layout"]) for it in items] == [("BRATS_001", "msd"), ("BRATS_002", "msd")]
    assert items[0]["image"] == str(tmp_path / "in" / "imagesTs" / "BRATS_001.nii.gz")
