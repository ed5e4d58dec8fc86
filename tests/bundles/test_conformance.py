"""The model zoo's checks, run on every bundle in ``bundles/``: a new bundle is covered without a new test.

Covers what Project-MONAI/model-zoo's ``ci/verify_bundle.py`` and ``ci/unit_tests/`` check: the required
files, metadata against MONAI's published schema (a copy in ``../shared/zoo``; CI has no internet), the
version in the changelog, the property checks of the train and inference workflows, ``verify_net_in_out``,
``ckpt_export`` to TorchScript with reload, and a tiny train / evaluate / infer through ``ConfigWorkflow``;
plus what this project adds: an ONNX export that matches the eager network, the head spec agreeing with
``network_data_format``, and ``multi_gpu_train.json`` under ``torchrun`` (gloo on CPU).

Each bundle declares its tiny run in one place, ``configs/smoke_test.json`` (merged after any config).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, ckpt_export, verify_net_in_out

from .conftest import BUNDLES, REPO, assert_fast_paths_agree, copy_bundle, fast_path_agreement, workflow

SCHEMA = REPO.parent / "shared" / "zoo" / "meta_schema_20240725.json"
REQUIRED_FILES = (
    "LICENSE",
    "configs/metadata.json",
    "configs/train.json",
    "configs/evaluate.json",
    "configs/inference.json",
    "configs/multi_gpu_train.json",
    "configs/logging.conf",
    "configs/smoke_test.json",
    "docs/README.md",
    "docs/data_license.txt",
)
pytestmark = pytest.mark.slow


def metadata(bundle_dir: Path) -> dict:
    return json.loads((bundle_dir / "configs" / "metadata.json").read_text())


def parser(bundle_dir: Path, config: str | list[str]) -> ConfigParser:
    folder = bundle_dir / "configs"
    names = [config] if isinstance(config, str) else config
    p = ConfigParser()
    p.read_config([str(folder / name) for name in names] + [str(folder / "smoke_test.json")])
    p.read_meta(str(folder / "metadata.json"))
    p["bundle_root"] = str(bundle_dir)
    return p


def input_shape(meta: dict) -> tuple[int, ...]:
    image = meta["network_data_format"]["inputs"]["image"]
    return (2, image["num_channels"], *image["spatial_shape"])


@pytest.fixture(scope="module", params=BUNDLES)
def ran(request, tmp_path_factory):
    """A copy of the bundle, trained, evaluated and run for inference on its smoke-test phantoms.

    Returns the bundle folder and the property-check results of the three workflows.
    """
    bundle_dir = copy_bundle(request.param, tmp_path_factory.mktemp("bundle"))
    checks = {}
    for name, configs, kind in [
        ("train", ["train.json"], "train"),
        ("evaluate", ["train.json", "evaluate.json"], "train"),
        ("infer", ["inference.json"], "infer"),
    ]:
        wf = workflow(bundle_dir, configs, kind)
        checks[name] = wf.check_properties()
        wf.run()
        wf.finalize()
    return bundle_dir, checks


@pytest.mark.parametrize("bundle", BUNDLES)
def test_required_files_and_metadata_schema(bundle):
    jsonschema = pytest.importorskip("jsonschema")
    bundle_dir = REPO / "bundles" / bundle
    missing = [f for f in REQUIRED_FILES if not (bundle_dir / f).is_file()]
    assert not missing, missing
    meta = metadata(bundle_dir)
    jsonschema.validate(meta, json.loads(SCHEMA.read_text()))
    assert meta["schema"].endswith(SCHEMA.name)
    assert meta["version"] in meta["changelog"]
    # MONAI Label picks the task from the folder name
    assert "segmentation" in bundle or "classification" in bundle


def test_multi_gpu_config_is_the_same_file_in_every_bundle():
    """Each bundle ships its own copy (a zoo package is self-contained); the copies must not drift."""
    copies = {(REPO / "bundles" / b / "configs" / "multi_gpu_train.json").read_text() for b in BUNDLES}
    assert len(copies) == 1


@pytest.mark.parametrize("bundle", BUNDLES)
def test_head_spec_matches_network_data_format(bundle):
    """pred's channels are the inference heads, in the same order in train.json, inference.json, metadata."""
    bundle_dir = REPO / "bundles" / bundle
    pred = metadata(bundle_dir)["network_data_format"]["outputs"]["pred"]
    specs = {
        name: parser(bundle_dir, name).get_parsed_content("heads")
        for name in ("train.json", "inference.json")
    }
    train_spec, infer_spec = specs["train.json"], specs["inference.json"]
    assert infer_spec.channel_def() == pred["channel_def"]
    assert infer_spec.pred_channels == pred["num_channels"]
    assert train_spec.channel_def() == infer_spec.channel_def()
    for head in infer_spec.inference_heads:
        trained = train_spec[head.name]
        assert (trained.activation, trained.image_level, trained.region) == (
            head.activation,
            head.image_level,
            head.region,
        )


def test_property_checks_pass(ran):
    _, checks = ran
    assert checks == {"train": [], "evaluate": [], "infer": []}


def test_tiny_train_evaluate_infer(ran):
    bundle_dir, _ = ran
    state = torch.load(bundle_dir / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert state and all(t.device.type == "cpu" for t in state.values())
    # where the evaluation writes is the bundle's choice (eval/, or eval/<task>/<fold>/ for a k-fold bundle)
    eval_dir = Path(parser(bundle_dir, ["train.json", "evaluate.json"]).get_parsed_content("output_dir"))
    assert eval_dir.is_relative_to(bundle_dir)
    rows = dict(csv.reader(open(eval_dir / "metrics.csv")))
    assert rows, "evaluation wrote no metric"
    outputs = [p for p in (bundle_dir / "predictions").iterdir() if p.name != "failed_inputs.csv"]
    assert outputs
    assert not (bundle_dir / "predictions" / "failed_inputs.csv").exists()


def test_verify_net_in_out(ran):
    bundle_dir, _ = ran
    folder = bundle_dir / "configs"
    verify_net_in_out(
        net_id="network_def",
        meta_file=str(folder / "metadata.json"),
        config_file=[str(folder / "inference.json"), str(folder / "smoke_test.json")],
        bundle_root=str(bundle_dir),
        device="cpu",
    )


def eager_network(bundle_dir: Path) -> torch.nn.Module:
    net = parser(bundle_dir, "inference.json").get_parsed_content("network_def")
    net.load_state_dict(torch.load(bundle_dir / "models" / "model.pt", map_location="cpu", weights_only=True))
    return net.eval()


def test_ckpt_export_reloads_and_matches_eager(ran):
    bundle_dir, _ = ran
    folder = bundle_dir / "configs"
    ts_path = bundle_dir / "models" / "model.ts"
    ckpt_export(
        net_id="network_def",
        filepath=str(ts_path),
        ckpt_file=str(bundle_dir / "models" / "model.pt"),
        meta_file=str(folder / "metadata.json"),
        config_file=[str(folder / "inference.json"), str(folder / "smoke_test.json")],
        bundle_root=str(bundle_dir),
    )
    scripted = torch.jit.load(str(ts_path), map_location="cpu").eval()
    x = torch.rand(input_shape(metadata(bundle_dir)), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, exported = eager_network(bundle_dir)(x), scripted(x)
    assert exported.shape == expected.shape
    # the same kernels run in both: agreement to float rounding
    torch.testing.assert_close(exported, expected, rtol=1e-5, atol=1e-5)


def test_onnx_export_matches_eager(ran):
    onnxruntime = pytest.importorskip("onnxruntime")
    bundle_dir, _ = ran
    net = eager_network(bundle_dir)
    shape = input_shape(metadata(bundle_dir))
    buffer = io.BytesIO()
    torch.onnx.export(
        net,
        (torch.rand(shape),),
        buffer,
        input_names=["image"],
        output_names=["pred"],
        dynamic_axes={"image": {0: "batch"}, "pred": {0: "batch"}},
        dynamo=False,
    )
    session = onnxruntime.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    x = torch.rand(3, *shape[1:], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = net(x).numpy()
    (exported,) = session.run(None, {"image": x.numpy()})
    # different kernels (ONNX Runtime vs PyTorch): differences of float32 rounding in the logits
    np.testing.assert_allclose(exported, expected, rtol=1e-4, atol=1e-4)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_multi_gpu_config_runs_under_torchrun(ran, tmp_path):
    """multi_gpu_train.json under torchrun: one epoch, the data shared between the processes.

    Two CPU processes with gloo here; one process per GPU with NCCL on a GPU machine.
    """
    bundle_dir, _ = ran
    processes = torch.cuda.device_count() or 2
    folder = bundle_dir / "configs"
    configs = [str(folder / n) for n in ("train.json", "multi_gpu_train.json", "smoke_test.json")]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={processes}",
        f"--master_port={free_port()}",
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        json.dumps(configs),
        "--meta_file",
        str(folder / "metadata.json"),
        "--logging_file",
        str(folder / "logging.conf"),
        "--bundle_root",
        str(bundle_dir),
        "--ckpt_dir",
        str(tmp_path / "models"),
        "--output_dir",
        str(tmp_path / "runs"),
        "--epochs",
        "1",
    ]
    # the checkout under test, whatever the installed copy; one thread per process on a 2-core machine
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    checkpoint = torch.load(tmp_path / "models" / "last.pt", map_location="cpu", weights_only=True)
    n_train = len(json.loads((bundle_dir / "runs" / "datalist.json").read_text())["training"])
    batch = parser(bundle_dir, "train.json").get_parsed_content("train#dataloader#batch_size")
    # each process trained one epoch on its share of the training set (DistributedSampler pads evenly)
    assert checkpoint["trainer"]["max_epochs"] == 1
    assert checkpoint["trainer"]["iteration"] == math.ceil(math.ceil(n_train / processes) / batch)
    assert (tmp_path / "models" / "model.pt").is_file()


@pytest.mark.parametrize(
    "bundle", [b for b in BUNDLES if (REPO / "bundles" / b / "configs" / "ablation.json").is_file()]
)
def test_ablation_rows_override_keys_of_train_json(bundle):
    """Every override of the paper's ablation rows names a key train.json has: a typo would silently
    train the default model under the row's name."""
    folder = REPO / "bundles" / bundle / "configs"
    ablation = json.loads((folder / "ablation.json").read_text())
    train = ConfigParser()
    train.read_config(str(folder / "train.json"))
    overrides = [dict(ablation["budgets"][b]) for b in ablation["budgets"]]
    overrides += [row.get("overrides", {}) for table in ablation["tables"].values() for row in table.values()]
    for override in overrides:
        for key in override:
            assert key in train, f"{bundle}: ablation override {key!r} is not a key of train.json"
    for table in ablation["tables"].values():
        for row in table.values():
            assert set(row.get("paper", {})) <= set(ablation["metrics"])


# ------------------------------------------------------------------------------ the fast inference gate


def test_fast_paths_run_and_agree_with_pytorch_fp32(ran, tmp_path):
    """Every runtime runs the bundle's smoke model end to end and writes what PyTorch fp32 writes.

    A smoke model barely learns (its masks may be empty), so the accuracy gate proper runs in each bundle's
    own tests on a model trained on phantoms (:func:`.conftest.fast_path_agreement`).
    """
    bundle_dir, _ = ran
    results = fast_path_agreement(bundle_dir.name, tmp_path, bundle_dir=bundle_dir, config_overrides={})
    assert_fast_paths_agree(results, trained=False)
