"""The fast inference wrapper: runtime choice, agreement of every path with PyTorch fp32, the ONNX cache."""

import os

import numpy as np
import pytest
import torch
from monai.networks.nets import BasicUNet
from torch import nn

from common.engines import FastInferenceNetwork, choose_runtime
from common.engines import fast_inference as fi

RUNTIMES = [
    ("torch", "fp32"),
    ("torch", "bf16"),
    pytest.param(
        "onnxruntime", "fp32", marks=pytest.mark.skipif(not fi._installed("onnxruntime"), reason="no ORT")
    ),
    pytest.param(
        "openvino", "fp32", marks=pytest.mark.skipif(not fi._installed("openvino"), reason="no OpenVINO")
    ),
    pytest.param(
        "openvino", "bf16", marks=pytest.mark.skipif(not fi._installed("openvino"), reason="no OpenVINO")
    ),
]


def test_auto_choice(monkeypatch):
    monkeypatch.setattr(fi, "_installed", lambda module: True)
    monkeypatch.setattr(fi, "native_bf16", lambda: True)
    assert choose_runtime("auto", "auto", "cuda") == ("torch", "fp16")
    assert choose_runtime("auto", "auto", "cpu") == ("openvino", "bf16")
    assert choose_runtime("onnxruntime", "auto", "cpu") == ("onnxruntime", "fp32")  # ORT: fp32 only
    monkeypatch.setattr(fi, "native_bf16", lambda: False)
    assert choose_runtime("auto", "auto", "cpu") == ("openvino", "fp32")
    assert choose_runtime("torch", "auto", "cpu") == ("torch", "fp32")
    monkeypatch.setattr(fi, "_installed", lambda module: module == "onnxruntime")
    assert choose_runtime("auto", "auto", "cpu") == ("onnxruntime", "fp32")
    monkeypatch.setattr(fi, "_installed", lambda module: False)
    assert choose_runtime("auto", "auto", "cpu") == ("torch", "fp32")  # PyTorch bf16: opt-in only
    assert choose_runtime("auto", "bf16", "cpu") == ("torch", "bf16")
    with pytest.raises(ValueError, match="'openvino' is not installed"):
        choose_runtime("openvino", "fp32", "cpu")


def test_bad_options():
    with pytest.raises(ValueError, match="runtime must be one of"):
        FastInferenceNetwork(nn.Identity(), runtime="tensorrt")
    with pytest.raises(ValueError, match="precision must be one of"):
        FastInferenceNetwork(nn.Identity(), precision="int8")
    with pytest.raises(ValueError, match="fp16 inference needs a GPU"):
        choose_runtime("torch", "fp16", "cpu")
    if fi._installed("onnxruntime"):
        with pytest.raises(ValueError, match="fp32 only"):
            choose_runtime("onnxruntime", "bf16", "cpu")


@pytest.fixture(scope="module")
def unet():
    """A small 2D U-Net with decisive logits (a 'trained' look): its masks do not hinge on rounding."""
    torch.manual_seed(0)
    net = BasicUNet(spatial_dims=2, in_channels=2, out_channels=3, features=(8, 8, 16, 32, 64, 8)).eval()
    with torch.no_grad():
        net.final_conv.weight.mul_(20.0)
    return net


@pytest.mark.parametrize("runtime, precision", RUNTIMES)
def test_every_path_agrees_with_pytorch_fp32(unet, tmp_path, runtime, precision):
    x = torch.randn(3, 2, 48, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = unet(x)
        fast = FastInferenceNetwork(unet, runtime, precision, cache_dir=tmp_path)
        out = fast(x)
        out_batch_of_one = fast(x[:1])  # batch size is dynamic in the exported model
    assert fast.chosen == (runtime, precision)
    assert out.shape == expected.shape and out.dtype == torch.float32
    scale = float(expected.abs().max())
    bound = 1e-5 if precision == "fp32" else 2e-2  # bf16 keeps 8 bits of mantissa
    assert float((out - expected).abs().max()) <= bound * scale
    torch.testing.assert_close(out_batch_of_one, out[:1], rtol=bound, atol=bound * scale)
    # an untrained network's logits are close to each other; the gate on trained models is in the bundle tests
    masks = expected.argmax(1), out.argmax(1)
    assert (masks[0] == masks[1]).float().mean() >= (0.999 if precision == "fp32" else 0.99)


def test_onnx_cache_is_reused_and_follows_the_weights(unet, tmp_path):
    x = torch.randn(1, 2, 32, 32)
    first = FastInferenceNetwork(
        unet, "onnxruntime" if fi._installed("onnxruntime") else "openvino", "fp32", tmp_path
    )
    if not (fi._installed("onnxruntime") or fi._installed("openvino")):
        pytest.skip("no ONNX runtime installed")
    first(x)
    (path,) = tmp_path.glob("*.onnx")
    assert path.name.endswith(".2x32x32.onnx")
    stamp = path.stat().st_mtime_ns
    FastInferenceNetwork(unet, first.runtime, "fp32", tmp_path)(x)  # a new run: the same file, not rewritten
    assert list(tmp_path.glob("*.onnx")) == [path] and path.stat().st_mtime_ns == stamp
    FastInferenceNetwork(unet, first.runtime, "fp32", tmp_path)(torch.randn(1, 2, 32, 48))  # new shape
    assert len(list(tmp_path.glob("*.onnx"))) == 2
    other = BasicUNet(spatial_dims=2, in_channels=2, out_channels=3, features=(8, 8, 16, 32, 64, 8)).eval()
    FastInferenceNetwork(other, first.runtime, "fp32", tmp_path)(x)  # other weights: another file
    assert len(list(tmp_path.glob("*.2x32x32.onnx"))) == 2
    assert not [p for p in tmp_path.iterdir() if p.suffix != ".onnx"]  # no temporary file left


@pytest.mark.parametrize("unwritable", ["read_only", "under_a_file"])
def test_unwritable_cache_falls_back_to_temp(unet, tmp_path, unwritable):
    if not fi._installed("onnxruntime"):
        pytest.skip("no ONNX Runtime")
    if unwritable == "read_only" and os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    cache = tmp_path / "cache"
    if unwritable == "under_a_file":  # a folder that cannot be made, whoever runs the test
        (tmp_path / "a_file").write_text("")
        cache = tmp_path / "a_file" / "cache"
    else:
        cache.mkdir()
        cache.chmod(0o500)
    try:
        with pytest.warns(UserWarning, match="cannot write"):
            out = FastInferenceNetwork(unet, "onnxruntime", "fp32", cache)(torch.randn(1, 2, 32, 32))
        assert out.shape == (1, 3, 32, 32)
    finally:
        if cache.is_dir():
            cache.chmod(0o700)


@pytest.mark.parametrize("runtime", [r for r in ("onnxruntime", "openvino") if fi._installed(r)])
def test_dynamic_shape_serves_every_size_from_one_export(tmp_path, runtime):
    """The stroke bundle's network (slices cropped to each head: a new size per case) exported once."""
    from common.networks import UNetPlusPlusEdge

    torch.manual_seed(0)
    net = UNetPlusPlusEdge(features=(4, 4, 8, 16, 32, 4), inference_only=True).eval()
    fast = FastInferenceNetwork(net, runtime, "fp32", tmp_path, dynamic_shape=True)
    for shape in ((2, 1, 48, 64), (3, 1, 64, 32), (1, 1, 80, 48)):
        x = torch.randn(*shape)
        with torch.no_grad():
            expected, out = net(x), fast(x)
        assert out.shape == expected.shape
        torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))
    (path,) = tmp_path.glob("*.onnx")
    assert path.name.endswith(".1xdynamic.onnx")


def test_torch_path_leaves_results_unchanged_for_3d():
    torch.manual_seed(0)
    net = BasicUNet(spatial_dims=3, in_channels=1, out_channels=2, features=(4, 4, 8, 8, 16, 4)).eval()
    x = torch.randn(2, 1, 32, 32, 32)
    with torch.no_grad():
        np.testing.assert_allclose(
            FastInferenceNetwork(net, "torch", "fp32")(x).numpy(), net(x).numpy(), rtol=1e-4, atol=1e-5
        )


def test_new_weights_loaded_in_place_give_a_new_export(unet, tmp_path):
    """A checkpoint loaded into the same network between calls (as CheckpointLoader does) is followed."""
    runtime = "onnxruntime" if fi._installed("onnxruntime") else "openvino"
    if not fi._installed(runtime):
        pytest.skip("no ONNX runtime installed")
    torch.manual_seed(3)
    net = BasicUNet(spatial_dims=2, in_channels=2, out_channels=3, features=(8, 8, 16, 32, 64, 8)).eval()
    fast = FastInferenceNetwork(net, runtime, "fp32", tmp_path)
    x = torch.randn(1, 2, 32, 32)
    with torch.no_grad():
        fast(x)
        net.load_state_dict(unet.state_dict())  # in place, as a checkpoint loader does
        torch.testing.assert_close(fast(x), unet(x), rtol=1e-4, atol=1e-4)
    assert len(list(tmp_path.glob("*.onnx"))) == 2


def test_fast_options_read_a_bundle_config_with_overrides_first():
    from pathlib import Path

    from monai.bundle import ConfigParser

    from common.engines import fast_options

    bundles = Path(__file__).resolve().parents[2] / "bundles"
    parser = ConfigParser()
    parser.read_config(str(bundles / "unetpp_edge_stroke_lesion_segmentation" / "configs" / "inference.json"))
    assert fast_options(parser) == {"runtime": "auto", "precision": "fp32", "dynamic_shape": True}
    assert fast_options(parser, {"runtime": "onnxruntime"})["runtime"] == "onnxruntime"
    foreign = ConfigParser({"network_def": {"_target_": "torch.nn.Identity"}})  # names no runtime: no gate
    assert fast_options(foreign) == {"runtime": "torch", "precision": "fp32", "dynamic_shape": False}
