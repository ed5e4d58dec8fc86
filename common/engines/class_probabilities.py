"""Write the class probabilities of an inference run as a CSV, one row per input."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from ignite.engine import Engine, Events
from monai.data import MetaTensor

from common.data.atomic import atomic_write_text


class ClassProbabilityWriter:
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
        self.csv_path = Path(csv_path)
        self.class_names = list(class_names)
        self.pred_key = pred_key
        self.image_key = image_key
        self.rows: list[list] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)
        engine.add_event_handler(Events.COMPLETED, self.write)

    def reset(self, engine: Engine | None = None) -> None:
        self.rows = []

    def collect(self, engine: Engine) -> None:
        for item in engine.state.output:
            probs = torch.as_tensor(item[self.pred_key]).detach().float().cpu().reshape(-1)
            if probs.numel() != len(self.class_names):
                raise ValueError(
                    f"{self.pred_key} has {probs.numel()} values, expected {len(self.class_names)}"
                )
            image = item.get(self.image_key)
            source = image.meta.get("filename_or_obj", "") if isinstance(image, MetaTensor) else ""
            predicted = self.class_names[int(probs.argmax())]
            self.rows.append([os.fspath(source), predicted, *(f"{p:.6f}" for p in probs.tolist())])

    def write(self, engine: Engine | None = None) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["file", "predicted_class", *(f"p_{name}" for name in self.class_names)])
        writer.writerows(self.rows)
        atomic_write_text(self.csv_path, buffer.getvalue())
