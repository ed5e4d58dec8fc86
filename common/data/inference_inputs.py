"""Find and check the inputs of a batch inference, so that one bad input does not stop the others.

:func:`prepare_inputs` asks a data set's adapter for every case of the input folder and checks each one
before inference. A case that cannot be used is logged with one line naming it and the problem, listed in
``failed_inputs.csv`` in the output folder, and left out; the others go on to inference.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common.data.adapter import DatasetAdapter
from common.data.atomic import atomic_write_text
from common.data.datalist import resolve_paths
from common.data.errors import DataFormatError
from common.data.registry import ensure_data, get_adapter

__all__ = ["FAILED_INPUTS_CSV", "check_inputs", "prepare_inputs", "write_failures"]

logger = logging.getLogger(__name__)

FAILED_INPUTS_CSV = "failed_inputs.csv"


def check_inputs(
    adapter: DatasetAdapter, items: Sequence[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """``(usable items, [(case name, problem)])``: each item (absolute paths) checked by ``adapter``.

    Outputs are named after :meth:`~common.data.adapter.DatasetAdapter.output_name`, so a later input with
    the output name of a usable one (``a.png`` beside ``a.nii.gz``) is reported rather than allowed to
    overwrite its results. The problem is the bare problem when the error names the case itself, else the
    whole message (which names the file of the case that is wrong).
    """
    usable: list[dict[str, Any]] = []
    failed: list[tuple[str, str]] = []
    first_with_name: dict[str, str] = {}
    for item in items:
        name, output = adapter.case_name(item), adapter.output_name(item)
        if output in first_with_name:
            clash = first_with_name[output]
            failed.append((name, f"has the same name stem as {clash}; its outputs would overwrite those"))
            continue
        try:
            adapter.check_case(item)
        except DataFormatError as err:
            failed.append((name, err.problem if err.path == name else str(err)))
            continue
        usable.append(item)
        first_with_name[output] = name
    return usable, failed


def write_failures(failed: Sequence[tuple[str, str]], csv_path: str | os.PathLike) -> None:
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


def prepare_inputs(
    dataset: str | DatasetAdapter,
    input_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    generate_phantoms: bool = False,
    phantom_kwargs: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The inference datalist of the usable cases of ``dataset`` under ``input_dir``.

    Items are the adapter's case items with absolute ``image`` (and ``label``) paths. Cases the adapter
    cannot find or check are logged (one line each), listed in ``output_dir/failed_inputs.csv`` and left
    out; a stale ``failed_inputs.csv`` is removed when all are usable. With ``generate_phantoms`` an
    ``input_dir`` without data is first filled by the data set's phantom writer (``**phantom_kwargs``).

    Raises:
        DataFormatError: ``input_dir`` holds no data (and no phantoms were asked for), or no usable case.
    """
    adapter = get_adapter(dataset)
    root = ensure_data(adapter, input_dir, generate_phantoms, phantom_kwargs)
    cases = adapter.find_cases(root, on_error="collect")
    usable, failed = check_inputs(adapter, [resolve_paths(item, root) for item in cases.items])
    failed = [*cases.problems, *failed]
    for name, problem in failed:
        logger.error("skipping %s: %s", name, problem)
    write_failures(failed, Path(output_dir) / FAILED_INPUTS_CSV)
    if not usable:
        raise DataFormatError(root, f"no usable {adapter.title} input among {len(failed)} found")
    return usable
