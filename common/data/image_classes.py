"""Brain-tumour images sorted into classes (folders or a CSV), for the two tasks of ResNeSAt (Zhang et al.).

The paper (§II, §III.A) classifies T1 post-contrast MR slices in two stages: **presence** (is there a tumour)
and, for the slices with one, **source** (primary intracranial or secondary, i.e. metastatic). Its data set
has seven tumour types plus tumour-free slices; public data sets name their classes differently. One table,
:data:`TUMOUR_TYPES`, maps each class name (case-insensitive, see :func:`normalise_class_name`) to a
*category*, and each task maps categories to class indices (:data:`TASK_CLASSES`):

=============  ==========================  ==========================
category       ``task="presence"``         ``task="source"``
=============  ==========================  ==========================
``absent``     0 absent                    left out
``primary``    1 present                   0 primary
``secondary``  1 present                   1 secondary
``tumour``     1 present                   left out (source unknown)
=============  ==========================  ==========================

**Layouts** (:data:`IMAGE_CLASSES_LAYOUTS`), detected from the folder:

* ``"folders"``: one folder per class, ``root/<class>/<file>`` or ``root/<class>/<patient>/<file>``
  (files may sit deeper below the patient folder). The class folders may also be one level down, in
  several parts (``root/Training/<class>/...`` and ``root/Testing/<class>/...``, as Kaggle's brain-tumour
  MRI data sets ship): the images of all parts are read. The **patient** of a file is the folder right
  below its class folder; a file directly in its class folder gets its patient from a CSV of paths and
  patients beside the class folders (a ``path`` and a ``patient`` column, no label column), or else is its
  own patient: then slices of one person can land in two sections, which inflates test scores.
* ``"csv"``: a CSV in the data-set folder with a path, a patient and a label column (the patient column
  may be left out: each row is then its own patient). Column names are matched case-insensitively among
  :data:`CSV_COLUMNS` (``path``/``image``/``file``..., ``patient``/``patient_id``/``subject``...,
  ``label``/``class``/``diagnosis``...) or given with ``columns={"path": "Filename", ...}``. Paths are
  relative to the CSV's folder or absolute. The CSV is ``csv_file`` or the one CSV at the top of the
  data-set folder that has a path column; it wins over class folders when it has a label column.

**Files** are :data:`IMAGE_SUFFIXES`: PNG, JPEG, BMP, TIFF (8 or 16 bit, grey or RGB), single-frame DICOM
(``.dcm``/``.dicom``; rescale slope and intercept applied) and 2D NIfTI (``(X, Y)`` or ``(X, Y, 1)``).
Finding reads each file's header (so a file that is not an image of its type, or not 2D, is an error
naming it); :meth:`ImageClassesAdapter.check_case` reads the pixels. Files of other types are ignored (a
warning counts them); hidden files and ``Thumbs.db``/``desktop.ini`` silently.

**Items** are ``{"image": path, "label": class index of the task, "patient": id, "case": id,
"tumour_type": class as the data set names it, "category": absent/primary/secondary/tumour}``. ``image``
is relative to the data-set folder (absolute for CSV rows outside it); ``case`` is ``image`` without its
suffix. Splits are by patient, stratified by ``tumour_type``. Loading with MONAI, one pipeline for every
file type::

    LoadImaged(keys="image", image_only=True),  # PIL, nibabel, ITK (DICOM, rescaled) by suffix
    EnsureChannelFirstd(keys="image"),
    ToGreySliced(keys="image"),                 # RGB(A) -> ITU-R BT.601 luma; (1, X, Y, 1) -> (1, X, Y)

gives a ``(1, X, Y)`` float32 image, axis 0 = image column (as for Figshare slices and NIfTI).
"""

from __future__ import annotations

import csv
import logging
import os
import re
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform
from monai.utils import optional_import
from PIL import Image, UnidentifiedImageError

from common.data.adapter import Cases, DatasetAdapter, OnError, check_on_error
from common.data.errors import DataFormatError
from common.data.slices import check_slice_file, load_slice, slice_suffix
from common.transforms.slice_input import ToSingleChannelSliced

pydicom, HAS_PYDICOM = optional_import("pydicom")
sitk, HAS_SITK = optional_import("SimpleITK")  # DICOM without pydicom; both are optional

__all__ = [
    "ADAPTER",
    "CATEGORIES",
    "CSV_COLUMNS",
    "IMAGE_CLASSES_LAYOUTS",
    "IMAGE_SUFFIXES",
    "LUMA_WEIGHTS",
    "PAPER_TUMOUR_TYPES",
    "TASKS",
    "POSITIVE_CLASS",
    "TASK_CLASSES",
    "TUMOUR_TYPES",
    "ImageClassesAdapter",
    "ToGreySliced",
    "check_image_file",
    "check_task",
    "load_image_slice",
    "normalise_class_name",
    "task_label",
    "tumour_category",
    "tumour_types_table",
]

logger = logging.getLogger(__name__)

IMAGE_CLASSES_LAYOUTS: tuple[str, ...] = ("folders", "csv")
TASKS: tuple[str, ...] = ("presence", "source")
TASK_CLASSES: dict[str, tuple[str, str]] = {
    "presence": ("absent", "present"),
    "source": ("primary", "secondary"),
}
"""Class names of each task, in class-index order (what a datalist header and a model card say)."""
POSITIVE_CLASS: dict[str, str] = {"presence": "present", "source": "secondary"}
"""The class whose recall, specificity and precision a task reports (the paper's eq. 2-4)."""
CATEGORIES: tuple[str, ...] = ("absent", "primary", "secondary", "tumour")
"""What a class name maps to; ``tumour`` is a tumour of unknown source (presence task only)."""

PAPER_TUMOUR_TYPES: dict[str, str] = {
    "cavernous_haemangioma": "primary",
    "glioma": "primary",
    "meningioma": "primary",
    "acoustic_neuroma": "primary",
    "colorectal_metastasis": "secondary",
    "lung_metastasis": "secondary",
    "breast_metastasis": "secondary",
    "no_tumour": "absent",
}
"""The paper's classes (Table I): seven tumour types and the tumour-free slices."""

TUMOUR_TYPES: dict[str, str] = {
    **PAPER_TUMOUR_TYPES,
    # no tumour
    "notumour": "absent",
    "normal": "absent",
    "healthy": "absent",
    "absent": "absent",
    "no": "absent",  # Kaggle "brain_tumor_dataset": yes/no
    # a tumour of unknown source
    "tumour": "tumour",
    "brain_tumour": "tumour",
    "present": "tumour",
    "yes": "tumour",
    # primary intracranial tumours
    "primary": "primary",
    "glioma_tumour": "primary",
    "glioblastoma": "primary",
    "astrocytoma": "primary",
    "oligodendroglioma": "primary",
    "meningioma_tumour": "primary",
    "pituitary": "primary",
    "pituitary_tumour": "primary",
    "pituitary_adenoma": "primary",
    "cavernoma": "primary",
    "cavernous_angioma": "primary",
    "haemangioma": "primary",
    "vestibular_schwannoma": "primary",
    "schwannoma": "primary",
    # secondary (metastatic) tumours
    "secondary": "secondary",
    "metastasis": "secondary",
    "brain_metastasis": "secondary",
    "met": "secondary",
    "mets": "secondary",
    "colorectal_cancer_brain_metastasis": "secondary",
    "lung_cancer_brain_metastasis": "secondary",
    "breast_cancer_brain_metastasis": "secondary",
}
"""Class name (as :func:`normalise_class_name` writes it) -> category. Extend it per data set, e.g.
``ImageClassesAdapter(tumour_types={**TUMOUR_TYPES, "ependymoma": "primary"})``."""

CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "path": ("path", "image", "file", "filename", "file_name", "filepath", "file_path", "image_path"),
    "patient": ("patient", "patient_id", "patientid", "subject", "subject_id", "pid"),
    "label": ("label", "class", "diagnosis", "tumour_type", "type", "category"),
}
"""Header names looked for (after :func:`normalise_class_name`), in order, for each CSV column."""

IMAGE_SUFFIXES: tuple[str, ...] = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".tif",
    ".tiff",
    ".dcm",
    ".dicom",
    ".nii",
    ".nii.gz",
)
DICOM_SUFFIXES: tuple[str, ...] = (".dcm", ".dicom")
LUMA_WEIGHTS: tuple[float, float, float] = (0.299, 0.587, 0.114)
"""ITU-R BT.601 luma weights of R, G, B (also what PIL's ``convert("L")`` uses)."""

_JUNK = {"thumbs.db", "desktop.ini"}
_MIN_SIDE = 8


# ------------------------------------------------------------------------------------------ the mapping


def normalise_class_name(name: Any) -> str:
    """The key a class name is looked up under: lower case, words joined by ``_``, British spelling.

    ``"No Tumor"``, ``"no-tumour"`` and ``"no_tumor"`` all give ``"no_tumour"``; ``"Brain Metastases"``
    gives ``"brain_metastasis"``; ``"Cavernous hemangioma"`` gives ``"cavernous_haemangioma"``.
    """
    key = re.sub(r"[^0-9a-z]+", "_", str(name).strip().lower()).strip("_")
    return (
        key.replace("tumor", "tumour")
        .replace("metastases", "metastasis")
        .replace("hemangioma", "haemangioma")
    )


def tumour_types_table(tumour_types: Mapping[str, str] | None = None) -> dict[str, str]:
    """``tumour_types`` (default :data:`TUMOUR_TYPES`) with normalised keys and checked categories."""
    table: dict[str, str] = {}
    for name, category in (TUMOUR_TYPES if tumour_types is None else tumour_types).items():
        if category not in CATEGORIES:
            raise ValueError(f"tumour type {name!r} maps to {category!r}; categories are {CATEGORIES}")
        table[normalise_class_name(name)] = category
    return table


def tumour_category(
    name: str, tumour_types: Mapping[str, str] | None = None, source: str | os.PathLike = "<class>"
) -> str:
    """The category (:data:`CATEGORIES`) of class ``name``.

    Raises:
        DataFormatError: ``name`` is not in the table; the message names ``source`` and lists the known
            class names and how to add one.
    """
    table = tumour_types_table(tumour_types)
    key = normalise_class_name(name)
    if key not in table:
        raise DataFormatError(
            source,
            f"unknown tumour class {name!r}; known classes (case-insensitive, spaces or hyphens for _): "
            f"{sorted(table)}; add yours with tumour_types={{**TUMOUR_TYPES, {key!r}: 'primary'}} "
            "(or 'secondary', 'absent', 'tumour')",
        )
    return table[key]


def check_task(task: str) -> str:
    """``task`` if it is one of :data:`TASKS`, else ``ValueError``."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    return task


def task_label(category: str, task: str) -> int | None:
    """The class index of ``category`` in ``task``, or ``None`` when the task leaves such images out."""
    check_task(task)
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}; categories are {CATEGORIES}")
    if task == "presence":
        return 0 if category == "absent" else 1
    return {"primary": 0, "secondary": 1}.get(category)


# ------------------------------------------------------------------------------------------ files


def _is_image(path: Path) -> bool:
    return slice_suffix(path) in IMAGE_SUFFIXES


def _ignored(path: Path) -> bool:
    """Hidden files and the files operating systems leave in folders."""
    return path.name.startswith(".") or path.name.lower() in _JUNK


def _frames_error(path: Path, frames: int) -> DataFormatError:
    return DataFormatError(path, f"DICOM has {frames} frames; expected a single-frame 2D image")


def _read_dicom_sitk(path: Path) -> np.ndarray:
    """A DICOM image read by SimpleITK (rescale slope and intercept applied): ``(rows, cols[, samples])``."""
    image = sitk.ReadImage(os.fspath(path))
    if image.GetDimension() == 3 and image.GetSize()[2] > 1:
        raise _frames_error(path, image.GetSize()[2])
    array = sitk.GetArrayFromImage(image).astype(np.float32)  # ([1,] rows, cols[, samples])
    return array[0] if image.GetDimension() == 3 else array


def _read_dicom(path: Path) -> np.ndarray:
    """One single-frame DICOM as float32 ``(X, Y[, samples])`` (axis 0 = column), rescale applied.

    pydicom reads it where installed; SimpleITK otherwise, and also where pydicom cannot decode the pixels
    (a compressed transfer syntax without its decoder). Both are optional imports.
    """
    problem: Exception | None = None
    if HAS_PYDICOM:
        try:
            ds = pydicom.dcmread(os.fspath(path))
            frames = int(ds.get("NumberOfFrames", 1) or 1)
            if frames > 1:
                raise _frames_error(path, frames)
            array = np.asarray(ds.pixel_array, dtype=np.float32)
            slope = float(ds.get("RescaleSlope", 1) or 1)
            intercept = float(ds.get("RescaleIntercept", 0) or 0)
            return np.swapaxes(array * np.float32(slope) + np.float32(intercept), 0, 1)
        except DataFormatError:
            raise
        except Exception as err:  # pydicom raises many types for bad files
            problem = err
    if not HAS_SITK:
        if problem is None:
            raise DataFormatError(path, "reading DICOM needs pydicom (pip install pydicom) or SimpleITK")
        raise DataFormatError(path, f"cannot be read as DICOM ({problem})") from problem
    try:
        return np.swapaxes(_read_dicom_sitk(path), 0, 1)
    except RuntimeError as err:
        raise DataFormatError(path, f"cannot be read as DICOM ({problem or err})") from err


def load_image_slice(path: str | os.PathLike) -> np.ndarray:
    """The pixels of one image file, axis 0 = image column as MONAI loads them: PNG, JPEG, BMP, TIFF and
    NIfTI by :func:`~common.data.slices.load_slice` (RGB as luma), DICOM with rescale (RGB as luma too).

    Raises:
        DataFormatError: the file cannot be read in the format its suffix says.
    """
    path = Path(path)
    suffix = slice_suffix(path)
    if suffix in (".nii", ".nii.gz"):
        return load_slice(path)
    if suffix not in DICOM_SUFFIXES:
        return load_slice(path).T  # PIL gives (rows, cols)
    array = _read_dicom(path)
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        array = array[..., :3] @ np.asarray(LUMA_WEIGHTS, dtype=np.float32)
    return array


def check_image_file(path: str | os.PathLike) -> None:
    """Raise :class:`DataFormatError` unless ``path`` holds one finite 2D image of at least 8×8 pixels
    (:func:`~common.data.slices.check_slice_file`, and the same checks for DICOM)."""
    path = Path(path)
    if slice_suffix(path) not in DICOM_SUFFIXES:
        check_slice_file(path)
        return
    if not path.is_file():
        raise DataFormatError(path, "file does not exist")
    array = load_image_slice(path)
    if array.ndim != 2:
        raise DataFormatError(path, f"expected a 2D image, got shape {array.shape}")
    if min(array.shape) < _MIN_SIDE:
        raise DataFormatError(path, f"image of shape {array.shape} is too small")
    if not np.isfinite(array).all():
        raise DataFormatError(path, f"image has {int((~np.isfinite(array)).sum())} NaN or infinite pixels")


def _probe(path: Path) -> None:
    """Read an image file's header; raise :class:`DataFormatError` unless it is a 2D image of its type."""
    suffix = slice_suffix(path)
    if suffix in (".nii", ".nii.gz"):
        try:
            shape = tuple(nib.load(os.fspath(path)).shape)
        except Exception as err:  # nibabel raises several types for corrupt files
            raise DataFormatError(path, f"cannot be read as NIfTI ({err})") from err
        if len(shape) < 2 or any(n != 1 for n in shape[2:]):
            raise DataFormatError(path, f"expected a 2D NIfTI slice (X, Y) or (X, Y, 1), got shape {shape}")
        return
    if suffix in DICOM_SUFFIXES:
        if HAS_PYDICOM:
            try:
                ds = pydicom.dcmread(os.fspath(path), stop_before_pixels=True)
                frames = int(ds.get("NumberOfFrames", 1) or 1)
                rows = int(ds.Rows)
            except Exception as err:  # pydicom raises many types for bad files
                raise DataFormatError(path, f"cannot be read as DICOM ({err})") from err
            if frames > 1 or not rows:
                raise DataFormatError(path, f"DICOM has {frames} frames; expected a single-frame 2D image")
            return
        _read_dicom(path)  # SimpleITK has no cheap header read for every DICOM
        return
    try:
        with Image.open(path) as img:
            frames = int(getattr(img, "n_frames", 1))
    except (UnidentifiedImageError, OSError) as err:
        raise DataFormatError(path, f"cannot be read as an image ({err})") from err
    if frames > 1:
        raise DataFormatError(path, f"image has {frames} frames; expected one 2D image")


# ------------------------------------------------------------------------------------------ CSV


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header and ``(line number, row)`` of a CSV (``,``, ``;`` or tab separated; UTF-8, BOM allowed)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise DataFormatError(path, f"cannot be read as a UTF-8 CSV file ({err})") from err
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise DataFormatError(path, "CSV file is empty (no header line)")
    delimiter = max(",;\t", key=lines[0].count)
    reader = csv.DictReader(lines, delimiter=delimiter)
    header = [h.strip() for h in (reader.fieldnames or [])]
    rows = []
    for number, row in enumerate(reader, start=2):
        if any((v or "").strip() for k, v in row.items() if k is not None):
            rows.append(
                (number, {(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None})
            )
    return header, rows


def _csv_header(path: Path) -> list[str]:
    """The header of a CSV file (empty when it cannot be read)."""
    try:
        with open(path, encoding="utf-8-sig") as fh:
            first = fh.readline()
    except (OSError, UnicodeDecodeError):
        return []
    delimiter = max(",;\t", key=first.count)
    return [h.strip() for h in next(csv.reader([first], delimiter=delimiter), [])]


def _column(header: Sequence[str], role: str, given: str | None, path: Path, required: bool) -> str | None:
    """The header name that plays ``role`` (path, patient, label)."""
    by_key = {normalise_class_name(h): h for h in header}
    if given is not None:
        if given in header:
            return given
        if normalise_class_name(given) in by_key:
            return by_key[normalise_class_name(given)]
        raise DataFormatError(
            path, f"no column {given!r} (given as the {role} column); header: {list(header)}"
        )
    for candidate in CSV_COLUMNS[role]:
        if candidate in by_key:
            return by_key[candidate]
    if required:
        raise DataFormatError(
            path,
            f"no {role} column (looked for {list(CSV_COLUMNS[role])}); header: {list(header)}; "
            f"name it with columns={{'{role}': '<column>'}}",
        )
    return None


# ------------------------------------------------------------------------------------------ the adapter


def _class_level(root: Path, table: Mapping[str, str]) -> list[Path]:
    """The folders whose sub-folders are class folders: ``root``, else its sub-folders that hold some."""

    def subdirs(folder: Path) -> list[Path]:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))

    def known(folder: Path) -> bool:
        return any(normalise_class_name(d.name) in table for d in subdirs(folder))

    if not root.is_dir():
        return []
    if known(root):
        return [root]
    return [d for d in subdirs(root) if known(d)]


def _relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` (POSIX) when inside it, else absolute."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _case_id(image: str) -> str:
    """The case id of an image path: the path without its image suffix."""
    suffix = slice_suffix(image)
    return image[: -len(suffix)] if suffix else image


class ImageClassesAdapter(DatasetAdapter):
    """Brain MR slices sorted into tumour classes, by folder or by CSV, labelled for one task.

    Args:
        task: ``"presence"`` (0 absent, 1 present; every image) or ``"source"`` (0 primary, 1 secondary;
            only images with a tumour of known source).
        tumour_types: class name -> category, default :data:`TUMOUR_TYPES` (keys are normalised).
        csv_file: the CSV (relative to the data-set folder, or absolute); default: the one CSV at the top
            of the data-set folder with a path column, if any.
        columns: header names of the ``"path"``, ``"patient"`` and ``"label"`` columns, for those that
            :data:`CSV_COLUMNS` does not find.
    """

    name = "image_classes"
    title = "Brain tumour image classes"
    layouts = IMAGE_CLASSES_LAYOUTS
    no_data = (
        "no class folders (root/<class>/... with image files, class names such as no_tumour, glioma, "
        "meningioma, metastasis) and no CSV of image paths and labels found; pass a dataset_dir that holds "
        "them, or generate phantoms"
    )
    phantom_writer = "common.data.phantoms.tumour_slices:make_tumour_image_phantoms"
    group_key = "patient"
    stratify_key = "tumour_type"
    case_key = "case"

    def __init__(
        self,
        task: str = "presence",
        tumour_types: Mapping[str, str] | None = None,
        csv_file: str | os.PathLike | None = None,
        columns: Mapping[str, str] | None = None,
    ) -> None:
        self.task = check_task(task)
        self.tumour_types = tumour_types_table(tumour_types)
        self.csv_file = csv_file
        self.columns = dict(columns or {})
        unknown = set(self.columns) - set(CSV_COLUMNS)
        if unknown:
            raise ValueError(f"columns may name {sorted(CSV_COLUMNS)}, got {sorted(unknown)}")

    # ---------------------------------------------------------------------------------- CSV and layout

    def _csv(self, root: Path) -> tuple[Path, bool] | None:
        """``(CSV, has a label column)``: ``csv_file``, or the one CSV atop ``root`` with a path column."""
        if self.csv_file is not None:
            path = root / self.csv_file
            if not path.is_file():
                raise DataFormatError(path, "csv_file does not exist")
            header = _csv_header(path)
            _column(header, "path", self.columns.get("path"), path, required=True)
            return path, _column(header, "label", self.columns.get("label"), path, required=False) is not None
        if not root.is_dir():
            return None
        found = []
        tables = (p for p in root.iterdir() if p.suffix.lower() == ".csv" and not p.name.startswith("."))
        for path in sorted(p for p in tables if p.is_file()):
            header = _csv_header(path)
            try:
                path_column = _column(header, "path", self.columns.get("path"), path, required=False)
            except DataFormatError:  # the path column given is not in this CSV: not the table meant
                continue
            if path_column is not None:
                found.append((path, _column(header, "label", self.columns.get("label"), path, False)))
        if len(found) > 1:
            raise DataFormatError(
                root, f"several CSV files with a path column ({[p.name for p, _ in found]}); pass csv_file"
            )
        return (found[0][0], found[0][1] is not None) if found else None

    def has_data(self, dataset_dir: str | os.PathLike) -> bool:
        root = Path(dataset_dir)
        if not root.is_dir():
            return False
        try:
            table = self._csv(root)
        except DataFormatError:
            return True  # there is data, and detect_layout says what is wrong with it
        if table is not None and table[1]:
            return True
        return any(
            _is_image(p)
            for level in _class_level(root, self.tumour_types)
            for p in level.rglob("*")
            if p.is_file()
        )

    def detect_layout(self, dataset_dir: str | os.PathLike) -> str:
        """``"csv"`` when there is a CSV with a label column, else ``"folders"`` when there are class folders.

        Raises:
            DataFormatError: the folder is missing or holds neither; when its sub-folders have names that
                are not known classes, the message lists them and the known ones.
        """
        root = Path(dataset_dir)
        if not root.is_dir():
            raise DataFormatError(
                root, "dataset folder does not exist" if not root.exists() else "not a folder"
            )
        table = self._csv(root)
        if table is not None and table[1]:
            return "csv"
        if _class_level(root, self.tumour_types):
            return "folders"
        if table is not None:  # a CSV of paths without labels, and no class folders
            _column(_csv_header(table[0]), "label", self.columns.get("label"), table[0], required=True)
        folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if folders:
            raise DataFormatError(
                root,
                f"{self.no_data}: none of the sub-folders {folders} is a known tumour class (known: "
                f"{sorted(self.tumour_types)}); add classes with tumour_types={{**TUMOUR_TYPES, "
                "'<name>': 'primary'}}",
            )
        raise DataFormatError(root, self.no_data)

    # ---------------------------------------------------------------------------------- finding

    def _item(
        self, root: Path, image: Path, tumour_type: str, patient: str | None, source: str | os.PathLike
    ) -> dict[str, Any] | None:
        """The item of one image, or ``None`` when the task leaves its category out."""
        category = tumour_category(tumour_type, self.tumour_types, source)
        label = task_label(category, self.task)
        if label is None:
            return None
        rel = _relative(image, root)
        case = _case_id(rel)
        return {
            "image": rel,
            "label": label,
            "patient": patient if patient is not None else case,
            "case": case,
            "tumour_type": tumour_type,
            "category": category,
        }

    def _patients_from_csv(self, root: Path) -> dict[Path, str]:
        """Image (resolved path) -> patient, from a CSV of paths and patients (folder layout)."""
        found = self._csv(root)
        if found is None:
            return {}
        path = found[0]
        header, rows = _read_csv(path)
        path_col = _column(header, "path", self.columns.get("path"), path, required=True)
        patient_col = _column(header, "patient", self.columns.get("patient"), path, required=False)
        if patient_col is None:
            return {}
        return {
            (path.parent / row[path_col]).resolve(): row[patient_col]
            for _, row in rows
            if row.get(path_col) and row.get(patient_col)
        }

    def _find_in_folders(
        self, root: Path, on_error: OnError
    ) -> tuple[list[dict[str, Any]], list[tuple[str, str]], int]:
        levels = _class_level(root, self.tumour_types)
        if not levels:
            self.detect_layout(root)  # raises the message that says why
        patients = self._patients_from_csv(root)
        items: list[dict] = []
        problems: list[tuple[str, str]] = []
        skipped: list[Path] = []
        left_out = 0
        for level in levels:
            for folder in sorted(p for p in level.iterdir() if p.is_dir() and not p.name.startswith(".")):
                try:
                    tumour_category(folder.name, self.tumour_types, folder)
                    files = sorted(p for p in folder.rglob("*") if p.is_file() and not _ignored(p))
                    images = [p for p in files if _is_image(p)]
                    skipped += [p for p in files if not _is_image(p)]
                    if not images:
                        raise DataFormatError(
                            folder, f"class folder has no image files ({', '.join(IMAGE_SUFFIXES)})"
                        )
                except DataFormatError as err:
                    if on_error == "raise":
                        raise
                    problems.append((os.fspath(folder), str(err)))
                    continue
                for image in images:
                    parts = image.relative_to(folder).parts
                    patient = parts[0] if len(parts) > 1 else patients.get(image.resolve())
                    try:
                        _probe(image)
                    except DataFormatError as err:
                        if on_error == "raise":
                            raise
                        problems.append((_relative(image, root), str(err)))
                        continue
                    item = self._item(root, image, folder.name, patient, folder)
                    if item is None:
                        left_out += 1
                    else:
                        items.append(item)
        if skipped:
            examples = ", ".join(_relative(p, root) for p in skipped[:3])
            logger.warning(
                "%s: ignored %d file(s) that are not images (%s, ...)", root, len(skipped), examples
            )
        return items, problems, left_out

    def _find_in_csv(
        self, root: Path, on_error: OnError
    ) -> tuple[list[dict[str, Any]], list[tuple[str, str]], int]:
        path = self._csv(root)[0]
        header, rows = _read_csv(path)
        path_col = _column(header, "path", self.columns.get("path"), path, required=True)
        patient_col = _column(header, "patient", self.columns.get("patient"), path, required=False)
        label_col = _column(header, "label", self.columns.get("label"), path, required=True)
        items: list[dict] = []
        problems: list[tuple[str, str]] = []
        seen: dict[Path, int] = {}
        left_out = 0
        for number, row in rows:
            try:
                given = row.get(path_col, "")
                if not given:
                    raise DataFormatError(path, f"row {number}: empty {path_col!r}")
                image = Path(given) if Path(given).is_absolute() else path.parent / given
                if not image.is_file():
                    raise DataFormatError(path, f"row {number}: image {given} does not exist ({image})")
                if not _is_image(image):
                    raise DataFormatError(
                        path, f"row {number}: {given} is not an image file ({', '.join(IMAGE_SUFFIXES)})"
                    )
                key = image.resolve()
                if key in seen:
                    raise DataFormatError(path, f"row {number}: {given} is also in row {seen[key]}")
                seen[key] = number
                label = row.get(label_col, "")
                if not label:
                    raise DataFormatError(path, f"row {number}: empty {label_col!r} for {given}")
                patient = row.get(patient_col, "") if patient_col else None
                if patient_col and not patient:
                    raise DataFormatError(path, f"row {number}: empty {patient_col!r} for {given}")
                _probe(image)
                item = self._item(root, image, label, patient, f"{path}, row {number}")
            except DataFormatError as err:
                if on_error == "raise":
                    raise
                problems.append((f"{path.name}:{number}", str(err)))
                continue
            if item is None:
                left_out += 1
            else:
                items.append(item)
        if patient_col is None:
            logger.warning("%s: no patient column; every row is its own patient", path)
        return items, problems, left_out

    def find_cases(self, dataset_dir: str | os.PathLike, on_error: OnError = "raise") -> Cases:
        """Every image of the folder tree or CSV (CSV row order; folders sorted), labelled for the task.

        Finding reads the CSV and each image's header. Bad cases: an unknown class (folder or label), a
        class folder without images, a CSV row with an empty cell, a missing or non-image file or a file
        listed twice, an image file that cannot be read or is not 2D (several frames, a 3D NIfTI).

        Raises:
            DataFormatError: missing folder, no data, or no image for the task (in both modes); with
                ``"raise"`` also a bad case.
        """
        check_on_error(on_error)
        root = Path(dataset_dir)
        layout = self.detect_layout(root)
        finder = self._find_in_csv if layout == "csv" else self._find_in_folders
        items, problems, left_out = finder(root, on_error)
        if left_out:
            logger.info(
                "%s: %d image(s) without a tumour of known source left out of the %s task",
                root,
                left_out,
                self.task,
            )
        if not items:
            raise DataFormatError(root, f"no usable image for the {self.task} task ({left_out} left out)")
        return Cases(layout, items, problems)

    def check_case(self, item: Mapping[str, Any], base_dir: str | os.PathLike | None = None) -> None:
        """Read the image: one finite 2D image of at least 8×8 pixels (:func:`check_image_file`)."""
        check_image_file(Path(base_dir or "") / item["image"])

    # ---------------------------------------------------------------------------------- datalists

    def datalist_header(self, layout: str) -> dict[str, Any]:
        return {
            "name": self.title,
            "layout": layout,
            "task": self.task,
            "labels": {str(i): name for i, name in enumerate(TASK_CLASSES[self.task])},
        }

    def output_name(self, item: Mapping[str, Any]) -> str:
        return str(item["case"]).strip("/").replace("/", "_")


ADAPTER = ImageClassesAdapter()
"""The presence task; ``ImageClassesAdapter(task="source")`` for the second stage."""


# ------------------------------------------------------------------------------------------ loading

_WARNED: set[str] = set()


class ToGreySliced(MapTransform):
    """(C, X, Y[, 1]) -> (1, X, Y): colour to grey with the ITU-R BT.601 luma weights, then one 2D channel.

    Three or four channels (RGB, RGBA: alpha dropped) become ``0.299 R + 0.587 G + 0.114 B``; a real colour
    image (channels that differ by more than 1 % of its range) is logged as a warning once per file, a grey
    image stored as RGB is converted silently (its luma is its grey value). Two channels (grey + alpha)
    keep the first. :class:`~common.transforms.slice_input.ToSingleChannelSliced` then drops a trailing
    singleton axis (a NIfTI or DICOM slice read as ``(1, X, Y, 1)``) and rejects anything not 2D.
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.single = ToSingleChannelSliced(keys, allow_missing_keys)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            if img.shape[0] in (3, 4):
                rgb = img[:3].float()
                spread = float((rgb.amax(0) - rgb.amin(0)).max())
                value_range = float(rgb.max() - rgb.min())
                source = (
                    str(img.meta.get("filename_or_obj", key)) if isinstance(img, MetaTensor) else str(key)
                )
                if spread > 0.01 * value_range and source not in _WARNED:
                    _WARNED.add(source)
                    logger.warning(
                        "%s: colour image converted to grey with the ITU-R BT.601 luma weights %s",
                        source,
                        LUMA_WEIGHTS,
                    )
                weights = torch.tensor(LUMA_WEIGHTS, dtype=rgb.dtype, device=rgb.device)
                img = (rgb * weights.view(3, *([1] * (rgb.ndim - 1)))).sum(dim=0, keepdim=True)
            elif img.shape[0] == 2:
                img = img[:1]
            d[key] = img
        return self.single(d)
