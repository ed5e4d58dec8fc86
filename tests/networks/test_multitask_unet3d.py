"""The 3D U-Net variants of paper 002 (§IV, Fig. 5-6): heads, shapes, shared parameters, export, overfit."""

import io

import numpy as np
import pytest
import torch
from monai.losses import GeneralizedDiceLoss

from common.losses import GeneralizedDiceTPRLoss, MultiTaskLoss
from common.networks import TISSUE_CLASSES, MultiTaskUNet3D, TrainingHeads
from common.networks.multitask_unet3d import INPUT_CHANNELS, VARIANTS

TINY = (4, 8, 16)
SIZE = (32, 32, 32)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread avoids OpenMP spin-waiting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def expected_parameters(features=(32, 64, 128, 256, 512), in_channels=4, tissue=False) -> int:
    """Fig. 5's 3D U-Net counted layer by layer: 3x3x3 convolutions with bias, each followed by an affine
    instance norm (2 per channel); 2x2x2 transposed convolutions halving the channels; 1x1x1 heads."""

    def two_conv(cin, cout):
        return (27 * cin * cout + cout + 2 * cout) + (27 * cout * cout + cout + 2 * cout)

    total = two_conv(in_channels, features[0])  # first level
    total += sum(two_conv(features[i], features[i + 1]) for i in range(len(features) - 1))  # pool + convs
    for i in range(len(features) - 1):  # up-convolution c -> c/2, concatenation with the skip, two convs
        c, half = features[i + 1], features[i + 1] // 2
        total += 8 * c * half + half + two_conv(features[i] + half, features[i])
    total += features[0] + 1  # lesion head
    if tissue:
        total += 4 * features[0] + 4  # tissue head
    return total


@pytest.mark.parametrize("variant", VARIANTS)
def test_heads_and_shapes(variant):
    net = MultiTaskUNet3D(variant, features=TINY).eval()
    channels = {"plain": 4, "multi_input": 7, "multi_output": 4}[variant]
    assert net.in_channels == channels == len(INPUT_CHANNELS[variant])
    x = torch.randn(2, channels, *SIZE)
    with torch.no_grad():
        heads, pred = net.heads(x), net(x)
    if variant == "multi_output":
        assert {k: tuple(v.shape) for k, v in heads.items()} == {
            "lesion": (2, 1, *SIZE),
            "tissue": (2, len(TISSUE_CLASSES), *SIZE),
        }
        torch.testing.assert_close(pred, torch.cat([heads["lesion"], heads["tissue"]], dim=1))
    else:
        assert {k: tuple(v.shape) for k, v in heads.items()} == {"lesion": (2, 1, *SIZE)}
        torch.testing.assert_close(pred, heads["lesion"])


def test_tissue_classes_and_input_channel_order():
    assert TISSUE_CLASSES == ("background", "CSF", "GM", "WM")
    assert INPUT_CHANNELS["multi_input"] == ("FLAIR", "MPRAGE", "PD", "T2", "CSF", "GM", "WM")
    assert INPUT_CHANNELS["plain"] == INPUT_CHANNELS["multi_output"] == ("FLAIR", "MPRAGE", "PD", "T2")


def test_pred_heads_select_the_inference_output():
    net = MultiTaskUNet3D("multi_output", features=TINY, pred_heads=["lesion"]).eval()
    x = torch.randn(1, 4, *SIZE)
    with torch.no_grad():
        torch.testing.assert_close(net(x), net.heads(x)["lesion"])
    with pytest.raises(ValueError, match="subset"):
        MultiTaskUNet3D("plain", features=TINY, pred_heads=["tissue"])


def test_parameter_counts_match_architecture():
    assert count(MultiTaskUNet3D("plain")) == expected_parameters() == 22_583_809
    assert count(MultiTaskUNet3D("multi_input")) == expected_parameters(in_channels=7) == 22_586_401
    assert count(MultiTaskUNet3D("multi_output")) == expected_parameters(tissue=True) == 22_583_941
    four_levels = (32, 64, 128, 256)
    assert count(MultiTaskUNet3D(features=four_levels)) == expected_parameters(four_levels)
    assert count(MultiTaskUNet3D("multi_output", features=TINY)) == expected_parameters(TINY, tissue=True)


def test_plain_and_multi_input_differ_only_in_the_first_convolution():
    plain, multi = MultiTaskUNet3D("plain", features=TINY), MultiTaskUNet3D("multi_input", features=TINY)
    shapes_plain = {k: tuple(v.shape) for k, v in plain.state_dict().items()}
    shapes_multi = {k: tuple(v.shape) for k, v in multi.state_dict().items()}
    assert shapes_plain.keys() == shapes_multi.keys()
    differing = {k for k in shapes_plain if shapes_plain[k] != shapes_multi[k]}
    assert differing == {"stem.conv_0.conv.weight"}
    assert shapes_multi["stem.conv_0.conv.weight"] == (TINY[0], 7, 3, 3, 3)
    # three extra input channels: 3 * 27 * features[0] weights more, nothing else
    assert count(multi) - count(plain) == 3 * 27 * TINY[0]


def test_multi_output_shares_everything_but_the_last_layer():
    """Fig. 6: the plain network's parameters (same names) plus one extra final 1x1x1 layer; loaded with the
    plain network's weights it gives the same lesion logits; the tissue loss trains the shared layers and
    the tissue head, never the lesion head."""
    torch.manual_seed(0)
    plain = MultiTaskUNet3D("plain", features=TINY).eval()
    multi = MultiTaskUNet3D("multi_output", features=TINY).eval()
    assert set(multi.state_dict()) - set(plain.state_dict()) == {"tissue_head.weight", "tissue_head.bias"}
    assert set(plain.state_dict()) <= set(multi.state_dict())
    missing, unexpected = multi.load_state_dict(plain.state_dict(), strict=False)
    assert set(missing) == {"tissue_head.weight", "tissue_head.bias"} and not unexpected
    x = torch.randn(1, 4, *SIZE)
    with torch.no_grad():
        torch.testing.assert_close(multi.heads(x)["lesion"], plain(x))
    multi.train()
    multi.heads(x)["tissue"].square().mean().backward()
    assert multi.lesion_head.weight.grad is None
    assert multi.tissue_head.weight.grad is not None and multi.stem.conv_0.conv.weight.grad is not None


def test_in_channels_override_and_errors():
    net = MultiTaskUNet3D("plain", in_channels=2, features=TINY).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 2, 16, 16, 16)).shape == (1, 1, 16, 16, 16)
    with pytest.raises(ValueError, match="variant"):
        MultiTaskUNet3D("multi_task")
    with pytest.raises(ValueError, match="divisible by 4"):
        MultiTaskUNet3D(features=TINY)(torch.randn(1, 4, 32, 32, 30))
    with pytest.raises(ValueError, match="7 input channels"):
        MultiTaskUNet3D("multi_input", features=TINY)(torch.randn(1, 4, *SIZE))
    with pytest.raises(ValueError, match="two levels"):
        MultiTaskUNet3D(features=(8,))


def test_default_network_runs_on_a_paper_patch():
    net = MultiTaskUNet3D("multi_output").eval()
    assert net.divisor == 16  # a 64^3 patch reaches a 4^3 bottleneck
    with torch.no_grad():
        out = net.heads(torch.randn(1, 4, 64, 64, 64))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "lesion": (1, 1, 64, 64, 64),
        "tissue": (1, 4, 64, 64, 64),
    }


@pytest.mark.parametrize("variant", VARIANTS)
def test_torchscript_matches_eager(variant):
    net = MultiTaskUNet3D(variant, features=TINY).eval()
    x = torch.randn(2, net.in_channels, *SIZE)
    scripted = torch.jit.script(net)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), net(x))
        scripted_heads = scripted.heads(x)
        for name, value in net.heads(x).items():
            torch.testing.assert_close(scripted_heads[name], value)


def test_onnx_export_matches_eager():
    onnxruntime = pytest.importorskip("onnxruntime")
    net = MultiTaskUNet3D("multi_output", features=TINY).eval()
    buffer = io.BytesIO()
    torch.onnx.export(
        net,
        (torch.rand(1, 4, *SIZE),),
        buffer,
        input_names=["image"],
        output_names=["pred"],
        dynamic_axes={"image": {0: "batch"}, "pred": {0: "batch"}},
        dynamo=False,
    )
    session = onnxruntime.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 4, *SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = net(x).numpy()
    (exported,) = session.run(None, {"image": x.numpy()})
    assert exported.shape == (2, 5, *SIZE)
    np.testing.assert_allclose(exported, expected, rtol=1e-4, atol=1e-4)


def phantom(size=32):
    """Four modalities with a bright FLAIR blob (the lesion) inside a white-matter shell inside grey matter
    inside CSF; tissue labels in TISSUE_CLASSES order."""
    grid = torch.stack(torch.meshgrid(*[torch.arange(size, dtype=torch.float32)] * 3, indexing="ij"))
    radius = (grid - (size - 1) / 2).square().sum(0).sqrt()
    tissue = torch.zeros(size, size, size, dtype=torch.long)
    tissue[radius < 15] = 1  # CSF
    tissue[radius < 12] = 2  # GM
    tissue[radius < 8] = 3  # WM
    lesion = ((grid[0] - 18).square() + (grid[1] - 14).square() + (grid[2] - 16).square() < 36).float()
    generator = torch.Generator().manual_seed(0)
    image = 0.1 * torch.randn(4, size, size, size, generator=generator) + tissue.float() / 3
    image[0] += 1.5 * lesion  # FLAIR hyperintensity
    return image[None], lesion[None, None], tissue[None, None]


def soft_dice(logits, target):
    p = torch.sigmoid(logits)
    return (2 * (p * target).sum() / (p.sum() + target.sum())).item()


def test_tiny_overfit_multi_output_raises_lesion_dice():
    """Both heads trained together (eq. 1-3 on the lesion, generalised Dice on the tissue) through
    TrainingHeads and MultiTaskLoss, Adam as §VII: the lesion Dice rises and the tissue loss falls."""
    torch.manual_seed(0)
    image, lesion, tissue = phantom()
    net = MultiTaskUNet3D("multi_output", features=(8, 16, 32))
    training = TrainingHeads(net)
    loss_fn = MultiTaskLoss(
        {
            "lesion": GeneralizedDiceTPRLoss(),
            "tissue": GeneralizedDiceLoss(softmax=True, to_onehot_y=True, smooth_nr=0.0, smooth_dr=1e-12),
        }
    )
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    targets = {"lesion": lesion, "tissue": tissue}
    training.train()
    with torch.no_grad():
        start = training(image)
    dice_start, tissue_start = (
        soft_dice(start["lesion"], lesion),
        loss_fn.losses["tissue"](start["tissue"], tissue),
    )
    for _ in range(60):
        optimiser.zero_grad()
        loss_fn(training(image), targets).backward()
        optimiser.step()
    with torch.no_grad():
        end = training(image)
    dice_end = soft_dice(end["lesion"], lesion)
    assert dice_end > max(0.3, 5 * dice_start), (dice_start, dice_end)
    assert loss_fn.losses["tissue"](end["tissue"], tissue) < 0.5 * tissue_start
