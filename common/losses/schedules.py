"""Loss-weight schedules of MMRAN §3.4 as ignite handlers.

Each schedule sets ``MultiTaskLoss.weights`` at the start of every epoch from the epoch number, so a run
resumed from a checkpoint (which restores ``engine.state.epoch``) continues the same schedule. The
handlers also have ``state_dict``/``load_state_dict`` so they can sit in a checkpoint beside the network
and optimizer; loading restores the weights in force when the checkpoint was written.

Epochs are counted as ignite does, from 1. ``alpha`` is the weight of the second task (classification),
``1 - alpha`` that of the first (segmentation).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from ignite.engine import Engine, Events

from .multitask import MultiTaskLoss

logger = logging.getLogger(__name__)


class LossWeightSchedule:
    """Base class: subclasses say which weights hold in a given epoch."""

    def __init__(self, loss: MultiTaskLoss, epochs: int):
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        self.loss = loss
        self.epochs = int(epochs)

    def weights_at(self, epoch: int) -> dict[str, float]:
        raise NotImplementedError

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine: Engine) -> None:
        self.loss.set_weights(self.weights_at(engine.state.epoch))
        engine.state.loss_weights = dict(self.loss.weights)
        logger.info("epoch %d loss weights %s", engine.state.epoch, self.loss.weights)

    def state_dict(self) -> dict:
        return {"epochs": self.epochs, "weights": dict(self.loss.weights)}

    def load_state_dict(self, state: Mapping) -> None:
        if int(state["epochs"]) != self.epochs:
            logger.warning(
                "checkpoint was written by a %s-epoch schedule, this run has %s epochs: the schedule follows "
                "the new length from the next epoch on",
                state["epochs"],
                self.epochs,
            )
        self.loss.set_weights(dict(state["weights"]))


class FixedWeights(LossWeightSchedule):
    """Fixed weight training (§3.4, 1): the same weights in every epoch."""

    def __init__(self, loss: MultiTaskLoss, weights: Mapping[str, float], epochs: int = 1):
        super().__init__(loss, epochs)
        self.fixed = dict(weights)
        loss.set_weights(self.fixed)

    def weights_at(self, epoch: int) -> dict[str, float]:
        return dict(self.fixed)


class FreezeTraining(LossWeightSchedule):
    """Freeze training (§3.4, 2, eq. 14): one task at a time for N = epochs // (c + 1) epochs each, in
    ``order``, then all c tasks together with equal weights 1/c (alpha = 0.5 for two tasks) to the end.
    The frozen task's weight is 0, so it gets no gradient.
    """

    def __init__(self, loss: MultiTaskLoss, epochs: int, order: Sequence[str] = ("seg", "cls")):
        super().__init__(loss, epochs)
        self.order = list(order)
        self.stage_epochs = self.epochs // (len(self.order) + 1)

    def weights_at(self, epoch: int) -> dict[str, float]:
        stage = (epoch - 1) // self.stage_epochs if self.stage_epochs else len(self.order)
        if stage < len(self.order):
            return {head: float(head == self.order[stage]) for head in self.order}
        return {head: 1.0 / len(self.order) for head in self.order}


class DynamicWeight(LossWeightSchedule):
    """Dynamic weight training (§3.4, 3, eq. 15): alpha = epoch_now / epoch_all.

    ``epoch_now`` counts from 0, so the first epoch trains segmentation only (alpha = 0), as the paper
    says, and alpha reaches (epochs - 1) / epochs in the last epoch. Epochs past ``epochs`` keep alpha = 1.
    """

    def __init__(self, loss: MultiTaskLoss, epochs: int, first: str = "seg", second: str = "cls"):
        super().__init__(loss, epochs)
        self.first, self.second = first, second

    def alpha_at(self, epoch: int) -> float:
        return min((epoch - 1) / self.epochs, 1.0)

    def weights_at(self, epoch: int) -> dict[str, float]:
        alpha = self.alpha_at(epoch)
        return {self.first: 1.0 - alpha, self.second: alpha}


class LossScheduleHandler:
    """The handler entry of a loss-weight schedule in a bundle's ``train#handlers``.

    The schedule itself is a top-level config item, so that the training checkpoint can hold it by
    reference; MONAI's property checks want every handler entry to be a dict with a ``_target_``, hence
    this wrapper (as MONAI's ``LrScheduleHandler`` wraps an ``lr_scheduler``).
    """

    def __init__(self, schedule: LossWeightSchedule):
        self.schedule = schedule

    def attach(self, engine: Engine) -> None:
        self.schedule.attach(engine)
