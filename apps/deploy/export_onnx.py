"""Make the fast path's ONNX export of a bundle's ``model.ts`` ahead of time, e.g. to ship it in a MAP.

::

    python -m apps.deploy.export_onnx MODEL.ts [--config-names inference ...] [--output-dir DIR]
                                      [--input-shape C X Y [Z]]

The apps export the network at their first case and cache the file beside the model (see
:mod:`apps.deploy.operators.inference`). Inside a MONAI Application Package the model's folder is
read-only, so every container start (often one per study) would export again: 1-15 s, more than a case
takes for the 2D bundles. This writes the same file, for the network input of the model card
(``network_data_format.inputs.image``), into ``--output-dir`` (default: the model's folder); packaged with
the model (``make deploy-package`` does it), the app finds and reuses it. The file name holds a digest of
the network and its weights, so a file made from other weights is ignored, never used. ``--input-shape``
replaces the model card's input where the merged configs change it (a smoke-size export's slices).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from monai.deploy.operators.monai_bundle_inference_operator import get_bundle_config

from apps.deploy.operators.inference import fast_network
from common.engines import choose_runtime


def export_onnx(
    model: str | Path,
    config_names: Sequence[str] = ("inference",),
    output_dir: str | Path | None = None,
    input_shape: Sequence[int] | None = None,
) -> Path | None:
    """The ONNX file the apps will use on a CPU for ``model`` (made if missing), for network inputs
    ``(B, *input_shape)`` (default: the model card's channels and spatial shape); ``None`` when the bundle
    runs in PyTorch there (nothing to export)."""
    model = Path(model)
    if not model.is_file():
        raise FileNotFoundError(f"{model}: no such TorchScript file")
    parser = get_bundle_config(str(model), list(config_names))
    scripted = torch.jit.load(str(model), map_location="cpu").eval()
    fast = fast_network(scripted, parser, "cpu", Path(output_dir) if output_dir else model.parent)
    if choose_runtime(fast.runtime, fast.precision, "cpu")[0] == "torch":
        return None
    if input_shape is None:
        image = parser["_meta_"]["network_data_format"]["inputs"]["image"]
        input_shape = (image["num_channels"], *image["spatial_shape"])
    return fast.onnx_file(tuple(int(s) for s in input_shape))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m apps.deploy.export_onnx", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("model", help="the bundle's exported TorchScript model (model.ts)")
    parser.add_argument(
        "--config-names", nargs="+", default=["inference"], help="embedded configs to merge, as the app does"
    )
    parser.add_argument("--output-dir", help="where to write the ONNX file (default: beside the model)")
    parser.add_argument(
        "--input-shape", nargs="+", type=int, help="network input C X Y [Z] (default: the model card's)"
    )
    args = parser.parse_args(argv)
    path = export_onnx(args.model, args.config_names, args.output_dir, args.input_shape)
    print(path if path else f"{args.model}: runs in PyTorch on a CPU; nothing to export")
    return 0


if __name__ == "__main__":
    sys.exit(main())
