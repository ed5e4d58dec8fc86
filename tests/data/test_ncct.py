"""Non-contrast CT infarcts: image/mask folders, Hounsfield-unit checks, brain windows, splits, phantoms.

The tiny CTs below are written here with nibabel, independently of the adapter and of the phantom writer.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, ScaleIntensityRanged

from common.data.datalist import DATALIST_SECTIONS, build_datalist, prepare_datalist
from common.data.errors import DataFormatError
from common.data.inference_inputs import prepare_inputs
from common.data.ncct import (
    ADAPTER,
    BRAIN_WINDOW_HU,
    NCCT_SHAPE,
    NCCT_SPACING_MM,
    STROKE_WINDOW_HU,
    CheckHounsfieldd,
    check_hounsfield,
)
from common.data.phantoms.ncct import (
    NCCT_PHANTOM_HU,
    make_ncct_phantoms,
    ncct_phantom_affine,
    ncct_phantom_spacing,
)
from common.data.registry import get_adapter, write_phantoms

SHAPE = (8, 9, 4)
AFFINE = np.diag([-0.43, -0.43, 4.5, 1.0])


def save(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data), affine), str(path))
    return path


def ct(shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    """A head CT in HU, in miniature: air in the corners, a ring of bone, brain at 35 HU inside."""
    data = np.full(shape, 35, dtype=np.int16)
    data[[0, -1]] = 1100
    data[:, [0, -1]] = 1100
    data[0, 0] = -1000
    return data


def infarct(seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random(SHAPE) < 0.2).astype(np.uint8)


def write_case(
    root: Path,
    case: str,
    mask: np.ndarray | None | bool = True,
    folder: str = "masks",
    suffix: str = "",
    image: np.ndarray | None = None,
    ext: str = ".nii.gz",
    mask_affine: np.ndarray = AFFINE,
) -> str:
    save(root / "images" / f"{case}{ext}", ct() if image is None else image)
    if mask is not None and mask is not False:
        save(
            root / folder / f"{case}{suffix}{ext}", infarct(len(case)) if mask is True else mask, mask_affine
        )
    return case


# ------------------------------------------------------------------------------------------ layout


@pytest.mark.parametrize(
    ("folder", "suffix", "ext"),
    [
        ("masks", "", ".nii.gz"),
        ("labels", "_seg", ".nii"),
        ("Masks", "_mask", ".nii.gz"),
        ("masks", "_label", ".nii"),
    ],
)
def test_image_and_mask_folders(tmp_path: Path, folder: str, suffix: str, ext: str) -> None:
    for case in ("ct_002", "ct_001", "p_10"):
        write_case(tmp_path, case, folder=folder, suffix=suffix, ext=ext)
    (tmp_path / "images" / "ct_001.json").write_text("{}")  # a dcm2niix sidecar is not a case
    assert ADAPTER.has_data(tmp_path) and ADAPTER.detect_layout(tmp_path) == "folders"
    cases = ADAPTER.find_cases(tmp_path)
    assert cases.items == [
        {
            "case": case,
            "patient": case,
            "layout": "folders",
            "image": f"images/{case}{ext}",
            "label": f"{folder}/{case}{suffix}{ext}",
        }
        for case in ("ct_001", "ct_002", "p_10")
    ]
    for item in cases.items:
        ADAPTER.check_case(item, tmp_path)
    assert get_adapter("ncct") is ADAPTER and ADAPTER.layouts == ("folders",)


def test_nested_folders_and_unlabelled_cases(tmp_path: Path) -> None:
    for case in ("a", "b", "c"):
        write_case(tmp_path / "train", case)
    write_case(tmp_path / "test", "d", mask=None)  # no mask folder: unlabelled
    items = ADAPTER.find_cases(tmp_path).items
    assert [(it["case"], it["image"], it.get("label")) for it in items] == [
        ("a", "train/images/a.nii.gz", "train/masks/a.nii.gz"),
        ("b", "train/images/b.nii.gz", "train/masks/b.nii.gz"),
        ("c", "train/images/c.nii.gz", "train/masks/c.nii.gz"),
        ("d", "test/images/d.nii.gz", None),
    ]
    datalist = build_datalist("ncct", tmp_path, ratios=(1, 1, 1))
    assert [it["case"] for it in datalist["predict"]] == ["d"]
    assert sorted(it["case"] for s in DATALIST_SECTIONS for it in datalist[s]) == ["a", "b", "c"]
    assert datalist["units"] == "HU" and datalist["labels"] == {"0": "background", "1": "lesion"}


def test_no_data(tmp_path: Path) -> None:
    assert not ADAPTER.has_data(tmp_path)
    with pytest.raises(DataFormatError, match="no CT cases found"):
        ADAPTER.find_cases(tmp_path)
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "notes.txt").write_text("no NIfTI here")
    assert not ADAPTER.has_data(tmp_path)
    with pytest.raises(DataFormatError, match="does not exist"):
        ADAPTER.detect_layout(tmp_path / "missing")


# ------------------------------------------------------------------------------------------ bad input


def test_folder_problems_name_the_case(tmp_path: Path) -> None:
    write_case(tmp_path, "ok")
    write_case(tmp_path, "nomask", mask=None)
    save(tmp_path / "masks" / "orphan.nii.gz", infarct(1))
    write_case(tmp_path, "twice")
    save(tmp_path / "masks" / "twice_seg.nii.gz", infarct(2))
    write_case(tmp_path, "both")
    save(tmp_path / "images" / "both.nii", ct())
    with pytest.raises(DataFormatError, match="case both: both both.nii and both.nii.gz"):
        ADAPTER.find_cases(tmp_path)
    cases = ADAPTER.find_cases(tmp_path, on_error="collect")
    assert [it["case"] for it in cases.items] == ["ok"]
    problems = dict(cases.problems)
    assert sorted(problems) == ["both", "nomask", "orphan", "twice"]
    assert (
        "case nomask: no mask (nomask.nii.gz, or with a suffix ['_mask', '_seg', '_label'])"
        in problems["nomask"]
    )
    assert problems["orphan"].endswith("orphan.nii.gz: mask without an image in images/")
    assert "case twice: several masks (twice.nii.gz and twice_seg.nii.gz)" in problems["twice"]
    (tmp_path / "labels").mkdir()
    with pytest.raises(DataFormatError, match="both labels and masks beside images/; keep one mask folder"):
        ADAPTER.find_cases(tmp_path)
    write_case(tmp_path / "dup" / "a", "ok")
    write_case(tmp_path / "dup" / "b", "ok", mask=None)
    with pytest.raises(DataFormatError, match="duplicate case ok"):
        ADAPTER.find_cases(tmp_path / "dup")


def _nan() -> np.ndarray:
    data = ct().astype(np.float32)
    data[2, 2, 2] = np.nan
    return data


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image": ct((8, 9, 4, 2))}, r"ct_007.nii.gz: CT is 4D with shape \(8, 9, 4, 2\); expected 3D"),
        ({"image": ct((8, 9))}, "CT is 2D"),
        ({"mask": np.zeros((8, 9, 5), dtype=np.uint8)}, r"mask has shape \(8, 9, 5\) but CT has \(8, 9, 4\)"),
        ({"mask_affine": np.diag([-0.43, -0.43, 5.0, 1.0])}, "mask affine differs from the CT affine"),
        ({"image": _nan()}, "ct_007.nii.gz: 1 NaN/inf voxels"),
        ({"image": np.linspace(0, 1, 288, dtype=np.float32).reshape(SHAPE)}, "look normalised"),
        (
            {"image": np.arange(288, dtype=np.float32).reshape(SHAPE) % 256},
            r"windowed or rescaled \(8-bit\?\)",
        ),
        ({"image": (ct() + 1024).astype(np.uint16)}, r"without the rescale intercept \(usually -1024\)"),
        ({"image": (ct() / 400.0).astype(np.float32)}, "neither air nor bone"),
        ({"mask": np.full(SHAPE, 2, dtype=np.uint8)}, "ct_007.nii.gz: .*2"),
    ],
)
def test_bad_cases_name_the_case(tmp_path: Path, kwargs: dict, message: str) -> None:
    write_case(tmp_path, "ct_007", **kwargs)
    (item,) = ADAPTER.find_cases(tmp_path).items
    with pytest.raises(DataFormatError, match=message) as err:
        ADAPTER.check_case(item, tmp_path)
    assert "ct_007" in str(err.value)


def test_inference_inputs_skip_and_list_bad_cases(tmp_path: Path) -> None:
    write_case(tmp_path, "good", mask=None)
    write_case(tmp_path, "scaled", mask=None, image=(ct() + 1024).astype(np.int16))
    usable = prepare_inputs("ncct", tmp_path, tmp_path / "out")
    assert [it["case"] for it in usable] == ["good"] and Path(usable[0]["image"]).is_absolute()
    with open(tmp_path / "out" / "failed_inputs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["input"] for row in rows] == ["scaled"] and "not in Hounsfield units" in rows[0]["problem"]


# ------------------------------------------------------------------------------------------ Hounsfield units


def test_check_hounsfield() -> None:
    check_hounsfield(ct(), "a.nii.gz")
    skull_stripped = np.where(ct() > 500, -1024, ct()).astype(np.int16)  # background left at air
    check_hounsfield(skull_stripped, "a.nii.gz")
    check_hounsfield(torch.as_tensor(ct()), "a.nii.gz")  # a tensor
    cases = {
        "look normalised": np.linspace(0.0, 1.0, 10),
        "windowed or rescaled": np.arange(256.0),
        "rescale intercept": np.array([0.0, 1059.0, 3000.0]),
        "neither air nor bone": np.array([-3.0, 0.5, 12.0]),
        "NaN/inf voxels": np.array([np.nan, -1000.0, 1000.0]),
        "holds no numeric voxels": np.array([]),
    }
    for message, data in cases.items():
        with pytest.raises(DataFormatError, match=message) as err:
            check_hounsfield(data, "/data/images/p1.nii.gz")
        assert str(err.value).startswith("/data/images/p1.nii.gz: ")
    with pytest.raises(
        DataFormatError, match=r"^scan.nii: case p7: CT is not in Hounsfield units: values 0..1"
    ):
        check_hounsfield(np.linspace(0.0, 1.0, 10), "scan.nii", case="p7")


def test_check_hounsfieldd_then_the_brain_window(tmp_path: Path) -> None:
    write_case(tmp_path, "hu", mask=None)
    write_case(tmp_path, "unit", mask=None, image=np.linspace(0, 1, 288, dtype=np.float32).reshape(SHAPE))
    window = {
        "a_min": BRAIN_WINDOW_HU[0],
        "a_max": BRAIN_WINDOW_HU[1],
        "b_min": 0.0,
        "b_max": 1.0,
        "clip": True,
    }
    load = Compose([LoadImaged("image"), EnsureChannelFirstd("image")])
    pipeline = Compose([load, CheckHounsfieldd("image"), ScaleIntensityRanged("image", **window)])
    out = pipeline({"image": str(tmp_path / "images" / "hu.nii.gz"), "case": "hu"})["image"]
    assert out.shape == (1, *SHAPE)
    assert float(out.min()) == 0.0 and float(out.max()) == 1.0  # air and bone clipped
    np.testing.assert_allclose(float(out[0, 3, 3, 2]), 35 / 80)  # brain at 35 HU
    loaded = load({"image": str(tmp_path / "images" / "unit.nii.gz"), "case": "zz9"})
    with pytest.raises(DataFormatError, match=r"images/unit.nii.gz: case zz9: CT is not in Hounsfield units"):
        CheckHounsfieldd("image")(loaded)
    assert BRAIN_WINDOW_HU == (0.0, 80.0) and STROKE_WINDOW_HU == (20.0, 60.0)
    assert sum(STROKE_WINDOW_HU) / 2 == sum(BRAIN_WINDOW_HU) / 2 == 40.0  # both centred at level 40 HU


# ------------------------------------------------------------------------------------------ phantoms

PHANTOM_SHAPE = (96, 96, 12)


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six CTs written through ``prepare_datalist``."""
    root = tmp_path_factory.mktemp("ncct_phantoms")
    prepare_datalist(
        "ncct",
        root,
        root / "datalist.json",
        seed=2,
        generate_phantoms=True,
        phantom_kwargs={"shape": PHANTOM_SHAPE, "seed": 3},
    )
    return root


def _load(root: Path, rel: str | Path) -> np.ndarray:
    return np.asarray(nib.load(str(root / rel)).dataobj)


def test_phantoms_are_what_the_adapter_reads(phantoms: Path) -> None:
    datalist = json.loads((phantoms / "datalist.json").read_text())
    assert [len(datalist[s]) for s in DATALIST_SECTIONS] == [4, 1, 1] and datalist["predict"] == []
    assert datalist == build_datalist("ncct", phantoms, seed=2)  # deterministic, by patient
    items = ADAPTER.find_cases(phantoms).items
    assert [it["case"] for it in items] == [f"ncct_{i:03d}" for i in range(1, 7)]
    spacing = ncct_phantom_spacing(PHANTOM_SHAPE)
    for item in items:
        ADAPTER.check_case(item, phantoms)
        image = nib.load(str(phantoms / item["image"]))
        assert image.shape == PHANTOM_SHAPE and image.get_data_dtype() == np.int16
        np.testing.assert_allclose(image.affine, ncct_phantom_affine(PHANTOM_SHAPE))
        np.testing.assert_allclose(image.header.get_zooms(), spacing, rtol=1e-6)
        mask = nib.load(str(phantoms / item["label"]))
        assert mask.get_data_dtype() == np.uint8 and set(np.unique(mask.dataobj)) == {0, 1}
    # the default grid: the paper's 512 x 512 x 28 at 0.43 x 0.43 x 4.5 mm (in plane 220 mm), centred
    assert NCCT_SHAPE == (512, 512, 28) and ncct_phantom_spacing(NCCT_SHAPE) == NCCT_SPACING_MM
    affine = ncct_phantom_affine(NCCT_SHAPE)
    np.testing.assert_allclose(np.diag(affine)[:3], (-0.43, -0.43, 4.5))
    np.testing.assert_allclose(affine @ [255.5, 255.5, 13.5, 1], [0, 0, 0, 1], atol=1e-9)
    explicit = ncct_phantom_affine((64, 64, 10), spacing=(0.5, 0.5, 5.0))
    np.testing.assert_allclose(np.diag(explicit)[:3], (-0.5, -0.5, 5.0))


def test_phantom_hounsfield_units(phantoms: Path) -> None:
    infarct_values = []
    for item in ADAPTER.find_cases(phantoms).items:
        image = _load(phantoms, item["image"]).astype(np.float64)
        mask = _load(phantoms, item["label"]).astype(bool)
        assert -1100 < image[0, 0, 0] < -900 and image.max() > 1000  # air outside the head; the skull
        row = image[:, PHANTOM_SHAPE[1] // 2, PHANTOM_SHAPE[2] // 2]  # a line through the head's middle
        bone = np.flatnonzero(row > 600)
        assert bone.size and bone.min() < 0.25 * row.size and bone.max() > 0.75 * row.size  # a skull ring
        assert row[0] < -900 and (row[: bone.min() - 2] < 100).all()  # air, then the scalp up to the skull
        infarct_values.append(image[mask])
        if mask.sum() >= 500:  # a territory; the same place in the other hemisphere: normal brain
            brain = np.median(image[mask[::-1] & ~mask])
            assert 25 <= brain <= 45 and np.median(image[mask]) < brain - 5  # the infarct is hypodense
    assert 12 <= np.median(np.concatenate(infarct_values)) <= 28
    assert NCCT_PHANTOM_HU["air"] == -1000 and NCCT_PHANTOM_HU["bone"] >= 1000
    assert (
        5 <= NCCT_PHANTOM_HU["csf"] <= 15 and 30 <= (NCCT_PHANTOM_HU["gm"] + NCCT_PHANTOM_HU["wm"]) / 2 <= 40
    )
    assert 15 <= NCCT_PHANTOM_HU["infarct"] <= 25


def test_phantom_options_and_determinism(tmp_path: Path, phantoms: Path) -> None:
    files = write_phantoms(
        "ncct",
        tmp_path / "a",
        n_cases=2,
        shape=PHANTOM_SHAPE,
        seed=3,
        mask_folder="labels",
        mask_suffix="_seg",
    )
    assert [f.relative_to(tmp_path / "a").as_posix() for f in files] == [
        "images/ncct_001.nii.gz",
        "images/ncct_002.nii.gz",
    ]
    items = ADAPTER.find_cases(tmp_path / "a").items
    assert items[1]["label"] == "labels/ncct_002_seg.nii.gz"
    for name in ("image", "label"):
        np.testing.assert_array_equal(
            _load(tmp_path / "a", items[1][name]),
            _load(phantoms, f"{'images' if name == 'image' else 'masks'}/ncct_002.nii.gz"),
        )
    make_ncct_phantoms(tmp_path / "b", n_cases=1, shape=PHANTOM_SHAPE, seed=4, with_masks=False)
    assert not (tmp_path / "b" / "masks").exists()
    assert build_datalist("ncct", tmp_path / "b")["predict"][0]["case"] == "ncct_001"
    assert not np.array_equal(
        _load(tmp_path / "b", "images/ncct_001.nii.gz"), _load(phantoms, "images/ncct_001.nii.gz")
    )
    make_ncct_phantoms(tmp_path / "c", n_cases=1, shape=(48, 48, 8), spacing=(0.43, 0.43, 4.5))
    assert nib.load(str(tmp_path / "c" / "images" / "ncct_001.nii.gz")).header.get_zooms() == pytest.approx(
        (0.43, 0.43, 4.5)
    )
    for bad in (
        {"shape": (16, 16, 16)},
        {"mask_folder": "segs"},
        {"mask_suffix": "_x"},
        {"spacing": (1.0, 0.0, 1.0)},
    ):
        with pytest.raises(ValueError):
            make_ncct_phantoms(tmp_path / "d", **{"shape": (32, 32, 8), **bad})
