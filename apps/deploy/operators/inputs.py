"""Inputs: NIfTI or DICOM (:func:`input_kind`), and NIfTI files read as the :class:`Image` every input gives.

The image an input operator emits on its ``image`` port is an SDK :class:`~monai.deploy.core.Image` whose
array is channel-first in MONAI's index order, ``(C, X, Y[, Z])`` (X along a row, as MONAI's NIfTI reader
gives it), and whose metadata are MONAI's (:func:`image_meta`) plus ``case``, the name outputs are written
under. DICOM input becomes such an image in :mod:`apps.deploy.operators.dicom`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from monai.deploy.core import Fragment, Image, Operator, OperatorSpec

from common.data.errors import DataFormatError

logger = logging.getLogger(__name__)

IMAGE = "image"  # the port an input emits on and the inference operator receives on
AFFINE_TOL = 1e-3  # how far the affines of channels read from separate files or series may differ


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith((".nii", ".nii.gz"))


def _stem(path: Path) -> str:
    return re.sub(r"\.nii(\.gz)?$", "", path.name, flags=re.I)


def input_kind(path: str | Path) -> str:
    """``"nifti"`` for a NIfTI file or a folder holding NIfTI files, ``"dicom"`` for any other folder."""
    path = Path(path)
    if not path.exists():
        raise DataFormatError(path, "input does not exist")
    if path.is_file():
        if _is_nifti(path):
            return "nifti"
        raise DataFormatError(
            path, "a single input file must be NIfTI (.nii or .nii.gz); pass DICOM as a folder"
        )
    files = [p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")]
    if not files:
        raise DataFormatError(path, "input folder is empty")
    return "nifti" if any(_is_nifti(p) for p in files) else "dicom"


@dataclass(frozen=True)
class NiftiCase:
    """One input of a NIfTI run: the name its outputs are written under, and its file(s).

    One file holds every channel (a single-channel image, or channels last as MSD's 4D BraTS files); several
    files are one channel each, in channel order.
    """

    name: str
    files: tuple[Path, ...]


def find_nifti_slices(path: str | Path) -> list[NiftiCase]:
    """Each NIfTI file under ``path`` (or ``path`` itself) is one case, named after its file name."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and _is_nifti(p))
    if not files:
        raise DataFormatError(path, "no NIfTI file (.nii or .nii.gz) found")
    cases = [NiftiCase(_stem(p), (p,)) for p in files]
    seen: dict[str, Path] = {}
    for case in cases:
        if case.name in seen:
            raise DataFormatError(
                case.files[0], f"same output name {case.name!r} as {seen[case.name]}; rename one"
            )
        seen[case.name] = case.files[0]
    return cases


def _load_nifti(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        image = nib.load(str(path))
        data = np.asarray(image.dataobj, dtype=np.float32)
    except Exception as exc:  # nibabel raises several types for a broken file
        raise DataFormatError(path, f"not a readable NIfTI file ({exc})") from exc
    return data, np.asarray(image.affine, dtype=np.float64)


def image_meta(affine: np.ndarray, spatial_shape: Sequence[int], source: str, case: str) -> dict[str, Any]:
    """MONAI metadata of a channel-first array in RAS (what ``LoadImage`` + ``EnsureChannelFirst`` give)."""
    affine = np.asarray(affine, dtype=np.float64)
    return {
        "affine": affine.copy(),
        "original_affine": affine.copy(),
        "spatial_shape": np.asarray(spatial_shape, dtype=np.int64),
        "original_channel_dim": 0,
        "space": "RAS",
        "filename_or_obj": source,
        "case": case,
    }


def read_nifti_case(case: NiftiCase, channels: int) -> Image:
    """The case as an SDK image ``(C, X, Y[, Z])`` with MONAI metadata; checks shapes, affines and values."""
    loaded = [_load_nifti(p) for p in case.files]
    first = case.files[0]
    if len(loaded) == 1:
        data, affine = loaded[0]
        if channels == 1:
            if data.ndim not in (2, 3):
                raise DataFormatError(first, f"expected a 2D or 3D image, got shape {data.shape}")
            array = data[None]
        else:
            if data.ndim != 4 or data.shape[-1] != channels:
                raise DataFormatError(
                    first, f"expected a 4D image with {channels} channels last, got shape {data.shape}"
                )
            array = np.moveaxis(data, -1, 0)
    else:
        if len(loaded) != channels:
            raise DataFormatError(first.parent, f"{len(loaded)} files for {channels} channels")
        data, affine = loaded[0]
        for path, (other, other_affine) in zip(case.files[1:], loaded[1:]):
            if other.shape != data.shape:
                raise DataFormatError(path, f"shape {other.shape} differs from {first.name}'s {data.shape}")
            if not np.allclose(other_affine, affine, atol=AFFINE_TOL):
                raise DataFormatError(path, f"affine differs from {first.name}'s")
        if data.ndim != 3:
            raise DataFormatError(first, f"expected a 3D image per channel, got shape {data.shape}")
        array = np.stack([d for d, _ in loaded])
    if not np.isfinite(array).all():
        raise DataFormatError(first, "holds NaN or infinite values")
    return Image(array, image_meta(affine, array.shape[1:], str(first), case.name))


class NiftiLoaderOperator(Operator):
    """Emits one case per run as an ``image`` (the app gives it ``CountCondition(len(cases))``)."""

    def __init__(
        self, fragment: Fragment, *args: Any, cases: Sequence[NiftiCase], channels: int, **kwargs: Any
    ):
        self.cases = list(cases)
        self.channels = channels
        self.index = 0
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.output(IMAGE)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        case = self.cases[self.index % len(self.cases)]
        self.index += 1
        logger.info("NIfTI case %s: %s", case.name, ", ".join(str(p) for p in case.files))
        op_output.emit(read_nifti_case(case, self.channels), IMAGE)
