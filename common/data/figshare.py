"""Figshare brain-tumour data set (Cheng et al.): find the slices, check them, split them by patient.

**Layout.** One MATLAB v7.3 file per slice, ``1.mat`` ... ``3064.mat``, either flat in the data-set folder or
in the four ``brainTumorDataPublic_*`` sub-folders of the download, plus ``cvind.mat`` (the authors' 5-fold
assignment, one fold id per slice). The file format is :mod:`common.data.figshare_mat`.

**Items.** ``{"image": rel, "label": rel, "class": label - 1, "patient": pid}`` where ``rel`` is the slice
file relative to the data-set folder. ``image`` and ``label`` name the same file because the mask lives
inside it: load them with :class:`~common.data.figshare_mat.FigshareMatReader` with ``field="image"`` and
``field="tumorMask"``. The mask is 0/1, already the canonical :data:`~common.labels.BINARY_LESION` codes.

**Classes** are :data:`~common.data.figshare_mat.FIGSHARE_CLASSES` (class index ``i`` is the file's label
``i + 1``), re-exported here as the data set's class list.

**Splits** are by patient, stratified by tumour class. The datalist option ``cvind_fold`` (1..5) makes the
slices of that ``cvind.mat`` fold the test section instead, as in the data set's own cross-validation.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from common.data.adapter import Cases, DatasetAdapter, OnError, check_on_error
from common.data.errors import DataFormatError
from common.data.figshare_mat import (
    FIGSHARE_CLASSES,
    FIGSHARE_FIELD_OF_VIEW_MM,
    read_cvind,
    read_figshare_mat,
)
from common.labels import BINARY_LESION

__all__ = ["ADAPTER", "CVIND_FILE", "FIGSHARE_CLASSES", "FigshareAdapter", "find_figshare_files"]

CVIND_FILE = "cvind.mat"
_CVIND_FOLDS = range(1, 6)
_NO_FILES = (
    "no Figshare .mat files found (flat or in brainTumorDataPublic_* sub-folders); pass a dataset_dir that "
    "holds the dataset, or leave the default to train on generated phantoms"
)


def _sort_key(path: Path) -> tuple[int, int, str]:
    """Integer stems in numeric order first, then other names alphabetically."""
    stem = path.stem
    return (0, int(stem), path.as_posix()) if stem.isdigit() else (1, 0, path.as_posix())


def _slice_files(root: Path) -> Iterator[Path]:
    return (p for p in root.rglob("*.mat") if p.is_file() and p.name.lower() != CVIND_FILE)


def find_figshare_files(dataset_dir: str | os.PathLike) -> list[Path]:
    """All slice files under ``dataset_dir`` (recursive ``*.mat`` without ``cvind.mat``).

    Works for the flat layout and for the four original ``brainTumorDataPublic_*`` sub-folders. Files are
    sorted by integer stem (``2.mat`` before ``10.mat``), names that are not integers after them by path.

    Raises:
        DataFormatError: ``dataset_dir`` does not exist or is not a folder.
    """
    root = Path(dataset_dir)
    if not root.is_dir():
        raise DataFormatError(root, "dataset folder does not exist" if not root.exists() else "not a folder")
    return sorted(_slice_files(root), key=_sort_key)


def _cvind_folds(root: Path, items: Sequence[Mapping[str, Any]]) -> list[int]:
    """The cvind fold of each item, matched through its slice number (``k.mat`` -> ``cvind[k-1]``)."""
    candidates = [root / CVIND_FILE] if (root / CVIND_FILE).is_file() else sorted(root.rglob(CVIND_FILE))
    if not candidates:
        raise DataFormatError(root, f"cvind_fold was given but there is no {CVIND_FILE} in this folder")
    cvind_path = candidates[0]
    cvind = read_cvind(cvind_path)
    folds = []
    for item in items:
        path = root / item["image"]
        if not path.stem.isdigit() or not 1 <= int(path.stem) <= cvind.size:
            raise DataFormatError(
                path, f"no fold in {cvind_path}: the name must be k.mat with k in 1..{cvind.size}"
            )
        folds.append(int(cvind[int(path.stem) - 1]))
    return folds


class FigshareAdapter(DatasetAdapter):
    """The Figshare ``.mat`` slices: one layout, items per slice, grouped by patient, stratified by class."""

    name = "figshare"
    title = "Figshare brain tumour (Cheng et al.)"
    layouts = ("figshare",)
    no_data = _NO_FILES
    phantom_writer = "common.data.phantoms.figshare:make_figshare_phantoms"
    group_key = "patient"
    stratify_key = "class"
    case_key = "image"
    label_scheme = BINARY_LESION

    def has_data(self, dataset_dir: str | os.PathLike) -> bool:
        root = Path(dataset_dir)
        return root.is_dir() and next(_slice_files(root), None) is not None

    def detect_layout(self, dataset_dir: str | os.PathLike) -> str:
        if not find_figshare_files(dataset_dir):
            raise DataFormatError(dataset_dir, _NO_FILES)
        return self.layouts[0]

    def find_cases(self, dataset_dir: str | os.PathLike, on_error: OnError = "raise") -> Cases:
        """One item per slice file in slice-number order; reads only each file's label and patient id."""
        check_on_error(on_error)
        root = Path(dataset_dir)
        files = find_figshare_files(root)
        if not files:
            raise DataFormatError(root, _NO_FILES)
        items, problems = [], []
        for path in files:
            rel = path.relative_to(root).as_posix()
            try:
                sl = read_figshare_mat(path, fields=("label", "PID"))
            except DataFormatError as err:
                if on_error == "raise":
                    raise
                problems.append((os.fspath(path), str(err)))
                continue
            items.append({"image": rel, "label": rel, "class": int(sl.label) - 1, "patient": sl.patient_id})
        return Cases(self.layouts[0], items, problems)

    def check_case(self, item: Mapping[str, Any], base_dir: str | os.PathLike | None = None) -> None:
        """Read the slice's image, mask, label and patient id (every check of the reader)."""
        read_figshare_mat(Path(base_dir or "") / item["image"])

    def datalist_header(self, layout: str) -> dict[str, Any]:
        return {
            "name": self.title,
            "layout": layout,
            "labels": {str(i): name for i, name in enumerate(FIGSHARE_CLASSES)},
            "field_of_view_mm": FIGSHARE_FIELD_OF_VIEW_MM,
        }

    def predefined_test(
        self,
        dataset_dir: str | os.PathLike,
        items: Sequence[Mapping[str, Any]],
        cvind_fold: int | None = None,
    ) -> list[bool] | None:
        """With ``cvind_fold`` (1..5): the items whose ``cvind.mat`` fold it is.

        ``cvind.mat`` assigns slices, not patients; :func:`~common.data.datalist.build_datalist` leaves
        the other slices of test patients out of training and validation (with a warning).

        Raises:
            ValueError: ``cvind_fold`` not in 1..5.
            DataFormatError: ``cvind.mat`` is missing or bad, or a file is not named ``k.mat``.
        """
        if cvind_fold is None:
            return None
        if int(cvind_fold) not in _CVIND_FOLDS:
            raise ValueError(f"cvind_fold must be 1..5, got {cvind_fold}")
        return [fold == int(cvind_fold) for fold in _cvind_folds(Path(dataset_dir), items)]

    def output_name(self, item: Mapping[str, Any]) -> str:
        return Path(item["image"]).stem


ADAPTER = FigshareAdapter()
