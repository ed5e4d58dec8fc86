"""Tests of the Figshare reader/writer, the MONAI reader, the phantoms and the patient-wise datalists."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from monai.data import MetaTensor
from monai.transforms import EnsureChannelFirstd, LoadImaged

from common.data import (
    FIGSHARE_PIXEL_SPACING_MM,
    DataFormatError,
    FigshareMatReader,
    build_figshare_datalist,
    find_figshare_files,
    load_datalist_section,
    make_figshare_phantoms,
    prepare_figshare_datalist,
    read_cvind,
    read_figshare_mat,
    split_counts,
    write_cvind,
    write_datalist,
    write_figshare_mat,
)

_HEADER = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
_OMIT = object()


def _matlab_dataset(group: h5py.Group, name: str, data: np.ndarray, matlab_class: str) -> None:
    """Store ``data`` (already in h5py order) with its MATLAB_class attribute."""
    ds = group.create_dataset(name, data=data)
    ds.attrs["MATLAB_class"] = np.bytes_(matlab_class)


def write_matlab_v73(
    path: Path,
    image_rc: np.ndarray | object,
    mask_rc: np.ndarray | object,
    label: float | object = 2.0,
    pid: str | object = "MR029262D",
    image_class: str = "int16",
) -> Path:
    """Write a slice as MATLAB v7.3 does, independently of the code under test.

    ``image_rc`` and ``mask_rc`` are in MATLAB orientation ``I(row, col)``; MATLAB is column-major, so
    HDF5 holds the transpose ``I.T``. ``_OMIT`` leaves a field out.
    """
    with h5py.File(path, "w", userblock_size=512) as f:
        group = f.create_group("cjdata")
        group.attrs["MATLAB_class"] = np.bytes_("struct")
        if label is not _OMIT:
            _matlab_dataset(group, "label", np.array([[label]], dtype=np.float64), "double")
        if pid is not _OMIT:
            codes = np.array([ord(c) for c in pid], dtype=np.uint16).reshape(1, -1)  # MATLAB 1×n char
            _matlab_dataset(group, "PID", codes.T, "char")
        if image_rc is not _OMIT:
            _matlab_dataset(group, "image", np.asarray(image_rc).T, image_class)
        if mask_rc is not _OMIT:
            _matlab_dataset(group, "tumorMask", np.asarray(mask_rc).T, "uint8")
        _matlab_dataset(group, "tumorBorder", np.array([[3.0, 2.0, 4.0, 2.0, 4.0, 3.0]]), "double")
    with open(path, "r+b") as fh:
        fh.write(_HEADER.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM")
    return path


def _matlab_slice(rows: int = 6, cols: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """A non-square MATLAB-orientation image and mask, so that a transposition cannot go unnoticed."""
    image = (np.arange(rows * cols).reshape(rows, cols) * 7 - 20).astype(np.int16)
    mask = np.zeros((rows, cols), dtype=np.uint8)
    mask[1:3, 2:6] = 1  # rows 1-2, columns 2-5
    return image, mask


# --------------------------------------------------------------------------------------- reading


def test_read_matlab_v73_layout(tmp_path: Path) -> None:
    image_rc, mask_rc = _matlab_slice()
    path = write_matlab_v73(tmp_path / "7.mat", image_rc, mask_rc, label=3.0, pid="100360")
    sl = read_figshare_mat(path)
    assert sl.image.dtype == np.int16 and sl.image.shape == (8, 6)  # axis 0 = column = x
    np.testing.assert_array_equal(sl.image, image_rc.T)
    assert sl.mask.dtype == np.uint8
    np.testing.assert_array_equal(sl.mask, mask_rc.T)
    assert sl.mask[2:6, 1:3].all() and sl.mask.sum() == 8
    assert (sl.label, sl.patient_id, sl.border) == (3, "100360", None)
    only = read_figshare_mat(path, fields=("label", "PID", "tumorBorder"))
    assert only.image is None and only.mask is None and only.label == 3
    np.testing.assert_array_equal(only.border, [3, 2, 4, 2, 4, 3])


def test_monai_reader_loadimaged(tmp_path: Path) -> None:
    image_rc, mask_rc = _matlab_slice()
    path = str(write_matlab_v73(tmp_path / "1.mat", image_rc, mask_rc, label=1.0, pid="P7"))
    reader = FigshareMatReader()
    assert reader.verify_suffix(path) and not reader.verify_suffix("x.nii.gz")
    load = LoadImaged(keys=["image"], reader=FigshareMatReader(), image_only=False)
    data = EnsureChannelFirstd(keys=["image"])(load({"image": path}))
    img = data["image"]
    assert isinstance(img, MetaTensor) and tuple(img.shape) == (1, 8, 6)
    np.testing.assert_allclose(img.pixdim, [FIGSHARE_PIXEL_SPACING_MM] * 2)
    np.testing.assert_array_equal(img[0].numpy(), image_rc.T.astype(np.float32))
    assert img.meta["figshare_label"] == 1 and img.meta["patient_id"] == "P7"
    assert img.meta["filename_or_obj"] == path
    np.testing.assert_array_equal(img.meta["spatial_shape"], [8, 6])
    load_mask = LoadImaged(keys=["label"], reader=FigshareMatReader(field="tumorMask"), dtype=None)
    mask = EnsureChannelFirstd(keys=["label"])(load_mask({"label": [path]}))["label"]
    assert mask.dtype.is_floating_point is False and tuple(mask.shape) == (1, 8, 6)
    np.testing.assert_array_equal(mask[0].numpy(), mask_rc.T)
    with pytest.raises(ValueError, match="field"):
        FigshareMatReader(field="label")


def test_write_figshare_mat_layout_and_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 1000, (12, 10)).astype(np.int16)
    mask = np.zeros((12, 10), np.uint8)
    mask[3:7, 2:5] = 1
    path = write_figshare_mat(tmp_path / "sub" / "5.mat", image, mask, 2, "PID-42")
    assert sorted(p.name for p in path.parent.iterdir()) == ["5.mat"]  # no temporary file left
    assert path.read_bytes()[:128].startswith(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: ")
    assert path.read_bytes()[124:128] == b"\x00\x02IM"
    with h5py.File(path, "r") as f:
        assert f.userblock_size == 512
        g = f["cjdata"]
        classes = {k: g[k].attrs["MATLAB_class"] for k in g}
        assert classes == {
            "image": b"int16",
            "tumorMask": b"uint8",
            "label": b"double",
            "PID": b"char",
            "tumorBorder": b"double",
        }
        np.testing.assert_array_equal(g["image"][()], image)  # stored as given: MATLAB sees image.T
        assert g["label"].shape == (1, 1) and g["PID"].dtype == np.uint16 and g["PID"].shape == (6, 1)
        border = g["tumorBorder"][()]
        assert border.shape[0] == 1 and border.size == 2 * 10  # boundary pixels of the 4×3 block
    sl = read_figshare_mat(path, fields=("image", "tumorMask", "label", "PID", "tumorBorder"))
    np.testing.assert_array_equal(sl.image, image)
    np.testing.assert_array_equal(sl.mask, mask)
    assert (sl.label, sl.patient_id) == (2, "PID-42")
    xs, ys = sl.border[0::2] - 1, sl.border[1::2] - 1  # 1-based (axis 0, axis 1) pairs
    assert mask[xs.astype(int), ys.astype(int)].all()
    with pytest.raises(ValueError, match="label"):
        write_figshare_mat(tmp_path / "bad.mat", image, mask, 4, "x")
    assert not (tmp_path / "bad.mat").exists()


# --------------------------------------------------------------------------------------- bad input


def _bad_file(tmp_path: Path, case: str) -> Path:
    """Write a broken slice file for ``case``."""
    image, mask = _matlab_slice()
    path = tmp_path / f"{case}.mat"
    if case == "missing":
        return path
    if case == "random_bytes":
        path.write_bytes(np.random.default_rng(1).bytes(3000))
    elif case == "truncated":
        good = write_matlab_v73(tmp_path / "good.mat", image, mask)
        path.write_bytes(good.read_bytes()[:2500])
    elif case == "v5":
        scipy.io.savemat(path, {"cjdata": {"image": image}})
    elif case == "no_cjdata":
        with h5py.File(path, "w") as f:
            f["other"] = np.zeros(3)
    elif case == "no_mask":
        write_matlab_v73(path, image, _OMIT)
    elif case == "shape_mismatch":
        write_matlab_v73(path, image, mask[:, :5])
    elif case == "mask_value_2":
        write_matlab_v73(path, image, mask * 2)
    elif case == "label_4":
        write_matlab_v73(path, image, mask, label=4.0)
    elif case == "nan_image":
        bad = image.astype(np.float64)
        bad[2, 3] = np.nan
        write_matlab_v73(path, bad, mask, image_class="double")
    elif case == "image_3d":
        write_matlab_v73(path, np.zeros((6, 8, 3), np.int16), mask)
    return path


@pytest.mark.parametrize(
    ("case", "problem"),
    [
        ("missing", "file not found"),
        ("random_bytes", "not an HDF5 (MATLAB v7.3) file"),
        ("truncated", "corrupt or truncated"),
        ("v5", "MATLAB v5 MAT-file"),
        ("no_cjdata", "no group 'cjdata'"),
        ("no_mask", "no field(s) ['tumorMask']"),
        ("shape_mismatch", "tumorMask has shape (5, 6) but cjdata/image has shape (8, 6)"),
        ("mask_value_2", "only 0 and 1, found values [2]"),
        ("label_4", "label is 4, expected 1"),
        ("nan_image", "1 NaN/inf"),
        ("image_3d", "image must be 2-D"),
    ],
)
def test_bad_input_raises_data_format_error(tmp_path: Path, case: str, problem: str) -> None:
    path = _bad_file(tmp_path, case)
    with pytest.raises(DataFormatError) as info:
        read_figshare_mat(path)
    message = str(info.value)
    assert message.startswith(str(path)) and f"{case}.mat" in message
    assert problem in message


def test_read_cvind_v73_and_v5(tmp_path: Path) -> None:
    folds = np.array([1, 2, 3, 4, 5, 5, 1])
    write_cvind(tmp_path / "a" / "cvind.mat", folds)
    np.testing.assert_array_equal(read_cvind(tmp_path / "a" / "cvind.mat"), folds)
    scipy.io.savemat(tmp_path / "v5.mat", {"cvind": folds.reshape(-1, 1).astype(np.float64)})
    assert read_cvind(tmp_path / "v5.mat").dtype == np.int64
    np.testing.assert_array_equal(read_cvind(tmp_path / "v5.mat"), folds)
    scipy.io.savemat(tmp_path / "bad.mat", {"cvind": np.array([[1.0], [7.0]])})
    with pytest.raises(DataFormatError, match=r"bad\.mat: cvind must hold fold ids 1..5, found \[7.0\]"):
        read_cvind(tmp_path / "bad.mat")
    scipy.io.savemat(tmp_path / "other.mat", {"x": np.ones(2)})
    with pytest.raises(DataFormatError, match="no variable 'cvind'"):
        read_cvind(tmp_path / "other.mat")


# --------------------------------------------------------------------------------------- phantoms


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


# --------------------------------------------------------------------------------------- datalists


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 patients × 3 slices of 64×64."""
    out = tmp_path_factory.mktemp("figshare20")
    make_figshare_phantoms(out, n_patients=20, slices_per_patient=3, size=64, seed=7)
    return out


def _patients(items: list[dict]) -> set[str]:
    return {it["patient"] for it in items}


def test_split_counts() -> None:
    assert split_counts(20, (8, 1, 1)) == [16, 2, 2]
    assert split_counts(3, (8, 1, 1)) == [1, 1, 1]
    assert split_counts(10, (8, 2, 0)) == [8, 2, 0]
    assert split_counts(233, (8, 1, 1)) == [187, 23, 23]
    assert sum(split_counts(7, (1, 1))) == 7


def test_patient_split(phantom_dir: Path) -> None:
    dl = build_figshare_datalist(phantom_dir, seed=1029)
    tr, va, te = (dl[k] for k in ("training", "validation", "testing"))
    assert not (
        _patients(tr) & _patients(va) or _patients(tr) & _patients(te) or _patients(va) & _patients(te)
    )
    assert (len(_patients(tr)), len(_patients(va)), len(_patients(te))) == (16, 2, 2)
    names = sorted(it["image"] for it in tr + va + te)
    assert names == sorted(f"{i}.mat" for i in range(1, 61))
    item = tr[0]
    assert item["image"] == item["label"] and item["class"] in (0, 1, 2) and item["patient"].startswith("P")
    assert build_figshare_datalist(phantom_dir, seed=1029) == dl
    other = build_figshare_datalist(phantom_dir, seed=1)
    assert _patients(other["testing"]) | _patients(other["validation"]) != _patients(te) | _patients(va)


def test_cvind_fold_split(phantom_dir: Path) -> None:
    cvind = read_cvind(phantom_dir / "cvind.mat")
    dl = build_figshare_datalist(phantom_dir, cvind_fold=2)
    expected = sorted(f"{i + 1}.mat" for i in np.flatnonzero(cvind == 2))
    assert sorted(it["image"] for it in dl["testing"]) == expected
    assert not _patients(dl["testing"]) & (_patients(dl["training"]) | _patients(dl["validation"]))
    assert len(dl["training"]) + len(dl["validation"]) + len(expected) == 60 and dl["validation"]


def test_original_subfolders_and_errors(phantom_dir: Path, tmp_path: Path) -> None:
    parts = ["brainTumorDataPublic_1766", "brainTumorDataPublic_7671532"]
    parts += ["brainTumorDataPublic_15332298", "brainTumorDataPublic_22993064"]
    for i in range(1, 61):
        dest = tmp_path / "ds" / parts[(i - 1) * 4 // 60]
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(phantom_dir / f"{i}.mat", dest / f"{i}.mat")
    found = find_figshare_files(tmp_path / "ds")
    assert [int(p.stem) for p in found] == list(range(1, 61))
    dl = build_figshare_datalist(tmp_path / "ds")
    assert {it["image"].split("/")[0] for it in dl["training"]} <= set(parts)
    assert sum(len(dl[k]) for k in ("training", "validation", "testing")) == 60
    with pytest.raises(DataFormatError, match="cvind.mat"):
        build_figshare_datalist(tmp_path / "ds", cvind_fold=1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match=r"empty: no Figshare \.mat files found"):
        build_figshare_datalist(tmp_path / "empty")
    with pytest.raises(DataFormatError, match="nowhere: dataset folder does not exist"):
        build_figshare_datalist(tmp_path / "nowhere")
    with pytest.raises(DataFormatError, match="leave the default to train on generated phantoms"):
        prepare_figshare_datalist(str(tmp_path / "empty"), str(tmp_path / "dl.json"))


def test_prepare_with_phantoms_and_load(tmp_path: Path) -> None:
    data_dir, dl_file = tmp_path / "phantom_data", tmp_path / "out" / "datalist.json"
    kwargs = {"n_patients": 6, "slices_per_patient": 2, "size": 64}
    result = prepare_figshare_datalist(
        str(data_dir), str(dl_file), generate_phantoms=True, phantom_kwargs=kwargs
    )
    assert result == str(dl_file) and len(find_figshare_files(data_dir)) == 12
    content = json.loads(dl_file.read_text())
    assert {len(content[k]) for k in ("training", "validation", "testing")} <= {2, 4, 6, 8}
    items = load_datalist_section(dl_file, "training", data_dir)
    assert len(items) == len(content["training"])
    first = items[0]
    assert Path(first["image"]).is_file() and first["image"] == first["label"]
    assert first["patient"] == content["training"][0]["patient"]
    loaded = LoadImaged(keys=["image"], reader=FigshareMatReader())(first)
    assert loaded["image"].shape == (64, 64) and loaded["image"].meta["patient_id"] == first["patient"]
    # a second call reuses the files and rewrites the same datalist
    prepare_figshare_datalist(str(data_dir), str(dl_file), generate_phantoms=True, phantom_kwargs=kwargs)
    assert json.loads(dl_file.read_text()) == content
    with pytest.raises(DataFormatError, match="no list section 'test'"):
        load_datalist_section(dl_file, "test", data_dir)


def test_write_datalist_atomic(tmp_path: Path) -> None:
    path = write_datalist({"training": [{"image": "1.mat"}]}, tmp_path / "a" / "b" / "dl.json")
    assert json.loads(path.read_text()) == {"training": [{"image": "1.mat"}]}
    assert [p.name for p in path.parent.iterdir()] == ["dl.json"]


def test_patient_split_spreads_tumour_types(tmp_path):
    """With 10 patients of each type, the 3-patient validation and test splits hold one of each type."""
    make_figshare_phantoms(tmp_path, n_patients=30, slices_per_patient=1, size=64, seed=3)
    for seed in (1029, 7):
        dl = build_figshare_datalist(tmp_path, seed=seed)
        assert [len(dl[k]) for k in ("training", "validation", "testing")] == [24, 3, 3]
        assert sorted(it["class"] for it in dl["validation"]) == [0, 1, 2]
        assert sorted(it["class"] for it in dl["testing"]) == [0, 1, 2]
