"""Multi-process (DistributedDataParallel) training: which handlers each process runs.

Every bundle's ``multi_gpu_train.json`` has the same shape and picks handlers by what they do, never by
their position in ``train#handlers``: all processes run the handlers that change training (learning-rate
and loss-weight schedules, validation, resuming), only the first process runs those that log or write
files. Adding a handler to a bundle's ``train.json`` therefore needs no change to its multi-GPU config.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from ignite import distributed as idist
from monai.handlers import StatsHandler, TensorBoardStatsHandler

__all__ = ["WRITES_ONLY", "destroy_distributed", "handlers_for_rank", "init_distributed", "process_device"]

#: Handler types whose only effect is logging or writing files: run on the first process only.
WRITES_ONLY: tuple[type, ...] = (StatsHandler, TensorBoardStatsHandler)


def handlers_for_rank(handlers: Sequence[Any], rank: int | None = None) -> list[Any]:
    """``handlers`` for process ``rank`` (this process by default): all of them on rank 0, else those that
    are not in :data:`WRITES_ONLY`. (``TrainingCheckpoint`` decides itself: every rank resumes, rank 0
    writes.)"""
    rank = idist.get_rank() if rank is None else rank
    return list(handlers) if rank == 0 else [h for h in handlers if not isinstance(h, WRITES_ONLY)]


def process_device() -> torch.device:
    """This process's device under ``torchrun``: ``cuda:<LOCAL_RANK>`` on a GPU machine, else the CPU."""
    if torch.cuda.is_available():
        return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
    return torch.device("cpu")


def init_distributed() -> None:
    """Join the ``torchrun`` process group: NCCL on GPUs (one per process), gloo on CPUs."""
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    if torch.cuda.is_available():
        torch.cuda.set_device(process_device())


def destroy_distributed() -> None:
    """Leave the process group (the ``finalize`` step of ``multi_gpu_train.json``)."""
    if dist.is_initialized():
        dist.destroy_process_group()
