"""One CSV row per output item of an engine run, written once, atomically, when the run completes.

The base of the bundles' result tables (:class:`~common.engines.ClassProbabilityWriter`,
:class:`~common.engines.TwoStageResultWriter`): a subclass says what the columns are (:meth:`header`) and
what one decollated output item becomes (:meth:`row`); collecting, resetting at each run and the atomic
write are here.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from monai.data import MetaTensor

from common.data.atomic import atomic_write_text

__all__ = ["CsvRowWriter"]


class CsvRowWriter:
    """Collect :meth:`row` of every decollated output item; write ``csv_path`` when the engine completes.

    Args:
        csv_path: output file (written atomically: a reader never sees half a table).
        image_key: item key whose meta data names the source file (:meth:`source_file`).
    """

    def __init__(self, csv_path: str | os.PathLike, image_key: str = "image"):
        self.csv_path = Path(csv_path)
        self.image_key = image_key
        self.rows: list[list[str]] = []

    def header(self) -> Sequence[str]:
        raise NotImplementedError

    def row(self, item: Mapping[str, Any]) -> list[str]:
        raise NotImplementedError

    def source_file(self, item: Mapping[str, Any]) -> str:
        """The file ``item[image_key]`` was read from (its meta data), or ``""``."""
        image = item.get(self.image_key)
        return os.fspath(image.meta.get("filename_or_obj", "")) if isinstance(image, MetaTensor) else ""

    @staticmethod
    def vector(item: Mapping[str, Any], key: str) -> torch.Tensor:
        """``item[key]`` as a flat float tensor on the CPU."""
        return torch.as_tensor(item[key]).detach().float().cpu().reshape(-1)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)
        engine.add_event_handler(Events.COMPLETED, self.write)

    def reset(self, engine: Engine | None = None) -> None:
        self.rows = []

    def collect(self, engine: Engine) -> None:
        self.rows.extend(self.row(item) for item in engine.state.output)

    def write(self, engine: Engine | None = None) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(list(self.header()))
        writer.writerows(self.rows)
        atomic_write_text(self.csv_path, buffer.getvalue())
