"""The chained result of the two-stage classifier as a CSV, one row per image (paper 004, §III.A).

Stage 1 says whether an image shows a tumour; stage 2, *for images with a tumour*, whether it is primary or
secondary. Both stages run on every image (one batched network call); the source is reported only where
the presence probability reaches ``threshold``, so a row of an image without a tumour has empty source
cells. Columns: ``file, p_present, tumour, p_secondary, source``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .csv_rows import CsvRowWriter

__all__ = ["TwoStageResultWriter"]


class TwoStageResultWriter(CsvRowWriter):
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
        super().__init__(csv_path, image_key)
        self.presence_key, self.source_key = presence_key, source_key
        self.threshold = float(threshold)

    def header(self) -> tuple[str, ...]:
        return self.COLUMNS

    def row(self, item: Mapping[str, Any]) -> list[str]:
        """One CSV row from one item's probabilities."""
        presence, source = self.vector(item, self.presence_key), self.vector(item, self.source_key)
        if presence.numel() != 2 or source.numel() != 2:
            raise ValueError(
                f"expected two probabilities per stage, got {presence.numel()} and {source.numel()}"
            )
        name = self.source_file(item)
        p_present = float(presence[1])
        if p_present < self.threshold:
            return [name, f"{p_present:.6f}", "no", "", ""]
        p_secondary = float(source[1])
        kind = "secondary" if p_secondary >= 0.5 else "primary"
        return [name, f"{p_present:.6f}", "yes", f"{p_secondary:.6f}", kind]
