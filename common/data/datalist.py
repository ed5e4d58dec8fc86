"""Datalists (MONAI decathlon-style JSON) for any registered data set: build, write, load.

A datalist has the sections :data:`DATALIST_SECTIONS` (``"training"``, ``"validation"``, ``"testing"``),
each a list of the adapter's case items (paths relative to the data-set folder), plus ``"predict"`` for
cases without a label, and a header saying which data set, layout, labels, seed, ratios and fold it was
made with. Splits are always by group (patient or case, as the adapter says), never by item; see
:mod:`common.data.splits`.

Bundle configs call :func:`prepare_datalist` once and :func:`load_datalist_section` per section::

    "datalist": "$common.data.prepare_datalist('brats', @dataset_dir, @datalist_file, seed=@seed, ...)",
    "train_files": "$common.data.load_datalist_section(@datalist, 'training', @dataset_dir)",
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from common.data.adapter import DatasetAdapter
from common.data.atomic import atomic_write_text
from common.data.errors import DataFormatError
from common.data.registry import ensure_data, get_adapter
from common.data.splits import fold_groups, leave_one_group_out, split_by_group, split_with_test

__all__ = [
    "DATALIST_SECTIONS",
    "PATH_KEYS",
    "PREDICT_SECTION",
    "build_datalist",
    "load_datalist_section",
    "prepare_datalist",
    "resolve_paths",
    "write_datalist",
]

DATALIST_SECTIONS: tuple[str, str, str] = ("training", "validation", "testing")
PREDICT_SECTION = "predict"
PATH_KEYS: tuple[str, ...] = ("image", "label")
"""Item keys that hold paths relative to the data-set folder (a non-path ``label``, a class index, is kept);
every other value is kept as written."""


def _join(base_dir: str | os.PathLike, value: Any) -> Any:
    """``value`` joined to ``base_dir`` if it is a path; anything else (a class index) as it is."""
    if isinstance(value, (str, os.PathLike)):
        return os.path.normpath(os.path.join(base_dir, value))
    return value


def resolve_paths(item: Mapping[str, Any], base_dir: str | os.PathLike) -> dict[str, Any]:
    """A copy of ``item`` with its ``image``/``label`` paths (one or a list) joined to ``base_dir``.

    Values that are not paths are kept: a classification item's ``label`` is its class index.
    """
    out = dict(item)
    for key in PATH_KEYS:
        value = out.get(key)
        if isinstance(value, (list, tuple)):
            out[key] = [_join(base_dir, v) for v in value]
        elif value is not None:
            out[key] = _join(base_dir, value)
    return out


def write_datalist(datalist: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write ``datalist`` as indented JSON, atomically (temporary file + ``os.replace``); makes parents."""
    return atomic_write_text(path, json.dumps(datalist, indent=2) + "\n")


def load_datalist_section(
    datalist_file: str | os.PathLike, section: str, base_dir: str | os.PathLike
) -> list[dict[str, Any]]:
    """Items of one datalist section with ``image``/``label`` joined to ``base_dir``, all else as written.

    Case ids, patient ids, classes and layouts come back exactly as written (MONAI's
    ``load_decathlon_datalist`` would turn a case id into a path when a folder of that name exists).

    Raises:
        DataFormatError: the file is missing or not JSON, has no such list section, or an item that is
            not an object.
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
    items = []
    for index, item in enumerate(content[section]):
        if not isinstance(item, dict):
            raise DataFormatError(path, f"item {index} of section {section!r} is not an object: {item!r}")
        items.append(resolve_paths(item, base_dir))
    return items


def _test_flags(
    adapter: DatasetAdapter,
    root: Path,
    items: list[dict[str, Any]],
    fold: int | None,
    n_folds: int | None,
    seed: int,
    options: dict[str, Any],
) -> list[bool] | None:
    """Which items are the test section: the adapter's own folds, a k-fold or leave-one-out fold, or none."""
    own = adapter.predefined_test(root, items, **options)
    if fold is None:
        if n_folds is not None:
            raise ValueError(f"n_folds={n_folds} needs a fold (0..{n_folds - 1})")
        return own
    if own is not None:
        raise ValueError(f"give either fold or the {adapter.title} fold option {sorted(options)}, not both")
    key = adapter.group_key
    if n_folds is None:
        held_out = {leave_one_group_out(items, fold, group_key=key)}
    else:
        if not 0 <= int(fold) < int(n_folds):
            raise ValueError(f"fold must be 0..{int(n_folds) - 1}, got {fold}")
        folds = fold_groups(items, n_folds, group_key=key, stratify_key=adapter.stratify_key, seed=seed)
        held_out = set(folds[int(fold)])
    return [item[key] in held_out for item in items]


def build_datalist(
    dataset: str | DatasetAdapter,
    dataset_dir: str | os.PathLike,
    seed: int = 0,
    ratios: Sequence[float] = (8, 1, 1),
    fold: int | None = None,
    n_folds: int | None = None,
    check: bool = False,
    **adapter_kwargs: Any,
) -> dict[str, Any]:
    """Split the cases of ``dataset_dir`` by group into training/validation/testing.

    The adapter of ``dataset`` finds the cases; those without a label go to ``"predict"``. The labelled
    ones are split by the adapter's group key (stratified by its class key, if any):

    * no fold: by ``ratios`` (train:val:test), :func:`~common.data.splits.split_by_group`;
    * ``fold`` and ``n_folds``: fold ``fold`` (0-based) of a group k-fold is the test section,
      :func:`~common.data.splits.fold_groups`;
    * ``fold`` alone: leave-one-group-out, the ``fold``-th group (sorted) is the test section;
    * an adapter option (Figshare's ``cvind_fold``): the data set's own test fold.

    With a test fold the other groups are split ``ratios[0]:ratios[1]`` into training and validation.
    Deterministic for a given seed and set of cases.

    Args:
        dataset: a registered adapter name (:data:`~common.data.registry.ADAPTERS`) or an adapter.
        dataset_dir: the data-set folder.
        seed: seed of every shuffle.
        ratios: (train, validation, test).
        fold, n_folds: see above.
        check: also read and check every case (:meth:`~common.data.adapter.DatasetAdapter.check_case`).
        adapter_kwargs: the adapter's own options; recorded in the datalist.

    Returns:
        ``{header..., "training": [...], "validation": [...], "testing": [...], "predict": [...]}``; items
        as the adapter finds them, each section in the adapter's case order.

    Raises:
        DataFormatError: as the adapter's ``find_cases`` (and ``check_case`` with ``check``).
        ValueError: bad ``ratios``, ``fold`` or ``n_folds``, or an unknown data set.
    """
    adapter = get_adapter(dataset)
    if len(ratios) != len(DATALIST_SECTIONS):
        raise ValueError(f"ratios must be (train, validation, test), got {ratios}")
    root = Path(dataset_dir)
    cases = adapter.find_cases(root, on_error="raise")
    if check:
        for item in cases.items:
            adapter.check_case(item, root)
    labelled = [item for item in cases.items if "label" in item]
    policy: dict[str, Any] = {
        "group_key": adapter.group_key,
        "stratify_key": adapter.stratify_key,
        "seed": seed,
    }
    is_test = _test_flags(adapter, root, labelled, fold, n_folds, seed, adapter_kwargs)
    if is_test is None:
        sections = split_by_group(labelled, ratios, DATALIST_SECTIONS, **policy)
    else:
        sections, left_out = split_with_test(labelled, is_test, ratios, DATALIST_SECTIONS, **policy)
        if left_out:
            warnings.warn(
                f"{root}: the test fold is not {adapter.group_key}-wise; {left_out} items of test "
                f"{adapter.group_key}s in other folds are left out of training/validation",
                stacklevel=2,
            )
    return {
        **adapter.datalist_header(cases.layout),
        "dataset": adapter.name,
        "seed": seed,
        "ratios": list(ratios),
        "fold": fold,
        "n_folds": n_folds,
        **adapter_kwargs,
        **sections,
        PREDICT_SECTION: [item for item in cases.items if "label" not in item],
    }


def prepare_datalist(
    dataset: str | DatasetAdapter,
    dataset_dir: str | os.PathLike,
    datalist_file: str | os.PathLike,
    seed: int = 0,
    ratios: Sequence[float] = (8, 1, 1),
    fold: int | None = None,
    n_folds: int | None = None,
    generate_phantoms: bool = False,
    phantom_kwargs: dict[str, Any] | None = None,
    **adapter_kwargs: Any,
) -> str:
    """Make sure a datalist exists for ``dataset_dir`` (for bundle configs); returns its path.

    If ``generate_phantoms`` is true and ``dataset_dir`` holds no data of ``dataset``, the adapter's phantom
    writer fills it first with ``**phantom_kwargs``. Then :func:`build_datalist` (same arguments) splits the
    cases and the datalist is written to ``datalist_file`` atomically.

    Raises:
        DataFormatError: no data and ``generate_phantoms`` is false, or any bad case.
    """
    adapter = get_adapter(dataset)
    root = ensure_data(adapter, dataset_dir, generate_phantoms, phantom_kwargs)
    datalist = build_datalist(
        adapter, root, seed=seed, ratios=ratios, fold=fold, n_folds=n_folds, **adapter_kwargs
    )
    return str(write_datalist(datalist, datalist_file))
