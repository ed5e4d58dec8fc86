"""Tests of the BraTS layouts, case checks, label mapping, datalists, phantoms and MONAI loading."""

from __future__ import annotations

import json
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

from common.data import (
    BRATS_MODALITIES,
    DataFormatError,
    MapBraTSLabelsd,
    brats_regions,
    build_brats_datalist,
    check_brats_case,
    detect_brats_layout,
    find_brats_cases,
    from_canonical_labels,
    load_brats_datalist_section,
    make_brats_phantoms,
    prepare_brats_datalist,
    split_counts,
    to_canonical_labels,
)

SHAPE = (6, 7, 5)
AFFINE = np.array([[-1.0, 0, 0, 0], [0, -1.0, 0, 6], [0, 0, 1.0, 0], [0, 0, 0, 1]])
# Written independently of the code under test: file codes per modality, separator, case names, ET code.
CODES = {
    "brats2020": ("flair", "t1", "t1ce", "t2"),
    "brats2021": ("flair", "t1", "t1ce", "t2"),
    "brats2023": ("t2f", "t1n", "t1c", "t2w"),
}
SEP = {"brats2020": "_", "brats2021": "_", "brats2023": "-"}
CASE = {
    "brats2020": "BraTS20_Training_{:03d}",
    "brats2021": "BraTS2021_{:05d}",
    "brats2023": "BraTS-GLI-{:05d}-000",
    "msd": "BRATS_{:03d}",
}
# One voxel of each of the dataset's codes, background elsewhere: (NCR/NET, ED, ET) codes per layout.
OWN_CODES = {"brats2020": (1, 2, 4), "brats2021": (1, 2, 4), "brats2023": (1, 2, 3), "msd": (2, 1, 3)}


def _save(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data), affine), str(path))
    return path


def _seg(layout: str) -> np.ndarray:
    seg = np.zeros(SHAPE, dtype=np.uint8)
    ncr, ed, et = OWN_CODES[layout]
    seg[1, 1, 1], seg[2, 2, 2], seg[3, 3, 3] = ncr, ed, et
    return seg


def write_case(
    root: Path,
    layout: str,
    index: int,
    seg: np.ndarray | None | bool = True,
    suffix: str = ".nii.gz",
    images: dict[str, np.ndarray] | None = None,
    affines: dict[str, np.ndarray] | None = None,
    skip: str | None = None,
) -> str:
    """Write one tiny case; modality ``m`` (0..3 in BRATS_MODALITIES order) is filled with ``10 * (m + 1)``.

    ``images``/``affines`` override a modality's (or ``"seg"``'s) data/affine; ``skip`` leaves one out.
    """
    case = CASE[layout].format(index)
    images, affines = images or {}, affines or {}
    volumes = {
        m: images.get(m, np.full(SHAPE, 10.0 * (i + 1), dtype=np.float32))
        for i, m in enumerate(BRATS_MODALITIES)
    }
    seg_data = _seg(layout) if seg is True else (None if seg is False or seg is None else seg)
    if seg_data is not None:
        seg_data = images.get("seg", seg_data)
    if layout == "msd":
        folder = "imagesTr" if seg_data is not None else "imagesTs"
        stacked = images.get("msd", np.stack([volumes[m] for m in BRATS_MODALITIES], axis=-1))
        _save(root / folder / f"{case}{suffix}", stacked, affines.get("msd", AFFINE))
        if seg_data is not None:
            _save(root / "labelsTr" / f"{case}{suffix}", seg_data, affines.get("seg", AFFINE))
        return case
    for m, code in zip(BRATS_MODALITIES, CODES[layout]):
        if m != skip:
            _save(root / case / f"{case}{SEP[layout]}{code}{suffix}", volumes[m], affines.get(m, AFFINE))
    if seg_data is not None:
        _save(root / case / f"{case}{SEP[layout]}seg{suffix}", seg_data, affines.get("seg", AFFINE))
    return case


def _load(root: Path, rel: str) -> np.ndarray:
    return np.asarray(nib.load(str(root / rel)).dataobj)


# ------------------------------------------------------------------------------------------ layouts


@pytest.mark.parametrize("layout", ["brats2020", "brats2021", "brats2023", "msd"])
def test_each_layout_detected_and_read(tmp_path: Path, layout: str) -> None:
    root = tmp_path / "MICCAI_data" / "TrainingData"
    cases = [write_case(root, layout, i) for i in (2, 1)]
    for folder in (root, root.parent, tmp_path):  # the case folder's parent, one and two levels above
        assert detect_brats_layout(folder) == layout
    found_layout, items = find_brats_cases(root)
    assert found_layout == layout
    assert [it["case"] for it in items] == sorted(cases)
    for item in items:
        assert item["layout"] == layout and "label" in item
        check_brats_case(item, root)
        if layout == "msd":
            assert item["image"] == f"imagesTr/{item['case']}.nii.gz"
            channels = _load(root, item["image"])
            assert channels.shape == (*SHAPE, 4)
            values = [float(channels[0, 0, 0, c]) for c in range(4)]
        else:
            assert len(item["image"]) == 4 and all(p.startswith(f"{item['case']}/") for p in item["image"])
            values = [float(_load(root, p)[0, 0, 0]) for p in item["image"]]
        assert values == [10.0, 20.0, 30.0, 40.0]  # FLAIR, T1, T1ce, T2 whatever the file codes
        canonical = to_canonical_labels(_load(root, item["label"]), layout)
        assert (canonical[1, 1, 1], canonical[2, 2, 2], canonical[3, 3, 3]) == (1, 2, 3)


def test_2023_prefixes_nii_suffix_and_unlabelled_cases(tmp_path: Path) -> None:
    case = write_case(tmp_path, "brats2023", 5, suffix=".nii")
    for prefix in ("MEN", "MET", "SSA", "PED"):
        folder = tmp_path / f"BraTS-{prefix}-00001-000"
        for code in CODES["brats2023"]:
            _save(folder / f"{folder.name}-{code}.nii.gz", np.zeros(SHAPE, np.float32))
    layout, items = find_brats_cases(tmp_path)
    assert layout == "brats2023" and len(items) == 5
    labelled = [it for it in items if "label" in it]
    assert [it["case"] for it in labelled] == [case]
    assert labelled[0]["image"][0] == f"{case}/{case}-t2f.nii"


def test_case_folder_itself_and_validation_release(tmp_path: Path) -> None:
    case = write_case(tmp_path, "brats2020", 1, seg=False)
    layout, items = find_brats_cases(tmp_path / case)
    assert layout == "brats2020"
    assert items == [
        {
            "case": case,
            "layout": "brats2020",
            "image": [f"{case}_{m}.nii.gz" for m in ("flair", "t1", "t1ce", "t2")],
        }
    ]


def test_msd_dataset_json_testset_and_macos_files(tmp_path: Path) -> None:
    task = tmp_path / "Task01_BrainTumour"
    write_case(task, "msd", 1)
    write_case(task, "msd", 485, seg=False)
    (task / "imagesTr" / "._BRATS_001.nii.gz").write_bytes(b"\x00" * 10)  # AppleDouble junk of the tar
    (task / "dataset.json").write_text(json.dumps({"name": "BRATS"}))
    layout, items = find_brats_cases(tmp_path)
    assert layout == "msd"
    assert items == [
        {
            "case": "BRATS_001",
            "layout": "msd",
            "image": "Task01_BrainTumour/imagesTr/BRATS_001.nii.gz",
            "label": "Task01_BrainTumour/labelsTr/BRATS_001.nii.gz",
        },
        {"case": "BRATS_485", "layout": "msd", "image": "Task01_BrainTumour/imagesTs/BRATS_485.nii.gz"},
    ]


@pytest.mark.parametrize("kind", ["empty", "unknown", "missing"])
def test_empty_or_unknown_folder(tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "data"
    if kind != "missing":
        folder.mkdir()
    if kind == "unknown":
        _save(folder / "patient1" / "scan.nii.gz", np.zeros(SHAPE))
    with pytest.raises(DataFormatError) as err:
        detect_brats_layout(folder)
    assert str(err.value).startswith(str(folder))
    with pytest.raises(DataFormatError):
        find_brats_cases(folder, on_error="collect")


def test_mixed_layouts_rejected(tmp_path: Path) -> None:
    write_case(tmp_path / "a", "brats2020", 1)
    write_case(tmp_path / "b", "brats2021", 1)
    with pytest.raises(DataFormatError, match="several layouts"):
        detect_brats_layout(tmp_path)


# ------------------------------------------------------------------------------------------ labels


@pytest.mark.parametrize(
    ("layout", "own", "canonical"),
    [
        ("brats2020", [0, 1, 2, 4], [0, 1, 2, 3]),
        ("brats2021", [0, 1, 2, 4], [0, 1, 2, 3]),
        ("brats2023", [0, 1, 2, 3], [0, 1, 2, 3]),
        ("msd", [0, 1, 2, 3], [0, 2, 1, 3]),
    ],
)
def test_label_mapping_and_inverse(layout: str, own: list[int], canonical: list[int]) -> None:
    seg = np.array(own * 3, dtype=np.uint8).reshape(3, 2, 2)
    mapped = to_canonical_labels(seg, layout)
    assert mapped.dtype == np.uint8 and mapped.shape == seg.shape
    assert mapped.ravel().tolist() == canonical * 3
    np.testing.assert_array_equal(to_canonical_labels(seg.astype(np.float32), layout), mapped)
    np.testing.assert_array_equal(to_canonical_labels(torch.as_tensor(seg.astype(np.int64)), layout), mapped)
    np.testing.assert_array_equal(from_canonical_labels(mapped, layout), seg)
    np.testing.assert_array_equal(from_canonical_labels(np.array([0, 1, 2, 3]), layout), own_of(layout))


def own_of(layout: str) -> list[int]:
    """Own codes of canonical 0, 1 (NCR/NET), 2 (ED), 3 (ET)."""
    ncr, ed, et = OWN_CODES[layout]
    return [0, ncr, ed, et]


@pytest.mark.parametrize(
    ("layout", "bad"),
    [("brats2020", 3), ("brats2021", 5), ("brats2023", 4), ("msd", 4), ("brats2020", -1), ("msd", 1.5)],
)
def test_labels_outside_the_set(layout: str, bad: float) -> None:
    seg = np.array([0, 1, bad, 2], dtype=np.float32 if isinstance(bad, float) else np.int16)
    with pytest.raises(DataFormatError) as err:
        to_canonical_labels(seg, layout, source="/data/case_seg.nii.gz")
    assert str(err.value).startswith("/data/case_seg.nii.gz: ") and f"{bad:g}" in str(err.value)
    with pytest.raises(DataFormatError, match="nan"):
        to_canonical_labels(np.array([0.0, np.nan]), layout)
    with pytest.raises(DataFormatError):
        from_canonical_labels(np.array([0, 4]), layout)
    with pytest.raises(ValueError, match="unknown BraTS layout"):
        to_canonical_labels(seg, "brats2019")


def test_regions() -> None:
    canonical = np.array([0, 1, 2, 3])
    regions = brats_regions(canonical)
    assert {k: v.tolist() for k, v in regions.items()} == {
        "wt": [False, True, True, True],
        "tc": [False, True, False, True],
        "et": [False, False, False, True],
    }
    as_tensor = brats_regions(torch.tensor([[0, 3], [2, 1]]))
    assert as_tensor["tc"].tolist() == [[False, True], [False, True]]


def test_map_labels_transform_keeps_meta(tmp_path: Path) -> None:
    case = write_case(tmp_path, "msd", 1)
    item = find_brats_cases(tmp_path)[1][0]
    data = {k: (str(tmp_path / v) if k in ("image", "label") else v) for k, v in item.items()}
    loaded = Compose([LoadImaged(keys=["image", "label"]), EnsureChannelFirstd(keys=["image", "label"])])(
        data
    )
    out = MapBraTSLabelsd(keys="label")(loaded)
    label = out["label"]
    assert isinstance(label, MetaTensor) and label.dtype == loaded["label"].dtype
    assert label.shape == (1, *SHAPE)
    np.testing.assert_allclose(label.affine.numpy(), AFFINE)
    assert case in str(label.meta["filename_or_obj"])
    assert (float(label[0, 1, 1, 1]), float(label[0, 2, 2, 2]), float(label[0, 3, 3, 3])) == (1.0, 2.0, 3.0)
    fixed = MapBraTSLabelsd(keys="label", layout="brats2023")({"label": np.array([0, 3])})
    assert fixed["label"].tolist() == [0, 3]
    with pytest.raises(KeyError):
        MapBraTSLabelsd(keys="label")({"label": np.array([0, 3])})


# ------------------------------------------------------------------------------------------ bad input


def _bad_case(root: Path, problem: str) -> str:
    """Write a brats2020 case with ``problem``; return its id."""
    flat = np.ones(SHAPE, dtype=np.float32)
    shifted = AFFINE.copy()
    shifted[0, 3] += 0.01
    if problem == "different shapes":
        return write_case(root, "brats2020", 1, images={"t2": np.ones((6, 7, 6), np.float32)})
    if problem == "different affines":
        return write_case(root, "brats2020", 1, affines={"t1ce": shifted})
    if problem == "2D file":
        return write_case(root, "brats2020", 1, images={"t1": flat[:, :, 0]})
    if problem == "5D file":
        return write_case(root, "brats2020", 1, images={"flair": flat[..., None, None]})
    if problem == "labels outside":
        seg = _seg("brats2020")
        seg[0, 0, 0] = 3  # 3 is no BraTS 2020 label
        return write_case(root, "brats2020", 1, seg=seg)
    if problem == "NaN":
        nan = flat.copy()
        nan[2, 3, 1] = np.nan
        return write_case(root, "brats2020", 1, images={"t1ce": nan})
    if problem == "seg shape":
        return write_case(root, "brats2020", 1, seg=np.zeros((6, 7, 4), np.uint8))
    if problem == "seg affine":
        return write_case(root, "brats2020", 1, affines={"seg": shifted})
    raise AssertionError(problem)


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("different shapes", "t2 has shape (6, 7, 6) but flair has (6, 7, 5)"),
        ("different affines", "t1ce affine differs from the flair affine"),
        ("2D file", "t1 is 2D"),
        ("5D file", "flair is 5D"),
        ("labels outside", "label values [3] outside the brats2020 label set [0, 1, 2, 4]"),
        ("NaN", "1 NaN/inf voxels"),
        ("seg shape", "segmentation has shape (6, 7, 4)"),
        ("seg affine", "segmentation affine differs"),
    ],
)
def test_bad_case_raises(tmp_path: Path, problem: str, message: str) -> None:
    case = _bad_case(tmp_path, problem)
    _, items = find_brats_cases(tmp_path)  # finding only looks at file names
    with pytest.raises(DataFormatError) as err:
        check_brats_case(items[0], tmp_path)
    assert case in str(err.value) and message in str(err.value), str(err.value)
    with pytest.raises(DataFormatError, match=case):
        find_brats_cases(tmp_path, check=True)


def test_small_affine_difference_is_accepted(tmp_path: Path) -> None:
    close = AFFINE.copy()
    close[:3, 3] += 5e-4
    write_case(tmp_path, "brats2020", 1, affines={"t1": close, "seg": close})
    check_brats_case(find_brats_cases(tmp_path)[1][0], tmp_path)


def test_missing_modality_and_missing_file(tmp_path: Path) -> None:
    case = write_case(tmp_path, "brats2021", 7, skip="t1ce")
    with pytest.raises(DataFormatError) as err:
        find_brats_cases(tmp_path)
    assert case in str(err.value) and "missing modality t1ce" in str(err.value)
    full = write_case(tmp_path, "brats2021", 8)
    item = find_brats_cases(tmp_path, on_error="collect")[1][0]
    (tmp_path / item["label"]).unlink()
    with pytest.raises(DataFormatError, match=f"{full}.*file does not exist"):
        check_brats_case(item, tmp_path)


def test_msd_image_must_be_4d_with_4_channels(tmp_path: Path) -> None:
    write_case(tmp_path, "msd", 1, images={"msd": np.zeros((*SHAPE, 3), np.float32)})
    write_case(tmp_path, "msd", 2, images={"msd": np.zeros(SHAPE, np.float32)})
    _, items = find_brats_cases(tmp_path)
    for item in items:
        with pytest.raises(DataFormatError, match=rf"{item['case']}.*expected 4D \(X, Y, Z, 4 modalities\)"):
            check_brats_case(item, tmp_path)


def test_misnamed_segmentation_is_reported(tmp_path: Path) -> None:
    case = write_case(tmp_path, "brats2020", 355, seg=False)
    _save(tmp_path / case / "W39_1998.09.19_Segm.nii", _seg("brats2020"))
    with pytest.raises(DataFormatError, match=rf"{case}.*W39_1998.09.19_Segm.nii"):
        find_brats_cases(tmp_path)


def test_collect_goes_on_past_bad_cases(tmp_path: Path) -> None:
    good = write_case(tmp_path, "brats2020", 1)
    missing = write_case(tmp_path, "brats2020", 2, skip="flair")
    nan = np.ones(SHAPE, np.float32)
    nan[0, 0, 0] = np.inf
    broken = write_case(tmp_path, "brats2020", 3, images={"t2": nan})
    unlabelled = write_case(tmp_path, "brats2020", 4, seg=False)
    layout, items, problems = find_brats_cases(tmp_path, on_error="collect", check=True)
    assert layout == "brats2020"
    assert [it["case"] for it in items] == [good, unlabelled]
    assert [case for case, _ in problems] == [missing, broken]
    assert "missing modality flair" in problems[0][1] and "NaN/inf" in problems[1][1]
    with pytest.raises(DataFormatError, match=missing):
        find_brats_cases(tmp_path, on_error="raise")


# ------------------------------------------------------------------------------------------ datalists


def test_split_by_case(tmp_path: Path) -> None:
    labelled = [write_case(tmp_path, "brats2021", i) for i in range(20)]
    unlabelled = [write_case(tmp_path, "brats2021", i, seg=False) for i in range(20, 22)]
    datalist = build_brats_datalist(tmp_path, seed=0)
    sections = {name: [it["case"] for it in datalist[name]] for name in ("training", "validation", "testing")}
    assert [len(v) for v in sections.values()] == split_counts(20, (8, 1, 1)) == [16, 2, 2]
    assert sorted(sum(sections.values(), [])) == labelled  # every case once, none in two splits
    assert all(v == sorted(v) for v in sections.values())
    assert [it["case"] for it in datalist["predict"]] == unlabelled
    assert datalist["layout"] == "brats2021" and datalist["modalities"] == ["flair", "t1", "t1ce", "t2"]
    assert datalist["labels"]["3"].startswith("enhancing tumour")
    assert build_brats_datalist(tmp_path, seed=0) == datalist
    other = build_brats_datalist(tmp_path, seed=1)
    assert other["testing"] != datalist["testing"] or other["validation"] != datalist["validation"]
    assert build_brats_datalist(tmp_path, seed=0, ratios=(3, 1, 0))["testing"] == []


def test_prepare_and_load_datalist(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    with pytest.raises(DataFormatError, match="no BraTS cases"):
        prepare_brats_datalist(str(empty), str(tmp_path / "d.json"))
    data = tmp_path / "data"
    path = prepare_brats_datalist(
        str(data),
        str(tmp_path / "lists" / "datalist.json"),
        generate_phantoms=True,
        phantom_kwargs={"n_cases": 3, "shape": (32, 36, 28)},
    )
    content = json.loads(Path(path).read_text())
    assert content["layout"] == "brats2020"
    items = load_brats_datalist_section(path, "training", data)
    case = content["training"][0]["case"]
    assert items[0]["case"] == case and "/" not in case  # not turned into the case folder's path
    assert items[0]["layout"] == "brats2020"
    assert items[0]["image"][0] == str(data / case / f"{case}_flair.nii.gz")


# ------------------------------------------------------------------------------------------ MONAI loading


@pytest.mark.parametrize("reader", [None, "NibabelReader"])
@pytest.mark.parametrize("layout", ["brats2020", "msd"])
def test_load_image_channel_first(tmp_path: Path, layout: str, reader: str | None) -> None:
    """The list of 4 files and the MSD 4D file both load as (4, X, Y, Z), FLAIR, T1, T1ce, T2 in order."""
    write_case(tmp_path, layout, 1)
    item = find_brats_cases(tmp_path)[1][0]
    image = item["image"]
    data = {"image": [str(tmp_path / p) for p in image] if layout != "msd" else str(tmp_path / image)}
    kwargs = {} if reader is None else {"reader": reader}
    loaded = EnsureChannelFirstd(keys="image")(LoadImaged(keys="image", **kwargs)(data))["image"]
    assert isinstance(loaded, MetaTensor) and tuple(loaded.shape) == (4, *SHAPE)
    assert loaded[:, 0, 0, 0].tolist() == [10.0, 20.0, 30.0, 40.0]
    np.testing.assert_allclose(loaded.affine.numpy(), AFFINE, atol=1e-6)


# ------------------------------------------------------------------------------------------ phantoms

SMALL = (48, 56, 40)


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    root = tmp_path_factory.mktemp("phantoms")
    start = time.perf_counter()
    make_brats_phantoms(root, n_cases=4, shape=SMALL, seed=3)
    return root, time.perf_counter() - start


def test_phantom_files(phantoms: tuple[Path, float]) -> None:
    root, seconds = phantoms
    assert seconds < 2.0  # about 0.15 s on one core
    layout, items = find_brats_cases(root, check=True)
    assert layout == "brats2020" and [it["case"] for it in items] == [
        f"BraTS20_Training_{i:03d}" for i in (1, 2, 3, 4)
    ]
    for item in items:
        for rel in item["image"]:
            image = nib.load(str(root / rel))
            assert image.shape == SMALL and image.get_data_dtype() == np.int16
            np.testing.assert_allclose(
                image.affine, np.array([[-1, 0, 0, 0], [0, -1, 0, 55], [0, 0, 1, 0], [0, 0, 0, 1]])
            )
        seg = nib.load(str(root / item["label"]))
        assert seg.get_data_dtype() == np.uint8
        assert set(np.unique(np.asarray(seg.dataobj)).tolist()) == {0, 1, 2, 4}  # all three sub-regions


def test_phantoms_deterministic(tmp_path: Path, phantoms: tuple[Path, float]) -> None:
    root, _ = phantoms
    make_brats_phantoms(tmp_path / "again", n_cases=2, shape=SMALL, seed=3)
    make_brats_phantoms(tmp_path / "other", n_cases=1, shape=SMALL, seed=4)
    for m in ("flair", "seg"):
        name = f"BraTS20_Training_002/BraTS20_Training_002_{m}.nii.gz"
        np.testing.assert_array_equal(_load(tmp_path / "again", name), _load(root, name))
    first = "BraTS20_Training_001/BraTS20_Training_001_t1ce.nii.gz"
    assert not np.array_equal(_load(tmp_path / "other", first), _load(root, first))


def test_phantom_contrasts(phantoms: tuple[Path, float]) -> None:
    """Each sub-region stands out in the modality where it does on real scans."""
    root, _ = phantoms
    for item in find_brats_cases(root)[1]:
        flair, t1, t1ce, t2 = (_load(root, p).astype(np.float64) for p in item["image"])
        seg = to_canonical_labels(_load(root, item["label"]), "brats2020")
        brain = (t1 > 0) & (seg == 0)
        ncr, ed, et = seg == 1, seg == 2, seg == 3
        assert min(ncr.sum(), ed.sum(), et.sum()) >= 10
        assert flair[ed].mean() > 1.3 * flair[brain].mean()  # oedema bright on FLAIR ...
        assert t2[ed].mean() > 1.15 * t2[brain].mean()  # ... and on T2 (CSF, brighter still, is in "brain")
        assert t1ce[et].mean() > 1.3 * t1ce[ed].mean()  # enhancing rim bright on T1ce
        assert t1ce[et].mean() > 1.3 * t1ce[brain].mean()
        assert t1[et].mean() < t1[brain].mean() * 1.1  # ... but not on T1
        assert t1[ncr].mean() < 0.8 * t1[brain].mean()  # necrosis dark on T1 and T1ce
        assert t1ce[ncr].mean() < t1ce[et].mean()
        assert t2[ncr].mean() > t2[brain].mean()  # and bright on T2
        assert (flair[seg == 0][~brain[seg == 0]] == 0).all()  # skull-stripped: zero outside the brain


@pytest.mark.parametrize("layout", ["brats2021", "brats2023", "msd"])
def test_phantoms_in_other_layouts(tmp_path: Path, phantoms: tuple[Path, float], layout: str) -> None:
    """Same seed, same case: the canonical labels do not depend on the layout the codes are written in."""
    root, _ = phantoms
    make_brats_phantoms(tmp_path, n_cases=1, shape=SMALL, seed=3, layout=layout)
    found, items = find_brats_cases(tmp_path, check=True)
    assert found == layout and len(items) == 1
    reference = to_canonical_labels(
        _load(root, "BraTS20_Training_001/BraTS20_Training_001_seg.nii.gz"), "brats2020"
    )
    np.testing.assert_array_equal(to_canonical_labels(_load(tmp_path, items[0]["label"]), layout), reference)
    flair = _load(root, "BraTS20_Training_001/BraTS20_Training_001_flair.nii.gz")
    if layout == "msd":
        image = _load(tmp_path, items[0]["image"])
        assert image.shape == (*SMALL, 4) and image.dtype == np.float32
        np.testing.assert_allclose(image[..., 0], flair, atol=0.51)
        assert json.loads((tmp_path / "dataset.json").read_text())["numTraining"] == 1
    else:
        np.testing.assert_array_equal(_load(tmp_path, items[0]["image"][0]), flair)


def test_unlabelled_phantoms(tmp_path: Path) -> None:
    make_brats_phantoms(tmp_path, n_cases=2, shape=(32, 32, 24), with_labels=False)
    datalist = build_brats_datalist(tmp_path)
    assert [it["case"] for it in datalist["predict"]] == ["BraTS20_Validation_001", "BraTS20_Validation_002"]
    assert datalist["training"] == []


def test_case_names_and_inverse_label_transform():
    from common.data import FromCanonicalBraTSLabelsd, MapBraTSLabelsd, brats_case_name

    assert (
        brats_case_name("/d/BraTS20_Training_001/BraTS20_Training_001_flair.nii.gz") == "BraTS20_Training_001"
    )
    assert brats_case_name("/d/BraTS-GLI-00000-000/BraTS-GLI-00000-000-t2f.nii") == "BraTS-GLI-00000-000"
    assert brats_case_name("/d/imagesTr/BRATS_001.nii.gz") == "BRATS_001"
    for layout, codes in (("brats2020", [0, 1, 2, 4]), ("msd", [0, 2, 1, 3]), ("brats2023", [0, 1, 2, 3])):
        canonical = torch.tensor([[0, 1, 2, 3]], dtype=torch.uint8)
        out = FromCanonicalBraTSLabelsd("pred")({"pred": canonical, "layout": layout})["pred"]
        assert out.tolist() == [codes] and out.dtype == torch.uint8
        back = MapBraTSLabelsd("pred")({"pred": out, "layout": layout})["pred"]
        assert back.tolist() == canonical.tolist()
