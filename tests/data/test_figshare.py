"""The Figshare ``.mat`` format (reader, writer, MONAI reader, cvind) and the Figshare adapter."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from monai.data import MetaTensor
from monai.transforms import EnsureChannelFirstd, LoadImaged, Resized

from common.data.datalist import build_datalist, load_datalist_section, prepare_datalist
from common.data.errors import DataFormatError
from common.data.figshare import ADAPTER, find_figshare_files
from common.data.figshare_mat import (
    FIGSHARE_FIELD_OF_VIEW_MM,
    FIGSHARE_PIXEL_SPACING_MM,
    FigshareMatReader,
    read_cvind,
    read_figshare_mat,
    write_cvind,
    write_figshare_mat,
)
from common.data.phantoms.figshare import make_figshare_phantoms
from tests.data.cases import OMIT, matlab_slice, write_matlab_v73

# --------------------------------------------------------------------------------------- reading


def test_read_matlab_v73_layout(tmp_path: Path) -> None:
    image_rc, mask_rc = matlab_slice()
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
    image_rc, mask_rc = matlab_slice()
    path = str(write_matlab_v73(tmp_path / "1.mat", image_rc, mask_rc, label=1.0, pid="P7"))
    reader = FigshareMatReader()
    assert reader.verify_suffix(path) and not reader.verify_suffix("x.nii.gz")
    load = LoadImaged(keys=["image"], reader=FigshareMatReader(), image_only=False)
    data = EnsureChannelFirstd(keys=["image"])(load({"image": path}))
    img = data["image"]
    assert isinstance(img, MetaTensor) and tuple(img.shape) == (1, 8, 6)
    # an 8 x 6 slice spans the same field of view as a 512 x 512 one
    np.testing.assert_allclose(img.pixdim, [FIGSHARE_FIELD_OF_VIEW_MM / 8, FIGSHARE_FIELD_OF_VIEW_MM / 6])
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
    image, mask = matlab_slice()
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
        write_matlab_v73(path, image, OMIT)
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


# --------------------------------------------------------------------------------------- datalists


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 patients × 3 slices of 64×64."""
    out = tmp_path_factory.mktemp("figshare20")
    make_figshare_phantoms(out, n_patients=20, slices_per_patient=3, size=64, seed=7)
    return out


def _patients(items: list[dict]) -> set[str]:
    return {it["patient"] for it in items}


def test_patient_split(phantom_dir: Path) -> None:
    dl = build_datalist("figshare", phantom_dir, seed=1029)
    tr, va, te = (dl[k] for k in ("training", "validation", "testing"))
    assert not (
        _patients(tr) & _patients(va) or _patients(tr) & _patients(te) or _patients(va) & _patients(te)
    )
    assert (len(_patients(tr)), len(_patients(va)), len(_patients(te))) == (16, 2, 2)
    names = sorted(it["image"] for it in tr + va + te)
    assert names == sorted(f"{i}.mat" for i in range(1, 61))
    item = tr[0]
    assert item["image"] == item["label"] and item["class"] in (0, 1, 2) and item["patient"].startswith("P")
    assert build_datalist("figshare", phantom_dir, seed=1029) == dl
    # the sections the split gave before the data code became adapters (MMRAN's seed)
    assert sorted(it["image"] for it in va) == ["28.mat", "29.mat", "30.mat", "7.mat", "8.mat", "9.mat"]
    assert sorted(it["image"] for it in te) == ["40.mat", "41.mat", "42.mat", "46.mat", "47.mat", "48.mat"]
    other = build_datalist("figshare", phantom_dir, seed=1)
    assert _patients(other["testing"]) | _patients(other["validation"]) != _patients(te) | _patients(va)


def test_cvind_fold_split(phantom_dir: Path) -> None:
    cvind = read_cvind(phantom_dir / "cvind.mat")
    dl = build_datalist("figshare", phantom_dir, seed=1029, cvind_fold=2)
    expected = sorted(f"{i + 1}.mat" for i in np.flatnonzero(cvind == 2))
    assert sorted(it["image"] for it in dl["testing"]) == expected
    assert not _patients(dl["testing"]) & (_patients(dl["training"]) | _patients(dl["validation"]))
    assert len(dl["training"]) + len(dl["validation"]) + len(expected) == 60 and dl["validation"]
    assert dl["cvind_fold"] == 2 and dl["fold"] is None
    assert sorted(int(it["image"][:-4]) for it in dl["validation"]) == [4, 5, 6, 37, 38, 39]  # as before
    with pytest.raises(ValueError, match="cvind_fold must be 1..5"):
        build_datalist("figshare", phantom_dir, cvind_fold=6)


def test_cvind_fold_that_is_not_patient_wise(phantom_dir: Path, tmp_path: Path) -> None:
    """The test fold's patients' slices in other folds are left out of training/validation, with a warning."""
    shutil.copytree(phantom_dir, tmp_path / "ds")
    cvind = read_cvind(phantom_dir / "cvind.mat")
    first_test = int(np.flatnonzero(cvind == 1)[0])
    cvind[first_test] = 2  # one slice of a fold-1 patient moves to fold 2
    write_cvind(tmp_path / "ds" / "cvind.mat", cvind)
    with pytest.warns(UserWarning, match="not patient-wise; 1 items of test patients"):
        dl = build_datalist("figshare", tmp_path / "ds", cvind_fold=1)
    assert sorted(int(it["image"][:-4]) - 1 for it in dl["testing"]) == sorted(
        int(i) for i in np.flatnonzero(cvind == 1)
    )
    rest = dl["training"] + dl["validation"]
    assert len(rest) + len(dl["testing"]) == 59 and f"{first_test + 1}.mat" not in {
        it["image"] for it in rest
    }
    assert not _patients(dl["testing"]) & _patients(rest)


def test_adapter_finds_checks_and_maps(phantom_dir: Path, tmp_path: Path) -> None:
    assert ADAPTER.has_data(phantom_dir) and not ADAPTER.has_data(tmp_path / "nowhere")
    assert ADAPTER.detect_layout(phantom_dir) == "figshare"
    cases = ADAPTER.find_cases(phantom_dir)
    assert [it["image"] for it in cases.items] == [f"{i}.mat" for i in range(1, 61)]  # numeric order
    assert cases.items[0] == {"image": "1.mat", "label": "1.mat", "class": 0, "patient": "P0001"}
    ADAPTER.check_case(cases.items[0], phantom_dir)
    shutil.copy(phantom_dir / "1.mat", tmp_path / "1.mat")
    (tmp_path / "2.mat").write_bytes((phantom_dir / "2.mat").read_bytes()[:2000])
    with pytest.raises(DataFormatError, match=r"2\.mat: .*corrupt or truncated"):
        ADAPTER.find_cases(tmp_path)
    collected = ADAPTER.find_cases(tmp_path, on_error="collect")
    assert [it["image"] for it in collected.items] == ["1.mat"]
    assert [Path(name).name for name, _ in collected.problems] == ["2.mat"]
    assert ADAPTER.to_canonical(np.array([0, 1, 1]), "figshare").tolist() == [0, 1, 1]
    with pytest.raises(DataFormatError, match="outside the figshare label set"):
        ADAPTER.to_canonical(np.array([0, 2]), "figshare")
    header = build_datalist("figshare", phantom_dir)
    assert header["labels"] == {"0": "meningioma", "1": "glioma", "2": "pituitary"}
    assert header["field_of_view_mm"] == FIGSHARE_FIELD_OF_VIEW_MM and header["layout"] == "figshare"


def test_original_subfolders_and_errors(phantom_dir: Path, tmp_path: Path) -> None:
    parts = ["brainTumorDataPublic_1766", "brainTumorDataPublic_7671532"]
    parts += ["brainTumorDataPublic_15332298", "brainTumorDataPublic_22993064"]
    for i in range(1, 61):
        dest = tmp_path / "ds" / parts[(i - 1) * 4 // 60]
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(phantom_dir / f"{i}.mat", dest / f"{i}.mat")
    found = find_figshare_files(tmp_path / "ds")
    assert [int(p.stem) for p in found] == list(range(1, 61))
    dl = build_datalist("figshare", tmp_path / "ds")
    assert {it["image"].split("/")[0] for it in dl["training"]} <= set(parts)
    assert sum(len(dl[k]) for k in ("training", "validation", "testing")) == 60
    with pytest.raises(DataFormatError, match="cvind.mat"):
        build_datalist("figshare", tmp_path / "ds", cvind_fold=1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match=r"empty: no Figshare \.mat files found"):
        build_datalist("figshare", tmp_path / "empty")
    with pytest.raises(DataFormatError, match="nowhere: dataset folder does not exist"):
        build_datalist("figshare", tmp_path / "nowhere")
    with pytest.raises(DataFormatError, match="leave the default to train on generated phantoms"):
        prepare_datalist("figshare", str(tmp_path / "empty"), str(tmp_path / "dl.json"))


def test_prepare_with_phantoms_and_load(tmp_path: Path) -> None:
    data_dir, dl_file = tmp_path / "phantom_data", tmp_path / "out" / "datalist.json"
    kwargs = {"n_patients": 6, "slices_per_patient": 2, "size": 64}
    result = prepare_datalist(
        "figshare", str(data_dir), str(dl_file), generate_phantoms=True, phantom_kwargs=kwargs
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
    prepare_datalist("figshare", str(data_dir), str(dl_file), generate_phantoms=True, phantom_kwargs=kwargs)
    assert json.loads(dl_file.read_text()) == content
    with pytest.raises(DataFormatError, match="no list section 'test'"):
        load_datalist_section(dl_file, "test", data_dir)


def test_patient_split_spreads_tumour_types(tmp_path):
    """With 10 patients of each type, the 3-patient validation and test splits hold one of each type."""
    make_figshare_phantoms(tmp_path, n_patients=30, slices_per_patient=1, size=64, seed=3)
    for seed in (1029, 7):
        dl = build_datalist("figshare", tmp_path, seed=seed)
        assert [len(dl[k]) for k in ("training", "validation", "testing")] == [24, 3, 3]
        assert sorted(it["class"] for it in dl["validation"]) == [0, 1, 2]
        assert sorted(it["class"] for it in dl["testing"]) == [0, 1, 2]


def test_spacing_follows_each_slice_grid_and_survives_resizing(tmp_path: Path) -> None:
    """512 and 256 slices of one field of view: 0.49 and 0.98 mm; both 0.49 mm once resized to 512."""
    load = LoadImaged(keys="image", reader=FigshareMatReader(), image_only=True)
    resize = Resized(keys="image", spatial_size=(512, 512))
    for size, native in [(512, FIGSHARE_PIXEL_SPACING_MM), (256, 2 * FIGSHARE_PIXEL_SPACING_MM)]:
        image = np.zeros((size, size), dtype=np.int16)
        mask = np.zeros((size, size), dtype=np.uint8)
        mask[10:20, 10:20] = 1
        path = write_figshare_mat(tmp_path / f"{size}.mat", image, mask, label=1, patient_id="P")
        item = EnsureChannelFirstd(keys="image")(load({"image": str(path)}))
        np.testing.assert_allclose(item["image"].pixdim, [native, native])
        np.testing.assert_allclose(resize(item)["image"].pixdim, [FIGSHARE_PIXEL_SPACING_MM] * 2, rtol=1e-6)
    with pytest.raises(ValueError, match="field_of_view_mm"):
        FigshareMatReader(field_of_view_mm=0)
