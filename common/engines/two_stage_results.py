"""The chained result of the two-stage classifier as a CSV, one row per image (paper 004, §III.A).

Stage 1 says whether an image shows a tumour; stage 2, *for images with a tumour*, whether it is primary or
secondary. Both stages run on every image (one batched network call); the source is reported only where
the presence probability reaches ``threshold``, so a row of an image without a tumour has empty source
cells. Columns: ``file, p_present, tumour, p_secondary, source``.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import torch
from ignite.engine import Engine, Events
from monai.data import MetaTensor

from common.data.atomic import atomic_write_text

__all__ = ["TwoStageResultWriter"]


class TwoStageResultWriter:
    """Collect each decollated item's stage probabilities; write the chained CSV when the engine completes.

    Args:
        csv_path: output file (written atomically).
        presence_key: item key of the presence probabilities ``(absent, present)``.
        source_key: item key of the source probabilities ``(primary, secondary)``.
        threshold: presence probability from which an image counts as showing a tumour.
        image_key: item key whose meta data names the source file.
    """

    COLUMNS = ("file", "p_present", "tumour", "p_secondary", "source")

    def __init__(
        self,
        csv_path: str | os.PathLike,
        presence_key: str = "pred_presence",
        source_key: str = "pred_source",
        threshold: float = 0.5,
        image_key: str = "image",
    ):
        self.csv_path = Path(csv_path)
        self.presence_key, self.source_key = presence_key, source_key
        self.threshold = float(threshold)
        self.image_key = image_key
        self.rows: list[list[str]] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)
        engine.add_event_handler(Events.COMPLETED, self.write)

    def reset(self, engine: Engine | None = None) -> None:
        self.rows = []

    def row(self, item: dict) -> list[str]:
        """One CSV row from one item's probabilities."""
        presence = torch.as_tensor(item[self.presence_key]).detach().float().cpu().reshape(-1)
        source = torch.as_tensor(item[self.source_key]).detach().float().cpu().reshape(-1)
        if presence.numel() != 2 or source.numel() != 2:
            raise ValueError(
                f"expected two probabilities per stage, got {presence.numel()} and {source.numel()}"
            )
        image = item.get(self.image_key)
        name = image.meta.get("filename_or_obj", "") if isinstance(image, MetaTensor) else ""
        p_present = float(presence[1])
        if p_present < self.threshold:
            return [os.fspath(name), f"{p_present:.6f}", "no", "", ""]
        p_secondary = float(source[1])
        kind = "secondary" if p_secondary >= 0.5 else "primary"
        return [os.fspath(name), f"{p_present:.6f}", "yes", f"{p_secondary:.6f}", kind]

    def collect(self, engine: Engine) -> None:
        self.rows.extend(self.row(item) for item in engine.state.output)

    def write(self, engine: Engine | None = None) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(self.COLUMNS)
        writer.writerows(self.rows)
        atomic_write_text(self.csv_path, buffer.getvalue())
