"""Patient-wise datalists (MONAI decathlon-style JSON) for the Figshare brain-tumour slices.

A datalist has the sections ``"training"``, ``"validation"`` and ``"testing"``; each item is
``{"image": rel, "label": rel, "class": label - 1, "patient": pid}`` where ``rel`` is the slice file
relative to the data set folder (POSIX style). ``image`` and ``label`` name the same file because the
mask lives inside it: load them with :class:`~common.data.figshare.FigshareMatReader` with
``field="image"`` and ``field="tumorMask"``. Splits are always by patient, never by slice.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.data import load_decathlon_datalist

from common.data.atomic import atomic_write_text
from common.data.errors import DataFormatError
from common.data.figshare import FIGSHARE_CLASSES, FIGSHARE_PIXEL_SPACING_MM, read_cvind, read_figshare_mat

__all__ = [
    "DATALIST_SECTIONS",
    "build_figshare_datalist",
    "find_figshare_files",
    "load_datalist_section",
    "prepare_figshare_datalist",
    "split_counts",
    "write_datalist",
]

DATALIST_SECTIONS: tuple[str, str, str] = ("training", "validation", "testing")
_CVIND = "cvind.mat"
_NO_FILES = (
    "no Figshare .mat files found (flat or in brainTumorDataPublic_* sub-folders); pass a dataset_dir that "
    "holds the dataset, or leave the default to train on generated phantoms"
)


def _sort_key(path: Path) -> tuple[int, int, str]:
    """Integer stems in numeric order first, then other names alphabetically."""
    stem = path.stem
    return (0, int(stem), path.as_posix()) if stem.isdigit() else (1, 0, path.as_posix())


def find_figshare_files(dataset_dir: str | os.PathLike) -> list[Path]:
    """All slice files under ``dataset_dir`` (recursive ``*.mat`` without ``cvind.mat``).

    Works for the flat layout and for the four original ``brainTumorDataPublic_*`` sub-folders.
    Files are sorted by integer stem (``2.mat`` before ``10.mat``), names that are not integers after
    them by path.

    Raises:
        DataFormatError: ``dataset_dir`` does not exist or is not a folder.
    """
    root = Path(dataset_dir)
    if not root.is_dir():
        raise DataFormatError(root, "dataset folder does not exist" if not root.exists() else "not a folder")
    files = [p for p in root.rglob("*.mat") if p.is_file() and p.name.lower() != _CVIND]
    return sorted(files, key=_sort_key)


def split_counts(n: int, ratios: Sequence[float]) -> list[int]:
    """Split ``n`` items by ``ratios`` (largest remainders); each positive ratio gets >= 1 if ``n`` allows."""
    weights = np.asarray(ratios, dtype=np.float64)
    if weights.ndim != 1 or weights.size == 0 or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"ratios must be non-negative with a positive sum, got {ratios}")
    exact = n * weights / weights.sum()
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    positive = weights > 0
    if n >= positive.sum():
        for i in np.flatnonzero(positive & (counts == 0)):
            counts[int(np.argmax(counts))] -= 1
            counts[i] += 1
    return counts.tolist()


def _assign_by_class(
    items: Sequence[dict[str, Any]], ratios: Sequence[float], names: Sequence[str], seed: int
):
    """Patient -> split name: split sizes by ``ratios`` over all patients, tumour types spread evenly.

    The number of patients per split is :func:`split_counts` of the patient count. Patients are grouped by
    tumour type (the most frequent class of their slices) and each group's sorted ids are shuffled with one
    ``numpy.random.default_rng(seed)``. The smaller splits (the last names first) are then filled by taking
    patients from the types in turn, so a 3-patient test split holds one patient of each type; the first
    split (training) takes the rest.
    """
    classes_of: dict[str, list[int]] = {}
    for it in items:
        classes_of.setdefault(it["patient"], []).append(int(it["class"]))
    groups: dict[int, list[str]] = {}
    for patient in sorted(classes_of):
        classes = classes_of[patient]
        groups.setdefault(max(sorted(set(classes)), key=classes.count), []).append(patient)
    rng = np.random.default_rng(seed)
    queues = [[groups[c][i] for i in rng.permutation(len(groups[c]))] for c in sorted(groups)]
    counts = split_counts(len(classes_of), ratios)
    split_of: dict[str, str] = {}
    turn = 0
    for name, count in reversed(list(zip(names[1:], counts[1:]))):
        while count > 0:
            queue = queues[turn % len(queues)]
            turn += 1
            if queue:
                split_of[queue.pop()] = name
                count -= 1
    split_of.update({p: names[0] for queue in queues for p in queue})
    return split_of


def _read_items(root: Path, files: Sequence[Path]) -> list[dict[str, Any]]:
    """One datalist item per slice file (reads only label and PID)."""
    items = []
    for path in files:
        sl = read_figshare_mat(path, fields=("label", "PID"))
        rel = path.relative_to(root).as_posix()
        items.append({"image": rel, "label": rel, "class": int(sl.label) - 1, "patient": sl.patient_id})
    return items


def _cvind_folds(root: Path, files: Sequence[Path]) -> list[int]:
    """The cvind fold of each file, matched through the file's slice number (``k.mat`` -> ``cvind[k-1]``)."""
    candidates = [root / _CVIND] if (root / _CVIND).is_file() else sorted(root.rglob(_CVIND))
    if not candidates:
        raise DataFormatError(root, f"cvind_fold was given but there is no {_CVIND} in this folder")
    cvind_path = candidates[0]
    cvind = read_cvind(cvind_path)
    folds = []
    for path in files:
        if not path.stem.isdigit() or not 1 <= int(path.stem) <= cvind.size:
            raise DataFormatError(
                path, f"no fold in {cvind_path}: the name must be k.mat with k in 1..{cvind.size}"
            )
        folds.append(int(cvind[int(path.stem) - 1]))
    return folds


def build_figshare_datalist(
    dataset_dir: str | os.PathLike,
    seed: int = 1029,
    ratios: Sequence[float] = (8, 1, 1),
    cvind_fold: int | None = None,
) -> dict[str, Any]:
    """Split the Figshare slices of ``dataset_dir`` by patient into training/validation/testing.

    Without ``cvind_fold``, the patients of each tumour type are shuffled with
    ``numpy.random.default_rng(seed)`` and cut by ``ratios`` (train:val:test, 8:1:1 and seed 1029 as in
    the MMRAN paper), so the split is stratified by type; each split gets at least one patient of a type
    when there are enough. With ``cvind_fold``
    (1..5), testing is the slices whose ``cvind.mat`` value is that fold and the other patients are cut
    ``ratios[0]:ratios[1]`` into training/validation. Deterministic for a given seed.

    Returns:
        ``{"training": [...], "validation": [...], "testing": [...], ...metadata}``; items as described
        in the module docstring, each section in slice-number order.

    Raises:
        DataFormatError: the folder is missing or has no slice files, a file is bad, or ``cvind.mat``
            is missing/bad when ``cvind_fold`` is given.
        ValueError: bad ``ratios`` or ``cvind_fold``.
    """
    root = Path(dataset_dir)
    files = find_figshare_files(root)
    if not files:
        raise DataFormatError(root, _NO_FILES)
    if len(ratios) != 3:
        raise ValueError(f"ratios must be (train, validation, test), got {ratios}")
    items = _read_items(root, files)
    sections: dict[str, list[dict[str, Any]]] = {name: [] for name in DATALIST_SECTIONS}
    if cvind_fold is None:
        split_of = _assign_by_class(items, ratios, DATALIST_SECTIONS, seed)
        for it in items:
            sections[split_of[it["patient"]]].append(it)
    else:
        if int(cvind_fold) not in range(1, 6):
            raise ValueError(f"cvind_fold must be 1..5, got {cvind_fold}")
        folds = _cvind_folds(root, files)
        test_patients = {it["patient"] for it, f in zip(items, folds) if f == cvind_fold}
        rest = [it for it, f in zip(items, folds) if f != cvind_fold]
        leaked = [it for it in rest if it["patient"] in test_patients]
        if leaked:
            warnings.warn(
                f"{root}: cvind.mat is not patient-wise; {len(leaked)} slices of test patients in other "
                "folds are left out of training/validation",
                stacklevel=2,
            )
        rest = [it for it in rest if it["patient"] not in test_patients]
        split_of = _assign_by_class(rest, ratios[:2], DATALIST_SECTIONS[:2], seed)
        sections["testing"] = [it for it, f in zip(items, folds) if f == cvind_fold]
        for it in rest:
            sections[split_of[it["patient"]]].append(it)
    return {
        "name": "Figshare brain tumour (Cheng et al.)",
        "labels": {str(i): name for i, name in enumerate(FIGSHARE_CLASSES)},
        "pixel_spacing_mm": FIGSHARE_PIXEL_SPACING_MM,
        "seed": seed,
        "ratios": list(ratios),
        "cvind_fold": cvind_fold,
        **sections,
    }


def write_datalist(datalist: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``datalist`` as indented JSON, atomically (temporary file + ``os.replace``); makes parents."""
    return atomic_write_text(path, json.dumps(datalist, indent=2) + "\n")


def prepare_figshare_datalist(
    dataset_dir: str,
    datalist_file: str,
    seed: int = 1029,
    ratios: Sequence[float] = (8, 1, 1),
    cvind_fold: int | None = None,
    generate_phantoms: bool = False,
    phantom_kwargs: dict[str, Any] | None = None,
) -> str:
    """Make sure a datalist exists for ``dataset_dir`` (for bundle configs); returns its path.

    If ``generate_phantoms`` is true and ``dataset_dir`` holds no slice files, synthetic ones are
    written there first with :func:`~common.data.phantoms.make_figshare_phantoms` ``(**phantom_kwargs)``.
    Then the datalist is built (:func:`build_figshare_datalist`) and written to ``datalist_file``.

    Raises:
        DataFormatError: no slice files and ``generate_phantoms`` is false, or any bad file.
    """
    root = Path(dataset_dir)
    has_files = root.is_dir() and bool(find_figshare_files(root))
    if not has_files:
        if not generate_phantoms:
            raise DataFormatError(root, _NO_FILES)
        from common.data.phantoms import make_figshare_phantoms

        make_figshare_phantoms(root, **(phantom_kwargs or {}))
    datalist = build_figshare_datalist(root, seed=seed, ratios=ratios, cvind_fold=cvind_fold)
    return str(write_datalist(datalist, datalist_file))


def load_datalist_section(
    datalist_file: str | os.PathLike, section: str, base_dir: str | os.PathLike
) -> list[dict[str, Any]]:
    """Items of one datalist section with ``image``/``label`` joined to ``base_dir``.

    A thin wrapper over ``monai.data.load_decathlon_datalist(is_segmentation=True)``; other keys
    (``class``, ``patient``) are kept as they are (MONAI would only join them with ``base_dir`` if that
    made an existing path, which slice numbers and patient ids do not).

    Raises:
        DataFormatError: the file is missing or not JSON, or has no such section.
    """
    path = Path(datalist_file)
    if not path.is_file():
        raise DataFormatError(path, "datalist file not found")
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataFormatError(path, f"not a JSON datalist ({err})") from err
    if not isinstance(content, dict) or not isinstance(content.get(section), list):
        keys = sorted(content) if isinstance(content, dict) else []
        raise DataFormatError(path, f"no list section {section!r} (keys: {keys})")
    return load_decathlon_datalist(path, is_segmentation=True, data_list_key=section, base_dir=base_dir)
