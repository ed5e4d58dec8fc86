"""Checks of one case's NIfTI files, shared by the adapters of 3D data sets (BraTS, ISBI 2015).

Every check raises :class:`~common.data.errors.DataFormatError` whose message names the case (in the path,
or else at the start of the problem), so one line of a log says which case is wrong and why. Files are
opened header-first with nibabel; the voxels are read only by the checks that need them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from common.data.errors import DataFormatError

__all__ = ["AFFINE_TOL", "case_error", "check_finite", "check_same_grid", "nifti_data", "open_nifti"]

AFFINE_TOL = 1e-3
"""Largest difference between two affines (mm, per element) still taken as the same grid."""


def case_error(path: str | os.PathLike, case: str, problem: str) -> DataFormatError:
    """A :class:`DataFormatError` whose message names ``case`` (in the path or else in the problem)."""
    return DataFormatError(path, problem if case in os.fspath(path) else f"case {case}: {problem}")


def open_nifti(path: Path, case: str) -> Any:
    """The nibabel image of ``path`` (header only; the voxels stay on disk)."""
    if not path.is_file():
        raise case_error(path, case, "file does not exist")
    try:
        return nib.load(os.fspath(path))
    except Exception as err:  # nibabel raises several types for corrupt or non-NIfTI files
        raise case_error(path, case, f"cannot be read as NIfTI ({err})") from err


def nifti_data(image: Any, path: Path, case: str) -> np.ndarray:
    """The voxels of ``image``; a truncated or short file is an error naming the case."""
    try:
        return np.asanyarray(image.dataobj)
    except Exception as err:  # truncated .gz, short file, ...
        raise case_error(path, case, f"cannot read the voxel data ({err})") from err


def check_finite(image: Any, path: Path, case: str) -> None:
    """No NaN or infinite voxel in a floating-point image."""
    data = nifti_data(image, path, case)
    if data.dtype.kind in "fc":
        bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        if bad:
            raise case_error(path, case, f"{bad} NaN/inf voxels")


def check_same_grid(path: Path, case: str, what: str, image: Any, ref_name: str, ref: Any) -> None:
    """``image``'s spatial shape and affine equal ``ref``'s (affine within :data:`AFFINE_TOL`)."""
    shape, ref_shape = tuple(image.shape[:3]), tuple(ref.shape[:3])
    if shape != ref_shape:
        raise case_error(path, case, f"{what} has shape {shape} but {ref_name} has {ref_shape}")
    diff = float(np.max(np.abs(np.asarray(image.affine) - np.asarray(ref.affine))))
    if not diff <= AFFINE_TOL:
        raise case_error(
            path, case, f"{what} affine differs from the {ref_name} affine (by up to {diff:.4g})"
        )
