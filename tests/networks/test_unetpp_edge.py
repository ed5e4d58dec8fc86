"""UNet++ with the edge branch of paper 003 (§2.1-2.2, Fig. 1, Table 2): heads, LFFGM sizes, the inference
network's parameters and checkpoint loading, gradients, export, and a few training steps."""

import io

import numpy as np
import pytest
import torch
from monai.losses import DiceCELoss
from monai.networks.nets import BasicUNetPlusPlus

from common.engines.checkpoint import load_network_weights
from common.losses import DiceCELaplacianLoss, MultiTaskLoss
from common.networks import (
    EDGE_BRANCHES,
    LowFrequencyFeatureModule,
    TrainingHeads,
    UNetPlusPlusEdge,
    strip_edge_branch,
)
from common.transforms import EdgeTargetsd

TINY = (4, 4, 8, 8, 16, 4)
SIZES = [(64, 64), (96, 80)]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread avoids OpenMP spin-waiting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def lffgm_parameters(cin: int, c: int, cout: int) -> int:
    """§2.2 counted layer by layer: four 3x3 convolutions with bias, each followed by batch norm (2 per
    channel), and the final 1x1 convolution of the concatenation ``c + cin`` -> ``cout``."""
    conv_bn = lambda i, o: 9 * i * o + o + 2 * o  # noqa: E731
    return conv_bn(cin, c) + 3 * conv_bn(c, c) + (c + cin) * cout + cout


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("edge", ["simple", "lffgm"])
def test_training_heads_have_the_input_size(edge, size):
    net = UNetPlusPlusEdge(features=TINY, edge=edge)
    assert net.head_names == ["lesion", "edge"] and net.pred_heads == ["lesion"]
    out = TrainingHeads(net).train()(torch.randn(2, 1, *size))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"lesion": (2, 1, *size), "edge": (2, 1, *size)}


@pytest.mark.parametrize("size", SIZES)
def test_eval_forward_is_the_lesion_logits_and_skips_the_edge_branch(size):
    torch.manual_seed(0)
    net = UNetPlusPlusEdge(features=TINY).eval()
    calls = []
    for module in (net.lffgm, net.edge_head):
        module.register_forward_hook(lambda *args: calls.append(1))
    x = torch.randn(2, 1, *size)
    with torch.no_grad():
        pred = net(x)
    assert pred.shape == (2, 1, *size) and not calls
    with torch.no_grad():
        torch.testing.assert_close(pred, net.heads(x)["lesion"])
    assert len(calls) == 2  # heads() runs the edge branch


def test_lesion_path_is_monai_basic_unetplusplus():
    """``features`` re-wires MONAI's forward: with the same weights, the lesion logits are MONAI's."""
    torch.manual_seed(0)
    net = UNetPlusPlusEdge(features=TINY).eval()
    plain = BasicUNetPlusPlus(spatial_dims=2, in_channels=1, out_channels=1, features=TINY).eval()
    plain.load_state_dict(net.unetpp.state_dict())
    x = torch.randn(2, 1, 96, 80)
    with torch.no_grad():
        torch.testing.assert_close(net(x), plain(x)[0])


@pytest.mark.parametrize("bottom", [(4, 4), (6, 5), (3, 7), (1, 1)])
def test_lffgm_sizes_with_ceil_pooling_and_crops(bottom):
    """Two 2x pools (ceil mode), two x2 up-samplings cropped back: F_low has the input's size, F_whole's
    channels; 6x5 -> 3x3 -> 2x2 -> (4x4 cropped to) 3x3 -> (6x6 cropped to) 6x5."""
    module = LowFrequencyFeatureModule(2, in_channels=16, out_channels=4, channels=8)
    sizes = {}
    for name in ("down_1", "down_2", "up_1", "up_2"):
        getattr(module, name).register_forward_hook(
            lambda m, i, o, name=name: sizes.__setitem__(name, tuple(o.shape[2:]))
        )
    out = module.train()(torch.randn(2, 16, *bottom))
    assert out.shape == (2, 4, *bottom)
    half = tuple(-(-s // 2) for s in bottom)
    quarter = tuple(-(-s // 2) for s in half)
    assert sizes == {"down_1": half, "down_2": quarter, "up_1": half, "up_2": tuple(bottom)}


def test_f_low_is_upsampled_to_f_whole():
    net = UNetPlusPlusEdge(features=TINY).eval()
    with torch.no_grad():
        bottom, whole = net.features(torch.randn(1, 1, 96, 80))
        low = net.low_frequency(bottom, list(whole.shape[2:]))
    assert bottom.shape == (1, TINY[4], 6, 5)
    assert whole.shape == low.shape == (1, TINY[5], 96, 80)


def test_default_network_matches_fig1_channels():
    net = UNetPlusPlusEdge()
    assert net.lffgm.down_1.conv.in_channels == 256  # the deepest feature map x_4_0
    assert net.lffgm.down_1.conv.out_channels == 32  # Fig. 1: 32 channels in each feature map
    assert net.lffgm.fuse.conv.in_channels == 32 + 256 and net.lffgm.fuse.conv.out_channels == 32
    assert net.edge_head.in_channels == 32 and net.unetpp.final_conv_0_4.in_channels == 32


def test_parameter_counts_and_the_inference_network_is_the_single_task_unetplusplus():
    """§1: "the same number of parameters ... as the single task stroke lesion segmentation network"."""
    plain = count(BasicUNetPlusPlus(spatial_dims=2, in_channels=1, out_channels=1, deep_supervision=False))
    assert plain == 2_410_180
    for edge in EDGE_BRANCHES:
        assert count(UNetPlusPlusEdge(edge=edge, inference_only=True)) == plain
    assert count(UNetPlusPlusEdge(edge="none")) == plain
    assert count(UNetPlusPlusEdge(edge="simple")) == plain + 33
    assert count(UNetPlusPlusEdge(edge="lffgm")) == plain + 33 + lffgm_parameters(256, 32, 32)
    assert lffgm_parameters(256, 32, 32) == 111_008
    tiny = count(BasicUNetPlusPlus(spatial_dims=2, in_channels=1, out_channels=1, features=TINY))
    assert count(UNetPlusPlusEdge(features=TINY, inference_only=True)) == tiny


def test_inference_network_keys_are_the_training_keys_without_the_edge_branch():
    training = UNetPlusPlusEdge(features=TINY)
    inference = UNetPlusPlusEdge(features=TINY, inference_only=True)
    assert inference.lffgm is None and inference.edge_head is None and inference.head_names == ["lesion"]
    plain = BasicUNetPlusPlus(spatial_dims=2, in_channels=1, out_channels=1, features=TINY)
    assert set(inference.state_dict()) == {f"unetpp.{k}" for k in plain.state_dict()}
    extra = set(training.state_dict()) - set(inference.state_dict())
    assert set(inference.state_dict()) < set(training.state_dict())
    assert extra and all(k.startswith(("lffgm.", "edge_head.")) for k in extra)
    assert set(strip_edge_branch(training.state_dict())) == set(inference.state_dict())


def test_training_checkpoint_loads_strictly_into_the_inference_network(tmp_path):
    torch.manual_seed(0)
    training = UNetPlusPlusEdge(features=TINY)
    TrainingHeads(training).train()(torch.randn(2, 1, 32, 32))  # non-trivial batch-norm statistics
    training.eval()
    state = training.state_dict()
    inference = UNetPlusPlusEdge(features=TINY, inference_only=True).eval()
    result = inference.load_state_dict(state)  # strict
    assert not result.missing_keys and not result.unexpected_keys
    assert any(k.startswith("lffgm.") for k in state)  # the caller's dict keeps its entries
    x = torch.randn(2, 1, 96, 80)
    with torch.no_grad():
        torch.testing.assert_close(inference(x), training(x))
    # the project's loader (a plain state_dict file, strict) and an edge="none" network take it too
    torch.save(state, tmp_path / "model.pt")
    load_network_weights(UNetPlusPlusEdge(features=TINY, edge="none"), tmp_path / "model.pt")
    # only the edge branch is dropped: other mismatches still fail
    with pytest.raises(RuntimeError, match="bogus"):
        inference.load_state_dict({**state, "bogus.weight": torch.zeros(1)})
    with pytest.raises(RuntimeError, match="lffgm"):  # a network with an edge head is not an inference net
        UNetPlusPlusEdge(features=TINY, edge="simple").load_state_dict(state)
    with pytest.raises(RuntimeError, match="Missing key"):  # and the training net needs its edge branch
        UNetPlusPlusEdge(features=TINY).load_state_dict(strip_edge_branch(state))


def test_gradients_reach_the_edge_branch_and_the_shared_encoder():
    torch.manual_seed(0)
    net = UNetPlusPlusEdge(features=TINY)
    out = TrainingHeads(net).train()(torch.randn(2, 1, 32, 32))
    out["edge"].square().mean().backward()
    for name in ("lffgm.down_1.conv.weight", "lffgm.fuse.conv.weight", "edge_head.weight"):
        grad = net.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    assert net.unetpp.conv_0_0.conv_0.conv.weight.grad.abs().sum() > 0  # the shared UNet++
    assert net.unetpp.conv_4_0.convs.conv_0.conv.weight.grad.abs().sum() > 0  # via the LFFGM
    assert net.unetpp.final_conv_0_4.weight.grad is None  # the lesion head is not the edge's
    net.zero_grad(set_to_none=True)
    TrainingHeads(net)(torch.randn(2, 1, 32, 32))["lesion"].mean().backward()
    assert net.edge_head.weight.grad is None and net.lffgm.fuse.conv.weight.grad is None


def test_switches_and_errors():
    plain = UNetPlusPlusEdge(features=TINY, edge="none")
    assert plain.head_names == ["lesion"] and plain.lffgm is None and plain.edge_head is None
    simple = UNetPlusPlusEdge(features=TINY, edge="simple")
    assert simple.lffgm is None and simple.edge_head is not None
    both = UNetPlusPlusEdge(features=TINY, pred_heads=["lesion", "edge"], inference_only=True).eval()
    assert both.edge_head is not None  # inference_only keeps the heads pred_heads asks for
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        heads = both.heads(x)
        torch.testing.assert_close(both(x), torch.cat([heads["lesion"], heads["edge"]], dim=1))
    with pytest.raises(ValueError, match="edge must be one of"):
        UNetPlusPlusEdge(edge="canny")
    with pytest.raises(ValueError, match="subset"):
        UNetPlusPlusEdge(features=TINY, edge="none", pred_heads=["lesion", "edge"])


def test_three_dimensional_variant_runs():
    net = UNetPlusPlusEdge(spatial_dims=3, features=TINY)
    # 32x16x32: the UNet++'s instance norm needs more than one voxel at its 1/16 bottom (2x1x2)
    out = TrainingHeads(net)(torch.randn(2, 1, 32, 16, 32))
    assert out["lesion"].shape == out["edge"].shape == (2, 1, 32, 16, 32)


@pytest.mark.parametrize("inference_only", [True, False])
def test_torchscript_matches_eager(inference_only):
    torch.manual_seed(0)
    net = UNetPlusPlusEdge(features=TINY, inference_only=inference_only).eval()
    scripted = torch.jit.script(net)
    for size in SIZES:
        x = torch.randn(2, 1, *size)
        with torch.no_grad():
            torch.testing.assert_close(scripted(x), net(x))
            if not inference_only:
                scripted_heads, heads = scripted.heads(x), net.heads(x)
                assert set(scripted_heads) == {"lesion", "edge"}
                for name, value in heads.items():
                    torch.testing.assert_close(scripted_heads[name], value)


@pytest.mark.parametrize("pred_heads", [["lesion"], ["lesion", "edge"]])
def test_onnx_export_matches_eager(pred_heads):
    """The inference network, and (to export the LFFGM's ceil pooling and crops) both heads at 96x80."""
    onnxruntime = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    net = UNetPlusPlusEdge(features=TINY, pred_heads=pred_heads, inference_only=True).eval()
    size = (96, 80)
    buffer = io.BytesIO()
    torch.onnx.export(
        net,
        (torch.rand(1, 1, *size),),
        buffer,
        input_names=["image"],
        output_names=["pred"],
        dynamic_axes={"image": {0: "batch"}, "pred": {0: "batch"}},
        dynamo=False,
    )
    session = onnxruntime.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 1, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = net(x).numpy()
    (exported,) = session.run(None, {"image": x.numpy()})
    assert exported.shape == (2, len(pred_heads), *size)
    np.testing.assert_allclose(exported, expected, rtol=1e-4, atol=1e-4)


def test_a_few_training_steps_lower_the_loss():
    """Eq. 6 with the paper's γ, λ, δ = 1, 1, 10 and Adam (§3.2), on a bright disc: the loss falls, and the
    lesion Dice of the inference output rises (the UNet++'s instance norm is the same in both modes)."""
    torch.manual_seed(0)
    grid = torch.stack(torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij"))
    lesion = (((grid[0] - 14) ** 2 + (grid[1] - 18) ** 2) < 36).float()[None]
    image = (lesion + 0.2 * torch.randn(1, 32, 32, generator=torch.Generator().manual_seed(0)))[None]
    edge = EdgeTargetsd("label", "edge")({"label": lesion})["edge"][None]
    image, targets = image.expand(2, -1, -1, -1), {"lesion": lesion[None].expand(2, -1, -1, -1)}
    targets["edge"] = edge.expand(2, -1, -1, -1)
    net = UNetPlusPlusEdge(features=(8, 8, 16, 16, 32, 8))
    training = TrainingHeads(net).train()
    loss_fn = MultiTaskLoss(
        {"lesion": DiceCELaplacianLoss(1.0, 10.0), "edge": DiceCELoss(sigmoid=True, batch=True)},
        {"lesion": 1.0, "edge": 1.0},
    )
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)

    def lesion_dice() -> float:
        with torch.no_grad():
            p = torch.sigmoid(net(image[:1]))  # the inference path
        return float(2 * (p * lesion).sum() / (p.sum() + lesion.sum()))

    dice_start, losses = lesion_dice(), []
    for _ in range(40):
        optimiser.zero_grad()
        loss = loss_fn(training(image), targets)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.6 * losses[0], losses
    assert set(loss_fn.losses["lesion"].last_terms) == {"mask", "laplacian"}
    dice_end = lesion_dice()
    assert dice_end > dice_start + 0.15, (dice_start, dice_end)
