"""One network wrapper for fast inference: PyTorch (channels-last, autocast), ONNX Runtime or OpenVINO.

A bundle's ``inference.json`` wraps its network once::

    "inference_network": {"_target_": "common.engines.FastInferenceNetwork", "network": "@network",
                          "runtime": "@runtime", "precision": "@precision",
                          "cache_dir": "$os.path.dirname(@ckpt_path)"}

and gives ``@inference_network`` to its evaluator. Every inferer (simple, slice, sliding window) calls it as
it would call the network; the checkpoint is still loaded into ``@network``.

Runtimes (:data:`RUNTIMES`):

* ``torch``: eager PyTorch with channels-last tensors (faster convolutions on CPUs), in ``precision``
  under ``torch.autocast`` (bf16 on CPUs that have it natively, fp16 or bf16 on GPUs);
* ``onnxruntime``: the network exported to ONNX (fp32), run by ONNX Runtime's CPU provider;
* ``openvino``: the same ONNX file compiled by OpenVINO for the CPU, in fp32 or bf16 (its inference
  precision hint);
* ``auto`` (default): on a GPU, PyTorch with fp16 autocast; on a CPU, OpenVINO if installed (bf16 where
  the CPU computes it natively, :func:`native_bf16`; fp32 otherwise), else ONNX Runtime, else PyTorch fp32.
  PyTorch's CPU bf16 autocast stays opt-in: it missed the mask-agreement gate on two bundles. The choice
  is logged. The accuracy each path keeps is measured by
  ``tests/engines/test_fast_inference.py`` and reported in the model cards.

The ONNX file is exported at the first call for each input shape (batch size stays dynamic), after the
checkpoint has been loaded, and cached in ``cache_dir`` (beside the checkpoint) under a name holding a digest
of the network's structure and weights: a new checkpoint gives a new file, an unchanged one is reused
across runs. A ``cache_dir`` that cannot be written falls back to the temporary folder, with a warning.
A network whose inputs change size from case to case (the stroke bundle's slices, cropped to each head) is
exported once with free spatial sizes instead (``dynamic_shape=True``): one file and one compiled model serve
every size, where a file per size would cost an export (about 1.5 s) and a file per case. Only for networks
whose trace does not bake the size in; each bundle that sets it checks its masks at several sizes against
PyTorch (the accuracy gate runs over phantoms cropped to different boxes).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from common.data.atomic import atomic_output

__all__ = ["PRECISIONS", "RUNTIMES", "FastInferenceNetwork", "choose_runtime", "fast_options", "native_bf16"]

logger = logging.getLogger(__name__)

RUNTIMES = ("auto", "torch", "onnxruntime", "openvino")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX): where bf16 inference is fast."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no cheap way to know, stay with fp32
        return False
    return any(flag in flags for flag in ("avx512_bf16", "amx_bf16"))


def _check_options(runtime: str, precision: str) -> None:
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")


def choose_runtime(runtime: str, precision: str, device: torch.device | str) -> tuple[str, str]:
    """The ``(runtime, precision)`` that ``auto`` stands for on ``device``; explicit choices are checked.

    Raises:
        ValueError: an unknown runtime or precision, a runtime that is not installed, or a precision the
            runtime cannot run (ONNX Runtime: fp32 only; fp16 needs a GPU).
    """
    _check_options(runtime, precision)
    gpu = torch.device(device).type == "cuda"
    if runtime == "auto":
        runtime = "torch" if gpu else next(
            (r for r in ("openvino", "onnxruntime") if _installed(r)), "torch"
        )  # fmt: skip
    if runtime != "torch" and not _installed(runtime):
        raise ValueError(f"runtime {runtime!r} is not installed (pip install {runtime})")
    if precision == "auto":
        if gpu:
            precision = "fp16"
        else:  # PyTorch's bf16 autocast missed the accuracy gate on two bundles: opt-in only
            precision = "bf16" if runtime == "openvino" and native_bf16() else "fp32"
    if runtime == "onnxruntime" and precision != "fp32":
        raise ValueError(f"the onnxruntime runtime runs fp32 only, not {precision}")
    if precision == "fp16" and not gpu:
        raise ValueError("fp16 inference needs a GPU; use bf16 or fp32 on a CPU")
    return runtime, precision


def fast_options(parser: Any, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``runtime``, ``precision`` and ``dynamic_shape`` for :class:`FastInferenceNetwork` from a bundle's
    parsed ``inference`` config (a ``monai.bundle.ConfigParser``), ``overrides`` first: how the consumers
    (MONAI Deploy, MONAI Label) run a bundle as its ``inference_network`` would. A config that names no
    runtime (not one of ours) passed no accuracy gate: PyTorch fp32."""
    overrides = dict(overrides or {})

    def value(key: str, default: Any) -> Any:
        if key in overrides:
            return overrides[key]
        return parser.get_parsed_content(key) if key in parser else default

    return {
        "runtime": value("runtime", "torch"),
        "precision": value("precision", "fp32"),
        "dynamic_shape": bool(value("inference_network#dynamic_shape", False)),
    }


def _weights_digest(network: nn.Module) -> str:
    """A digest of the network's structure (its repr) and every parameter and buffer."""
    digest = hashlib.sha256(repr(network).encode())
    for name, tensor in network.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


class FastInferenceNetwork(nn.Module):
    """``network`` run by the runtime and precision of :func:`choose_runtime` (see the module docstring).

    Args:
        network: the bundle's network (a tensor in, one tensor out), with its checkpoint loaded by the time
            of the first call.
        runtime: ``"auto"``, ``"torch"``, ``"onnxruntime"`` or ``"openvino"``.
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"`` (GPU only).
        cache_dir: where exported ONNX files are kept (the checkpoint's folder in the bundles); ``None``: the
            temporary folder.
        threads: CPU threads of ONNX Runtime and OpenVINO; default ``torch.get_num_threads()``.
        dynamic_shape: export with free spatial sizes (one ONNX file for every input size; see above).
    """

    def __init__(
        self,
        network: nn.Module,
        runtime: str = "auto",
        precision: str = "auto",
        cache_dir: str | os.PathLike | None = None,
        threads: int | None = None,
        dynamic_shape: bool = False,
    ) -> None:
        super().__init__()
        _check_options(runtime, precision)
        self.network = network
        self.runtime, self.precision = runtime, precision
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.threads = threads
        self.dynamic_shape = bool(dynamic_shape)
        self.chosen: tuple[str, str] | None = None
        self._compiled: dict[tuple[int, ...], Any] = {}
        self._digest: str | None = None
        self._weights_version: tuple[int, ...] | None = None
        self._memory_format: torch.memory_format | None = None

    # ---------------------------------------------------------------------------------------- choice
    def _choose(self, device: torch.device) -> tuple[str, str]:
        if self.chosen is None:
            self.chosen = choose_runtime(self.runtime, self.precision, device)
            logger.info(
                "inference runtime %s, precision %s (asked: %s, %s; device %s)",
                *self.chosen, self.runtime, self.precision, device.type,
            )  # fmt: skip
        return self.chosen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        runtime, precision = self._choose(x.device)
        if runtime == "torch":
            return self._torch(x, precision)
        with torch.no_grad():
            compiled = self._compile(tuple(x.shape[1:]), runtime, precision)
            out = compiled(np.ascontiguousarray(x.detach().float().cpu().numpy()))
        return torch.from_numpy(np.asarray(out, dtype=np.float32)).to(x.device)

    # ------------------------------------------------------------------------------------------ torch
    def _torch(self, x: torch.Tensor, precision: str) -> torch.Tensor:
        memory_format = {4: torch.channels_last, 5: torch.channels_last_3d}.get(x.ndim)
        if memory_format is not None:
            if self._memory_format != memory_format:  # convert the weights once, not at every call
                self.network.to(memory_format=memory_format)
                self._memory_format = memory_format
            x = x.contiguous(memory_format=memory_format)
        if precision == "fp32":
            return self.network(x).contiguous()
        with torch.autocast(device_type=x.device.type, dtype=_AUTOCAST_DTYPES[precision]):
            out = self.network(x)
        return out.float().contiguous()

    # ------------------------------------------------------------------------------ ONNX and OpenVINO
    def _folder(self) -> Path:
        fallback = Path(tempfile.gettempdir()) / "brain_lesion_bundles_onnx"
        folder = self.cache_dir or fallback
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if os.access(folder, os.W_OK):
                return folder
        except OSError:
            pass
        warnings.warn(f"{folder}: cannot write the exported model there; using {fallback}", stacklevel=3)
        fallback.mkdir(parents=True, exist_ok=True)
        return fallback

    def onnx_file(self, spatial_shape: tuple[int, ...]) -> Path:
        """The cached ONNX export of the network for inputs ``(B, *spatial_shape)``; made if missing
        (``dynamic_shape``: one file for every ``spatial_shape`` with the same number of channels)."""
        if self._digest is None:
            self._digest = _weights_digest(self.network)
        shape = "x".join(str(s) for s in (spatial_shape[:1] if self.dynamic_shape else spatial_shape))
        shape += "xdynamic" if self.dynamic_shape else ""
        path = self._folder() / f"{type(self.network).__name__}.{self._digest}.{shape}.onnx"
        if not path.is_file():
            self._export(path, spatial_shape)
        return path

    def _export(self, path: Path, spatial_shape: tuple[int, ...]) -> None:
        network = self.network
        was_training = network.training
        parameter = next(network.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        network.eval().to(memory_format=torch.contiguous_format)
        self._memory_format = None
        example = torch.zeros((1, *spatial_shape), device=device)
        # batch is always free; with dynamic_shape the spatial sizes too (the channel axis never is)
        axes = {0: "batch"} | (
            {i: f"size{i}" for i in range(2, 1 + len(spatial_shape))} if self.dynamic_shape else {}
        )
        logger.info("exporting %s for inputs (B, %s) to %s", type(network).__name__, spatial_shape, path)
        with atomic_output(path) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's tracer warnings say nothing to a user
            torch.onnx.export(
                network, (example,), str(tmp), input_names=["image"], output_names=["pred"],
                dynamic_axes={"image": axes, "pred": axes}, dynamo=False,
            )  # fmt: skip
        network.train(was_training)

    def _forget_stale_exports(self) -> None:
        """Drop the digest and compiled models when the weights changed in place since (a new checkpoint
        loaded into the same network): every in-place write bumps a tensor's version counter."""
        version = tuple(t._version for t in self.network.state_dict().values())
        if version != self._weights_version:
            self._weights_version, self._digest, self._compiled = version, None, {}

    def _compile(self, spatial_shape: tuple[int, ...], runtime: str, precision: str) -> Any:
        self._forget_stale_exports()
        key = spatial_shape[:1] if self.dynamic_shape else spatial_shape
        if key not in self._compiled:
            path = self.onnx_file(spatial_shape)
            threads = self.threads or torch.get_num_threads()
            if runtime == "onnxruntime":
                self._compiled[key] = _onnxruntime_session(path, threads)
            else:
                self._compiled[key] = _openvino_model(path, threads, precision)
        return self._compiled[key]


def _onnxruntime_session(path: Path, threads: int) -> Any:
    try:  # optional: the bundles run without it (their metadata lists it as optional)
        import onnxruntime
    except ImportError as error:
        raise ValueError("runtime 'onnxruntime' is not installed (pip install onnxruntime)") from error

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"image": x})[0]


def _openvino_model(path: Path, threads: int, precision: str) -> Any:
    try:  # optional, as onnxruntime
        import openvino
    except ImportError as error:
        raise ValueError("runtime 'openvino' is not installed (pip install openvino)") from error

    core = openvino.Core()
    config = {
        "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY",
    }
    compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
    output = compiled.output(0)
    return lambda x: compiled(x)[output]
