"""The small interface every data-set adapter implements, so that the generic core serves any data set.

An adapter knows one data set's on-disk layouts and nothing else: how to recognise them, how to list the
cases of a folder, how to check one case, how its label codes map to the project's canonical labels, how
its cases are grouped for splitting and which phantom writer produces it. Everything that works the same
for all data sets (splits, datalists, inference inputs, atomic writes) lives in the core modules of
:mod:`common.data` and talks to the data set only through this interface.

A case is a dict (a MONAI datalist item): ``"image"`` (one path or a list of paths), ``"label"`` when the
case has one, and whatever the adapter adds (``"case"``, ``"patient"``, ``"class"``, ``"layout"``, ...).
Paths are relative to the data-set folder, POSIX style, so that a datalist can move with its data.

Adding a data set is one module with a subclass of :class:`DatasetAdapter` named ``ADAPTER``, registered in
:mod:`common.data.registry`, plus its phantom writer in :mod:`common.data.phantoms`.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np

from common.data.label_codes import invert_codes, remap_labels
from common.labels import BINARY_LESION, LabelScheme

__all__ = ["Cases", "DatasetAdapter", "OnError", "check_on_error"]

OnError = Literal["raise", "collect"]


class Cases(NamedTuple):
    """What :meth:`DatasetAdapter.find_cases` returns.

    Attributes:
        layout: the layout of the folder (one of the adapter's ``layouts``).
        items: the usable cases, in the adapter's order (sorted by case id or file number).
        problems: ``(case name, message)`` of the cases left out (only with ``on_error="collect"``).
    """

    layout: str
    items: list[dict[str, Any]]
    problems: list[tuple[str, str]]


def check_on_error(on_error: str) -> None:
    """Reject an ``on_error`` other than ``"raise"`` or ``"collect"``."""
    if on_error not in ("raise", "collect"):
        raise ValueError(f"on_error must be 'raise' or 'collect', got {on_error!r}")


class DatasetAdapter(ABC):
    """One data set's layouts, cases, checks, label codes, split policy and phantom writer.

    Class attributes each adapter sets:

    * ``name``: the registry key (``"brats"``); ``title``: the name people know it by (``"BraTS"``).
    * ``layouts``: the on-disk layouts it reads; datalist items carry theirs as ``"layout"`` when there
      are several.
    * ``no_data``: the problem reported when a folder holds none of its data (says what was looked for).
    * ``phantom_writer``: ``"module:function"`` of the phantom writer that produces this data set, named
      by import path so that phantom writers depend on adapters and never the reverse.
    * ``group_key``: the item key that splits keep together (patient or case); ``stratify_key``: the
      item key whose values splits spread evenly (a class), or ``None``.
    * ``case_key``: the item key that names a case in logs and in ``failed_inputs.csv``.
    * ``label_scheme``: the canonical labels its segmentations map to, or ``None`` (no labels).
    """

    name: ClassVar[str]
    title: ClassVar[str]
    layouts: ClassVar[tuple[str, ...]]
    no_data: ClassVar[str]
    phantom_writer: ClassVar[str | None] = None
    group_key: ClassVar[str]
    stratify_key: ClassVar[str | None] = None
    case_key: ClassVar[str] = "image"
    label_scheme: ClassVar[LabelScheme | None] = None

    # ---------------------------------------------------------------------------------- layouts and cases

    @abstractmethod
    def has_data(self, dataset_dir: str | os.PathLike) -> bool:
        """True when ``dataset_dir`` holds cases of this data set (cheap: looks at names only)."""

    @abstractmethod
    def detect_layout(self, dataset_dir: str | os.PathLike) -> str:
        """The layout of the data in ``dataset_dir``.

        Raises:
            DataFormatError: the folder is missing or holds none (or several layouts) of this data set.
        """

    @abstractmethod
    def find_cases(self, dataset_dir: str | os.PathLike, on_error: OnError = "raise") -> Cases:
        """All cases of ``dataset_dir``, with paths relative to it.

        Finding looks at names and at what splitting needs (a patient id, a class); :meth:`check_case`
        reads the data. ``on_error="raise"`` stops at the first bad case, ``"collect"`` leaves bad cases
        out and reports them in :attr:`Cases.problems`.

        Raises:
            DataFormatError: missing folder or no cases (in both modes); with ``"raise"`` a bad case.
        """

    @abstractmethod
    def check_case(self, item: Mapping[str, Any], base_dir: str | os.PathLike | None = None) -> None:
        """Raise :class:`~common.data.errors.DataFormatError` naming the file and the problem unless
        the case is usable; relative paths of ``item`` are taken from ``base_dir``."""

    def check_layout(self, layout: str) -> str:
        """``layout`` if it is one of :attr:`layouts`, else ``ValueError``."""
        if layout not in self.layouts:
            raise ValueError(f"unknown {self.title} layout {layout!r}; expected one of {self.layouts}")
        return layout

    # ---------------------------------------------------------------------------------- labels

    def label_codes(self, layout: str) -> Mapping[int, int]:
        """``{code on disk: canonical label}`` of ``layout``; data sets without labels raise ValueError.

        A binary lesion mask (``label_scheme`` :data:`~common.labels.BINARY_LESION`) is stored as its
        canonical 0 background, 1 lesion in every layout; other schemes override this.
        """
        if self.label_scheme is BINARY_LESION:
            self.check_layout(layout)
            return {0: BINARY_LESION.labels["background"], 1: BINARY_LESION.labels["lesion"]}
        raise ValueError(f"{self.title} has no segmentation labels")

    def to_canonical(self, labels: Any, layout: str, source: str | os.PathLike | None = None) -> np.ndarray:
        """``labels`` in ``layout``'s own codes as canonical labels (uint8, same shape).

        Raises:
            DataFormatError: a value outside the layout's codes; the message names ``source``.
        """
        return remap_labels(labels, self.label_codes(self.check_layout(layout)), layout, source)

    def from_canonical(self, labels: Any, layout: str, source: str | os.PathLike | None = None) -> np.ndarray:
        """Inverse of :meth:`to_canonical`: canonical labels in ``layout``'s own codes (uint8)."""
        inverse = invert_codes(self.label_codes(self.check_layout(layout)))
        return remap_labels(labels, inverse, "canonical", source)

    # ---------------------------------------------------------------------------------- datalists

    def datalist_header(self, layout: str) -> dict[str, Any]:
        """What a datalist of this data set records besides its sections (name, layout, label names)."""
        header: dict[str, Any] = {"name": self.title, "layout": layout}
        if self.label_scheme is not None:
            header["labels"] = self.label_scheme.describe()
        return header

    def predefined_test(
        self, dataset_dir: str | os.PathLike, items: Sequence[Mapping[str, Any]], **options: Any
    ) -> list[bool] | None:
        """Which ``items`` form the test section by the data set's own fold definition, if asked.

        ``options`` are the adapter's own datalist options (Figshare's ``cvind_fold``); ``None`` means
        no predefined test set was asked for. The default adapter has no options.
        """
        if options:
            raise TypeError(f"{self.title} datalists take no option(s) {sorted(options)}")
        return None

    # ---------------------------------------------------------------------------------- inference

    def case_name(self, item: Mapping[str, Any]) -> str:
        """How logs and ``failed_inputs.csv`` name the case (its ``case_key`` value)."""
        value = item[self.case_key]
        return os.fspath(value) if isinstance(value, (str, os.PathLike)) else str(value)

    def output_name(self, item: Mapping[str, Any]) -> str:
        """The name the case's outputs are written under; two inputs must not share it."""
        return self.case_name(item)
