"""Datalists of any data set: write, load one section, k-fold and leave-one-group-out through the builder."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from common.data.datalist import (
    DATALIST_SECTIONS,
    build_datalist,
    load_datalist_section,
    prepare_datalist,
    write_datalist,
)
from common.data.errors import DataFormatError
from common.data.phantoms.figshare import make_figshare_phantoms
from tests.data.cases import write_case


def patients(items: list[dict], key: str = "patient") -> set[str]:
    return {it[key] for it in items}


@pytest.fixture(scope="module")
def figshare_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 patients × 3 slices of 64×64 (classes 7/7/6)."""
    out = tmp_path_factory.mktemp("figshare20")
    make_figshare_phantoms(out, n_patients=20, slices_per_patient=3, size=64, seed=7)
    return out


# ------------------------------------------------------------------------------------------ write / load


def test_write_datalist_atomic(tmp_path: Path) -> None:
    path = write_datalist({"training": [{"image": "1.mat"}]}, tmp_path / "a" / "b" / "dl.json")
    assert json.loads(path.read_text()) == {"training": [{"image": "1.mat"}]}
    assert [p.name for p in path.parent.iterdir()] == ["dl.json"]


def test_load_section_joins_paths_and_keeps_other_values(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "Case_1").mkdir(parents=True)  # a folder named like the case id must not change the id
    (data / "P7").mkdir()
    items = [
        {"image": ["Case_1/a.nii.gz", "Case_1/b.nii.gz"], "label": "Case_1/seg.nii.gz", "case": "Case_1"},
        {"image": "sub/../12.mat", "label": "12.mat", "patient": "P7", "class": 2, "layout": "x"},
        {"image": "u.nii.gz", "case": "Case_2"},
    ]
    path = write_datalist({"training": items, "testing": []}, tmp_path / "dl.json")
    loaded = load_datalist_section(path, "training", data)
    assert loaded[0] == {
        "image": [str(data / "Case_1" / "a.nii.gz"), str(data / "Case_1" / "b.nii.gz")],
        "label": str(data / "Case_1" / "seg.nii.gz"),
        "case": "Case_1",
    }
    assert loaded[1] == {
        "image": str(data / "12.mat"),
        "label": str(data / "12.mat"),
        "patient": "P7",
        "class": 2,
        "layout": "x",
    }
    assert loaded[2] == {"image": str(data / "u.nii.gz"), "case": "Case_2"}
    assert load_datalist_section(path, "testing", data) == []


def test_load_section_errors(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="missing.json: datalist file not found"):
        load_datalist_section(tmp_path / "missing.json", "training", tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataFormatError, match="bad.json: not a JSON datalist"):
        load_datalist_section(bad, "training", tmp_path)
    path = write_datalist({"training": [{"image": "a"}], "testing": ["a.png"]}, tmp_path / "dl.json")
    with pytest.raises(DataFormatError, match=r"no list section 'test' \(keys: \['testing', 'training'\]\)"):
        load_datalist_section(path, "test", tmp_path)
    with pytest.raises(DataFormatError, match="item 0 of section 'testing' is not an object"):
        load_datalist_section(path, "testing", tmp_path)


# ------------------------------------------------------------------------------------------ folds


def test_kfold_by_patient_stratified(figshare_dir: Path) -> None:
    n_folds = 5
    tested: Counter[str] = Counter()
    class_of: dict[str, int] = {}
    per_fold_classes = []
    for fold in range(n_folds):
        dl = build_datalist("figshare", figshare_dir, seed=2, fold=fold, n_folds=n_folds)
        assert (dl["fold"], dl["n_folds"], dl["dataset"]) == (fold, n_folds, "figshare")
        tr, va, te = (patients(dl[k]) for k in DATALIST_SECTIONS)
        assert not (tr & va or tr & te or va & te)  # no patient in two sections
        assert len(tr | va | te) == 20 and len(te) == 4 and len(va) == 2  # rest cut 8:1
        assert sum(len(dl[k]) for k in DATALIST_SECTIONS) == 60  # every slice once
        tested.update(te)
        class_of.update({it["patient"]: it["class"] for it in dl["testing"]})
        per_fold_classes.append(Counter(class_of[p] for p in te))
    assert sorted(tested) == sorted(class_of) and set(tested.values()) == {1}  # every patient tested once
    for cls, total in Counter(class_of.values()).items():  # 7, 7, 6 patients: 1 or 2 per fold
        counts = [c[cls] for c in per_fold_classes]
        assert sum(counts) == total and max(counts) - min(counts) <= 1
    assert build_datalist("figshare", figshare_dir, seed=2, fold=4, n_folds=5) == dl  # deterministic


def test_leave_one_case_out(tmp_path: Path) -> None:
    cases = [write_case(tmp_path, "brats2021", i) for i in range(6)]
    tested = []
    for fold in range(6):
        dl = build_datalist("brats", tmp_path, seed=0, fold=fold)
        held = [it["case"] for it in dl["testing"]]
        assert held == [cases[fold]]  # the fold-th case in sorted order
        rest = [it["case"] for k in ("training", "validation") for it in dl[k]]
        assert sorted(rest) == [c for c in cases if c != cases[fold]]
        assert dl["validation"]  # 5 cases cut 8:1 still leave one for validation
        tested += held
    assert tested == cases
    with pytest.raises(ValueError, match="fold must be 0..5"):
        build_datalist("brats", tmp_path, fold=6)


def test_fold_arguments_are_checked(figshare_dir: Path, tmp_path: Path) -> None:
    write_case(tmp_path, "brats2020", 1)
    with pytest.raises(TypeError, match="no option"):
        build_datalist("brats", tmp_path, cvind_fold=1)  # a Figshare option
    with pytest.raises(ValueError, match="needs a fold"):
        build_datalist("figshare", figshare_dir, n_folds=5)
    with pytest.raises(ValueError, match="fold must be 0..4"):
        build_datalist("figshare", figshare_dir, fold=5, n_folds=5)
    with pytest.raises(ValueError, match="either fold or"):
        build_datalist("figshare", figshare_dir, fold=0, n_folds=5, cvind_fold=1)
    with pytest.raises(ValueError, match="ratios must be"):
        build_datalist("figshare", figshare_dir, ratios=(8, 2))
    with pytest.raises(ValueError, match="unknown data set 'isbi'"):
        build_datalist("isbi", figshare_dir)


def test_prepare_datalist_with_folds_writes_what_build_gives(figshare_dir: Path, tmp_path: Path) -> None:
    path = prepare_datalist("figshare", figshare_dir, tmp_path / "dl.json", seed=1, fold=2, n_folds=4)
    assert json.loads(Path(path).read_text()) == build_datalist(
        "figshare", figshare_dir, seed=1, fold=2, n_folds=4
    )


def test_check_reads_every_case(tmp_path: Path) -> None:
    write_case(tmp_path, "brats2020", 1)
    write_case(tmp_path, "brats2020", 2, seg=np.full((6, 7, 5), 3, np.uint8))  # 3: not 2020
    build_datalist("brats", tmp_path)  # finding reads no voxel
    with pytest.raises(DataFormatError, match="BraTS20_Training_002.*outside the brats2020 label set"):
        build_datalist("brats", tmp_path, check=True)
