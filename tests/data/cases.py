"""Tiny data-set files written independently of the code under test (BraTS cases, MATLAB v7.3 slices)."""

from __future__ import annotations

from pathlib import Path

import h5py
import nibabel as nib
import numpy as np

# ------------------------------------------------------------------------------------------ BraTS

MODALITIES = ("flair", "t1", "t1ce", "t2")
SHAPE = (6, 7, 5)
AFFINE = np.array([[-1.0, 0, 0, 0], [0, -1.0, 0, 6], [0, 0, 1.0, 0], [0, 0, 0, 1]])
# File codes per modality, separator, case names, per layout.
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
# (NCR/NET, ED, ET) codes per layout.
OWN_CODES = {"brats2020": (1, 2, 4), "brats2021": (1, 2, 4), "brats2023": (1, 2, 3), "msd": (2, 1, 3)}


def save_nifti(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data), affine), str(path))
    return path


def load_nifti(root: Path, rel: str) -> np.ndarray:
    return np.asarray(nib.load(str(root / rel)).dataobj)


def seg_of(layout: str) -> np.ndarray:
    """One voxel of each of the layout's codes, background elsewhere."""
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
    """Write one tiny case; modality ``m`` (0..3 in MODALITIES order) is filled with ``10 * (m + 1)``.

    ``images``/``affines`` override a modality's (or ``"seg"``'s, or ``"msd"``'s) data/affine; ``skip``
    leaves one modality out.
    """
    case = CASE[layout].format(index)
    images, affines = images or {}, affines or {}
    volumes = {
        m: images.get(m, np.full(SHAPE, 10.0 * (i + 1), dtype=np.float32)) for i, m in enumerate(MODALITIES)
    }
    seg_data = seg_of(layout) if seg is True else (None if seg is False or seg is None else seg)
    if seg_data is not None:
        seg_data = images.get("seg", seg_data)
    if layout == "msd":
        folder = "imagesTr" if seg_data is not None else "imagesTs"
        stacked = images.get("msd", np.stack([volumes[m] for m in MODALITIES], axis=-1))
        save_nifti(root / folder / f"{case}{suffix}", stacked, affines.get("msd", AFFINE))
        if seg_data is not None:
            save_nifti(root / "labelsTr" / f"{case}{suffix}", seg_data, affines.get("seg", AFFINE))
        return case
    for m, code in zip(MODALITIES, CODES[layout]):
        if m != skip:
            save_nifti(root / case / f"{case}{SEP[layout]}{code}{suffix}", volumes[m], affines.get(m, AFFINE))
    if seg_data is not None:
        save_nifti(root / case / f"{case}{SEP[layout]}seg{suffix}", seg_data, affines.get("seg", AFFINE))
    return case


# ------------------------------------------------------------------------------------------ Figshare

MATLAB_HEADER = (
    b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
)
OMIT = object()


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
    """Write a slice as MATLAB v7.3 does.

    ``image_rc`` and ``mask_rc`` are in MATLAB orientation ``I(row, col)``; MATLAB is column-major, so
    HDF5 holds the transpose ``I.T``. ``OMIT`` leaves a field out.
    """
    with h5py.File(path, "w", userblock_size=512) as f:
        group = f.create_group("cjdata")
        group.attrs["MATLAB_class"] = np.bytes_("struct")
        if label is not OMIT:
            _matlab_dataset(group, "label", np.array([[label]], dtype=np.float64), "double")
        if pid is not OMIT:
            codes = np.array([ord(c) for c in pid], dtype=np.uint16).reshape(1, -1)  # MATLAB 1×n char
            _matlab_dataset(group, "PID", codes.T, "char")
        if image_rc is not OMIT:
            _matlab_dataset(group, "image", np.asarray(image_rc).T, image_class)
        if mask_rc is not OMIT:
            _matlab_dataset(group, "tumorMask", np.asarray(mask_rc).T, "uint8")
        _matlab_dataset(group, "tumorBorder", np.array([[3.0, 2.0, 4.0, 2.0, 4.0, 3.0]]), "double")
    with open(path, "r+b") as fh:
        fh.write(MATLAB_HEADER.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM")
    return path


def matlab_slice(rows: int = 6, cols: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """A non-square MATLAB-orientation image and mask, so that a transposition cannot go unnoticed."""
    image = (np.arange(rows * cols).reshape(rows, cols) * 7 - 20).astype(np.int16)
    mask = np.zeros((rows, cols), dtype=np.uint8)
    mask[1:3, 2:6] = 1  # rows 1-2, columns 2-5
    return image, mask
