"""ResNeSt-50 and ResNeSAt (paper 004): shapes, parameter counts, the two attention blocks against hand
computations, local checkpoints with official and timm names, the head contract, TorchScript and ONNX."""

import io
import re

import numpy as np
import pytest
import torch
from torch import nn

from common.heads import HeadSpec
from common.networks import (
    RESNEST_KEY_SCHEMES,
    ResNeSAt,
    ResNeSt,
    TrainingHeads,
    load_resnest_checkpoint,
)
from common.networks.blocks import SpatialAttention, SplitAttentionConv

SMALL = (1, 1, 1, 1)


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def randomize_batch_norms(net: nn.Module, seed: int = 0) -> None:
    """Non-trivial running statistics and affine parameters, so that loading and eval outputs test them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)


# ------------------------------------------------------------------------------------------------ shapes


@pytest.mark.parametrize(
    "network, in_channels, size",
    [(ResNeSt, 1, 64), (ResNeSt, 3, 256), (ResNeSAt, 3, 64), (ResNeSAt, 1, 256)],
)
def test_output_is_class_logits(network, in_channels, size):
    net = network(in_channels=in_channels, num_classes=3, layers=SMALL).eval()
    batch = 2 if size == 64 else 1
    x = torch.randn(batch, in_channels, size, size)
    with torch.no_grad():
        heads, pred = net.heads(x), net(x)
    assert set(heads) == {"cls"}
    assert heads["cls"].shape == pred.shape == (batch, 3)
    torch.testing.assert_close(pred, heads["cls"])


def test_full_size_resnesat_forward_at_64():
    net = ResNeSAt().eval()
    with torch.no_grad():
        pred = net(torch.randn(2, 1, 64, 64))
    assert pred.shape == (2, 2)
    assert torch.isfinite(pred).all()


def test_odd_input_size_and_3d():
    """Ceil-mode shortcut pooling keeps odd grids aligned; the blocks are dimension-generic."""
    with torch.no_grad():
        assert ResNeSt(layers=SMALL).eval()(torch.randn(1, 1, 75, 93)).shape == (1, 2)
        net3d = ResNeSAt(spatial_dims=3, layers=SMALL, stem_width=8).eval()
        assert net3d(torch.randn(1, 1, 40, 40, 40)).shape == (1, 2)


def test_trains_a_step():
    net = ResNeSAt(layers=SMALL, dropout=0.2).train()
    out = TrainingHeads(net)(torch.randn(2, 1, 64, 64))
    nn.functional.cross_entropy(out["cls"], torch.tensor([0, 1])).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name


def test_bad_arguments():
    with pytest.raises(ValueError, match="spatial_attention_position"):
        ResNeSAt(layers=SMALL, spatial_attention_position="after")
    with pytest.raises(ValueError, match="four positive"):
        ResNeSt(layers=(3, 4, 6))
    with pytest.raises(ValueError, match="subset"):
        ResNeSt(layers=SMALL, pred_heads=["seg"])


# ------------------------------------------------------------------------------------- parameter counts


def test_parameter_counts():
    """ResNeSt-50 as the official model (27,483,240); ResNeSAt adds 2 x 7 x 7 weights in each of 16 blocks."""
    with torch.device("meta"):  # counts need no memory or initialisation
        imagenet = ResNeSt(in_channels=3, num_classes=1000)
        imagenet_sa = ResNeSAt(in_channels=3, num_classes=1000)
        bundle = ResNeSt(in_channels=1, num_classes=2)
        bundle_sa = ResNeSAt(in_channels=1, num_classes=2)
        split_sa = ResNeSAt(in_channels=1, num_classes=2, spatial_attention_position="split")
    assert count(imagenet) == 27_483_240
    assert count(imagenet_sa) - count(imagenet) == 16 * 2 * 7 * 7
    assert count(bundle) == 25_437_762
    assert count(bundle_sa) == 25_439_330 == count(split_sa)
    assert sum(1 for m in bundle_sa.modules() if isinstance(m, SpatialAttention)) == 16
    # the bundle differs from ImageNet's by the first conv (2 of 3 input channels) and the classifier
    assert count(imagenet) - count(bundle) == 32 * 2 * 3 * 3 + 998 * 2049


# ------------------------------------------------------------------------------------------- split attention


def grouped_conv1x1(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, groups: int) -> np.ndarray:
    """1x1 grouped convolution of (B, Cin, ...) with weights (Cout, Cin/groups)."""
    cout, cin_g = w.shape
    cout_g = cout // groups
    out = np.zeros((x.shape[0], cout, *x.shape[2:]))
    for o in range(cout):
        g = o // cout_g
        for i in range(cin_g):
            out[:, o] += w[o, i] * x[:, g * cin_g + i]
        if b is not None:
            out[:, o] += b[o]
    return out


def batch_norm(x: np.ndarray, bn: nn.BatchNorm2d) -> np.ndarray:
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean, var = bn.running_mean.numpy().reshape(shape), bn.running_var.numpy().reshape(shape)
    weight, bias = bn.weight.detach().numpy().reshape(shape), bn.bias.detach().numpy().reshape(shape)
    return (x - mean) / np.sqrt(var + bn.eps) * weight + bias


def split_attention_reference(
    block: SplitAttentionConv, x: np.ndarray, radix: int, cardinality: int
) -> np.ndarray:
    """Split attention (ResNeSt eq. 1-3) in numpy, with the official radix-major channel layout."""
    splits_conv, splits_bn = block.splits.conv, block.splits.adn.N
    squeeze_conv, squeeze_bn = block.squeeze.conv, block.squeeze.adn.N
    u = grouped_conv1x1(x, splits_conv.weight.detach().numpy()[:, :, 0, 0], None, radix * cardinality)
    u = np.maximum(batch_norm(u, splits_bn), 0)
    b, rc = u.shape[:2]
    c = rc // radix
    parts = [u[:, r * c : (r + 1) * c] for r in range(radix)]
    gap = sum(parts).mean(axis=(2, 3), keepdims=True)
    z = grouped_conv1x1(
        gap, squeeze_conv.weight.detach().numpy()[:, :, 0, 0], squeeze_conv.bias.detach().numpy(), cardinality
    )
    z = np.maximum(batch_norm(z, squeeze_bn), 0)
    logits = grouped_conv1x1(
        z, block.excite.weight.detach().numpy()[:, :, 0, 0], block.excite.bias.detach().numpy(), cardinality
    ).reshape(b, cardinality, radix, c // cardinality)
    weights = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)  # softmax over the radix
    weights = weights.transpose(0, 2, 1, 3).reshape(b, radix, c)  # (B, r, C), channel = k * C/K + j
    return sum(weights[:, r, :, None, None] * parts[r] for r in range(radix))


def test_split_attention_by_hand():
    """channels 2, radix 2, 1x1 kernels: equal attention logits give the mean of the two splits."""
    block = SplitAttentionConv(2, in_channels=2, channels=2, kernel_size=1, radix=2, inter_channels=2).eval()
    with torch.no_grad():
        # groups = radix = 2: split 1 (maps 0, 1) sees input 0, split 2 (maps 2, 3) sees input 1
        block.splits.conv.weight.copy_(torch.tensor([1.0, 2.0, 3.0, -1.0]).view(4, 1, 1, 1))
        block.splits.adn.N.running_var.fill_(1 - block.splits.adn.N.eps)  # BN is the identity
        nn.init.zeros_(block.excite.weight)
        nn.init.zeros_(block.excite.bias)
    x = torch.tensor([[[[1.0, -2.0]], [[0.5, 4.0]]]])  # (1, 2, 1, 2)
    with torch.no_grad():
        out = block(x)
    # U1 = relu(1 * x0), relu(2 * x0); U2 = relu(3 * x1), relu(-1 * x1); V = (U1 + U2) / 2
    expected = torch.tensor([[[[(1 + 1.5) / 2, (0 + 12) / 2]], [[(2 + 0) / 2, (0 + 0) / 2]]]])
    torch.testing.assert_close(out, expected)
    # now unequal logits: excite bias (split 1 ch 0, split 1 ch 1, split 2 ch 0, split 2 ch 1)
    with torch.no_grad():
        block.excite.bias.copy_(torch.tensor([np.log(3.0), 0.0, 0.0, np.log(4.0)]))
        out = block(x)
    a1 = torch.tensor([3 / 4, 1 / 5])  # softmax over the two splits, per channel
    u1 = torch.tensor([[1.0, 0.0], [2.0, 0.0]])
    u2 = torch.tensor([[1.5, 12.0], [0.0, 0.0]])
    torch.testing.assert_close(out[0, :, 0], a1[:, None] * u1 + (1 - a1[:, None]) * u2)


@pytest.mark.parametrize("radix, cardinality", [(2, 1), (2, 2), (4, 1)])
def test_split_attention_against_numpy(radix, cardinality):
    torch.manual_seed(0)
    channels = 4 * cardinality
    block = SplitAttentionConv(
        2,
        channels * 1,
        channels,
        kernel_size=1,
        radix=radix,
        cardinality=cardinality,
        inter_channels=2 * cardinality,
    )
    randomize_batch_norms(block)
    block.eval()
    x = torch.randn(2, channels, 3, 5)
    with torch.no_grad():
        out = block(x).numpy()
    np.testing.assert_allclose(
        out, split_attention_reference(block, x.numpy(), radix, cardinality), rtol=1e-5, atol=1e-5
    )


def test_split_attention_weights_sum_to_one():
    block = SplitAttentionConv(2, 8, 8, radix=2).eval()
    with torch.no_grad():
        weights = block.attention(block.splits(torch.randn(3, 8, 6, 6)))
    assert weights.shape == (3, 2, 8)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(3, 8))
    assert block.squeeze.conv.out_channels == 32  # max(8 * 2 // 4, 32)


# ------------------------------------------------------------------------------------------ spatial attention


def test_spatial_attention_by_hand():
    sa = SpatialAttention(2)
    assert count(sa) == 98 and sa.conv.bias is None
    x = torch.tensor([[[[1.0, 2.0], [0.0, -3.0]], [[3.0, 0.0], [0.0, 1.0]], [[2.0, 1.0], [3.0, -1.0]]]])
    mean = [[2.0, 1.0], [1.0, -1.0]]
    maximum = [[3.0, 2.0], [3.0, 1.0]]
    with torch.no_grad():
        sa.conv.weight.zero_()
        sa.conv.weight[0, 0, 3, 3] = 0.5  # centre tap on the channel mean
        sa.conv.weight[0, 1, 3, 4] = -1.0  # the right-hand neighbour's channel maximum (0 past the edge)
        out = sa(x)
    for i in range(2):
        for j in range(2):
            right = maximum[i][j + 1] if j + 1 < 2 else 0.0
            gate = 1 / (1 + np.exp(-(0.5 * mean[i][j] - right)))
            torch.testing.assert_close(out[0, :, i, j], x[0, :, i, j] * float(gate))


# -------------------------------------------------------------------------------------------- checkpoints

STEM = {
    "stem.0.conv": "conv1.0",
    "stem.0.adn.N": "conv1.1",
    "stem.1.conv": "conv1.3",
    "stem.1.adn.N": "conv1.4",
    "stem.2.conv": "conv1.6",
    "stem.2.adn.N": "bn1",
    "fc": "fc",
}
BLOCK = {
    "reduce.conv": "conv1",
    "reduce.adn.N": "bn1",
    "split_attention.splits.conv": "conv2.conv",
    "split_attention.splits.adn.N": "conv2.bn0",
    "split_attention.squeeze.conv": "conv2.fc1",
    "split_attention.squeeze.adn.N": "conv2.bn1",
    "split_attention.excite": "conv2.fc2",
    "expand.conv": "conv3",
    "expand.adn.N": "bn3",
    "shortcut.conv": "downsample.1",
    "shortcut.adn.N": "downsample.2",
}


def official_name(key: str) -> str:
    """Our key -> the official / timm ResNeSt key (written independently of the module's table)."""
    module, tensor = key.rsplit(".", 1)
    if module in STEM:
        return f"{STEM[module]}.{tensor}"
    stage, block, rest = re.fullmatch(r"layers\.(\d+)\.(\d+)\.(.+)", module).groups()
    return f"layer{int(stage) + 1}.{block}.{BLOCK[rest]}.{tensor}"


LAYERS = (1, 2, 1, 1)  # a second block in layer2 checks block indices and identity shortcuts


@pytest.fixture(scope="module")
def source():
    """An RGB 10-class ResNeSt of LAYERS with trained-looking batch norms, and its official state_dict."""
    torch.manual_seed(1)
    net = ResNeSt(in_channels=3, num_classes=10, layers=LAYERS)
    randomize_batch_norms(net)
    official = {official_name(k): v.clone() for k, v in net.state_dict().items()}
    assert "layer1.0.conv2.fc2.bias" in official and "layer2.1.bn3.running_var" in official
    assert "layer2.0.downsample.1.weight" in official and "layer2.1.downsample.1.weight" not in official
    return net.eval(), official


@pytest.mark.parametrize(
    "scheme, wrap",
    [
        ("official", lambda sd: sd),
        ("official", lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}}),
        ("timm", lambda sd: {"model": sd}),
        ("auto", lambda sd: sd),
    ],
)
def test_load_checkpoint_into_one_channel_resnesat(source, tmp_path, scheme, wrap):
    src, official = source
    path = tmp_path / "resnest.pth"
    torch.save(wrap(official), path)
    dst = ResNeSAt(in_channels=1, num_classes=2, layers=LAYERS)
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    report = load_resnest_checkpoint(dst, path, scheme=scheme)
    after, theirs = dst.state_dict(), src.state_dict()
    assert report.adapted == ["stem.0.conv.weight"]
    assert sorted(report.skipped) == ["fc.bias", "fc.weight"]
    assert report.unexpected == []
    assert report.missing == sorted(k for k in after if ".spatial_attention." in k)
    assert len(report.missing) == sum(LAYERS)
    for key in report.loaded:
        torch.testing.assert_close(after[key], theirs[key], rtol=0, atol=0)
    # every tensor of the network is accounted for, once
    accounted = [*report.loaded, *report.adapted, *report.skipped, *report.missing]
    assert sorted(accounted) == sorted(after)
    torch.testing.assert_close(
        after["stem.0.conv.weight"], theirs["stem.0.conv.weight"].sum(dim=1, keepdim=True)
    )
    for key in [*report.skipped, *report.missing]:  # fresh classifier and spatial attention untouched
        torch.testing.assert_close(after[key], before[key], rtol=0, atol=0)


def test_loaded_network_computes_what_the_source_computes(source, tmp_path):
    """Every tensor lands in its place: same outputs for RGB, and for grey input with the summed conv."""
    src, official = source
    path = tmp_path / "resnest.pth"
    torch.save(official, path)
    rgb = ResNeSt(in_channels=3, num_classes=10, layers=LAYERS)
    report = load_resnest_checkpoint(rgb, path)
    assert report.adapted == report.skipped == report.missing == report.unexpected == []
    grey = ResNeSt(in_channels=1, num_classes=10, layers=LAYERS)
    load_resnest_checkpoint(grey, path)
    x = torch.randn(2, 3, 64, 64)
    g = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(rgb.eval()(x), src(x))
        torch.testing.assert_close(grey.eval()(g), src(g.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-5)


def test_first_conv_for_other_channel_counts(source, tmp_path):
    _, official = source
    path = tmp_path / "resnest.pth"
    torch.save(official, path)
    net = ResNeSt(in_channels=4, num_classes=10, layers=LAYERS)
    load_resnest_checkpoint(net, path)
    rgb = official["conv1.0.weight"]
    expected = torch.cat([rgb, rgb[:, :1]], dim=1) * 3 / 4
    torch.testing.assert_close(net.state_dict()["stem.0.conv.weight"], expected)


def test_checkpoint_errors(source, tmp_path):
    _, official = source
    bad_shape = dict(official)
    bad_shape["layer2.1.conv2.fc1.weight"] = torch.zeros(3, 3, 1, 1)
    torch.save(bad_shape, tmp_path / "shape.pth")
    with pytest.raises(ValueError, match=r"shape\.pth: layer2\.1\.conv2\.fc1\.weight .*shape \(3, 3, 1, 1\)"):
        load_resnest_checkpoint(ResNeSt(layers=LAYERS), tmp_path / "shape.pth")

    incomplete = {k: v for k, v in official.items() if not k.startswith("layer3.0.conv2.")}
    extra = {**official, "layer1.5.conv1.weight": torch.zeros(1)}
    torch.save(incomplete, tmp_path / "incomplete.pth")
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(ValueError, match=r"incomplete\.pth: not a checkpoint .*split_attention"):
        load_resnest_checkpoint(ResNeSt(layers=LAYERS), tmp_path / "incomplete.pth")
    with pytest.raises(ValueError, match=r"extra\.pth: .*layer1\.5\.conv1\.weight"):
        load_resnest_checkpoint(ResNeSt(layers=LAYERS), tmp_path / "extra.pth")
    report = load_resnest_checkpoint(ResNeSt(layers=LAYERS), tmp_path / "incomplete.pth", strict=False)
    assert "layers.2.0.split_attention.excite.bias" in report.missing
    report = load_resnest_checkpoint(ResNeSt(layers=LAYERS), tmp_path / "extra.pth", strict=False)
    assert report.unexpected == ["layer1.5.conv1.weight"]

    (tmp_path / "notes.txt").write_text("not weights")
    with pytest.raises(ValueError, match=r"notes\.txt: not a PyTorch checkpoint"):
        load_resnest_checkpoint(ResNeSt(layers=LAYERS), tmp_path / "notes.txt")
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_resnest_checkpoint(ResNeSt(layers=LAYERS), tmp_path / "missing.pth")


def test_key_schemes_cover_the_full_resnest50():
    """Every tensor of a full ResNeSt-50 has an official / timm name and back."""
    with torch.device("meta"):
        keys = list(ResNeSt(in_channels=3, num_classes=1000).state_dict())
    names = {official_name(k) for k in keys}
    assert len(names) == len(keys)
    assert {"conv1.0.weight", "bn1.running_mean", "layer4.2.conv2.fc2.bias", "layer3.5.bn3.weight"} <= names
    assert RESNEST_KEY_SCHEMES["timm"] == RESNEST_KEY_SCHEMES["official"]


# -------------------------------------------------------------------------------------- contract and export


def test_head_spec_and_training_heads():
    spec = HeadSpec(
        {
            "cls": {
                "channel_names": ["no tumour", "tumour"],
                "activation": "softmax",
                "target": "class",
                "image_level": True,
                "loss": nn.CrossEntropyLoss(),
            }
        }
    )
    net = ResNeSAt(layers=SMALL, num_classes=spec.pred_channels, pred_heads=spec.inference_names)
    out = TrainingHeads(net)(torch.randn(2, 1, 64, 64))
    assert list(out) == spec.names
    loss = spec.loss()(out, {"cls": torch.tensor([0, 1])})
    assert loss.ndim == 0 and torch.isfinite(loss)
    with torch.no_grad():
        assert net.eval()(torch.randn(2, 1, 64, 64)).shape == (2, spec.pred_channels)


@pytest.mark.parametrize(
    "network, kwargs",
    [
        (ResNeSt, {}),
        (ResNeSAt, {}),
        (ResNeSAt, {"spatial_attention_position": "split", "in_channels": 3, "num_classes": 4}),
    ],
)
def test_torchscript_round_trip_matches_eager(network, kwargs):
    net = network(layers=SMALL, **kwargs).eval()
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(net), buffer)
    buffer.seek(0)
    scripted = torch.jit.load(buffer)
    x = torch.randn(2, net.in_channels, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), net(x))


def test_onnx_export_matches_eager():
    onnxruntime = pytest.importorskip("onnxruntime")
    net = ResNeSAt(layers=SMALL).eval()
    buffer = io.BytesIO()
    torch.onnx.export(
        net,
        (torch.rand(1, 1, 64, 64),),
        buffer,
        input_names=["image"],
        output_names=["pred"],
        dynamic_axes={"image": {0: "batch"}, "pred": {0: "batch"}},
        dynamo=False,
    )
    session = onnxruntime.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    x = torch.rand(3, 1, 64, 64)
    with torch.no_grad():
        expected = net(x).numpy()
    (exported,) = session.run(None, {"image": x.numpy()})
    np.testing.assert_allclose(exported, expected, rtol=1e-4, atol=1e-4)
