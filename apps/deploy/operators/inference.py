"""The bundle inference operator: a bundle's exported TorchScript model run on an :class:`Image`.

:class:`BundleInferenceOperator` subclasses the SDK's ``MonaiBundleInferenceOperator``: it parses the configs
embedded in the TorchScript file the same way (pre-processing, inferer, post-processing, without
``LoadImage``/``SaveImage``), but hands on the *post-processed* keys (``pred_seg``, ``pred_cls``,
``pred_label``...) where the SDK operator expects ``network_data_format.outputs`` to survive post-processing,
which our ``SplitHeadsd`` does not leave (it splits ``pred`` into one key per head). It also runs a 2D bundle
on each slice of a volume, and takes multi-channel inputs (BraTS' four modalities). What it emits is a
result (:mod:`apps.deploy.operators.result`).

The network runs on the bundles' fast path (:class:`common.engines.FastInferenceNetwork`), with the
``runtime`` and ``precision`` of the embedded ``inference`` config (``auto``: OpenVINO or ONNX Runtime on a
CPU, fp16 autocast on a GPU; ``config_overrides`` can set them); a bundle whose config names none runs in
PyTorch fp32 (channels-last), as it was exported. A TorchScript module does not export to a
usable ONNX graph (its loops become ONNX loops), so the network is rebuilt from the embedded ``network_def``
and given the TorchScript file's weights; where that fails, the TorchScript module runs in PyTorch. The
exported ONNX is cached beside the model file (the temporary folder where that is read-only).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.deploy.core import AppContext, Fragment, Image, IOType
from monai.deploy.operators.monai_bundle_inference_operator import (
    BundleConfigNames,
    IOMapping,
    MonaiBundleInferenceOperator,
    is_map_compose,
)
from monai.utils import ensure_tuple

from apps.deploy.operators.inputs import IMAGE
from apps.deploy.operators.result import RESULT
from common.data.errors import DataFormatError
from common.engines import FastInferenceNetwork, fast_options

logger = logging.getLogger(__name__)


def _to_numpy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return value


def _slice_meta(meta: Mapping[str, Any], k: int) -> dict[str, Any]:
    """Metadata of slice ``k`` (last axis) of a volume: the affine moves to the slice, whose Z is 1."""
    affine = np.asarray(meta["affine"], dtype=np.float64)
    shift = np.eye(4)
    shift[2, 3] = k
    out = dict(meta)
    out["affine"] = affine @ shift
    out["original_affine"] = out["affine"].copy()
    out["spatial_shape"] = np.asarray([*np.asarray(meta["spatial_shape"])[:-1], 1], dtype=np.int64)
    return out


def _stack_slices(parts: Sequence[Any], volume_ndim: int) -> np.ndarray:
    """Per-slice outputs -> one: maps back along the last axis, vectors (classes) as rows ``(Z, C)``."""
    first = np.asarray(parts[0])
    if first.ndim == 1:
        return np.stack([np.asarray(p) for p in parts])
    if first.ndim == volume_ndim:  # the slice keeps its Z = 1 axis
        return np.concatenate([np.asarray(p) for p in parts], axis=-1)
    return np.stack([np.asarray(p) for p in parts], axis=-1)


def _data_format_cause(err: BaseException) -> DataFormatError | None:
    """The :class:`DataFormatError` behind ``err`` (MONAI's "applying transform ..." wrapper), if any."""
    while err is not None:
        if isinstance(err, DataFormatError):
            return err
        err = err.__cause__
    return None


def fast_network(
    scripted: torch.nn.Module,
    parser: Any,
    device: torch.device | str,
    cache_dir: str | Path | None,
    overrides: Mapping[str, Any] | None = None,
) -> FastInferenceNetwork:
    """``scripted``'s weights in the eager ``network_def`` of ``parser`` (the configs embedded in the model),
    on the fast path with the config's ``runtime``, ``precision`` and ``inference_network#dynamic_shape``
    (``overrides`` first); see the module docstring. :mod:`apps.deploy.export_onnx` makes the same network."""
    options = fast_options(parser, overrides)
    try:
        network = parser.get_parsed_content("network_def", instantiate=True)
        network.load_state_dict(scripted.state_dict())
        network = network.to(device).eval()
    except Exception as err:  # a bundle whose network cannot be rebuilt here still runs, in PyTorch
        logger.warning("TorchScript module run in PyTorch (its network_def: %s)", err)
        network, options["runtime"] = scripted, "torch"
    return FastInferenceNetwork(network, cache_dir=cache_dir, **options)


class BundleInferenceOperator(MonaiBundleInferenceOperator):
    """Runs a bundle's exported TorchScript model (configs embedded) on an :class:`Image`; emits the result.

    Args:
        fragment: the application.
        app_context: the SDK's app context (its ``models`` hold the model given with ``-m``).
        bundle_path: the ``model.ts`` when known at compose time (parsed then); else the context's model.
        config_names: configs embedded in the TorchScript file to merge, in order (``inference`` by default;
            a model exported at smoke size also embeds ``smoke_test``).
        output_keys: post-processed keys to hand on; default: the model card's ``post_processed_outputs``,
            else ``pred``.
        extra_items: added to each item before pre-processing (e.g. ``{"layout": "brats2023"}`` for the label
            codes ``FromCanonicalBraTSLabelsd`` writes).
        slice_wise: run a 2D bundle on each slice (last axis) of a 3D input and stack the outputs.
        input_channels: channels the app hands in, when the pre-processing adds channels of its own (the
            MS bundle's tissue masks: 4 images in, 7 network channels); default: the model card's.
        config_overrides: config ids set before the pre- and post-processing are parsed (e.g.
            ``{"tissue_cache_dir": None}``), as ``--id value`` does on the command line.
    """

    def __init__(
        self,
        fragment: Fragment,
        *args: Any,
        app_context: AppContext,
        bundle_path: str | Path | None = None,
        config_names: Sequence[str] = ("inference",),
        output_keys: Sequence[str] | None = None,
        extra_items: Mapping[str, Any] | None = None,
        slice_wise: bool = False,
        input_channels: int | None = None,
        config_overrides: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ):
        self._requested_keys = list(output_keys) if output_keys else None
        self._input_channels = input_channels
        self._config_overrides = dict(config_overrides or {})
        self._extra_items = dict(extra_items or {})
        self._slice_wise = slice_wise
        self._network_ready = False
        super().__init__(
            fragment,
            *args,
            app_context=app_context,
            input_mapping=[IOMapping(IMAGE, Image, IOType.IN_MEMORY)],
            output_mapping=[IOMapping(RESULT, dict, IOType.IN_MEMORY)],
            bundle_path=bundle_path,
            bundle_config_names=BundleConfigNames(config_names=list(config_names)),
            **kwargs,
        )

    # -- model and configs -------------------------------------------------------------------------------

    def _get_compose(self, obj_name: str, disallowed_prefixes: Any) -> Any:
        """The SDK's parsing of ``preprocessing``/``postprocessing``, after the overrides are set."""
        for key, value in self._config_overrides.items():
            if self._parser.get(key, "<absent>") != value:
                self._parser[key] = value  # resets the parser's resolved references
        return super()._get_compose(obj_name, disallowed_prefixes)

    def _resolve_network(self) -> None:
        """Finish parsing the bundle and pick the network: the context's model, else ``bundle_path``."""
        if self._network_ready:
            return
        model = self.app_context.models.get(self._model_name) if self.app_context.models else None
        # the SDK resolves a TorchScript file; a model folder holding the ONNX export beside model.ts is more
        # than the SDK's "one file per model" and comes back unresolved: then bundle_path (the one .ts in it)
        if model and Path(model.path).is_file():
            if not self._init_completed:
                self.bundle_path = Path(model.path)
                self._init_config(self._bundle_config_names.config_names)
                self._init_completed = True
            scripted = model.predictor  # the SDK's TorchScriptModel loads it on first access
        elif self.bundle_path and Path(self.bundle_path).is_file():
            if not self._init_completed:
                self._init_config(self._bundle_config_names.config_names)
                self._init_completed = True
            scripted = torch.jit.load(str(self.bundle_path), map_location=self._device).eval()
        else:
            raise FileNotFoundError(
                f"no model: pass the bundle's exported model.ts with -m (or HOLOSCAN_MODEL_PATH); got "
                f"{self.app_context.model_path!r}"
            )
        folder = Path(self.bundle_path).parent if self.bundle_path else None  # where the ONNX export goes
        overrides = self._config_overrides
        self._model_network = fast_network(scripted, self._parser, self._device, folder, overrides)
        self._network_ready = True

    @property
    def model_card(self) -> dict[str, Any]:
        return dict(self.parser["_meta_"]) if self.parser is not None else {}

    def output_keys(self) -> list[str]:
        if self._requested_keys:
            return self._requested_keys
        fmt = self.model_card.get("network_data_format", {})
        return list(fmt.get("post_processed_outputs") or {}) or list(fmt.get("outputs") or {"pred": {}})

    def output_formats(self) -> dict[str, dict[str, Any]]:
        fmt = self.model_card.get("network_data_format", {})
        known = {**(fmt.get("outputs") or {}), **(fmt.get("post_processed_outputs") or {})}
        return {key: dict(known.get(key, {})) for key in self.output_keys()}

    # -- running -----------------------------------------------------------------------------------------

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        self._resolve_network()
        image = op_input.receive(IMAGE)
        op_output.emit(self.infer(np.asarray(image.asnumpy()), dict(image.metadata())), RESULT)

    def infer(self, array: np.ndarray, meta: Mapping[str, Any]) -> dict[str, Any]:
        """Pre-process, predict, post-process one channel-first array; per slice when ``slice_wise``."""
        self._resolve_network()
        source = meta.get("filename_or_obj", meta.get("case", "input"))
        expected = self._input_channels or self._inputs.get(IMAGE, {}).get("num_channels")
        if expected is not None and array.shape[0] != int(expected):
            names = list((self._inputs[IMAGE].get("channel_def") or {}).values())[: int(expected)]
            raise DataFormatError(
                source, f"{array.shape[0]} channel(s), the bundle expects {expected} {names}".rstrip()
            )
        if self._slice_wise and array.ndim == 4:
            parts = [self._run(array[..., k : k + 1], _slice_meta(meta, k)) for k in range(array.shape[-1])]
            outputs = {key: _stack_slices([p[key] for p in parts], array.ndim) for key in parts[0]}
        else:
            outputs = self._run(array, meta)
        card = self.model_card
        return {
            "case": str(meta.get("case", "input")),
            "meta": dict(meta),
            "outputs": outputs,
            "formats": self.output_formats(),
            "bundle": {"name": str(card.get("name", "")), "version": str(card.get("version", ""))},
            "slice_wise": bool(self._slice_wise and array.ndim == 4),
        }

    def _run(self, array: np.ndarray, meta: Mapping[str, Any]) -> dict[str, Any]:
        monai_meta = {k: v for k, v in meta.items() if k != "series_instance_uids"}
        tensor = MetaTensor.ensure_torch_and_prune_meta(
            np.ascontiguousarray(array, dtype=np.float32), monai_meta
        )
        try:
            if is_map_compose(self._preproc):
                data = self._preproc({IMAGE: tensor, **self._extra_items})
            else:  # array transforms (or none): the image alone
                data = {IMAGE: self._preproc(tensor), **self._extra_items}
        except RuntimeError as err:  # MONAI wraps a transform's error: a bad input is the one error shown
            raise _data_format_cause(err) or err from None
        with torch.no_grad():
            pred = self.predict(data[IMAGE][None].to(self._device))
        pred = ensure_tuple(pred)[0] if not isinstance(pred, torch.Tensor) else pred
        out = self.post_process(pred[0], **{self.kw_preprocessed_inputs: data})
        if not isinstance(out, Mapping):  # array post-processing (or none): the network output
            out = {"pred": out}
        keys = self.output_keys()
        missing = [key for key in keys if key not in out]
        if missing:
            raise KeyError(
                f"{self.bundle_path}: the bundle's post-processing produced no {missing}; it produced "
                f"{sorted(str(k) for k in out)}"
            )
        return {key: _to_numpy(out[key]) for key in keys}
