"""Phantom writers: each writes its data set's real format, which its adapter reads and checks."""

from __future__ import annotations

import json
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from common.data.brats import ADAPTER as BRATS_ADAPTER
from common.data.datalist import build_datalist
from common.data.figshare import ADAPTER as FIGSHARE_ADAPTER
from common.data.figshare_mat import read_cvind, read_figshare_mat
from common.data.phantoms.brats import make_brats_phantoms
from common.data.phantoms.figshare import make_figshare_phantoms
from common.data.registry import ADAPTERS, get_adapter, write_phantoms
from tests.data.cases import load_nifti


def _checked_cases(root: Path, adapter=BRATS_ADAPTER):
    """``find_cases`` of ``root`` with every case checked."""
    cases = adapter.find_cases(root)
    for item in cases.items:
        adapter.check_case(item, root)
    return cases


# ------------------------------------------------------------------------------------------ Figshare


def test_phantoms_fast_and_like_the_real_data(tmp_path: Path) -> None:
    start = time.perf_counter()
    files = make_figshare_phantoms(tmp_path, n_patients=12, slices_per_patient=4, size=256, seed=0)
    assert time.perf_counter() - start < 6.0  # about 1 s on one core; generous for busy CI machines
    assert [f.name for f in files] == [f"{i}.mat" for i in range(1, 49)]
    slices = [read_figshare_mat(f) for f in files]
    labels = [s.label for s in slices]
    assert [labels.count(k) for k in (1, 2, 3)] == [16, 16, 16]
    for s in slices:
        assert s.image.dtype == np.int16 and s.image.shape == (256, 256)
        assert 0 <= s.image.min() and 700 < s.image.max() < 2000
        area = int(s.mask.sum())
        brain = 0.3 * s.image.size  # the brain covers about 35 % of the picture
        assert 0.02 * brain < area < 0.12 * brain
    by_patient: dict[str, set[int]] = {}
    for s in slices:
        by_patient.setdefault(s.patient_id, set()).add(s.label)
    assert len(by_patient) == 12 and all(len(v) == 1 for v in by_patient.values())
    assert sorted(by_patient)[0] == "P0001"
    cvind = read_cvind(tmp_path / "cvind.mat")
    assert cvind.size == 48 and set(cvind) == {1, 2, 3, 4, 5}
    for pid in by_patient:
        assert len({int(c) for c, s in zip(cvind, slices) if s.patient_id == pid}) == 1


def test_phantoms_deterministic_and_sizes(tmp_path: Path) -> None:
    kwargs = {"n_patients": 3, "slices_per_patient": 2, "sizes": (64, 512, 96)}
    a = [read_figshare_mat(f) for f in make_figshare_phantoms(tmp_path / "a", seed=3, **kwargs)]
    b = [read_figshare_mat(f) for f in make_figshare_phantoms(tmp_path / "b", seed=3, **kwargs)]
    c = [read_figshare_mat(f) for f in make_figshare_phantoms(tmp_path / "c", seed=4, **kwargs)]
    assert [s.image.shape for s in a] == [(64, 64)] * 2 + [(512, 512)] * 2 + [(96, 96)] * 2
    for sa, sb, sc in zip(a, b, c):
        assert sa.image.tobytes() == sb.image.tobytes() and sa.mask.tobytes() == sb.mask.tobytes()
        assert sa.image.tobytes() != sc.image.tobytes()
        assert sa.mask.any() and sa.mask.shape == sa.image.shape
    np.testing.assert_array_equal(
        read_cvind(tmp_path / "a" / "cvind.mat"), read_cvind(tmp_path / "b" / "cvind.mat")
    )


# ------------------------------------------------------------------------------------------ BraTS

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
    layout, items, _ = _checked_cases(root)
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
        np.testing.assert_array_equal(load_nifti(tmp_path / "again", name), load_nifti(root, name))
    first = "BraTS20_Training_001/BraTS20_Training_001_t1ce.nii.gz"
    assert not np.array_equal(load_nifti(tmp_path / "other", first), load_nifti(root, first))


def test_phantom_contrasts(phantoms: tuple[Path, float]) -> None:
    """Each sub-region stands out in the modality where it does on real scans."""
    root, _ = phantoms
    for item in BRATS_ADAPTER.find_cases(root).items:
        flair, t1, t1ce, t2 = (load_nifti(root, p).astype(np.float64) for p in item["image"])
        seg = BRATS_ADAPTER.to_canonical(load_nifti(root, item["label"]), "brats2020")
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
    found, items, _ = _checked_cases(tmp_path)
    assert found == layout and len(items) == 1
    reference = BRATS_ADAPTER.to_canonical(
        load_nifti(root, "BraTS20_Training_001/BraTS20_Training_001_seg.nii.gz"), "brats2020"
    )
    np.testing.assert_array_equal(
        BRATS_ADAPTER.to_canonical(load_nifti(tmp_path, items[0]["label"]), layout), reference
    )
    flair = load_nifti(root, "BraTS20_Training_001/BraTS20_Training_001_flair.nii.gz")
    if layout == "msd":
        image = load_nifti(tmp_path, items[0]["image"])
        assert image.shape == (*SMALL, 4) and image.dtype == np.float32
        np.testing.assert_allclose(image[..., 0], flair, atol=0.51)
        assert json.loads((tmp_path / "dataset.json").read_text())["numTraining"] == 1
    else:
        np.testing.assert_array_equal(load_nifti(tmp_path, items[0]["image"][0]), flair)


def test_unlabelled_phantoms(tmp_path: Path) -> None:
    make_brats_phantoms(tmp_path, n_cases=2, shape=(32, 32, 24), with_labels=False)
    datalist = build_datalist("brats", tmp_path)
    assert [it["case"] for it in datalist["predict"]] == ["BraTS20_Validation_001", "BraTS20_Validation_002"]
    assert datalist["training"] == []


def test_figshare_phantoms_are_what_the_adapter_reads(tmp_path: Path) -> None:
    files = make_figshare_phantoms(tmp_path, n_patients=3, slices_per_patient=2, size=32, seed=1)
    cases = _checked_cases(tmp_path, FIGSHARE_ADAPTER)
    assert [it["image"] for it in cases.items] == [f.name for f in files]
    assert [it["patient"] for it in cases.items] == ["P0001", "P0001", "P0002", "P0002", "P0003", "P0003"]
    assert [it["class"] for it in cases.items] == [0, 0, 1, 1, 2, 2]


# ------------------------------------------------------------------------------------------ registry


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_every_adapter_writes_phantoms_it_reads(tmp_path: Path, name: str) -> None:
    """The registry's phantom writer of each adapter fills an empty folder with data the adapter accepts."""
    adapter = get_adapter(name)
    assert adapter.name == name and get_adapter(adapter) is adapter
    small = {
        "atlas": {"n_subjects": 1, "shape": (32, 32, 32)},
        "brats": {"n_cases": 1, "shape": (24, 24, 24)},
        "collection_slices": {"n_patients": 1, "shape": (32, 32, 24)},
        "image_classes": {"n_patients": 2, "slices_per_patient": 1, "size": 32},
        "isbi2015": {"n_patients": 1, "timepoints": 1, "shape": (32, 32, 32)},
        "ncct": {"n_cases": 1, "shape": (32, 32, 8)},
    }.get(name, {"n_patients": 1, "size": 16})
    assert not adapter.has_data(tmp_path)
    write_phantoms(name, tmp_path, **small)
    assert adapter.has_data(tmp_path) and adapter.detect_layout(tmp_path) in adapter.layouts
    cases = _checked_cases(tmp_path, adapter)
    assert cases.items and not cases.problems
