"""ATLAS R2.0 / R1.2 stroke lesions: layouts, items, merged R1.2 masks, checks, subject-wise splits, phantoms.

The tiny subjects below are written here with nibabel, independently of the adapter and of the phantom
writer; the union of several R1.2 masks is computed here with numpy and compared with what the items give
once loaded through MONAI and :class:`~common.data.raters.CombineRatersd`.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

from common.data.atlas import (
    ADAPTER,
    ATLAS_LAYOUTS,
    ATLAS_SHAPE,
    atlas_case_name,
    atlas_output_name,
    check_lesion_mask,
)
from common.data.datalist import DATALIST_SECTIONS, build_datalist, load_datalist_section, prepare_datalist
from common.data.errors import DataFormatError
from common.data.inference_inputs import prepare_inputs
from common.data.phantoms.atlas import atlas_phantom_affine, make_atlas_phantoms
from common.data.phantoms.stroke_head import HEAD_TISSUES, LESION_KINDS, Head, plan_lesions
from common.data.raters import CombineRatersd
from common.data.registry import get_adapter, write_phantoms

SHAPE = (6, 7, 5)
AFFINE = np.diag([1.0, 1.0, 1.0, 1.0])
AFFINE[:3, 3] = (-3.0, -4.0, -2.0)
SPACE = "MNI152NLin2009aSym"


def save(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data), affine), str(path))
    return path


def t1(value: float = 100.0, shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    return np.full(shape, value, dtype=np.float32)


def lesion(seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random(SHAPE) < 0.3).astype(np.uint8)


def write_r20(
    root: Path,
    cohort: int,
    number: int,
    session: str = "ses-1",
    release: str = "Training",
    mask: np.ndarray | None | bool = True,
    image: np.ndarray | None = None,
    affines: dict[str, np.ndarray] | None = None,
) -> str:
    """One R2.0 session as released: ``<release>/R00c/sub-r00cs00n/<session>/anat/...``; returns the case."""
    affines = affines or {}
    subject = f"sub-r{cohort:03d}s{number:03d}"
    anat = root / release / f"R{cohort:03d}" / subject / session / "anat"
    save(
        anat / f"{subject}_{session}_space-{SPACE}_T1w.nii.gz",
        t1() if image is None else image,
        affines.get("t1w", AFFINE),
    )
    if mask is not None and mask is not False:
        data = lesion(cohort * 100 + number) if mask is True else mask
        name = f"{subject}_{session}_space-{SPACE}_label-L_desc-T1lesion_mask.nii.gz"
        save(anat / name, data, affines.get("mask", AFFINE))
    return f"{subject}_{session}"


def write_r12(root: Path, site: int, subject: str, masks: list[np.ndarray], timepoint: str = "t01") -> Path:
    """One R1.2 time point: ``Site<N>/<id>/<tp>/<id>_t1w_deface_stx.nii.gz`` and ``_LesionSmooth[_k]_stx``."""
    folder = root / f"Site{site}" / subject / timepoint
    save(folder / f"{subject}_t1w_deface_stx.nii.gz", t1())
    for k, mask in enumerate(masks):
        save(folder / f"{subject}_LesionSmooth{'' if k == 0 else f'_{k}'}_stx.nii.gz", mask)
    return folder


def write_release(root: Path) -> Path:
    """Two cohorts of R2.0 training subjects and one unlabelled testing subject; returns ``root``."""
    for cohort, number in ((1, 1), (1, 2), (2, 1)):
        write_r20(root, cohort, number)
    write_r20(root, 1, 101, release="Testing", mask=None)
    return root


# ------------------------------------------------------------------------------------------ layouts


def test_r20_items_and_the_test_release(tmp_path: Path) -> None:
    root = write_release(tmp_path / "ATLAS_2")
    assert ADAPTER.has_data(root) and ADAPTER.detect_layout(root) == "r2.0"
    cases = ADAPTER.find_cases(root)
    assert cases.layout == "r2.0" and not cases.problems
    anat = "{release}/R00{c}/sub-r00{c}s{n}/ses-1/anat/sub-r00{c}s{n}_ses-1_space-" + SPACE
    expected = []
    for c, n, release in (
        (1, "001", "Training"),
        (1, "002", "Training"),
        (1, "101", "Testing"),
        (2, "001", "Training"),
    ):
        item = {
            "case": f"sub-r00{c}s{n}_ses-1",
            "patient": f"sub-r00{c}s{n}",
            "cohort": f"R00{c}",
            "session": "ses-1",
            "layout": "r2.0",
            "image": anat.format(release=release, c=c, n=n) + "_T1w.nii.gz",
        }
        if release == "Training":
            item["label"] = anat.format(release=release, c=c, n=n) + "_label-L_desc-T1lesion_mask.nii.gz"
        expected.append(item)
    assert cases.items == expected
    for item in cases.items:
        ADAPTER.check_case(item, root)
    datalist = build_datalist("atlas", root, ratios=(1, 1, 1))
    assert [it["case"] for it in datalist["predict"]] == ["sub-r001s101_ses-1"]
    assert sorted(it["case"] for s in DATALIST_SECTIONS for it in datalist[s]) == [
        "sub-r001s001_ses-1",
        "sub-r001s002_ses-1",
        "sub-r002s001_ses-1",
    ]
    assert datalist["layout"] == "r2.0" and datalist["labels"] == {"0": "background", "1": "lesion"}


def test_the_nearest_release_folder_decides_whether_masks_are_needed(tmp_path: Path) -> None:
    release = tmp_path / "training" / "ATLAS_2"  # a user's folder that happens to be named "training"
    write_r20(release, 1, 101, release="Testing", mask=None)
    (item,) = ADAPTER.find_cases(release).items
    assert "label" not in item


@pytest.mark.parametrize("given", ["above", "release", "Training", "cohort", "subject"])
def test_the_folder_given(tmp_path: Path, given: str) -> None:
    release = write_release(tmp_path / "above" / "ATLAS_2")
    root = {
        "above": tmp_path / "above",
        "release": release,
        "Training": release / "Training",
        "cohort": release / "Training" / "R001",
        "subject": release / "Training" / "R001" / "sub-r001s002",
    }[given]
    cases = ADAPTER.find_cases(root)
    found = [it["case"] for it in cases.items]
    if given == "subject":
        assert found == ["sub-r001s002_ses-1"] and cases.items[0]["image"].startswith("ses-1/anat/")
    elif given == "cohort":
        assert found == ["sub-r001s001_ses-1", "sub-r001s002_ses-1"]
    else:
        assert len(found) == (3 if given == "Training" else 4)
    for item in cases.items:
        ADAPTER.check_case(item, root)


def test_r12_items_and_several_masks_merged(tmp_path: Path) -> None:
    m0, m1, m2 = lesion(1), lesion(2), lesion(3)
    m2[0, 0, 0] = 255  # any non-zero value is lesion
    write_r12(tmp_path, 1, "031768", [m0, m1, m2])
    write_r12(tmp_path, 2, "031900", [lesion(4)])
    write_r12(tmp_path, 2, "031900", [lesion(5)], timepoint="t02")
    assert ADAPTER.detect_layout(tmp_path) == "r1.2"
    items = ADAPTER.find_cases(tmp_path).items
    assert [(it["case"], it["patient"], it["cohort"], it["session"]) for it in items] == [
        ("031768_t01", "031768", "Site1", "t01"),
        ("031900_t01", "031900", "Site2", "t01"),
        ("031900_t02", "031900", "Site2", "t02"),
    ]
    first = items[0]
    folder = "Site1/031768/t01"
    assert first["image"] == f"{folder}/031768_t1w_deface_stx.nii.gz" and first["layout"] == "r1.2"
    assert first["label"] == [
        f"{folder}/031768_LesionSmooth_stx.nii.gz",
        f"{folder}/031768_LesionSmooth_1_stx.nii.gz",
        f"{folder}/031768_LesionSmooth_2_stx.nii.gz",
    ]
    assert items[1]["label"] == "Site2/031900/t01/031900_LesionSmooth_stx.nii.gz"  # one mask: one path
    for item in items:
        ADAPTER.check_case(item, tmp_path)
    datalist = tmp_path / "datalist.json"
    prepare_datalist("atlas", tmp_path, datalist, ratios=(1, 0, 0))
    pipeline = Compose(
        [
            LoadImaged(["image", "label"]),
            EnsureChannelFirstd(["image", "label"]),
            CombineRatersd("label", rater="union"),
        ]
    )
    loaded = {it["case"]: pipeline(it) for it in load_datalist_section(datalist, "training", tmp_path)}
    union = loaded["031768_t01"]["label"]
    assert union.shape == (1, *SHAPE) and loaded["031768_t01"]["image"].shape == (1, *SHAPE)
    np.testing.assert_array_equal(union[0].numpy(), ((m0 | m1 | m2) > 0).astype(np.float32))
    np.testing.assert_array_equal(loaded["031900_t01"]["label"][0].numpy(), lesion(4).astype(np.float32))
    np.testing.assert_allclose(union.affine.numpy(), AFFINE)


def test_layout_detection_and_no_data(tmp_path: Path) -> None:
    assert not ADAPTER.has_data(tmp_path)
    with pytest.raises(DataFormatError, match="no ATLAS subjects found"):
        ADAPTER.find_cases(tmp_path)
    with pytest.raises(DataFormatError, match="does not exist"):
        ADAPTER.detect_layout(tmp_path / "missing")
    (tmp_path / "Training" / "R001").mkdir(parents=True)  # folders, but no subject
    assert not ADAPTER.has_data(tmp_path)
    write_r20(tmp_path / "a", 1, 1)
    write_r12(tmp_path / "b", 1, "031768", [lesion(1)])
    assert ADAPTER.detect_layout(tmp_path / "a") == "r2.0" and ADAPTER.detect_layout(tmp_path / "b") == "r1.2"
    assert ADAPTER.detect_layout(tmp_path / "b" / "Site1") == "r1.2"
    assert [it["case"] for it in ADAPTER.find_cases(tmp_path / "b" / "Site1" / "031768").items] == [
        "031768_t01"
    ]
    with pytest.raises(DataFormatError, match=r"both ATLAS layouts \(r1.2: 1 subjects, r2.0: 1 subjects\)"):
        ADAPTER.detect_layout(tmp_path)
    assert get_adapter("atlas") is ADAPTER and ADAPTER.layouts == ATLAS_LAYOUTS == ("r2.0", "r1.2")
    with pytest.raises(ValueError):
        ADAPTER.check_layout("r1.1")


# ------------------------------------------------------------------------------------------ bad input


def _checked(root: Path, case: str) -> DataFormatError:
    (item,) = [it for it in ADAPTER.find_cases(root).items if it["case"] == case]
    with pytest.raises(DataFormatError) as err:
        ADAPTER.check_case(item, root)
    return err.value


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image": t1(shape=(6, 7, 5, 2))}, "T1w image is 4D"),
        ({"image": t1(shape=(6, 7))}, "T1w image is 2D"),
        (
            {"mask": np.zeros((6, 7, 4), dtype=np.uint8)},
            r"lesion mask has shape \(6, 7, 4\) but T1w image has",
        ),
        (
            {"affines": {"mask": np.diag([1.0, 1.0, 2.0, 1.0])}},
            "lesion mask affine differs from the T1w image",
        ),
        ({"image": np.where(lesion(9) > 0, np.nan, 100.0).astype(np.float32)}, "NaN/inf voxels"),
        ({"mask": np.full(SHAPE, 0.5, dtype=np.float32)}, r"fractional values \(e.g. \[0.5\]\)"),
        ({"mask": np.full(SHAPE, -1, dtype=np.int16)}, "negative values"),
    ],
)
def test_bad_scans_name_the_subject(tmp_path: Path, kwargs: dict, message: str) -> None:
    case = write_r20(tmp_path, 3, 7, **kwargs)
    err = _checked(tmp_path, case)
    assert "sub-r003s007_ses-1" in str(err) and re.search(message, str(err)), str(err)


def test_bad_r12_mask_names_the_case(tmp_path: Path) -> None:
    bad = lesion(1).astype(np.float32)
    bad[1, 1, 1] = np.inf
    write_r12(tmp_path, 1, "031768", [lesion(2), bad])
    err = _checked(tmp_path, "031768_t01")
    assert str(err).endswith("031768_LesionSmooth_1_stx.nii.gz: case 031768_t01: mask has 1 NaN/inf voxels")
    check_lesion_mask(np.array([0, 1, 255], dtype=np.uint8), "m.nii.gz")  # 0/255 masks are fine
    check_lesion_mask(np.array([True, False]), "m.nii.gz")
    with pytest.raises(DataFormatError, match=r"^m.nii.gz: case x: mask has negative"):
        check_lesion_mask(np.array([-1.0, 1.0]), "m.nii.gz", case="x")


def test_folder_problems_name_the_subject(tmp_path: Path) -> None:
    write_release(tmp_path)
    empty = tmp_path / "Training" / "R002" / "sub-r002s009"
    empty.mkdir(parents=True)
    (tmp_path / "Training" / "R002" / "sub-r002s008" / "ses-1" / "anat").mkdir(parents=True)
    write_r20(tmp_path, 2, 5, mask=None)  # a Training subject without its mask
    with pytest.raises(
        DataFormatError, match="sub-r002s005_ses-1: a Training subject without its lesion mask"
    ):
        ADAPTER.find_cases(tmp_path)
    cases = ADAPTER.find_cases(tmp_path, on_error="collect")
    assert len(cases.items) == 4
    problems = dict(cases.problems)
    assert sorted(problems) == ["sub-r002s005_ses-1", "sub-r002s008_ses-1", "sub-r002s009"]
    assert problems["sub-r002s009"].endswith(
        "sub-r002s009: subject sub-r002s009: no ses-*/anat/ folder with a T1w image"
    )
    assert (
        "case sub-r002s008_ses-1: no T1w image (sub-r002s008_ses-1_space-" in problems["sub-r002s008_ses-1"]
    )


def test_r12_folder_problems_name_the_subject(tmp_path: Path) -> None:
    write_r12(tmp_path, 1, "031768", [lesion(1)])
    (tmp_path / "Site1" / "031999").mkdir()  # an empty subject folder
    (tmp_path / "Site1" / "031998" / "t01").mkdir(parents=True)  # a time point without files
    folder = write_r12(tmp_path, 2, "031997", [lesion(2)])
    save(folder / "031996_LesionSmooth_1_stx.nii.gz", lesion(3))  # a file of another subject
    cases = ADAPTER.find_cases(tmp_path, on_error="collect")
    assert [it["case"] for it in cases.items] == ["031768_t01"]
    problems = dict(cases.problems)
    assert "subject 031999: no t<NN>/ folder with a T1w image" in problems["031999"]
    assert "case 031998_t01: no T1w image (031998_t1w_deface_stx.nii[.gz])" in problems["031998_t01"]
    assert "file of subject 031996 in the folder of 031997_t01" in problems["031997_t01"]


def test_naming_problems(tmp_path: Path) -> None:
    case = write_r20(tmp_path, 1, 1)
    anat = tmp_path / "Training" / "R001" / "sub-r001s001" / "ses-1" / "anat"
    save(anat / f"{case}_space-{SPACE}_T1w.nii", t1())
    with pytest.raises(DataFormatError, match="case sub-r001s001_ses-1: several T1w files"):
        ADAPTER.find_cases(tmp_path)
    (anat / f"{case}_space-{SPACE}_T1w.nii").unlink()
    (anat / "._sub-r001s001_ses-1_space-MNI152NLin2009aSym_T1w.nii.gz").write_bytes(b"macOS resource fork")
    write_r20(tmp_path / "Testing", 1, 1)  # the same subject again
    with pytest.raises(DataFormatError, match="duplicate case sub-r001s001_ses-1"):
        ADAPTER.find_cases(tmp_path)
    testing = tmp_path / "other"
    write_r20(testing, 1, 2, release="Testing", mask=None)
    save(testing / "Testing/R001/sub-r001s002/ses-1/anat/lesion_mask.nii.gz", lesion(1))
    with pytest.raises(
        DataFormatError, match=r"unrecognised file\(s\) \['lesion_mask.nii.gz'\]; rename the mask"
    ):
        ADAPTER.find_cases(testing)


def test_inference_inputs_skip_and_list_bad_scans(tmp_path: Path) -> None:
    for number in (101, 102):
        write_r20(tmp_path, 1, number, release="Testing", mask=None)
    write_r20(tmp_path, 1, 103, release="Testing", mask=None, image=t1(shape=(6, 7, 5, 3)))
    usable = prepare_inputs("atlas", tmp_path / "Testing", tmp_path / "out")
    assert [it["case"] for it in usable] == ["sub-r001s101_ses-1", "sub-r001s102_ses-1"]
    with open(tmp_path / "out" / "failed_inputs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["input"] for row in rows] == ["sub-r001s103_ses-1"] and "T1w image is 4D" in rows[0][
        "problem"
    ]


@pytest.mark.parametrize(
    "path, case",
    [
        (
            "/d/Training/R001/sub-r001s001/ses-1/anat/sub-r001s001_ses-1_space-MNI152NLin2009aSym_T1w.nii.gz",
            "sub-r001s001_ses-1",
        ),
        ("/d/Site4/031768/t01/031768_t1w_deface_stx.nii.gz", "031768_t01"),
        ("/d/Site4/031768/t01/031768_LesionSmooth_1_stx.nii", "031768_t01"),
        ("/x/my_scan.nii.gz", "my_scan"),
    ],
)
def test_outputs_are_named_after_the_case(path: str, case: str) -> None:
    assert atlas_case_name(path) == case
    assert atlas_output_name({"filename_or_obj": path}) == {"subject": case, "idx": None}


# ------------------------------------------------------------------------------------------ splits


def test_splits_keep_a_subjects_sessions_together(tmp_path: Path) -> None:
    for number in range(1, 9):
        for session in ("ses-1", "ses-2"):
            write_r20(tmp_path, 1, number, session=session)
    first = build_datalist("atlas", tmp_path, seed=3)
    again = build_datalist("atlas", tmp_path, seed=3)
    assert first == again
    subjects = {s: {it["patient"] for it in first[s]} for s in DATALIST_SECTIONS}
    assert [len(subjects[s]) for s in DATALIST_SECTIONS] == [6, 1, 1]
    assert sum(len(first[s]) for s in DATALIST_SECTIONS) == 16
    for a in DATALIST_SECTIONS:
        for b in DATALIST_SECTIONS:
            assert a == b or not subjects[a] & subjects[b]
    folds = [build_datalist("atlas", tmp_path, fold=k, n_folds=4)["testing"] for k in range(4)]
    assert sorted(it["case"] for fold in folds for it in fold) == sorted(
        it["case"] for s in DATALIST_SECTIONS for it in first[s]
    )


# ------------------------------------------------------------------------------------------ phantoms

PHANTOM_SHAPE = (40, 48, 40)


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six R2.0 subjects and two testing subjects, written through ``prepare_datalist``."""
    root = tmp_path_factory.mktemp("atlas_phantoms")
    prepare_datalist(
        "atlas",
        root,
        root / "datalist.json",
        generate_phantoms=True,
        phantom_kwargs={"shape": PHANTOM_SHAPE, "seed": 4, "n_test_subjects": 2},
    )
    return root


def _load(root: Path, rel: str | Path) -> np.ndarray:
    return np.asarray(nib.load(str(root / rel)).dataobj)


def test_phantoms_are_what_the_adapter_reads(phantoms: Path) -> None:
    datalist = json.loads((phantoms / "datalist.json").read_text())
    assert [len(datalist[s]) for s in DATALIST_SECTIONS] == [4, 1, 1]  # 8:1:1 of six subjects
    assert [it["case"] for it in datalist["predict"]] == ["sub-r001s101_ses-1", "sub-r001s102_ses-1"]
    assert datalist == build_datalist("atlas", phantoms)  # deterministic
    items = ADAPTER.find_cases(phantoms).items
    assert [it["patient"] for it in items if "label" in it] == [
        *(f"sub-r001s00{n}" for n in (1, 2, 3, 4)),
        "sub-r002s001",
        "sub-r002s002",
    ]
    for item in items:
        ADAPTER.check_case(item, phantoms)
        image = nib.load(str(phantoms / item["image"]))
        assert image.shape == PHANTOM_SHAPE and image.get_data_dtype() == np.float32
        np.testing.assert_allclose(image.affine, atlas_phantom_affine(PHANTOM_SHAPE))
        if "label" in item:
            mask = nib.load(str(phantoms / item["label"]))
            assert mask.get_data_dtype() == np.uint8 and set(np.unique(mask.dataobj)) == {0, 1}
    # the release's grid: MNI152NLin2009aSym, 1 mm, origin at voxel (98, 134, 72)
    affine = atlas_phantom_affine(ATLAS_SHAPE)
    np.testing.assert_array_equal(affine[:3, :3], np.eye(3))
    np.testing.assert_array_equal(affine @ [98, 134, 72, 1], [0, 0, 0, 1])


def test_phantom_lesions_are_dark_and_varied(phantoms: Path) -> None:
    sizes = []
    for item in ADAPTER.find_cases(phantoms).items:
        if "label" not in item:
            continue
        image = _load(phantoms, item["image"]).astype(np.float64)
        mask = _load(phantoms, item["label"]).astype(bool)
        sizes.append(int(mask.sum()))
        centre = tuple(slice(int(0.35 * n), int(0.65 * n)) for n in PHANTOM_SHAPE)  # mostly white matter
        white = np.median(image[centre][~mask[centre]])
        assert image[mask].mean() < 0.75 * white  # lesions darker than the white matter around them
        assert image[0, 0, 0] < 0.1 * white  # air, not skull-stripped: the skull and scalp are drawn
    assert max(sizes) > 4 * min(sizes)


@pytest.mark.parametrize(
    ("spacing", "shape"), [((1.0, 1.0, 1.0), (64, 72, 64)), ((0.86, 0.86, 9.0), (128, 128, 14))]
)
def test_lesion_kinds_from_a_few_voxels_to_a_territory(spacing: tuple, shape: tuple) -> None:
    """The head both phantoms share (a 1 mm MR and a thick-slice CT grid): each kind, in parenchyma only."""
    rng = np.random.default_rng(0)
    head = Head(rng, shape, spacing, semi_fraction=(0.34, 0.37, 0.36))
    assert set(np.unique(head.tissue).tolist()) == set(HEAD_TISSUES.values())
    voxel_ml = float(np.prod(spacing)) / 1000.0
    sizes: dict[str, list[float]] = {kind: [] for kind in LESION_KINDS}
    for _ in range(3):
        for found in plan_lesions(rng, head, LESION_KINDS):
            assert found.mask.any() and not (found.mask & ~head.parenchyma).any()
            assert found.weight.max() <= 1.0 and np.median(found.weight[found.mask]) > 0.5
            sizes[found.kind].append(float(found.mask.sum()) * voxel_ml)
            if found.kind == "territory":  # a territory stays in its hemisphere
                u = head.coords[0][np.nonzero(found.mask)[0], 0, 0]
                assert (np.sign(u) == found.side).all()
    assert max(sizes["lacune"]) < 0.2  # ml: lacunes of a few voxels (1-2.5 mm)
    brain_ml = float(head.parenchyma.sum()) * voxel_ml
    assert min(sizes["territory"]) > 0.02 * brain_ml  # a vascular territory: several % of the brain
    assert max(sizes["subcortical"]) < min(sizes["territory"])


def test_r12_phantoms_write_one_mask_per_lesion(tmp_path: Path, phantoms: Path) -> None:
    folders = make_atlas_phantoms(tmp_path, n_subjects=4, shape=PHANTOM_SHAPE, seed=4, layout="r1.2")
    assert [f.relative_to(tmp_path).as_posix() for f in folders] == [
        "Site1/031001",
        "Site1/031002",
        "Site1/031003",
        "Site1/031004",
    ]
    items = ADAPTER.find_cases(tmp_path).items
    labels = [it["label"] for it in items]
    assert [1 if isinstance(lab, str) else len(lab) for lab in labels] == [1, 2, 1, 3]
    r20 = {it["patient"]: it for it in ADAPTER.find_cases(phantoms).items}
    for item, subject in zip(items, ("sub-r001s001", "sub-r001s002", "sub-r001s003", "sub-r001s004")):
        ADAPTER.check_case(item, tmp_path)
        masks = [item["label"]] if isinstance(item["label"], str) else item["label"]
        union = np.any([_load(tmp_path, m) > 0 for m in masks], axis=0)  # the same subject in both layouts
        np.testing.assert_array_equal(union, _load(phantoms, r20[subject]["label"]) > 0)
        np.testing.assert_array_equal(_load(tmp_path, item["image"]), _load(phantoms, r20[subject]["image"]))
        assert all(_load(tmp_path, m).any() for m in masks)  # every lesion has a voxel


def test_phantom_options_and_determinism(tmp_path: Path, phantoms: Path) -> None:
    write_phantoms("atlas", tmp_path / "a", n_subjects=2, shape=PHANTOM_SHAPE, seed=4)
    make_atlas_phantoms(tmp_path / "b", n_subjects=1, shape=PHANTOM_SHAPE, seed=5)
    name = f"Training/R001/sub-r001s002/ses-1/anat/sub-r001s002_ses-1_space-{SPACE}_T1w.nii.gz"
    np.testing.assert_array_equal(_load(tmp_path / "a", name), _load(phantoms, name))
    first = name.replace("s002", "s001")
    assert not np.array_equal(_load(tmp_path / "b", first), _load(phantoms, first))
    with pytest.raises(ValueError, match="no test release"):
        make_atlas_phantoms(
            tmp_path / "c", n_subjects=1, shape=PHANTOM_SHAPE, layout="r1.2", n_test_subjects=1
        )
    with pytest.raises(ValueError, match="at least 32"):
        make_atlas_phantoms(tmp_path / "c", shape=(16, 16, 16))
    with pytest.raises(ValueError):
        make_atlas_phantoms(tmp_path / "c", layout="r3")
