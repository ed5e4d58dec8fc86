"""Losses and loss-weight schedules for multi-task training."""

from .dice_tpr import GeneralizedDiceTPRLoss
from .focal import ClassificationFocalLoss
from .multitask import MultiTaskLoss
from .schedules import DynamicWeight, FixedWeights, FreezeTraining, LossScheduleHandler, LossWeightSchedule

__all__ = [
    "ClassificationFocalLoss",
    "DynamicWeight",
    "FixedWeights",
    "FreezeTraining",
    "GeneralizedDiceTPRLoss",
    "LossScheduleHandler",
    "LossWeightSchedule",
    "MultiTaskLoss",
]
