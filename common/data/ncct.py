"""Non-contrast head CT (NCCT) with infarct masks in image/mask folder pairs: layout, cases, HU checks.

Liu et al., "Multi-task learning improves the brain stroke lesion segmentation" (§3.1), built a private CT
brain-infarct data set: 45 acute ischaemic stroke patients (onset < 6 h), non-enhanced CT of 512 x 512 x
24-32 voxels of 0.43 x 0.43 x 4.1-4.8 mm, infarcts traced on axial slices in MITK. Such collections are
shared as NIfTI volumes with one mask each, which this adapter reads. One **case is one CT volume**, and
every volume is its own patient (``patient`` = ``case``; splits are by ``patient``).

**Layout** (:data:`NCCT_LAYOUTS`, the one layout ``"folders"``)::

    images/<case>.nii.gz        the CT, in Hounsfield units
    masks/<case>.nii.gz         its infarct mask, 0/1, on the CT's grid

* the image folder is named ``images``; the mask folder beside it ``masks`` or ``labels`` (one of them);
* a mask is named ``<case>`` or ``<case>_mask``, ``<case>_seg``, ``<case>_label`` (:data:`MASK_SUFFIXES`),
  ``.nii`` or ``.nii.gz`` for either file; two candidates for one case are an error;
* with a mask folder every image needs its mask, and every mask its image; an ``images`` folder with no
  mask folder beside it holds unlabelled cases (datalists put them in ``predict``);
* the folder given may hold ``images/`` or be up to two levels above image folders (e.g. ``train/images``
  and ``test/images``); case ids must be unique over all of them. Names are matched case-insensitively,
  hidden files (``._*``) and non-NIfTI files (``.json`` sidecars) are ignored.

**Items** are ``{"case": "ct_001", "patient": "ct_001", "layout": "folders", "image": "images/ct_001.nii.gz",
"label": "masks/ct_001.nii.gz"}``. Masks are 0/1, the canonical :data:`~common.labels.BINARY_LESION` codes.

**Hounsfield units.** A CT must be in HU: :func:`check_hounsfield` rejects volumes that are not (normalised,
windowed to 8 bit, or stored without the rescale intercept), and :class:`CheckHounsfieldd` runs it on a
loaded image before any intensity transform. :data:`BRAIN_WINDOW_HU` and :data:`STROKE_WINDOW_HU` are the
display windows a bundle scales with MONAI's ``ScaleIntensityRanged(a_min=lo, a_max=hi, b_min=0, b_max=1,
clip=True)``. Outputs keep the image's name (MONAI's ``SaveImage`` default), the case id.
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform
from monai.utils import convert_to_numpy

from common.data.adapter import Cases, DatasetAdapter, OnError, check_on_error
from common.data.errors import DataFormatError
from common.data.nifti_checks import case_error, check_same_grid, nifti_data, open_nifti
from common.labels import BINARY_LESION

__all__ = [
    "ADAPTER",
    "BRAIN_WINDOW_HU",
    "CheckHounsfieldd",
    "HU_AIR_BELOW",
    "HU_BONE_ABOVE",
    "IMAGE_FOLDER",
    "MASK_FOLDERS",
    "MASK_SUFFIXES",
    "NCCTAdapter",
    "NCCT_LAYOUTS",
    "NCCT_SHAPE",
    "NCCT_SPACING_MM",
    "STROKE_WINDOW_HU",
    "check_hounsfield",
]

NCCT_LAYOUTS: tuple[str] = ("folders",)
IMAGE_FOLDER = "images"
MASK_FOLDERS: tuple[str, str] = ("masks", "labels")
MASK_SUFFIXES: tuple[str, ...] = ("", "_mask", "_seg", "_label")
"""What may follow the case id in a mask's file name (first match wins; two matches are an error)."""
NCCT_SHAPE: tuple[int, int, int] = (512, 512, 28)
"""A typical volume of the paper's data set: 512 x 512 x 24-32 slices."""
NCCT_SPACING_MM: tuple[float, float, float] = (0.43, 0.43, 4.5)
"""A typical voxel of the paper's data set: 0.43 x 0.43 mm in plane, 4.1-4.8 mm slices."""

BRAIN_WINDOW_HU: tuple[float, float] = (0.0, 80.0)
"""The standard brain window, level 40 / width 80 HU: ``(a_min, a_max)`` for ``ScaleIntensityRanged``."""
STROKE_WINDOW_HU: tuple[float, float] = (20.0, 60.0)
"""A narrow "stroke window", level 40 / width 40 HU, that spreads the few HU by which an early infarct is
darker than normal grey matter over the whole range (narrow windows improve the detection of early
ischaemia on NCCT: Lev et al., "Acute stroke: improved nonenhanced CT detection - benefits of soft-copy
interpretation by using variable window width and center level settings", Radiology 213:150-155, 1999)."""
HU_AIR_BELOW = -500.0
"""A head CT in HU has voxels below this (air about -1000 HU outside the head and in the sinuses)..."""
HU_BONE_ABOVE = 300.0
"""... or above this (skull bone, 700-2000 HU); a skull-stripped CT keeps its air-valued background."""

_NII = re.compile(r"\.nii(?:\.gz)?$", re.I)
_MAX_DEPTH = 3  # image folders are looked for this many levels below dataset_dir
_NO_CASES = (
    f"no CT cases found (an {IMAGE_FOLDER}/ folder of NIfTI volumes, with masks/ or labels/ beside it, at "
    f"most {_MAX_DEPTH} levels down); pass a dataset_dir that holds the data set, or generate phantoms"
)


# --------------------------------------------------------------------------------------------------
# Hounsfield units
# --------------------------------------------------------------------------------------------------


def check_hounsfield(array: Any, source: str | os.PathLike, case: str | None = None) -> None:
    """Raise :class:`DataFormatError` unless ``array`` looks like a head CT in Hounsfield units.

    The rules, in order (``lo``/``hi`` are the smallest and largest value):

    * NaN or infinite voxels;
    * ``-1 <= lo`` and ``hi <= 1``: normalised intensities;
    * ``lo >= 0`` and ``hi < 300``: windowed or rescaled (an 8-bit rendering of a window);
    * ``lo >= 0``: no air (about -1000 HU): stored values without the rescale intercept (usually -1024);
    * ``lo > -500`` (:data:`HU_AIR_BELOW`) and ``hi < 300`` (:data:`HU_BONE_ABOVE`): neither air nor bone
      (normalised or z-scored).

    Args:
        array: the CT (numpy array, tensor or MetaTensor), any shape.
        source: the file (or name) the message starts with.
        case: the case, named in the message when ``source`` does not contain it.
    """
    data = np.asarray(convert_to_numpy(array))

    def fail(problem: str) -> DataFormatError:
        return case_error(source, case, problem) if case else DataFormatError(source, problem)

    if data.size == 0 or data.dtype.kind not in "iuf":
        raise fail(f"CT of dtype {data.dtype} and shape {data.shape} holds no numeric voxels")
    if data.dtype.kind == "f":
        finite = np.isfinite(data)
        if not finite.all():
            raise fail(f"{int(data.size - np.count_nonzero(finite))} NaN/inf voxels")
    lo, hi = float(data.min()), float(data.max())
    found = f"values {lo:g}..{hi:g}"
    unit = "; expected Hounsfield units (air about -1000, brain 20-45, bone 700+ HU)"
    if lo >= -1.0 and hi <= 1.0:
        raise fail(f"CT is not in Hounsfield units: {found} look normalised{unit}")
    if lo >= 0.0 and hi < HU_BONE_ABOVE:
        raise fail(f"CT is not in Hounsfield units: {found} look windowed or rescaled (8-bit?){unit}")
    if lo >= 0.0:
        raise fail(
            f"CT is not in Hounsfield units: {found} have no air below 0 HU; stored values without the "
            f"rescale intercept (usually -1024)?{unit}"
        )
    if lo > HU_AIR_BELOW and hi < HU_BONE_ABOVE:
        raise fail(f"CT is not in Hounsfield units: {found} have neither air nor bone (normalised?){unit}")


class CheckHounsfieldd(MapTransform):
    """Check that loaded CTs are in Hounsfield units (:func:`check_hounsfield`); the data pass unchanged.

    Place it right after ``LoadImaged``, before any intensity transform. The error names the loaded file
    (the MetaTensor's ``filename_or_obj``) and, when the item has one, its ``case``.
    """

    def __init__(self, keys: KeysCollection = "image", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            value = d[key]
            source = value.meta.get("filename_or_obj", key) if isinstance(value, MetaTensor) else key
            source = source[0] if isinstance(source, (list, tuple)) and source else source
            case = d.get("case")
            check_hounsfield(value, str(source), str(case) if case is not None else None)
        return d


# --------------------------------------------------------------------------------------------------
# Finding cases
# --------------------------------------------------------------------------------------------------


def _stem(path: Path) -> str:
    return _NII.sub("", path.name)


def _niftis(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and _NII.search(p.name)
    )


def _is_image_folder(folder: Path) -> bool:
    return folder.name.lower() == IMAGE_FOLDER and folder.is_dir()


def _scan(root: Path) -> list[Path]:
    """The image folders under ``root`` that hold NIfTI files, sorted by path."""
    found: list[Path] = []
    for folder, dirs, _ in os.walk(root):
        here = Path(folder)
        depth = len(here.relative_to(root).parts)
        keep = []
        for name in sorted(d for d in dirs if not d.startswith(".")):
            if _is_image_folder(here / name):
                if _niftis(here / name):
                    found.append(here / name)
            elif depth + 1 < _MAX_DEPTH and name.lower() not in MASK_FOLDERS:
                keep.append(name)
        dirs[:] = keep
    return sorted(found, key=lambda p: p.as_posix())


def _mask_folder(images: Path) -> Path | None:
    folders = [d for d in images.parent.iterdir() if d.is_dir() and d.name.lower() in MASK_FOLDERS]
    if len(folders) > 1:
        names = " and ".join(sorted(d.name for d in folders))
        raise DataFormatError(images.parent, f"both {names} beside {images.name}/; keep one mask folder")
    return folders[0] if folders else None


def _folder_items(root: Path, images: Path) -> list[tuple[str, dict[str, Any] | DataFormatError]]:
    """``(case, item or the problem)`` of each image of one image folder (masks from the folder beside it)."""
    masks_dir = _mask_folder(images)
    mask_files = {p.name.lower(): p for p in _niftis(masks_dir)} if masks_dir is not None else {}
    used: set[Path] = set()
    by_case: dict[str, list[Path]] = {}
    for path in _niftis(images):
        by_case.setdefault(_stem(path), []).append(path)
    out: list[tuple[str, dict[str, Any] | DataFormatError]] = []
    for case in sorted(by_case):
        try:
            if len(by_case[case]) > 1:
                names = " and ".join(p.name for p in by_case[case])
                raise DataFormatError(images, f"case {case}: both {names}; keep one")
            item: dict[str, Any] = {
                "case": case,
                "patient": case,
                "layout": NCCT_LAYOUTS[0],
                "image": by_case[case][0].relative_to(root).as_posix(),
            }
            if masks_dir is not None:
                candidates = [
                    mask_files[name]
                    for suffix in MASK_SUFFIXES
                    for ext in (".nii.gz", ".nii")
                    if (name := f"{case}{suffix}{ext}".lower()) in mask_files
                ]
                used.update(candidates)
                if not candidates:
                    raise DataFormatError(
                        masks_dir,
                        f"case {case}: no mask ({case}.nii.gz, or with a suffix {list(MASK_SUFFIXES[1:])})",
                    )
                if len(candidates) > 1:
                    names = " and ".join(p.name for p in candidates)
                    raise DataFormatError(masks_dir, f"case {case}: several masks ({names}); keep one")
                item["label"] = candidates[0].relative_to(root).as_posix()
            out.append((case, item))
        except DataFormatError as err:
            out.append((case, err))
    for path in sorted(set(mask_files.values()) - used):
        out.append((_stem(path), DataFormatError(path, f"mask without an image in {images.name}/")))
    return out


# --------------------------------------------------------------------------------------------------
# The adapter
# --------------------------------------------------------------------------------------------------


class NCCTAdapter(DatasetAdapter):
    """Non-contrast head CTs with infarct masks in ``images/`` + ``masks/`` folders; split by patient."""

    name = "ncct"
    title = "Non-contrast CT infarcts"
    layouts = NCCT_LAYOUTS
    no_data = _NO_CASES
    phantom_writer = "common.data.phantoms.ncct:make_ncct_phantoms"
    group_key = "patient"
    case_key = "case"
    label_scheme = BINARY_LESION

    def has_data(self, dataset_dir: str | os.PathLike) -> bool:
        root = Path(dataset_dir)
        return root.is_dir() and bool(_scan(root))

    def detect_layout(self, dataset_dir: str | os.PathLike) -> str:
        """``"folders"``, once ``dataset_dir`` is found to hold an ``images/`` folder of NIfTI files.

        Raises:
            DataFormatError: the folder is missing or holds no image folder.
        """
        root = Path(dataset_dir)
        if not root.is_dir():
            raise DataFormatError(
                root, "dataset folder does not exist" if not root.exists() else "not a folder"
            )
        if not _scan(root):
            raise DataFormatError(root, _NO_CASES)
        return NCCT_LAYOUTS[0]

    def find_cases(self, dataset_dir: str | os.PathLike, on_error: OnError = "raise") -> Cases:
        """Every CT of every image folder (see the module docstring), sorted by case id.

        Bad cases, each naming the case: an image of both ``.nii`` and ``.nii.gz``, a missing mask (when
        the image folder has a mask folder), two masks for one case, a mask without its image, a case id
        found twice; two mask folders beside one image folder are reported for each of its cases.

        Raises:
            DataFormatError: missing folder or no image folder (in both modes); with ``"raise"`` also a
                bad case.
        """
        check_on_error(on_error)
        root = Path(dataset_dir)
        layout = self.detect_layout(root)
        results: list[tuple[str, dict[str, Any] | DataFormatError]] = []
        for images in _scan(root):
            try:
                results += _folder_items(root, images)
            except DataFormatError as err:
                results += [(_stem(p), err) for p in _niftis(images)]
        items: list[dict[str, Any]] = []
        problems: list[tuple[str, str]] = []
        seen: dict[str, str] = {}
        for case, result in results:
            if isinstance(result, dict) and case in seen:
                result = DataFormatError(root / result["image"], f"duplicate case {case} (also {seen[case]})")
            if isinstance(result, DataFormatError):
                if on_error == "raise":
                    raise result
                problems.append((case, str(result)))
                continue
            seen[case] = result["image"]
            items.append(result)
        items.sort(key=lambda it: it["case"])
        return Cases(layout, items, problems)

    def check_case(self, item: Mapping[str, Any], base_dir: str | os.PathLike | None = None) -> None:
        """Raise :class:`DataFormatError` (naming the case and the problem) unless the case is usable.

        Checks: the CT and its mask exist and are 3D NIfTI; the mask has the CT's shape and affine (within
        1e-3); the CT is in Hounsfield units without NaN/inf voxels (:func:`check_hounsfield`); the mask
        holds only 0 and 1.
        """
        case = str(item.get("case", "?"))
        layout = self.check_layout(str(item.get("layout")))
        base = Path(base_dir) if base_dir is not None else Path()
        raw = item.get("image")
        if not isinstance(raw, (str, os.PathLike)):
            raise case_error(base, case, f"image must be the one CT file, got {raw!r}")
        path = base / raw
        image = open_nifti(path, case)
        _check_3d(image, path, case, "CT")
        label = item.get("label")
        if label is not None:
            mask_path = base / label
            mask = open_nifti(mask_path, case)
            _check_3d(mask, mask_path, case, "mask")
            check_same_grid(mask_path, case, "mask", mask, "CT", image)
        check_hounsfield(nifti_data(image, path, case), path, case)
        if label is not None:
            try:
                self.to_canonical(nifti_data(mask, mask_path, case), layout, source=mask_path)
            except DataFormatError as err:
                raise case_error(mask_path, case, err.problem) from None

    def datalist_header(self, layout: str) -> dict[str, Any]:
        return {
            "name": f"{self.title} ({layout})",
            "layout": layout,
            "modalities": ["ct"],
            "units": "HU",
            "labels": BINARY_LESION.describe(),
        }


def _check_3d(image: Any, path: Path, case: str, what: str) -> None:
    if len(image.shape) != 3:
        raise case_error(
            path, case, f"{what} is {len(image.shape)}D with shape {tuple(image.shape)}; expected 3D"
        )


ADAPTER = NCCTAdapter()
