"""Find and check the inputs of a batch inference, so that one bad file does not stop the others.

Every candidate file is opened once before inference. A file that cannot be used is logged with one
line naming it and the problem, listed in ``failed_inputs.csv`` in the output folder, and left out; the
others go on to inference.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path

import numpy as np

from .atomic import atomic_write_text
from .errors import DataFormatError

logger = logging.getLogger(__name__)

SLICE_SUFFIXES = (".mat", ".nii", ".nii.gz", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
NOT_IMAGES = {"cvind.mat"}


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def find_slice_files(input_dir: str | os.PathLike) -> list[str]:
    """Image files (``SLICE_SUFFIXES``) under ``input_dir``, recursively, sorted; ``cvind.mat`` excluded."""
    root = Path(input_dir)
    if not root.is_dir():
        raise DataFormatError(root, "input folder does not exist")
    found = [
        p
        for p in root.rglob("*")
        if p.is_file() and _suffix(p) in SLICE_SUFFIXES and p.name.lower() not in NOT_IMAGES
    ]
    return [os.fspath(p) for p in sorted(found, key=lambda p: (len(p.parts), str(p)))]


def _load_array(path: Path) -> np.ndarray:
    suffix = _suffix(path)
    if suffix == ".mat":
        from .figshare import read_figshare_mat

        return np.asarray(read_figshare_mat(path, fields=("image",)).image)
    if suffix in (".nii", ".nii.gz"):
        import nibabel as nib

        try:
            return np.asarray(nib.load(os.fspath(path)).dataobj)
        except Exception as err:  # nibabel raises several types for corrupt files
            raise DataFormatError(path, f"cannot be read as NIfTI ({err})") from err
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("F"))
    except (UnidentifiedImageError, OSError) as err:
        raise DataFormatError(path, f"cannot be read as an image ({err})") from err


def check_slice_file(path: str | os.PathLike) -> None:
    """Raise :class:`DataFormatError` unless ``path`` holds one finite 2D image."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "file does not exist")
    array = _load_array(path)
    shape = array.shape
    while array.ndim > 2 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise DataFormatError(path, f"expected a 2D image, got shape {shape}")
    if min(array.shape) < 8:
        raise DataFormatError(path, f"image of shape {shape} is too small")
    if not np.isfinite(array).all():
        raise DataFormatError(path, f"image has {int((~np.isfinite(array)).sum())} NaN or infinite pixels")


def output_stem(path: str | os.PathLike) -> str:
    """The name outputs are written under: the file name without its image suffix."""
    path = Path(path)
    return path.name[: -len(_suffix(path))] if _suffix(path) else path.name


def split_usable(paths: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """(usable paths, [(bad path, problem)]): every path checked with :func:`check_slice_file`.

    Outputs are named after the input's stem, so a second input with the same stem (``a.png`` beside
    ``a.nii.gz``) is reported rather than allowed to overwrite the first one's results.
    """
    usable, failed = [], []
    first_with_stem: dict[str, str] = {}
    for path in paths:
        stem = output_stem(path)
        if stem in first_with_stem:
            problem = f"has the same name stem as {first_with_stem[stem]}; its outputs would overwrite those"
            logger.error("skipping %s: %s", path, problem)
            failed.append((os.fspath(path), problem))
            continue
        try:
            check_slice_file(path)
        except DataFormatError as err:
            logger.error("skipping %s", err)
            failed.append((os.fspath(path), err.problem))
        else:
            usable.append(os.fspath(path))
            first_with_stem[stem] = os.fspath(path)
    return usable, failed


def write_failures(failed: list[tuple[str, str]], csv_path: str | os.PathLike) -> None:
    """Write ``input,problem`` rows (header included) atomically; remove a stale file when nothing failed."""
    csv_path = Path(csv_path)
    if not failed:
        csv_path.unlink(missing_ok=True)
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["input", "problem"])
    writer.writerows(failed)
    atomic_write_text(csv_path, buffer.getvalue())


def prepare_slice_inputs(
    input_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    generate_phantoms: bool = False,
    phantom_kwargs: dict | None = None,
) -> list[dict[str, str]]:
    """The datalist ``[{"image": path}, ...]`` of usable slices under ``input_dir`` for inference.

    With ``generate_phantoms`` an empty ``input_dir`` is first filled with Figshare-format phantoms.
    Unusable files are reported (log and ``output_dir/failed_inputs.csv``) and skipped; if none is
    usable, :class:`DataFormatError` names the folder.
    """
    input_dir = Path(input_dir)
    if generate_phantoms and (not input_dir.is_dir() or not find_slice_files(input_dir)):
        from .phantoms import make_figshare_phantoms

        make_figshare_phantoms(input_dir, **(phantom_kwargs or {}))
    usable, failed = split_usable(find_slice_files(input_dir))
    write_failures(failed, Path(output_dir) / "failed_inputs.csv")
    if not usable:
        raise DataFormatError(input_dir, f"no usable image ({', '.join(SLICE_SUFFIXES)}) found")
    return [{"image": path} for path in usable]


def _absolute(item: dict, root: Path) -> dict:
    """A datalist item with its ``image``/``label`` paths (one or a list) joined to ``root``."""
    out = dict(item)
    for key in ("image", "label"):
        if key in out:
            value = out[key]
            out[key] = (
                [os.fspath(root / v) for v in value] if isinstance(value, list) else os.fspath(root / value)
            )
    return out


def prepare_brats_inputs(
    input_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    generate_phantoms: bool = False,
    phantom_kwargs: dict | None = None,
) -> list[dict]:
    """The datalist of usable BraTS cases (any layout) under ``input_dir`` for inference.

    Every case is checked (:func:`common.data.brats.check_brats_case`); bad ones are logged, listed in
    ``output_dir/failed_inputs.csv`` with the problem, and left out, so a batch goes on past them. Items
    carry ``case`` and ``layout`` besides absolute ``image`` (and ``label`` when present) paths. With
    ``generate_phantoms`` an empty ``input_dir`` is first filled with BraTS-format phantoms.
    """
    from .brats import find_brats_cases
    from .phantoms import make_brats_phantoms

    root = Path(input_dir)
    if generate_phantoms and (not root.is_dir() or not any(root.iterdir())):
        make_brats_phantoms(root, **(phantom_kwargs or {}))
    _, items, problems = find_brats_cases(root, on_error="collect", check=True)
    for case, problem in problems:
        logger.error("skipping case %s: %s", case, problem)
    write_failures(problems, Path(output_dir) / "failed_inputs.csv")
    if not items:
        raise DataFormatError(root, "no usable BraTS case found")
    return [_absolute(item, root) for item in items]
