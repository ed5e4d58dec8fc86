"""Write the class probabilities of an inference run as a CSV, one row per input."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from .csv_rows import CsvRowWriter

__all__ = ["ClassProbabilityWriter"]


class ClassProbabilityWriter(CsvRowWriter):
    """Collect ``item[pred_key]`` (a probability vector) per decollated output item; write a CSV at the end.

    Columns: ``file, predicted_class, p_<class>...``. The file name is taken from the meta data of
    ``item[image_key]``. The CSV is written once, atomically, when the engine completes.

    Args:
        csv_path: output file.
        class_names: names of the probability entries, in order.
        pred_key: decollated output key of the probabilities.
        image_key: decollated output key whose meta data holds the source file name.
    """

    def __init__(
        self,
        csv_path: str | os.PathLike,
        class_names: Sequence[str],
        pred_key: str = "pred_cls",
        image_key: str = "image",
    ):
        super().__init__(csv_path, image_key)
        self.class_names = list(class_names)
        self.pred_key = pred_key

    def header(self) -> list[str]:
        return ["file", "predicted_class", *(f"p_{name}" for name in self.class_names)]

    def row(self, item: Mapping[str, Any]) -> list[str]:
        probs = self.vector(item, self.pred_key)
        if probs.numel() != len(self.class_names):
            raise ValueError(f"{self.pred_key} has {probs.numel()} values, expected {len(self.class_names)}")
        predicted = self.class_names[int(probs.argmax())]
        return [self.source_file(item), predicted, *(f"{p:.6f}" for p in probs.tolist())]
