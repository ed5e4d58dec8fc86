"""ISBI 2015 longitudinal MS lesions: layouts, items, rater rules, checks, patient-wise folds, phantoms.

The tiny cases below are written here with nibabel, independently of the adapter and of the phantom
writer; rater combinations are computed here with numpy and compared with what the adapter's items give
once loaded through MONAI and :class:`~common.data.raters.CombineRatersd`.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

from common.data.datalist import DATALIST_SECTIONS, build_datalist, load_datalist_section, prepare_datalist
from common.data.errors import DataFormatError
from common.data.inference_inputs import prepare_inputs
from common.data.isbi2015 import (
    ADAPTER,
    ISBI2015_MODALITIES,
    ISBI2015Adapter,
    isbi2015_case_name,
    isbi2015_output_name,
    with_tissue_maps,
)
from common.data.label_transforms import MapLabelCodesd
from common.data.phantoms.isbi2015 import (
    ISBI2015_PHANTOM_TISSUES,
    isbi2015_phantom_affine,
    make_isbi2015_phantoms,
    tissue_map_path,
)
from common.data.raters import CombineRatersd, combine_raters
from common.data.registry import get_adapter

MODALITIES = ("flair", "mprage", "pd", "t2")  # the order the items must give, written out here
SHAPE = (6, 7, 5)
AFFINE = np.diag([1.0, 1.0, 1.0, 1.0])
AFFINE[:3, 3] = (-3.0, -4.0, -2.0)


def save(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data), affine), str(path))
    return path


def write_timepoint(
    folder: Path,
    tp: int,
    kind: str = "preprocessed",
    suffix: str = ".nii",
    masks: dict[int, np.ndarray] | None = None,
    skip: str | None = None,
    shapes: dict[str, tuple[int, ...]] | None = None,
    affines: dict[str, np.ndarray] | None = None,
) -> str:
    """One time point of the patient folder ``folder`` (``.../training01``) as the release names it.

    Modality ``i`` of MODALITIES is filled with ``10 * (i + 1)``; ``masks`` maps rater -> mask (none: no
    ``masks`` folder written); ``skip`` leaves a modality out; ``shapes``/``affines`` override one file's.
    """
    case = f"{folder.name}_{tp:02d}"
    shapes, affines = shapes or {}, affines or {}
    for i, m in enumerate(MODALITIES):
        if m == skip:
            continue
        name = f"{case}_{m}_pp{suffix}" if kind == "preprocessed" else f"{case}_{m}{suffix}"
        data = np.full(shapes.get(m, SHAPE), 10.0 * (i + 1), dtype=np.float32)
        save(folder / kind / name, data, affines.get(m, AFFINE))
    for rater, mask in (masks or {}).items():
        save(
            folder / "masks" / f"{case}_mask{rater}{suffix}",
            mask.astype(np.uint8),
            affines.get(f"mask{rater}", AFFINE),
        )
    return case


def two_masks(seed: int = 0) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {1: rng.random(SHAPE) < 0.4, 2: rng.random(SHAPE) < 0.4}


def write_training(root: Path, patients: int = 2, timepoints: int = 2, **kwargs) -> Path:
    """``root/training/trainingNN`` with both raters' masks; returns the ``training`` folder."""
    for p in range(1, patients + 1):
        for t in range(1, timepoints + 1):
            write_timepoint(root / "training" / f"training{p:02d}", t, masks=two_masks(10 * p + t), **kwargs)
    return root / "training"


# ------------------------------------------------------------------------------------------ layouts


@pytest.mark.parametrize("kind", ["preprocessed", "orig"])
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_layouts_and_suffixes(tmp_path: Path, kind: str, suffix: str) -> None:
    training = write_training(tmp_path, kind=kind, suffix=suffix)
    adapter = ISBI2015Adapter(images=kind)
    assert adapter.has_data(training) and adapter.detect_layout(training) == kind
    cases = adapter.find_cases(training)
    assert cases.layout == kind and not cases.problems
    pp = "_pp" if kind == "preprocessed" else ""
    expected = []
    for p in (1, 2):
        for t in (1, 2):
            case = f"training{p:02d}_{t:02d}"
            expected.append(
                {
                    "case": case,
                    "patient": f"training{p:02d}",
                    "timepoint": t,
                    "layout": kind,
                    "image": [f"training{p:02d}/{kind}/{case}_{m}{pp}{suffix}" for m in MODALITIES],
                    "label": f"training{p:02d}/masks/{case}_mask1{suffix}",
                    "rater": 1,
                }
            )
    assert cases.items == expected
    for item in cases.items:
        adapter.check_case(item, training)


@pytest.mark.parametrize("given", ["training", "patient", "release", "above"])
def test_the_folder_given(tmp_path: Path, given: str) -> None:
    """The training folder, one patient folder, the folder of the release, or one level above it."""
    release = tmp_path / "above" / "ISBI_2015"
    write_training(release)
    write_timepoint(release / "testdata_website" / "test01", 1)  # test release: no masks
    root = {
        "training": release / "training",
        "patient": release / "training" / "training02",
        "release": release,
        "above": tmp_path / "above",
    }[given]
    cases = ADAPTER.find_cases(root)
    cases_found = [it["case"] for it in cases.items]
    training = ["training01_01", "training01_02", "training02_01", "training02_02"]
    if given == "patient":
        assert cases_found == training[2:]
    elif given == "training":
        assert cases_found == training
    else:
        assert cases_found == [*["test01_01"], *training]  # sorted by patient id: "test" < "training"
    for item in cases.items:
        assert all((root / p).is_file() for p in item["image"])
        ADAPTER.check_case(item, root)


def test_test_release_is_unlabelled_and_goes_to_predict(tmp_path: Path) -> None:
    website = tmp_path / "testdata_website"
    for p in (1, 2):
        for t in (1, 2, 3):
            write_timepoint(website / f"test{p:02d}", t)
    cases = ADAPTER.find_cases(website)
    assert [it["case"] for it in cases.items] == [f"test{p:02d}_{t:02d}" for p in (1, 2) for t in (1, 2, 3)]
    assert all("label" not in it and "rater" not in it for it in cases.items)
    assert cases.items[0]["image"][0] == "test01/preprocessed/test01_01_flair_pp.nii"
    datalist = build_datalist("isbi2015", website)
    assert len(datalist["predict"]) == 6 and all(datalist[s] == [] for s in DATALIST_SECTIONS)


def test_no_data_and_the_other_image_kind(tmp_path: Path) -> None:
    assert not ADAPTER.has_data(tmp_path)
    with pytest.raises(DataFormatError, match="no ISBI 2015 patient folders"):
        ADAPTER.find_cases(tmp_path)
    with pytest.raises(DataFormatError, match="does not exist"):
        ADAPTER.detect_layout(tmp_path / "missing")
    write_training(tmp_path, kind="orig", suffix=".nii.gz")
    assert ADAPTER.has_data(tmp_path)
    with pytest.raises(DataFormatError, match=r"only orig/; use ISBI2015Adapter\(images='orig'\)"):
        ADAPTER.find_cases(tmp_path)
    write_timepoint(tmp_path / "training" / "training03", 1, masks=two_masks())  # has preprocessed/ images
    write_timepoint(tmp_path / "testdata_website" / "test01", 1, kind="orig")  # no masks, only orig/
    cases = ADAPTER.find_cases(tmp_path, on_error="collect")
    assert [it["case"] for it in cases.items] == ["training03_01"]
    problems = dict(cases.problems)
    assert problems.pop("test01").endswith("test01: patient test01: no preprocessed/ images")
    assert sorted(problems) == ["training01_01", "training01_02", "training02_01", "training02_02"]
    assert all("rater masks but no preprocessed images" in p for p in problems.values())


def test_options_are_checked() -> None:
    for bad in ({"rater": 3}, {"rater": 0}, {"rater": "majority"}, {"rater": True}, {"images": "raw"}):
        with pytest.raises(ValueError):
            ISBI2015Adapter(**bad)
    assert ISBI2015Adapter(rater="2").rater == 2  # from a command line
    assert get_adapter("isbi2015") is ADAPTER and (ADAPTER.images, ADAPTER.rater) == ("preprocessed", 1)


# ------------------------------------------------------------------------------------------ items


def test_modalities_in_order_once_loaded(tmp_path: Path) -> None:
    assert ISBI2015_MODALITIES == MODALITIES
    training = write_training(tmp_path, patients=1, timepoints=1)
    (item,) = ADAPTER.find_cases(training).items
    assert [Path(p).name for p in item["image"]] == [f"training01_01_{m}_pp.nii" for m in MODALITIES]
    loaded = Compose([LoadImaged(["image", "label"]), EnsureChannelFirstd(["image", "label"])])(
        {"image": [str(training / p) for p in item["image"]], "label": str(training / item["label"])}
    )
    assert loaded["image"].shape == (4, *SHAPE) and loaded["label"].shape == (1, *SHAPE)
    assert [float(loaded["image"][c].mean()) for c in range(4)] == [10.0, 20.0, 30.0, 40.0]


RATER_EXPECTED = {
    1: lambda m1, m2: m1,
    2: lambda m1, m2: m2,
    "union": lambda m1, m2: m1 | m2,
    "intersection": lambda m1, m2: m1 & m2,
    "vote": lambda m1, m2: m1 & m2,  # a strict majority of two raters is both of them
}


@pytest.mark.parametrize("rater", list(RATER_EXPECTED))
def test_each_rater_option(tmp_path: Path, rater: int | str) -> None:
    masks = two_masks(7)
    write_timepoint(tmp_path / "training" / "training01", 1, masks=masks)
    adapter = ISBI2015Adapter(rater=rater)
    (item,) = adapter.find_cases(tmp_path).items
    combined = isinstance(rater, str)
    paths = item["label"] if combined else [item["label"]]
    assert [Path(p).name for p in paths] == (
        ["training01_01_mask1.nii", "training01_01_mask2.nii"]
        if combined
        else [f"training01_01_mask{rater}.nii"]
    )
    assert item["rater"] == rater
    adapter.check_case(item, tmp_path)
    datalist = tmp_path / "datalist.json"
    prepare_datalist(adapter, tmp_path, datalist, ratios=(1, 0, 0))
    assert json.loads(datalist.read_text())["rater"] == rater
    (loaded_item,) = load_datalist_section(datalist, "training", tmp_path)
    pipeline = Compose(
        [LoadImaged(["image", "label"]), EnsureChannelFirstd(["image", "label"]), CombineRatersd("label")]
    )
    label = pipeline(loaded_item)["label"]
    assert isinstance(label, MetaTensor) and label.shape == (1, *SHAPE)
    expected = RATER_EXPECTED[rater](masks[1], masks[2])
    np.testing.assert_array_equal(label[0].numpy(), expected.astype(np.float32))
    np.testing.assert_allclose(label.affine.numpy(), AFFINE)


def test_combine_raters_rules_by_hand() -> None:
    r = np.zeros((3, 2, 2), dtype=np.float32)  # three raters over four voxels
    r[0] = [[1, 1], [0, 0]]
    r[1] = [[1, 0], [1, 0]]
    r[2] = [[1, 0], [0, 0]]
    expected = {
        "union": [[1, 1], [1, 0]],
        "intersection": [[1, 0], [0, 0]],
        "vote": [[1, 0], [0, 0]],  # two of three only at (0, 0)
        2: [[1, 0], [1, 0]],
    }
    for rule, want in expected.items():
        out = combine_raters(r, rule)
        assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (1, 2, 2)
        np.testing.assert_array_equal(out[0], want)
    r[2, 1, 0] = 1  # now two of three at (1, 0) too
    np.testing.assert_array_equal(combine_raters(r, "vote")[0], [[1, 0], [1, 0]])
    single = torch.tensor([[[0.0, 2.0], [1.0, 0.0]]])
    out = combine_raters(single, "intersection")  # one rater: that mask, binarised
    assert isinstance(out, torch.Tensor) and out.tolist() == [[[0.0, 1.0], [1.0, 0.0]]]
    with pytest.raises(ValueError, match="only 3 rater masks"):
        combine_raters(r, 4)
    with pytest.raises(ValueError, match="rater must be"):
        combine_raters(r, "mean")
    with pytest.raises(KeyError, match="3 rater masks .*'rater'"):
        CombineRatersd("label")({"label": r})
    # one mask and no rule (MONAI Label's items): binarised as it is
    assert CombineRatersd("label")({"label": single})["label"].tolist() == [[[0.0, 1.0], [1.0, 0.0]]]
    assert CombineRatersd("label", rater="union")({"label": r, "rater": 1})["label"].sum() == 3


def test_label_codes_both_ways(tmp_path: Path) -> None:
    mask = np.array([0, 1, 1, 0], dtype=np.uint8)
    for layout in ("preprocessed", "orig"):
        np.testing.assert_array_equal(ADAPTER.to_canonical(mask, layout), mask)
        np.testing.assert_array_equal(ADAPTER.from_canonical(mask, layout), mask)
    with pytest.raises(DataFormatError, match="2"):
        ADAPTER.to_canonical(np.array([0, 2]), "preprocessed", source="m.nii")
    item = {"label": torch.tensor([[0.0, 1.0]]), "layout": "preprocessed"}
    assert MapLabelCodesd("label", "isbi2015")(item)["label"].tolist() == [[0.0, 1.0]]


# ------------------------------------------------------------------------------------------ bad input


def _one_case(tmp_path: Path, **kwargs) -> tuple[ISBI2015Adapter, dict]:
    write_timepoint(tmp_path / "training" / "training01", 3, masks=two_masks(), **kwargs)
    adapter = ISBI2015Adapter(rater="union")
    (item,) = adapter.find_cases(tmp_path).items
    return adapter, item


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"shapes": {"pd": (6, 7, 4)}}, r"pd has shape \(6, 7, 4\) but flair has \(6, 7, 5\)"),
        ({"affines": {"t2": np.diag([1.0, 1.0, 2.0, 1.0])}}, "t2 affine differs from the flair affine"),
        ({"affines": {"mask2": np.diag([1.2, 1.0, 1.0, 1.0])}}, "mask affine differs from the flair affine"),
        ({"shapes": {"flair": (6, 7, 5, 2)}}, "flair is 4D"),
    ],
)
def test_grid_problems_name_the_case(tmp_path: Path, kwargs: dict, message: str) -> None:
    adapter, item = _one_case(tmp_path, **kwargs)
    with pytest.raises(DataFormatError, match=message) as err:
        adapter.check_case(item, tmp_path)
    assert "training01_03" in str(err.value)


def test_small_affine_difference_and_orig_grids_are_accepted(tmp_path: Path) -> None:
    nudged = AFFINE.copy()
    nudged[0, 3] += 5e-4
    adapter, item = _one_case(tmp_path / "a", affines={"pd": nudged})
    adapter.check_case(item, tmp_path / "a")
    # orig images are the acquisitions, each modality on its own grid: no grid check between them
    write_timepoint(
        tmp_path / "b" / "training01", 1, kind="orig", masks=two_masks(), shapes={"mprage": (8, 8, 9)}
    )
    orig = ISBI2015Adapter(images="orig", rater="vote")
    (item,) = orig.find_cases(tmp_path / "b").items
    orig.check_case(item, tmp_path / "b")
    save(tmp_path / "b" / item["label"][1], np.zeros((5, 5, 5), dtype=np.uint8))  # the masks share theirs
    with pytest.raises(DataFormatError, match=r"training01_01_mask2.*mask has shape \(5, 5, 5\)"):
        orig.check_case(item, tmp_path / "b")


def test_bad_values_and_missing_files(tmp_path: Path) -> None:
    adapter, item = _one_case(tmp_path)
    bad = np.zeros(SHAPE, dtype=np.uint8)
    bad[0, 0, 0] = 2
    save(tmp_path / item["label"][0], bad)
    with pytest.raises(DataFormatError, match=r"training01_03_mask1\.nii: .*2"):
        adapter.check_case(item, tmp_path)
    nan = np.full(SHAPE, 1.0, dtype=np.float32)
    nan[1, 1, 1] = np.nan
    save(tmp_path / item["image"][2], nan)
    with pytest.raises(DataFormatError, match=r"training01_03_pd_pp\.nii: 1 NaN/inf voxels"):
        adapter.check_case(item, tmp_path)
    (tmp_path / item["image"][3]).unlink()
    with pytest.raises(DataFormatError, match=r"training01_03_t2_pp\.nii: file does not exist"):
        adapter.check_case(item, tmp_path)
    with pytest.raises(DataFormatError, match="case training01_03: rater 'union' combines both"):
        adapter.check_case({**item, "label": item["label"][0]}, tmp_path)


def test_missing_modality_names_the_case(tmp_path: Path) -> None:
    write_training(tmp_path)
    write_timepoint(tmp_path / "training" / "training02", 3, masks=two_masks(), skip="pd")
    with pytest.raises(
        DataFormatError, match=r"case training02_03: missing modality pd \(training02_03_pd_pp"
    ):
        ADAPTER.find_cases(tmp_path)
    cases = ADAPTER.find_cases(tmp_path, on_error="collect")
    assert len(cases.items) == 4 and [case for case, _ in cases.problems] == ["training02_03"]


def test_missing_rater_mask_only_when_asked_for(tmp_path: Path) -> None:
    write_training(tmp_path)
    (tmp_path / "training" / "training01" / "masks" / "training01_02_mask2.nii").unlink()
    assert len(ISBI2015Adapter(rater=1).find_cases(tmp_path).items) == 4
    with pytest.raises(
        DataFormatError, match=r"case training01_02: missing rater 2 mask \(training01_02_mask2"
    ):
        ISBI2015Adapter(rater=2).find_cases(tmp_path)
    for rule in ("union", "intersection", "vote"):
        with pytest.raises(DataFormatError, match=f"training01_02.*rater={rule!r} needs both raters' masks"):
            ISBI2015Adapter(rater=rule).find_cases(tmp_path)
    item = ISBI2015Adapter(rater=1).find_cases(tmp_path).items[1]
    with pytest.raises(DataFormatError, match="training01_02_mask2.nii: file does not exist"):
        ADAPTER.check_case({**item, "label": item["label"].replace("mask1", "mask2")}, tmp_path)


def test_other_naming_problems(tmp_path: Path) -> None:
    patient = tmp_path / "training" / "training01"
    write_timepoint(patient, 1, masks=two_masks())
    save(patient / "preprocessed" / "training01_01_t2_pp.nii.gz", np.zeros(SHAPE, dtype=np.float32))
    with pytest.raises(DataFormatError, match="case training01_01: both training01_01_t2_pp.nii"):
        ADAPTER.find_cases(tmp_path)
    (patient / "preprocessed" / "training01_01_t2_pp.nii.gz").unlink()
    save(patient / "masks" / "training01_02_mask1.nii", np.zeros(SHAPE, dtype=np.uint8))
    with pytest.raises(DataFormatError, match="case training01_02: rater masks but no preprocessed images"):
        ADAPTER.find_cases(tmp_path)
    (patient / "masks" / "training01_02_mask1.nii").unlink()
    save(patient / "preprocessed" / "training02_01_t2_pp.nii", np.zeros(SHAPE, dtype=np.float32))
    with pytest.raises(DataFormatError, match="file of patient training02 in patient folder training01"):
        ADAPTER.find_cases(tmp_path)
    (patient / "preprocessed" / "training02_01_t2_pp.nii").unlink()
    (patient / "preprocessed" / "._training01_01_t2_pp.nii").write_bytes(b"macOS resource fork")
    write_timepoint(tmp_path / "copy" / "training01", 1, masks=two_masks())
    with pytest.raises(DataFormatError, match="duplicate case training01_01"):
        ADAPTER.find_cases(tmp_path)


def test_inference_inputs_skip_and_list_bad_cases(tmp_path: Path) -> None:
    website = tmp_path / "testdata_website"
    for t in (1, 2, 3):
        write_timepoint(website / "test01", t, skip="t2" if t == 2 else None)
    save(website / "test01" / "preprocessed" / "test01_03_pd_pp.nii", np.zeros((3, 3, 3), dtype=np.float32))
    usable = prepare_inputs("isbi2015", website, tmp_path / "out")
    assert [it["case"] for it in usable] == ["test01_01"] and Path(usable[0]["image"][0]).is_absolute()
    with open(tmp_path / "out" / "failed_inputs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["input"] for row in rows] == ["test01_02", "test01_03"]
    assert "missing modality t2" in rows[0]["problem"] and "pd has shape (3, 3, 3)" in rows[1]["problem"]


def test_tissue_maps_are_attached_where_they_exist(tmp_path: Path) -> None:
    root = write_training(tmp_path, patients=1, timepoints=3)
    tissues = root / "training01" / "tissues"
    save(tissues / "training01_01_tissues.nii.gz", np.zeros(SHAPE, dtype=np.uint8))
    save(tissues / "training01_02_tissues.nii", np.zeros(SHAPE, dtype=np.uint8))
    items = ADAPTER.find_cases(root).items
    assert all("tissue_map" not in item for item in items)  # the adapter's items never name them
    relative = with_tissue_maps(items, root)
    assert [item.get("tissue_map") for item in relative] == [
        str(tissues / "training01_01_tissues.nii.gz"),
        str(tissues / "training01_02_tissues.nii"),
        None,
    ]
    assert [{k: v for k, v in it.items() if k != "tissue_map"} for it in relative] == items
    # items with absolute paths (load_datalist_section, prepare_inputs) need no base folder
    absolute = [{**item, "image": [str(root / p) for p in item["image"]]} for item in items]
    assert with_tissue_maps(absolute, key="user_tissue")[0]["user_tissue"] == relative[0]["tissue_map"]


@pytest.mark.parametrize(
    "path, case",
    [
        ("/data/training/training01/preprocessed/training01_03_flair_pp.nii", "training01_03"),
        ("testdata_website/test12/orig/test12_01_mprage.nii.gz", "test12_01"),
        ("/x/Training02_04_T2_pp.nii.gz", "Training02_04"),
        ("/x/something_else.nii.gz", "something_else"),
    ],
)
def test_outputs_are_named_after_the_case(path: str, case: str) -> None:
    assert isbi2015_case_name(path) == case
    assert isbi2015_output_name({"filename_or_obj": path}) == {"subject": case, "idx": None}
    assert isbi2015_output_name({"filename_or_obj": [path, "other"]})["subject"] == case


# ------------------------------------------------------------------------------------------ phantoms

PHANTOM_SHAPE = (40, 48, 40)


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five patients as released (4, 4, 5, 4, 4 time points), written through ``prepare_datalist``."""
    root = tmp_path_factory.mktemp("isbi_phantoms")
    prepare_datalist(
        "isbi2015",
        root,
        root / "datalist.json",
        generate_phantoms=True,
        phantom_kwargs={"shape": PHANTOM_SHAPE, "seed": 5},
    )
    return root


def _load(root: Path, rel: str | Path) -> np.ndarray:
    return np.asarray(nib.load(str(root / rel)).dataobj)


def test_leave_one_patient_out(phantoms: Path) -> None:
    items = ADAPTER.find_cases(phantoms).items
    patients = [f"training{p:02d}" for p in range(1, 6)]
    assert len(items) == 21 and sorted({it["patient"] for it in items}) == patients
    assert [it["case"] for it in items if it["patient"] == "training03"][-1] == "training03_05"
    for fold, held_out in enumerate(patients):
        datalist = build_datalist("isbi2015", phantoms, fold=fold, seed=fold)
        sections = {s: {it["patient"] for it in datalist[s]} for s in DATALIST_SECTIONS}
        assert sections["testing"] == {held_out}
        assert [it["case"] for it in datalist["testing"]] == [
            it["case"] for it in items if it["patient"] == held_out
        ]
        assert sections["training"] | sections["validation"] == set(patients) - {held_out}
        assert not sections["training"] & sections["validation"]
        assert sum(len(datalist[s]) for s in DATALIST_SECTIONS) == 21
    with pytest.raises(ValueError):
        build_datalist("isbi2015", phantoms, fold=5)


def test_phantom_files_are_what_the_adapter_reads(phantoms: Path) -> None:
    items = ADAPTER.find_cases(phantoms).items
    for item in items:
        ISBI2015Adapter(rater="vote").check_case(
            {**item, "label": [item["label"], item["label"].replace("mask1", "mask2")], "rater": "vote"},
            phantoms,
        )
        flair = nib.load(str(phantoms / item["image"][0]))
        assert flair.shape == PHANTOM_SHAPE and flair.get_data_dtype() == np.float32
        np.testing.assert_allclose(flair.affine, isbi2015_phantom_affine(PHANTOM_SHAPE))
        assert nib.load(str(phantoms / item["label"])).get_data_dtype() == np.uint8
    # the ICBM 152 grid: 1 mm, origin at voxel (90, 126, 72)
    affine = isbi2015_phantom_affine((181, 217, 181))
    np.testing.assert_array_equal(affine[:3, :3], np.eye(3))
    np.testing.assert_array_equal(affine @ [90, 126, 72, 1], [0, 0, 0, 1])


def test_phantom_lesions_tissues_and_contrasts(phantoms: Path) -> None:
    codes = ISBI2015_PHANTOM_TISSUES
    for item in ADAPTER.find_cases(phantoms).items:
        assert with_tissue_maps([item], phantoms)[0]["tissue_map"] == str(tissue_map_path(phantoms, item))
        tissue = _load(phantoms, tissue_map_path(phantoms, item))
        assert set(np.unique(tissue).tolist()) == {0, 1, 2, 3}
        first = _load(phantoms, tissue_map_path(phantoms, {**item, "case": f"{item['patient']}_01"}))
        np.testing.assert_array_equal(tissue, first)  # registered to the baseline: one anatomy
        r1 = _load(phantoms, item["label"]).astype(bool)
        r2 = _load(phantoms, item["label"].replace("mask1", "mask2")).astype(bool)
        assert r1.sum() >= 20 and (tissue[r1 | r2] == codes["wm"]).all()  # lesions only in white matter
        dice = 2 * (r1 & r2).sum() / (r1.sum() + r2.sum())
        assert (r1 != r2).any() and dice > 0.7
        flair, mprage, pd, t2 = (_load(phantoms, p).astype(np.float64) for p in item["image"])
        wm, gm, csf = (tissue == codes["wm"]) & ~(r1 | r2), tissue == codes["gm"], tissue == codes["csf"]
        assert flair[r1].mean() > 1.3 * flair[wm].mean()  # lesions bright on FLAIR, PD and T2 ...
        assert t2[r1].mean() > 1.3 * t2[wm].mean() and pd[r1].mean() > 1.1 * pd[wm].mean()
        assert mprage[r1].mean() < 0.9 * mprage[wm].mean()  # ... and dark on MPRAGE
        assert mprage[wm].mean() > mprage[gm].mean() > mprage[csf].mean()
        assert t2[csf].mean() > t2[gm].mean() > t2[wm].mean() and pd[csf].mean() > pd[wm].mean()
        assert flair[csf].mean() < 0.6 * min(flair[wm].mean(), flair[gm].mean())
        assert (flair[tissue == codes["background"]] == 0).all()  # skull-stripped like the release


def test_phantom_lesions_persist_and_grow(phantoms: Path) -> None:
    items = ADAPTER.find_cases(phantoms).items
    grew = 0
    for patient in sorted({it["patient"] for it in items}):
        masks = [_load(phantoms, it["label"]).astype(bool) for it in items if it["patient"] == patient]
        for earlier, later in zip(masks, masks[1:]):
            assert not (earlier & ~later).any()  # every lesion voxel of a time point is lesion later too
            grew += int(later.sum() > earlier.sum())
    assert grew >= 5


def test_phantom_options_and_determinism(tmp_path: Path, phantoms: Path) -> None:
    folders = make_isbi2015_phantoms(
        tmp_path / "a",
        n_patients=1,
        timepoints=2,
        shape=PHANTOM_SHAPE,
        seed=5,
        n_test_patients=1,
        suffix=".nii.gz",
    )
    assert [f.relative_to(tmp_path / "a").as_posix() for f in folders] == [
        "training/training01",
        "testdata_website/test01",
    ]
    datalist = build_datalist("isbi2015", tmp_path / "a")
    assert [it["case"] for it in datalist["predict"]] == ["test01_01", "test01_02"]
    assert not (tmp_path / "a" / "testdata_website" / "test01" / "masks").exists()
    name = (
        "training/training01/preprocessed/training01_02_mprage_pp"  # the same patient, whatever the options
    )
    np.testing.assert_array_equal(_load(tmp_path / "a", f"{name}.nii.gz"), _load(phantoms, f"{name}.nii"))
    make_isbi2015_phantoms(
        tmp_path / "b", n_patients=1, timepoints=1, shape=PHANTOM_SHAPE, seed=6, skull_stripped=False
    )
    other = _load(tmp_path / "b", "training/training01/preprocessed/training01_01_mprage_pp.nii")
    assert not np.array_equal(
        other, _load(phantoms, "training/training01/preprocessed/training01_01_mprage_pp.nii")
    )
    tissue = _load(tmp_path / "b", "training/training01/tissues/training01_01_tissues.nii.gz")
    assert (other[tissue == 0] > 0).mean() > 0.5  # skull, scalp and the noise floor outside the brain
    assert not list(tmp_path.rglob(".*tmp*"))  # atomic writes leave no temporary files
    with pytest.raises(ValueError):
        make_isbi2015_phantoms(tmp_path / "c", shape=(16, 16, 16))
