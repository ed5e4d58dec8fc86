"""Losses and loss-weight schedules for multi-task training."""

from .dice_tpr import GeneralizedDiceTPRLoss
from .edge_lesion import DiceCELaplacianLoss, LaplacianConsistencyLoss, laplacian
from .focal import ClassificationFocalLoss
from .multitask import MultiTaskLoss
from .schedules import DynamicWeight, FixedWeights, FreezeTraining, LossScheduleHandler, LossWeightSchedule

__all__ = [
    "ClassificationFocalLoss",
    "DiceCELaplacianLoss",
    "DynamicWeight",
    "FixedWeights",
    "FreezeTraining",
    "GeneralizedDiceTPRLoss",
    "LaplacianConsistencyLoss",
    "LossScheduleHandler",
    "LossWeightSchedule",
    "MultiTaskLoss",
    "laplacian",
]
