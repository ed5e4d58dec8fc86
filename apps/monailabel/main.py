"""MONAI Label app for this repository's bundles: label maps and class probabilities (docs/monai_label.md).

    monailabel start_server --app apps/monailabel --studies <images> \\
        --conf models mmran_brain_tumor_segmentation_classification

``--conf models`` names bundle folders under ``<app>/model/`` (comma-separated, or ``all``); the bundles
are read from there only: unlike the stock ``monaibundle`` app this one never downloads from a model zoo,
so a missing folder is an error at start-up. Each bundle gets an infer task
(:class:`lib.infers.bundle.BundleOutputsInfer`: the post-processed label map, and the class probabilities
in the result JSON) and a train task (:class:`lib.trainers.bundle.BundleOutputsTrain`), unless
``--conf skip_trainers true``. Active learning strategies: ``random`` and ``first``.
"""

from __future__ import annotations

import logging
import os

import monailabel
from lib.infers.bundle import BundleOutputsInfer
from lib.trainers.bundle import BundleOutputsTrain
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.strategy import Strategy
from monailabel.interfaces.tasks.train import TrainTask
from monailabel.tasks.activelearning.first import First
from monailabel.tasks.activelearning.random import Random
from monailabel.utils.others.generic import strtobool

logger = logging.getLogger(__name__)


def local_bundles(model_dir: str, names: str | None) -> dict[str, str]:
    """Bundle name -> folder under ``model_dir`` for ``names`` (comma-separated, or ``all``)."""
    if not names:
        raise ValueError(
            "no bundle given: start the server with --conf models <bundle>[,<bundle>...] (or all)"
        )
    available = sorted(
        n
        for n in os.listdir(model_dir)
        if os.path.isfile(os.path.join(model_dir, n, "configs", "metadata.json"))
    )
    wanted = available if names.strip() == "all" else [n.strip() for n in names.split(",") if n.strip()]
    missing = [n for n in wanted if n not in available]
    if missing:
        raise ValueError(
            f"bundles {missing} not found in {model_dir} (found {available}); copy them there first"
        )
    return {n: os.path.join(model_dir, n) for n in wanted}


class MyApp(MONAILabelApp):
    def __init__(self, app_dir, studies, conf):
        self.model_dir = os.path.join(app_dir, "model")
        os.makedirs(self.model_dir, exist_ok=True)
        self.models = local_bundles(self.model_dir, conf.get("models"))
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name=f"MONAILabel - brain-lesion bundles ({monailabel.__version__})",
            description="Label maps and class probabilities of the brain-lesion bundles",
            version=monailabel.__version__,
        )

    def init_infers(self) -> dict[str, InferTask]:
        infers: dict[str, InferTask] = {}
        for name, path in self.models.items():
            task = BundleOutputsInfer(path, self.conf)
            if not task.is_valid():
                raise ValueError(f"{path}: not servable (needs configs/inference.json and models/model.pt)")
            logger.info(f"+++ Adding Inferer:: {name} => {task.type}; labels {task.labels}")
            infers[name] = task
        return infers

    def init_trainers(self) -> dict[str, TrainTask]:
        trainers: dict[str, TrainTask] = {}
        if strtobool(self.conf.get("skip_trainers", "false")):
            return trainers
        for name, path in self.models.items():
            task = BundleOutputsTrain(path, self.conf)
            if task.is_valid():
                logger.info(f"+++ Adding Trainer:: {name}")
                trainers[name] = task
        return trainers

    def init_strategies(self) -> dict[str, Strategy]:
        return {"random": Random(), "first": First()}
