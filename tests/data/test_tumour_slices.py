"""Brain-tumour phantoms: class folders of PNG slices, BraTS 2023 GLI/MEN/MET cases; classes look right."""

from __future__ import annotations

import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from common.data.collection_slices import ADAPTER as COLLECTION_ADAPTER
from common.data.errors import DataFormatError
from common.data.image_classes import ADAPTER as IMAGE_ADAPTER
from common.data.phantoms.tumour_slices import (
    PHANTOM_CLASSES,
    make_tumour_collection_phantoms,
    make_tumour_image_phantoms,
)


def enhancing(path: Path) -> tuple[np.ndarray, int]:
    """Connected components (label array, count) of the brightly enhancing pixels of a slice, 3 px or more."""
    pixels = np.asarray(Image.open(path), dtype=np.float64)
    full = 255.0 if pixels.max() <= 255 else 4095.0
    labels, n = ndimage.label(pixels / full > 0.72)
    sizes = ndimage.sum_labels(np.ones_like(pixels), labels, range(1, n + 1))
    keep = np.flatnonzero(sizes >= 3) + 1
    return np.where(np.isin(labels, keep), labels, 0), int(keep.size)


@pytest.fixture(scope="module")
def slices(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    root = tmp_path_factory.mktemp("tumour_slices")
    start = time.perf_counter()
    make_tumour_image_phantoms(root, n_patients=8, slices_per_patient=2, seed=0)
    return root, time.perf_counter() - start


def test_image_phantoms_are_a_class_tree_with_patients(slices: tuple[Path, float]) -> None:
    root, seconds = slices
    assert seconds < 6.0  # 16 slices of 256 x 256: about 1.5 s on one core
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    assert files[:4] == [
        "glioma/P0002/slice_01.png",
        "glioma/P0002/slice_02.png",
        "glioma/P0006/slice_01.png",
        "glioma/P0006/slice_02.png",
    ]
    assert len(files) == 16 and {f.split("/")[0] for f in files} == set(PHANTOM_CLASSES)
    with Image.open(root / files[0]) as img:
        assert (img.mode, img.size) == ("L", (256, 256))
    cases = IMAGE_ADAPTER.find_cases(root)
    assert cases.layout == "folders" and len({it["patient"] for it in cases.items}) == 8
    for item in cases.items:
        IMAGE_ADAPTER.check_case(item, root)


def test_each_class_looks_like_it(slices: tuple[Path, float]) -> None:
    root, _ = slices
    for path in sorted(root.rglob("*.png")):
        cls = path.parts[-3]
        labels, n = enhancing(path)
        areas = np.bincount(labels.ravel())[1:]
        areas = areas[areas > 0]
        if cls == "no_tumour":
            assert n == 0, path
        elif cls == "glioma":  # one large ring-enhancing mass
            assert n == 1 and areas[0] > 150, (path, areas)
            assert ndimage.binary_fill_holes(labels > 0).sum() > 1.3 * areas[0]  # a dark necrotic centre
        elif cls == "meningioma":  # one homogeneous mass on the brain surface
            assert n == 1 and areas[0] > 150, (path, areas)
            assert ndimage.binary_fill_holes(labels > 0).sum() < 1.05 * areas[0]  # solid
            centre = np.array(ndimage.center_of_mass(labels > 0)) - 127.5
            assert np.hypot(*(centre / (np.array([85.0, 70.0]) * 256 / 240))) > 0.65  # (rows, cols) semi-axes
        else:  # several small ring-enhancing metastases
            assert 3 <= n <= 6 and areas.max() < 0.005 * 256 * 256, (path, areas)
            for k in range(1, labels.max() + 1):
                ring = labels == k
                if ring.any():
                    assert ndimage.binary_fill_holes(ring).sum() > ring.sum(), (path, k)  # a hole: a ring


def test_image_phantoms_deterministic_sizes_and_16_bit(tmp_path: Path, slices: tuple[Path, float]) -> None:
    root, _ = slices
    make_tumour_image_phantoms(tmp_path / "a", n_patients=3, slices_per_patient=2, seed=0)
    for rel in ("no_tumour/P0001/slice_02.png", "glioma/P0002/slice_01.png", "meningioma/P0003/slice_02.png"):
        assert np.array_equal(
            np.asarray(Image.open(tmp_path / "a" / rel)), np.asarray(Image.open(root / rel))
        )
    make_tumour_image_phantoms(tmp_path / "b", n_patients=1, slices_per_patient=1, seed=1)
    first = "no_tumour/P0001/slice_01.png"
    assert not np.array_equal(
        np.asarray(Image.open(tmp_path / "b" / first)), np.asarray(Image.open(root / first))
    )
    make_tumour_image_phantoms(
        tmp_path / "c",
        n_patients=2,
        slices_per_patient=1,
        size=64,
        bit_depth=16,
        classes=("normal", "lung_metastasis"),
    )
    with Image.open(tmp_path / "c" / "lung_metastasis" / "P0002" / "slice_01.png") as img:
        assert img.mode.startswith("I") and img.size == (64, 64)
        assert 1000 < np.asarray(img).max() <= 4095
    with pytest.raises(DataFormatError, match="unknown tumour class 'ependymoma'"):
        make_tumour_image_phantoms(tmp_path / "d", classes=("ependymoma",))
    with pytest.raises(ValueError, match="bit_depth"):
        make_tumour_image_phantoms(tmp_path / "d", bit_depth=12)


def test_collection_phantoms_are_brats_2023_cases(tmp_path: Path) -> None:
    start = time.perf_counter()
    folders = make_tumour_collection_phantoms(
        tmp_path, n_patients=3, shape=(64, 64, 40), timepoints=2, seed=2
    )
    assert time.perf_counter() - start < 10.0  # about 1.5 s
    assert [f.relative_to(tmp_path).as_posix() for f in folders] == [
        "ASNR-MICCAI-BraTS2023-GLI-Challenge-TrainingData/BraTS-GLI-00001-000",
        "ASNR-MICCAI-BraTS2023-GLI-Challenge-TrainingData/BraTS-GLI-00001-001",
        "ASNR-MICCAI-BraTS2023-MEN-Challenge-TrainingData/BraTS-MEN-00001-000",
        "ASNR-MICCAI-BraTS2023-MEN-Challenge-TrainingData/BraTS-MEN-00001-001",
        "ASNR-MICCAI-BraTS2023-MET-Challenge-TrainingData/BraTS-MET-00001-000",
        "ASNR-MICCAI-BraTS2023-MET-Challenge-TrainingData/BraTS-MET-00001-001",
    ]
    cases = COLLECTION_ADAPTER.find_cases(tmp_path)
    assert cases.layout == "brats2023" and len({it["patient"] for it in cases.items}) == 3
    for folder in folders:
        case = folder.name
        t1c = nib.load(folder / f"{case}-t1c.nii.gz")
        seg = np.asarray(nib.load(folder / f"{case}-seg.nii.gz").dataobj)
        assert t1c.get_data_dtype() == np.int16 and t1c.shape == (64, 64, 40) and seg.dtype == np.uint8
        np.testing.assert_allclose(np.abs(np.diag(t1c.affine))[:3], [3.75, 3.75, 3.875])
        data = np.asarray(t1c.dataobj)
        brain = np.median(data[(seg == 0) & (data > 0)])
        # enhancing on T1c (3.75 mm voxels blur the small rings)
        assert np.percentile(data[seg == 3], 90) > 1.3 * brain
        cores, n = ndimage.label(np.isin(seg, (1, 3)))
        if "-MET-" in case:
            assert 3 <= n <= 6 and np.bincount(cores.ravel())[1:].max() < 0.002 * seg.size
        else:
            assert n == 1
        if "-MEN-" in case:
            assert set(np.unique(seg)) == {0, 3}  # homogeneously enhancing
        else:
            assert set(np.unique(seg)) == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="collections must be"):
        make_tumour_collection_phantoms(tmp_path, collections=("ABC",))
