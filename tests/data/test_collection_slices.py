"""Slices of 3D tumour collections (BraTS GLI/MEN/MET, MSD) and Figshare slices, for presence and source.

The tiny cases below are written here with nibabel and h5py (``tests/data/cases.py``), independently of the
adapter and of the phantom writer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

from common.data.collection_slices import (
    ADAPTER,
    CACHE_FOLDER,
    COLLECTION_TYPES,
    CollectionSlicesAdapter,
    brats_patient,
)
from common.data.datalist import DATALIST_SECTIONS, build_datalist, load_datalist_section, prepare_datalist
from common.data.errors import DataFormatError
from common.data.figshare_mat import read_figshare_mat
from common.data.image_classes import ToGreySliced
from common.data.registry import get_adapter
from tests.data.cases import AFFINE, matlab_slice, save_nifti, write_case, write_matlab_v73

SHAPE = (12, 12, 8)
SOURCE = CollectionSlicesAdapter(task="source")
LOAD = Compose(
    [LoadImaged(keys="image", image_only=True), EnsureChannelFirstd(keys="image"), ToGreySliced("image")]
)


def t1c_volume(seed: int = 0) -> np.ndarray:
    """Skull-stripped: 100 brain pixels in slices 1-6, a few in slices 0 and 7, zero elsewhere."""
    rng = np.random.default_rng(seed)
    volume = np.zeros(SHAPE, dtype=np.int16)
    volume[1:11, 1:11, 1:7] = rng.integers(100, 1000, (10, 10, 6))
    volume[5:7, 5:7, 0] = 300
    volume[4:7, 4:7, 7] = 300
    return volume


def segmentation(et: int = 3) -> np.ndarray:
    """Slices: 0 tiny brain, 1 none, 2 oedema only, 3 core 30 px, 4 core 10 px, 5 ET 40 px, 6 none, 7 tiny."""
    seg = np.zeros(SHAPE, dtype=np.uint8)
    seg[2:7, 2:4, 2] = 2  # 10 px of oedema
    seg[2:7, 2:6, 3] = 1  # 20 px NCR ...
    seg[2:7, 6:8, 3] = et  # ... + 10 px ET = 30 px core
    seg[2:4, 2:7, 4] = et  # 10 px
    seg[2:10, 2:7, 5] = et  # 40 px
    return seg


def write_2023(root: Path, case: str, seg: np.ndarray | None = None, t1c: np.ndarray | None = None) -> Path:
    """A BraTS 2023 case folder ``case`` (``BraTS-MET-00001-000``) in its collection's release folder."""
    collection = case.split("-")[1]
    folder = root / f"ASNR-MICCAI-BraTS2023-{collection}-Challenge-TrainingData" / case
    volume = t1c_volume() if t1c is None else t1c
    for code, scale in (("t2f", 2), ("t1n", 3), ("t1c", 1), ("t2w", 4)):
        save_nifti(folder / f"{case}-{code}.nii.gz", (volume * scale).astype(np.int16))
    if seg is not False:
        save_nifti(folder / f"{case}-seg.nii.gz", segmentation() if seg is None else seg)
    return folder


def summary(items: list[dict]) -> list[tuple]:
    return [(it["case"], it["label"], it["category"]) for it in items]


# ------------------------------------------------------------------------------------------ slices


def test_slices_are_labelled_from_the_segmentation(tmp_path: Path) -> None:
    write_2023(tmp_path, "BraTS-MET-00001-000")
    assert ADAPTER.has_data(tmp_path) and ADAPTER.detect_layout(tmp_path) == "brats2023"
    cases = ADAPTER.find_cases(tmp_path)
    assert summary(cases.items) == [
        ("BraTS-MET-00001-000_z001", 0, "absent"),
        ("BraTS-MET-00001-000_z003", 1, "secondary"),  # 30 mm² of core; z2 oedema only, z4 10 mm²: left out
        ("BraTS-MET-00001-000_z005", 1, "secondary"),
        ("BraTS-MET-00001-000_z006", 0, "absent"),  # z0 and z7 hold too little brain
    ]
    assert cases.items[1] == {
        "image": f"{CACHE_FOLDER}/t1ce/BraTS-MET-00001-000.slices/z003.nii.gz",
        "label": 1,
        "patient": "BraTS-MET-00001",
        "case": "BraTS-MET-00001-000_z003",
        "tumour_type": "metastasis",
        "category": "secondary",
        "source": "ASNR-MICCAI-BraTS2023-MET-Challenge-TrainingData/BraTS-MET-00001-000/"
        "BraTS-MET-00001-000-t1c.nii.gz",
        "slice": 3,
        "layout": "brats2023",
        "tumour_mm2": 30.0,
    }
    assert summary(SOURCE.find_cases(tmp_path).items) == [
        ("BraTS-MET-00001-000_z003", 1, "secondary"),
        ("BraTS-MET-00001-000_z005", 1, "secondary"),
    ]
    options = {"min_tumour_mm2": 5, "min_brain_fraction": 0.01, "region": "et", "slice_step": 1}
    assert [it["slice"] for it in CollectionSlicesAdapter(**options).find_cases(tmp_path).items] == [
        0,
        1,
        3,
        4,
        5,
        6,
        7,
    ]
    wt = CollectionSlicesAdapter(region="wt", min_tumour_mm2=10).find_cases(tmp_path).items
    assert [(it["slice"], it["label"]) for it in wt] == [(1, 0), (2, 1), (3, 1), (4, 1), (5, 1), (6, 0)]
    assert [it["slice"] for it in CollectionSlicesAdapter(slice_step=3).find_cases(tmp_path).items] == [3, 6]


def test_collections_map_to_tumour_types_and_sources(tmp_path: Path) -> None:
    for case in ("BraTS-GLI-00000-000", "BraTS-MEN-00002-000", "BraTS-MET-00001-000", "BraTS-SSA-00003-000"):
        write_2023(tmp_path, case)
    items = SOURCE.find_cases(tmp_path).items
    types = {it["patient"]: (it["tumour_type"], it["label"]) for it in items}
    assert types == {
        "BraTS-GLI-00000": ("glioma", 0),
        "BraTS-MEN-00002": ("meningioma", 0),
        "BraTS-MET-00001": ("metastasis", 1),
        "BraTS-SSA-00003": ("glioma", 0),
    }
    assert COLLECTION_TYPES["MET"] == "metastasis"
    header = build_datalist(SOURCE, tmp_path, ratios=(1, 0, 0))
    assert header["labels"] == {"0": "primary", "1": "secondary"} and header["modality"] == "t1ce"


def test_cached_slices_are_the_volume_slices(tmp_path: Path) -> None:
    write_2023(tmp_path, "BraTS-GLI-00000-000")
    volume = t1c_volume()
    for item in ADAPTER.find_cases(tmp_path).items:
        ADAPTER.check_case(item, tmp_path)
        cached = nib.load(tmp_path / item["image"])
        k = item["slice"]
        np.testing.assert_array_equal(np.asarray(cached.dataobj), volume[:, :, k])
        assert cached.get_data_dtype() == np.int16
        np.testing.assert_allclose(
            cached.affine, AFFINE @ np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, k], [0, 0, 0, 1]])
        )
        loaded = LOAD({"image": str(tmp_path / item["image"])})["image"]  # the image-class pipeline
        assert tuple(loaded.shape) == (1, 12, 12)
        np.testing.assert_array_equal(loaded[0].numpy(), volume[:, :, k].astype(np.float32))
    flair = CollectionSlicesAdapter(modality="t2f").find_cases(tmp_path).items
    assert flair[0]["image"].startswith(f"{CACHE_FOLDER}/flair/") and flair[0]["source"].endswith(
        "-t2f.nii.gz"
    )
    np.testing.assert_array_equal(
        np.asarray(nib.load(tmp_path / flair[0]["image"]).dataobj), 2 * volume[:, :, 1]
    )


def test_the_cache_is_reused_and_refreshed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_2023(tmp_path, "BraTS-GLI-00000-000")
    first = ADAPTER.find_cases(tmp_path).items
    original = CollectionSlicesAdapter._read_volume

    def refuse(*args, **kwargs):
        raise AssertionError("a volume was read although the cache holds its slices")

    monkeypatch.setattr(CollectionSlicesAdapter, "_read_volume", staticmethod(refuse))
    assert ADAPTER.find_cases(tmp_path).items == first  # tables and slices from the cache
    monkeypatch.setattr(CollectionSlicesAdapter, "_read_volume", staticmethod(original))
    (tmp_path / first[0]["image"]).unlink()
    ADAPTER.find_cases(tmp_path)  # a missing slice is written again
    assert (tmp_path / first[0]["image"]).is_file()
    t1c = folder / "BraTS-GLI-00000-000-t1c.nii.gz"
    save_nifti(t1c, t1c_volume(seed=1))
    later = t1c.stat().st_mtime_ns + 10**9
    os.utime(t1c, ns=(later, later))
    ADAPTER.find_cases(tmp_path)  # the volume changed: table and slices computed again
    np.testing.assert_array_equal(
        np.asarray(nib.load(tmp_path / first[1]["image"]).dataobj), t1c_volume(1)[:, :, 3]
    )


def test_cache_dir_outside_the_data_set(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_2023(data, "BraTS-MET-00001-000")
    adapter = CollectionSlicesAdapter(cache_dir=tmp_path / "cache")
    path = prepare_datalist(adapter, data, tmp_path / "dl.json", ratios=(1, 0, 0))
    training = load_datalist_section(path, "training", data)
    assert [it["label"] for it in training] == [0, 1, 1, 0]  # class indices kept as they are
    assert training[0]["image"] == str(
        tmp_path / "cache" / "t1ce" / "BraTS-MET-00001-000.slices" / "z001.nii.gz"
    )
    assert not (data / CACHE_FOLDER).exists()
    with pytest.raises(DataFormatError, match="cannot write the slice cache.*pass cache_dir"):
        (tmp_path / "file").write_text("")
        CollectionSlicesAdapter(cache_dir=tmp_path / "file" / "cache").find_cases(data)


# ------------------------------------------------------------------------------------------ patients, splits


def test_time_points_are_one_patient_and_ten_folds_keep_patients_apart(tmp_path: Path) -> None:
    assert brats_patient("BraTS-MET-00001-002", "brats2023") == "BraTS-MET-00001"
    assert brats_patient("BraTS2021_00001", "brats2021") == "BraTS2021_00001"
    for i in range(4):
        for collection in ("GLI", "MEN", "MET"):
            write_2023(tmp_path, f"BraTS-{collection}-{i:05d}-000")
    write_2023(tmp_path, "BraTS-MET-00000-001")  # a second time point of BraTS-MET-00000
    items = ADAPTER.find_cases(tmp_path).items
    assert len({it["patient"] for it in items}) == 12 and len(items) == 13 * 4
    tested: dict[str, int] = {}
    for fold in range(10):
        dl = build_datalist(ADAPTER, tmp_path, fold=fold, n_folds=10, seed=1)
        patients = [{it["patient"] for it in dl[s]} for s in DATALIST_SECTIONS]
        assert not (patients[0] & patients[1] or patients[0] & patients[2] or patients[1] & patients[2])
        assert sum(len(dl[s]) for s in DATALIST_SECTIONS) == 52
        for p in patients[2]:
            tested[p] = tested.get(p, 0) + 1
    assert len(tested) == 12 and set(tested.values()) == {1}
    assert sum(it["patient"] == "BraTS-MET-00000" for it in items) == 8


# ------------------------------------------------------------------------------------------ bad cases


def test_unknown_collection_names_it(tmp_path: Path) -> None:
    write_2023(tmp_path, "BraTS-XYZ-00001-000")
    with pytest.raises(DataFormatError, match=r"BraTS-XYZ-00001-000.*unknown BraTS collection 'XYZ'.*'MET'"):
        ADAPTER.find_cases(tmp_path)
    adapter = CollectionSlicesAdapter(collection_types={**COLLECTION_TYPES, "XYZ": "acoustic_neuroma"})
    assert {it["tumour_type"] for it in adapter.find_cases(tmp_path).items} == {"acoustic_neuroma"}
    adapter = CollectionSlicesAdapter(collection_types={**COLLECTION_TYPES, "XYZ": "ependymoma"})
    with pytest.raises(DataFormatError, match="unknown tumour class 'ependymoma'"):
        adapter.find_cases(tmp_path)


@pytest.mark.parametrize(
    ("seg", "problem"),
    [
        (False, r"BraTS-MET-00002-000: no segmentation: the slices of this case cannot be labelled"),
        (np.zeros((12, 12, 7), np.uint8), r"BraTS-MET-00002-000-seg\.nii\.gz: segmentation has shape"),
        (segmentation(et=4), r"BraTS-MET-00002-000-seg\.nii\.gz.*outside the brats2023 label set"),
    ],
)
def test_bad_cases(tmp_path: Path, seg, problem: str) -> None:
    write_2023(tmp_path, "BraTS-MET-00001-000")
    write_2023(tmp_path, "BraTS-MET-00002-000", seg=seg)
    with pytest.raises(DataFormatError, match=problem):
        ADAPTER.find_cases(tmp_path)
    collected = ADAPTER.find_cases(tmp_path, on_error="collect")
    assert [c for c, _ in collected.problems] == ["BraTS-MET-00002-000"] and len(collected.items) == 4


def test_no_slice_for_the_task_and_no_data(tmp_path: Path) -> None:
    write_2023(tmp_path, "BraTS-GLI-00000-000", seg=np.zeros(SHAPE, np.uint8))
    assert len(ADAPTER.find_cases(tmp_path).items) == 6  # tumour-free slices only
    with pytest.raises(DataFormatError, match="no slice for the source task"):
        SOURCE.find_cases(tmp_path)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("no data here")
    assert not ADAPTER.has_data(tmp_path / "other")
    with pytest.raises(DataFormatError, match="no BraTS cases .* and no Figshare"):
        ADAPTER.find_cases(tmp_path / "other")


def test_parameters_are_checked() -> None:
    for options in ({"modality": "dwi"}, {"region": "ed"}, {"min_tumour_mm2": 0}, {"slice_step": 0}):
        with pytest.raises(ValueError):
            CollectionSlicesAdapter(**options)
    assert CollectionSlicesAdapter(modality="T1C").modality == "t1ce"


# ------------------------------------------------------------------------------------------ other layouts


def test_msd_and_brats2021_cases_are_gliomas(tmp_path: Path) -> None:
    canonical = segmentation()
    msd_seg = np.array([0, 2, 1, 3], np.uint8)[canonical]  # MSD: 2 NCR, 1 ED
    stacked = np.stack([t1c_volume() * (m + 1) for m in range(4)], axis=-1).astype(np.float32)
    write_case(tmp_path / "msd", "msd", 1, seg=msd_seg, images={"msd": stacked})
    items = ADAPTER.find_cases(tmp_path / "msd").items
    assert summary(items) == [
        ("BRATS_001_z001", 0, "absent"),
        ("BRATS_001_z003", 1, "primary"),
        ("BRATS_001_z005", 1, "primary"),
        ("BRATS_001_z006", 0, "absent"),
    ]
    assert items[1]["tumour_type"] == "glioma" and items[1]["patient"] == "BRATS_001"
    np.testing.assert_array_equal(  # channel 2 of the 4D image: T1gd
        np.asarray(nib.load(tmp_path / "msd" / items[1]["image"]).dataobj), 3 * t1c_volume()[:, :, 3]
    )
    seg2021 = np.where(canonical == 3, 4, canonical).astype(np.uint8)
    write_case(
        tmp_path / "b21", "brats2021", 7, seg=seg2021, images={"t1ce": t1c_volume().astype(np.float32)}
    )
    assert summary(ADAPTER.find_cases(tmp_path / "b21").items)[1] == ("BraTS2021_00007_z003", 1, "primary")


def test_figshare_slices_are_primary_tumours(tmp_path: Path) -> None:
    write_2023(tmp_path, "BraTS-MET-00001-000")
    image, mask = matlab_slice(rows=10, cols=12)
    (tmp_path / "figshare").mkdir()
    write_matlab_v73(tmp_path / "figshare" / "1.mat", image, mask, label=2.0, pid="MR1")
    write_matlab_v73(tmp_path / "figshare" / "2.mat", image, mask, label=3.0, pid="MR2")
    write_matlab_v73(tmp_path / "figshare" / "cvind.mat", np.zeros((1, 1)), np.zeros((1, 1)))  # not a slice
    assert ADAPTER.detect_layout(tmp_path) == "brats2023+figshare"
    items = SOURCE.find_cases(tmp_path).items
    assert [(it["case"], it["patient"], it["tumour_type"], it["label"]) for it in items] == [
        ("BraTS-MET-00001-000_z003", "BraTS-MET-00001", "metastasis", 1),
        ("BraTS-MET-00001-000_z005", "BraTS-MET-00001", "metastasis", 1),
        ("figshare-figshare__1", "figshare-MR1", "glioma", 0),
        ("figshare-figshare__2", "figshare-MR2", "pituitary", 0),
    ]
    assert items[2]["image"] == f"{CACHE_FOLDER}/figshare/figshare__1.nii.gz"
    np.testing.assert_array_equal(
        np.asarray(nib.load(tmp_path / items[2]["image"]).dataobj),
        read_figshare_mat(tmp_path / "figshare/1.mat").image,
    )
    assert [it["label"] for it in ADAPTER.find_cases(tmp_path).items][-2:] == [1, 1]  # present
    assert len(CollectionSlicesAdapter(figshare=False).find_cases(tmp_path).items) == 4
    assert len(CollectionSlicesAdapter(modality="flair").find_cases(tmp_path).items) == 4  # Figshare is T1-CE
    only = tmp_path / "figshare"
    assert ADAPTER.detect_layout(only) == "figshare" and len(ADAPTER.find_cases(only).items) == 2


def test_registered_with_phantoms(tmp_path: Path) -> None:
    assert get_adapter("collection_slices") is ADAPTER
    path = prepare_datalist(
        "collection_slices",
        tmp_path / "data",
        tmp_path / "dl.json",
        generate_phantoms=True,
        phantom_kwargs={"n_patients": 3, "shape": (32, 32, 24)},
    )
    dl = json.loads(Path(path).read_text())
    items = [it for s in DATALIST_SECTIONS for it in dl[s]]
    assert {it["tumour_type"] for it in items} == {"glioma", "meningioma", "metastasis"}
    assert {it["label"] for it in items} == {0, 1} and dl["task"] == "presence"
