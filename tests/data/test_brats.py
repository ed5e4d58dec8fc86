"""The BraTS/MSD adapter: layouts, case finding and checks, label codes, splits, MONAI loading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

from common.data.brats import (
    ADAPTER,
    FromCanonicalBraTSLabelsd,
    MapBraTSLabelsd,
    brats_case_name,
    brats_output_name,
)
from common.data.datalist import build_datalist, load_datalist_section, prepare_datalist
from common.data.errors import DataFormatError
from common.data.label_transforms import MapLabelCodesd
from common.data.splits import split_counts
from common.labels import BRATS
from tests.data.cases import (
    AFFINE,
    CODES,
    OWN_CODES,
    SHAPE,
    load_nifti,
    save_nifti,
    seg_of,
    write_case,
)

# ------------------------------------------------------------------------------------------ layouts


@pytest.mark.parametrize("layout", ["brats2020", "brats2021", "brats2023", "msd"])
def test_each_layout_detected_and_read(tmp_path: Path, layout: str) -> None:
    root = tmp_path / "MICCAI_data" / "TrainingData"
    cases = [write_case(root, layout, i) for i in (2, 1)]
    for folder in (root, root.parent, tmp_path):  # the case folder's parent, one and two levels above
        assert ADAPTER.detect_layout(folder) == layout
    found_layout, items, _ = ADAPTER.find_cases(root)
    assert found_layout == layout
    assert [it["case"] for it in items] == sorted(cases)
    for item in items:
        assert item["layout"] == layout and "label" in item
        ADAPTER.check_case(item, root)
        if layout == "msd":
            assert item["image"] == f"imagesTr/{item['case']}.nii.gz"
            channels = load_nifti(root, item["image"])
            assert channels.shape == (*SHAPE, 4)
            values = [float(channels[0, 0, 0, c]) for c in range(4)]
        else:
            assert len(item["image"]) == 4 and all(p.startswith(f"{item['case']}/") for p in item["image"])
            values = [float(load_nifti(root, p)[0, 0, 0]) for p in item["image"]]
        assert values == [10.0, 20.0, 30.0, 40.0]  # FLAIR, T1, T1ce, T2 whatever the file codes
        canonical = ADAPTER.to_canonical(load_nifti(root, item["label"]), layout)
        assert (canonical[1, 1, 1], canonical[2, 2, 2], canonical[3, 3, 3]) == (1, 2, 3)


def test_2023_prefixes_nii_suffix_and_unlabelled_cases(tmp_path: Path) -> None:
    case = write_case(tmp_path, "brats2023", 5, suffix=".nii")
    for prefix in ("MEN", "MET", "SSA", "PED"):
        folder = tmp_path / f"BraTS-{prefix}-00001-000"
        for code in CODES["brats2023"]:
            save_nifti(folder / f"{folder.name}-{code}.nii.gz", np.zeros(SHAPE, np.float32))
    layout, items, _ = ADAPTER.find_cases(tmp_path)
    assert layout == "brats2023" and len(items) == 5
    labelled = [it for it in items if "label" in it]
    assert [it["case"] for it in labelled] == [case]
    assert labelled[0]["image"][0] == f"{case}/{case}-t2f.nii"


def test_case_folder_itself_and_validation_release(tmp_path: Path) -> None:
    case = write_case(tmp_path, "brats2020", 1, seg=False)
    layout, items, _ = ADAPTER.find_cases(tmp_path / case)
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
    layout, items, _ = ADAPTER.find_cases(tmp_path)
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
        save_nifti(folder / "patient1" / "scan.nii.gz", np.zeros(SHAPE))
    with pytest.raises(DataFormatError) as err:
        ADAPTER.detect_layout(folder)
    assert str(err.value).startswith(str(folder))
    with pytest.raises(DataFormatError):
        ADAPTER.find_cases(folder, on_error="collect")


def test_mixed_layouts_rejected(tmp_path: Path) -> None:
    write_case(tmp_path / "a", "brats2020", 1)
    write_case(tmp_path / "b", "brats2021", 1)
    with pytest.raises(DataFormatError, match="several layouts"):
        ADAPTER.detect_layout(tmp_path)


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
    mapped = ADAPTER.to_canonical(seg, layout)
    assert mapped.dtype == np.uint8 and mapped.shape == seg.shape
    assert mapped.ravel().tolist() == canonical * 3
    np.testing.assert_array_equal(ADAPTER.to_canonical(seg.astype(np.float32), layout), mapped)
    np.testing.assert_array_equal(ADAPTER.to_canonical(torch.as_tensor(seg.astype(np.int64)), layout), mapped)
    np.testing.assert_array_equal(ADAPTER.from_canonical(mapped, layout), seg)
    np.testing.assert_array_equal(ADAPTER.from_canonical(np.array([0, 1, 2, 3]), layout), own_of(layout))


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
        ADAPTER.to_canonical(seg, layout, source="/data/case_seg.nii.gz")
    assert str(err.value).startswith("/data/case_seg.nii.gz: ") and f"{bad:g}" in str(err.value)
    with pytest.raises(DataFormatError, match="nan"):
        ADAPTER.to_canonical(np.array([0.0, np.nan]), layout)
    with pytest.raises(DataFormatError):
        ADAPTER.from_canonical(np.array([0, 4]), layout)
    with pytest.raises(ValueError, match="unknown BraTS layout"):
        ADAPTER.to_canonical(seg, "brats2019")


@pytest.mark.parametrize("layout", ["brats2020", "brats2021", "brats2023", "msd"])
def test_codes_map_to_the_labels_of_common_labels(layout: str) -> None:
    """Every layout's NCR/ED/ET codes land on BRATS's labels, so its regions WT/TC/ET come out the same."""
    ncr, ed, et = OWN_CODES[layout]
    assert dict(ADAPTER.label_codes(layout)) == {
        0: BRATS.labels["background"],
        ncr: BRATS.labels["ncr"],
        ed: BRATS.labels["ed"],
        et: BRATS.labels["et"],
    }
    canonical = torch.as_tensor(ADAPTER.to_canonical(np.array([0, ncr, ed, et]), layout))
    masks = {name: BRATS.region_mask(canonical, name).tolist() for name in ("wt", "tc", "et")}
    assert masks == {
        "wt": [False, True, True, True],
        "tc": [False, True, False, True],
        "et": [False, False, False, True],
    }


def test_map_labels_transform_keeps_meta(tmp_path: Path) -> None:
    case = write_case(tmp_path, "msd", 1)
    item = ADAPTER.find_cases(tmp_path).items[0]
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
    # an item without a layout (e.g. from a MONAI Label server) takes the default; an item's own wins
    default = MapBraTSLabelsd(keys="label", default_layout="brats2020")
    assert default({"label": np.array([0, 4])})["label"].tolist() == [0, 3]
    assert default({"label": np.array([0, 3]), "layout": "brats2023"})["label"].tolist() == [0, 3]
    back = FromCanonicalBraTSLabelsd(keys="label", default_layout="msd")({"label": np.array([1, 2, 3])})
    assert back["label"].tolist() == [2, 1, 3]  # MSD: 1 oedema, 2 non-enhancing, 3 enhancing
    with pytest.raises(ValueError):
        MapBraTSLabelsd(keys="label", default_layout="brats1999")


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
        seg = seg_of("brats2020")
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
    items = ADAPTER.find_cases(tmp_path).items  # finding only looks at file names
    with pytest.raises(DataFormatError) as err:
        ADAPTER.check_case(items[0], tmp_path)
    assert case in str(err.value) and message in str(err.value), str(err.value)
    with pytest.raises(DataFormatError, match=case):
        build_datalist("brats", tmp_path, check=True)


def test_small_affine_difference_is_accepted(tmp_path: Path) -> None:
    close = AFFINE.copy()
    close[:3, 3] += 5e-4
    write_case(tmp_path, "brats2020", 1, affines={"t1": close, "seg": close})
    ADAPTER.check_case(ADAPTER.find_cases(tmp_path).items[0], tmp_path)


def test_missing_modality_and_missing_file(tmp_path: Path) -> None:
    case = write_case(tmp_path, "brats2021", 7, skip="t1ce")
    with pytest.raises(DataFormatError) as err:
        ADAPTER.find_cases(tmp_path)
    assert case in str(err.value) and "missing modality t1ce" in str(err.value)
    full = write_case(tmp_path, "brats2021", 8)
    item = ADAPTER.find_cases(tmp_path, on_error="collect").items[0]
    (tmp_path / item["label"]).unlink()
    with pytest.raises(DataFormatError, match=f"{full}.*file does not exist"):
        ADAPTER.check_case(item, tmp_path)


def test_msd_image_must_be_4d_with_4_channels(tmp_path: Path) -> None:
    write_case(tmp_path, "msd", 1, images={"msd": np.zeros((*SHAPE, 3), np.float32)})
    write_case(tmp_path, "msd", 2, images={"msd": np.zeros(SHAPE, np.float32)})
    items = ADAPTER.find_cases(tmp_path).items
    for item in items:
        with pytest.raises(DataFormatError, match=rf"{item['case']}.*expected 4D \(X, Y, Z, 4 modalities\)"):
            ADAPTER.check_case(item, tmp_path)


def test_misnamed_segmentation_is_reported(tmp_path: Path) -> None:
    case = write_case(tmp_path, "brats2020", 355, seg=False)
    save_nifti(tmp_path / case / "W39_1998.09.19_Segm.nii", seg_of("brats2020"))
    with pytest.raises(DataFormatError, match=rf"{case}.*W39_1998.09.19_Segm.nii"):
        ADAPTER.find_cases(tmp_path)


def test_collect_goes_on_past_cases_it_cannot_find(tmp_path: Path) -> None:
    good = write_case(tmp_path, "brats2020", 1)
    missing = write_case(tmp_path, "brats2020", 2, skip="flair")
    nan = np.ones(SHAPE, np.float32)
    nan[0, 0, 0] = np.inf
    broken = write_case(tmp_path, "brats2020", 3, images={"t2": nan})
    unlabelled = write_case(tmp_path, "brats2020", 4, seg=False)
    layout, items, problems = ADAPTER.find_cases(tmp_path, on_error="collect")  # names only
    assert layout == "brats2020"
    assert [it["case"] for it in items] == [good, broken, unlabelled]
    assert [case for case, _ in problems] == [missing]
    assert "missing modality flair" in problems[0][1] and missing in problems[0][1]
    with pytest.raises(DataFormatError, match=f"{broken}.*NaN/inf"):
        ADAPTER.check_case(items[1], tmp_path)
    with pytest.raises(DataFormatError, match=missing):
        ADAPTER.find_cases(tmp_path, on_error="raise")
    with pytest.raises(ValueError, match="on_error"):
        ADAPTER.find_cases(tmp_path, on_error="skip")


# ------------------------------------------------------------------------------------------ datalists


def test_split_by_case(tmp_path: Path) -> None:
    labelled = [write_case(tmp_path, "brats2021", i) for i in range(20)]
    unlabelled = [write_case(tmp_path, "brats2021", i, seg=False) for i in range(20, 22)]
    datalist = build_datalist("brats", tmp_path, seed=0)
    sections = {name: [it["case"] for it in datalist[name]] for name in ("training", "validation", "testing")}
    assert [len(v) for v in sections.values()] == split_counts(20, (8, 1, 1)) == [16, 2, 2]
    assert sorted(sum(sections.values(), [])) == labelled  # every case once, none in two splits
    assert all(v == sorted(v) for v in sections.values())
    assert [it["case"] for it in datalist["predict"]] == unlabelled
    assert datalist["layout"] == "brats2021" and datalist["modalities"] == ["flair", "t1", "t1ce", "t2"]
    assert datalist["labels"]["3"].startswith("enhancing tumour")
    assert build_datalist("brats", tmp_path, seed=0) == datalist
    other = build_datalist("brats", tmp_path, seed=1)
    assert other["testing"] != datalist["testing"] or other["validation"] != datalist["validation"]
    assert build_datalist("brats", tmp_path, seed=0, ratios=(3, 1, 0))["testing"] == []


def test_split_matches_the_split_before_adapters(tmp_path: Path) -> None:
    """The BraTS bundle's split (seed 0, 8:1:1) of 13 cases is what it was before the data code moved."""
    for i in range(1, 14):
        write_case(tmp_path, "brats2020", i)
    datalist = build_datalist("brats", tmp_path, seed=0)
    assert [it["case"] for it in datalist["validation"]] == ["BraTS20_Training_009"]
    assert [it["case"] for it in datalist["testing"]] == ["BraTS20_Training_002"]
    assert len(datalist["training"]) == 11 and datalist["dataset"] == "brats"


def test_prepare_and_load_datalist(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    with pytest.raises(DataFormatError, match="no BraTS cases"):
        prepare_datalist("brats", str(empty), str(tmp_path / "d.json"))
    data = tmp_path / "data"
    path = prepare_datalist(
        "brats",
        str(data),
        str(tmp_path / "lists" / "datalist.json"),
        generate_phantoms=True,
        phantom_kwargs={"n_cases": 3, "shape": (32, 36, 28)},
    )
    content = json.loads(Path(path).read_text())
    assert content["layout"] == "brats2020"
    items = load_datalist_section(path, "training", data)
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
    item = ADAPTER.find_cases(tmp_path).items[0]
    image = item["image"]
    data = {"image": [str(tmp_path / p) for p in image] if layout != "msd" else str(tmp_path / image)}
    kwargs = {} if reader is None else {"reader": reader}
    loaded = EnsureChannelFirstd(keys="image")(LoadImaged(keys="image", **kwargs)(data))["image"]
    assert isinstance(loaded, MetaTensor) and tuple(loaded.shape) == (4, *SHAPE)
    assert loaded[:, 0, 0, 0].tolist() == [10.0, 20.0, 30.0, 40.0]
    np.testing.assert_allclose(loaded.affine.numpy(), AFFINE, atol=1e-6)


def test_case_names_and_inverse_label_transform() -> None:
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
        generic = MapLabelCodesd("pred", dataset="brats", inverse=True)({"pred": canonical, "layout": layout})
        assert generic["pred"].tolist() == [codes]  # the BraTS transforms are the generic one, preset
    assert brats_output_name({"filename_or_obj": ["/d/imagesTs/BRATS_485.nii.gz"]}) == {
        "subject": "BRATS_485",
        "idx": None,
    }
    with pytest.raises(ValueError, match="unknown BraTS layout"):
        MapBraTSLabelsd("pred", layout="brats2019")
