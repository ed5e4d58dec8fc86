"""Checkpoints that are safe to share and to resume from.

* Every file is written atomically (temporary file in the same folder, then ``os.replace``), so a crash
  never leaves a truncated checkpoint that looks whole.
* Network weights are saved as a plain ``state_dict`` of CPU tensors (DDP's ``module.`` wrapper removed),
  loadable anywhere with ``torch.load(path, map_location="cpu", weights_only=True)``.
* :class:`TrainingCheckpoint` writes everything needed to resume (network, optimizer, trainer state, loss
  schedule, best-model tracker) after each epoch and reloads it when a run starts.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from ignite import distributed as idist
from ignite.engine import Engine, Events
from torch import nn

from common.data.atomic import atomic_output

logger = logging.getLogger(__name__)


def unwrap(network: nn.Module) -> nn.Module:
    """The bare network inside DataParallel / DistributedDataParallel / ``TrainingHeads`` (at any depth)."""
    while isinstance(getattr(network, "module", None), nn.Module):
        network = network.module
    return network


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, Mapping):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value


def cpu_state_dict(network: nn.Module) -> dict[str, torch.Tensor]:
    """``state_dict`` of the unwrapped network with every tensor on the CPU."""
    return _to_cpu(unwrap(network).state_dict())


def save_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file beside ``path``, then rename it into place."""
    with atomic_output(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def load_network_weights(network: nn.Module, path: str | os.PathLike, strict: bool = True) -> nn.Module:
    """Load a plain state_dict saved by this module (CPU, ``weights_only``) into ``network``."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    unwrap(network).load_state_dict(state, strict=strict)
    return network


class BestModelSaver:
    """Saves the network's CPU state_dict to ``path`` whenever the evaluator's ``metric_name`` improves.

    In a distributed run only the first process writes the file.

    Attach it to the validation evaluator. Its ``state_dict`` (the best value so far) belongs in the
    training checkpoint, so a resumed run does not overwrite a better model with a worse one.
    """

    def __init__(self, network: nn.Module, path: str | os.PathLike, metric_name: str, mode: str = "max"):
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.network = network
        self.path = Path(path)
        self.metric_name = metric_name
        self.mode = mode
        self.best = -math.inf if mode == "max" else math.inf
        self.best_epoch = 0

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def _improved(self, value: float) -> bool:
        return value > self.best if self.mode == "max" else value < self.best

    def __call__(self, engine: Engine) -> None:
        if self.metric_name not in engine.state.metrics:
            raise KeyError(f"metric {self.metric_name!r} not computed; have {sorted(engine.state.metrics)}")
        value = float(engine.state.metrics[self.metric_name])
        if math.isnan(value) or not self._improved(value):
            return
        self.best = value
        self.best_epoch = int(engine.state.epoch)  # ValidationHandler runs the evaluator at the trainer epoch
        if idist.get_rank() == 0:  # every process tracks the best value; one writes the file
            save_atomic(cpu_state_dict(self.network), self.path)
            logger.info("saved best model (%s = %.4f) to %s", self.metric_name, value, self.path)

    def state_dict(self) -> dict[str, float]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: Mapping[str, float]) -> None:
        self.best = float(state["best"])
        self.best_epoch = int(state["best_epoch"])


class TrainingCheckpoint:
    """Save ``objects`` after every training epoch to ``ckpt_dir/filename`` and resume from it at start.

    Args:
        ckpt_dir: folder of the checkpoint.
        objects: name -> object with ``state_dict``/``load_state_dict`` (network, optimizer, loss schedule,
            :class:`BestModelSaver`, ...). Networks are stored on the CPU. The engine it is attached to is
            added as ``"trainer"``.
        filename: checkpoint file name.
        resume: reload the checkpoint when the trainer starts, if it exists.
        write: save after each epoch; by default only the first process of a distributed run writes (every
            process still resumes from the file).

    On resume the configured ``max_epochs`` wins over the stored one, so a finished run can be extended
    by asking for more epochs.
    """

    def __init__(
        self,
        ckpt_dir: str | os.PathLike,
        objects: Mapping[str, Any],
        filename: str = "last.pt",
        resume: bool = True,
        write: bool | None = None,
    ):
        self.path = Path(ckpt_dir) / filename
        self.objects = dict(objects)
        self.resume = resume
        self.write = idist.get_rank() == 0 if write is None else write

    def attach(self, engine: Engine) -> None:
        # the trainer's own state (epoch, iteration) is always part of the checkpoint
        self.objects.setdefault("trainer", engine)
        if self.resume:
            engine.add_event_handler(Events.STARTED, self.load)
        if self.write:
            engine.add_event_handler(Events.EPOCH_COMPLETED, self.save)

    def _state_of(self, obj: Any) -> Any:
        return cpu_state_dict(obj) if isinstance(obj, nn.Module) else _to_cpu(obj.state_dict())

    def save(self, engine: Engine) -> None:
        save_atomic({name: self._state_of(obj) for name, obj in self.objects.items()}, self.path)

    def load(self, engine: Engine) -> None:
        if not self.path.is_file():
            return
        checkpoint = torch.load(self.path, map_location="cpu", weights_only=True)
        missing = sorted(set(self.objects) - set(checkpoint))
        if missing:
            raise KeyError(f"{self.path}: checkpoint has no entry for {missing}")
        max_epochs = engine.state.max_epochs
        for name, obj in self.objects.items():
            if isinstance(obj, nn.Module):
                unwrap(obj).load_state_dict(checkpoint[name])
            else:
                obj.load_state_dict(checkpoint[name])
        if engine.state.max_epochs != max_epochs:
            engine.state.max_epochs = max_epochs
        logger.info("resumed from %s at epoch %d", self.path, engine.state.epoch)


def stage_to_train(
    network: nn.Module,
    stage: str,
    checkpoint: str | os.PathLike | None = None,
    pretrained: str | os.PathLike | None = None,
) -> nn.Module:
    """The sub-network ``stage`` of a multi-stage network (``TwoStageClassifier``), ready to train.

    ``checkpoint``, the whole network's weights, is loaded first when the file exists, so that training one
    stage keeps the others (the presence stage while the source stage trains); then ``pretrained``, a local
    ResNeSt-50 checkpoint (:func:`common.networks.load_resnest_checkpoint`), into the stage. A config calls
    it where it defines the stage (``"stage_network"``), which is parsed when the trainer is built: after
    ``initialize``, also under ``multi_gpu_train.json``, whose ``initialize`` replaces train.json's.
    """
    if checkpoint is not None and os.path.exists(checkpoint):
        load_network_weights(network, checkpoint)
    sub = getattr(unwrap(network), stage)
    if pretrained:
        from common.networks import load_resnest_checkpoint

        load_resnest_checkpoint(sub, pretrained)
    return sub
