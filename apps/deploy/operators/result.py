"""The result the inference operator emits on its ``result`` port, and how writers read it.

A result is a dict: ``case``, ``meta`` (the input image's), ``outputs`` (post-processed keys -> numpy),
``formats`` (their ``network_data_format`` entries), ``bundle`` (name and version of the model card),
``slice_wise``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

RESULT = "result"


def mask_keys(result: Mapping[str, Any]) -> list[str]:
    """Mask outputs of a result, the main one first: label maps (``format: labels``), then binary masks."""
    formats = result["formats"]
    labels = [k for k, f in formats.items() if f.get("format") == "labels"]
    masks = [k for k, f in formats.items() if f.get("format") == "segmentation" and k not in labels]
    return labels + masks


def probability_key(result: Mapping[str, Any]) -> str:
    """The class-score output: the first ``type: probabilities`` one, else ``pred`` (class logits)."""
    for key, fmt in result["formats"].items():
        if fmt.get("type") == "probabilities":
            return key
    if "pred" in result["outputs"]:
        return "pred"
    raise KeyError(f"no class probabilities among the outputs {sorted(result['outputs'])}")


def class_probabilities(result: Mapping[str, Any], key: str) -> tuple[list[str], np.ndarray]:
    """Class names and probabilities ``(N, C)`` (one row per image or slice); logits get a softmax."""
    fmt = result["formats"].get(key, {})
    scores = np.asarray(result["outputs"][key], dtype=np.float64)
    scores = scores.reshape(-1, scores.shape[-1]) if scores.ndim > 1 else scores[None]
    if fmt.get("format") == "logits":
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        scores /= scores.sum(axis=1, keepdims=True)
    if (
        not np.isfinite(scores).all()
        or (scores < -1e-6).any()
        or not np.allclose(scores.sum(axis=1), 1, atol=1e-4)
    ):
        raise ValueError(
            f"{result['case']}: output {key!r} holds no probabilities (rows must sum to 1): {scores}"
        )
    channel_def = fmt.get("channel_def") or {}
    names = [str(channel_def.get(str(i), f"class_{i}")) for i in range(scores.shape[1])]
    return names, scores


def mask_volume(result: Mapping[str, Any], key: str) -> np.ndarray:
    """The mask of ``key`` on the input's grid (channel dropped), uint8."""
    mask = np.asarray(result["outputs"][key])
    spatial = tuple(int(s) for s in result["meta"]["spatial_shape"])
    if mask.ndim == len(spatial) + 1 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.shape != spatial:
        squeezed = tuple(s for s in mask.shape if s != 1)
        if squeezed != tuple(s for s in spatial if s != 1):
            raise ValueError(
                f"{result['case']}: output {key!r} has shape {mask.shape}, the input grid is {spatial}"
            )
        mask = mask.reshape(spatial)
    return np.rint(mask).astype(np.uint8)
