"""The one place where data sets are registered: adapter name -> module, imported on first use.

Modules are named by import path and imported lazily, so that using one data set never loads another's
dependencies (computing a BraTS metric does not import h5py for the Figshare files) and so that a phantom
writer, found here by the path its adapter gives, can import its adapter without an import cycle.

To add a data set, add one line to :data:`ADAPTERS`; the module must define ``ADAPTER``, an instance of
:class:`~common.data.adapter.DatasetAdapter` whose ``name`` is the key.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.data.adapter import DatasetAdapter
from common.data.errors import DataFormatError

__all__ = ["ADAPTERS", "ensure_data", "get_adapter", "write_phantoms"]

ADAPTERS: dict[str, str] = {
    "atlas": "common.data.atlas",
    "brats": "common.data.brats",
    "figshare": "common.data.figshare",
    "isbi2015": "common.data.isbi2015",
    "ncct": "common.data.ncct",
    "slices": "common.data.slices",
    # general adapters after the data sets they also read (BraTS and Figshare folders), for code that
    # takes the first adapter whose has_data is true
    "collection_slices": "common.data.collection_slices",
    "image_classes": "common.data.image_classes",
}
"""Adapter name -> module that defines ``ADAPTER``."""


def get_adapter(dataset: str | DatasetAdapter) -> DatasetAdapter:
    """The adapter registered as ``dataset`` (an adapter passes through unchanged).

    Raises:
        ValueError: no adapter has that name.
    """
    if isinstance(dataset, DatasetAdapter):
        return dataset
    if dataset not in ADAPTERS:
        raise ValueError(f"unknown data set {dataset!r}; registered data sets are {sorted(ADAPTERS)}")
    adapter = importlib.import_module(ADAPTERS[dataset]).ADAPTER
    if not isinstance(adapter, DatasetAdapter) or adapter.name != dataset:
        raise TypeError(f"{ADAPTERS[dataset]}.ADAPTER is not the DatasetAdapter named {dataset!r}")
    return adapter


def _resolve(path: str) -> Callable[..., Any]:
    """The object named ``"package.module:attribute"``."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


def write_phantoms(dataset: str | DatasetAdapter, out_dir: str | os.PathLike, **kwargs: Any) -> Any:
    """Write synthetic data of ``dataset`` to ``out_dir`` with its phantom writer (``**kwargs`` to it)."""
    adapter = get_adapter(dataset)
    if adapter.phantom_writer is None:
        raise ValueError(f"{adapter.title} has no phantom writer")
    return _resolve(adapter.phantom_writer)(out_dir, **kwargs)


def ensure_data(
    dataset: str | DatasetAdapter,
    dataset_dir: str | os.PathLike,
    generate_phantoms: bool = False,
    phantom_kwargs: dict[str, Any] | None = None,
) -> Path:
    """Make sure ``dataset_dir`` holds data of ``dataset``: phantoms are written there when it holds none
    and ``generate_phantoms`` is true; returns the folder.

    Raises:
        DataFormatError: the folder holds no data and ``generate_phantoms`` is false.
    """
    adapter = get_adapter(dataset)
    root = Path(dataset_dir)
    if not adapter.has_data(root):
        if not generate_phantoms:
            raise DataFormatError(root, adapter.no_data)
        write_phantoms(adapter, root, **(phantom_kwargs or {}))
    return root
