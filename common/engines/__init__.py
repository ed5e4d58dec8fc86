"""Ignite handlers and batch preparation shared by the bundles' trainers and evaluators."""

from .batch_size import batch_size_for
from .checkpoint import (
    BestModelSaver,
    TrainingCheckpoint,
    cpu_state_dict,
    load_network_weights,
    save_atomic,
    stage_to_train,
    unwrap,
)
from .class_probabilities import ClassProbabilityWriter
from .distributed import destroy_distributed, handlers_for_rank, init_distributed, process_device
from .fast_inference import FastInferenceNetwork, choose_runtime, fast_options, native_bf16
from .prepare_batch import MultiTaskPrepareBatch
from .progress import CaseProgress, EpochProgress
from .two_stage_results import TwoStageResultWriter

__all__ = [
    "BestModelSaver",
    "CaseProgress",
    "ClassProbabilityWriter",
    "EpochProgress",
    "FastInferenceNetwork",
    "MultiTaskPrepareBatch",
    "TrainingCheckpoint",
    "TwoStageResultWriter",
    "batch_size_for",
    "choose_runtime",
    "cpu_state_dict",
    "destroy_distributed",
    "fast_options",
    "handlers_for_rank",
    "init_distributed",
    "load_network_weights",
    "native_bf16",
    "process_device",
    "save_atomic",
    "stage_to_train",
    "unwrap",
]
