"""Any 2D slice file as an inference input: Figshare ``.mat``, NIfTI, PNG, JPEG, TIFF or BMP.

A 2D network does not care which data set a slice came from, so its inference reads every image file of
the input folder (recursively). Each file is one case, ``{"image": rel}``; it is usable when it holds one
finite 2D image of at least 8×8 pixels (trailing axes of size 1 are dropped, so a ``(X, Y, 1)`` NIfTI is a
slice). Outputs are named after the file name without its image suffix, so two files that differ only in
suffix cannot both be used. Slices have no labels.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from PIL import Image, UnidentifiedImageError

from common.data.adapter import Cases, DatasetAdapter, OnError, check_on_error
from common.data.errors import DataFormatError
from common.data.figshare_mat import read_figshare_mat

__all__ = [
    "ADAPTER",
    "SLICE_SUFFIXES",
    "SlicesAdapter",
    "check_slice_file",
    "find_slice_files",
    "output_stem",
]

SLICE_SUFFIXES = (".mat", ".nii", ".nii.gz", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
NOT_IMAGES = {"cvind.mat"}  # Figshare's fold file sits beside the slices
_MIN_SIDE = 8


def slice_suffix(path: str | os.PathLike) -> str:
    """The lower-case image suffix of ``path`` (``.nii.gz`` counts as one)."""
    name = Path(path).name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


def output_stem(path: str | os.PathLike) -> str:
    """The name outputs are written under: the file name without its image suffix."""
    name, suffix = Path(path).name, slice_suffix(path)
    return name[: -len(suffix)] if suffix else name


def _candidates(root: Path) -> list[Path]:
    return [
        p
        for p in root.rglob("*")
        if p.is_file() and slice_suffix(p) in SLICE_SUFFIXES and p.name.lower() not in NOT_IMAGES
    ]


def find_slice_files(input_dir: str | os.PathLike) -> list[Path]:
    """Image files (:data:`SLICE_SUFFIXES`) under ``input_dir``, shallow ones first, then by path.

    Raises:
        DataFormatError: ``input_dir`` is not a folder.
    """
    root = Path(input_dir)
    if not root.is_dir():
        raise DataFormatError(root, "input folder does not exist")
    return sorted(_candidates(root), key=lambda p: (len(p.parts), str(p)))


def load_slice(path: str | os.PathLike) -> np.ndarray:
    """The pixel array of one slice file, read by its suffix.

    Raises:
        DataFormatError: the file cannot be read in the format its suffix says.
    """
    path = Path(path)
    suffix = slice_suffix(path)
    if suffix == ".mat":
        return np.asarray(read_figshare_mat(path, fields=("image",)).image)
    if suffix in (".nii", ".nii.gz"):
        try:
            return np.asarray(nib.load(os.fspath(path)).dataobj)
        except Exception as err:  # nibabel raises several types for corrupt files
            raise DataFormatError(path, f"cannot be read as NIfTI ({err})") from err
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("F"))
    except (UnidentifiedImageError, OSError) as err:
        raise DataFormatError(path, f"cannot be read as an image ({err})") from err


def check_slice_file(path: str | os.PathLike) -> None:
    """Raise :class:`DataFormatError` unless ``path`` holds one finite 2D image of at least 8×8 pixels."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "file does not exist")
    array = load_slice(path)
    shape = array.shape
    while array.ndim > 2 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise DataFormatError(path, f"expected a 2D image, got shape {shape}")
    if min(array.shape) < _MIN_SIDE:
        raise DataFormatError(path, f"image of shape {shape} is too small")
    if not np.isfinite(array).all():
        raise DataFormatError(path, f"image has {int((~np.isfinite(array)).sum())} NaN or infinite pixels")


class SlicesAdapter(DatasetAdapter):
    """Every 2D image file of a folder, for 2D inference; the phantoms are Figshare slices."""

    name = "slices"
    title = "2D slice"
    layouts = ("slices",)
    no_data = f"no image file ({', '.join(SLICE_SUFFIXES)}) found"
    phantom_writer = "common.data.phantoms.figshare:make_figshare_phantoms"
    group_key = "image"
    case_key = "image"

    def __init__(self, output_names: str = "stem", phantom_writer: str | None = None):
        """
        Args:
            output_names: ``"stem"``: outputs are named after the file name (a bundle that writes one file
                per input into one folder: two inputs with the same stem clash, and the later is reported);
                ``"path"``: after the path below the input folder without its suffix
                (``glioma/P0002/slice_01``), for a bundle whose outputs are rows of one table.
            phantom_writer: ``"module:function"`` writing the phantoms when the input folder is empty
                (default: Figshare slices).
        """
        if output_names not in ("stem", "path"):
            raise ValueError(f"output_names must be 'stem' or 'path', got {output_names!r}")
        self.output_names = output_names
        if phantom_writer is not None:
            self.phantom_writer = phantom_writer

    def has_data(self, dataset_dir: str | os.PathLike) -> bool:
        root = Path(dataset_dir)
        return root.is_dir() and bool(_candidates(root))

    def detect_layout(self, dataset_dir: str | os.PathLike) -> str:
        if not find_slice_files(dataset_dir):
            raise DataFormatError(dataset_dir, self.no_data)
        return self.layouts[0]

    def find_cases(self, dataset_dir: str | os.PathLike, on_error: OnError = "raise") -> Cases:
        """``{"image": rel}`` per image file; finding looks at names only."""
        check_on_error(on_error)
        root = Path(dataset_dir)
        files = find_slice_files(root)
        if not files:
            raise DataFormatError(root, self.no_data)
        return Cases(self.layouts[0], [{"image": p.relative_to(root).as_posix()} for p in files], [])

    def check_case(self, item: Mapping[str, Any], base_dir: str | os.PathLike | None = None) -> None:
        check_slice_file(Path(base_dir or "") / item["image"])

    def output_name(self, item: Mapping[str, Any]) -> str:
        if self.output_names == "path":
            return Path(item["image"]).with_name(output_stem(item["image"])).as_posix()
        return output_stem(item["image"])


ADAPTER = SlicesAdapter()
