"""Ignite handlers and batch preparation shared by the bundles' trainers and evaluators."""

from .checkpoint import (
    BestModelSaver,
    TrainingCheckpoint,
    cpu_state_dict,
    load_network_weights,
    save_atomic,
    unwrap,
)
from .class_probabilities import ClassProbabilityWriter
from .prepare_batch import MultiTaskPrepareBatch

__all__ = [
    "BestModelSaver",
    "ClassProbabilityWriter",
    "MultiTaskPrepareBatch",
    "TrainingCheckpoint",
    "cpu_state_dict",
    "load_network_weights",
    "save_atomic",
    "unwrap",
]
