"""Inference batch sizes chosen for the device: the slices or windows an inferer hands the network per call.

On a CPU the fast path (OpenVINO, ONNX Runtime) is compute-bound from a few items per call on: measured on a
2-core AVX-512 BF16 CPU (``docs/performance.md``, 2026-12-04), the time per item at batch 4 was within 2-4 %
of batch 16-64 for the BraTS slices, the stroke slices and the MS windows, while the runtime's memory grew
with every item (BraTS: 0.66 GiB at 4 slices per call, 1.50 GiB at 64). Eager PyTorch fp32 was even
faster per item with small batches (BraTS 71.7 ms a slice at 4 per call, 115.1 ms at 64: a small batch's
activations stay in cache). A GPU needs large batches to be kept busy and has the memory for them. The
bundles' ``inference.json`` (and the validation of their ``train.json``) therefore say::

    "sw_batch_size": "$common.engines.batch_size_for(@device, cpu=4, gpu=64)"

and a user overrides it as any other config id (``--sw_batch_size 16``).
"""

from __future__ import annotations

import torch

__all__ = ["batch_size_for"]


def batch_size_for(device: torch.device | str, cpu: int, gpu: int) -> int:
    """``gpu`` items per call on a CUDA device, ``cpu`` on anything else.

    Raises:
        ValueError: a batch size below 1.
    """
    for name, value in (("cpu", cpu), ("gpu", gpu)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"batch_size_for: {name} must be a positive integer, got {value!r}")
    return gpu if torch.device(device).type == "cuda" else cpu
