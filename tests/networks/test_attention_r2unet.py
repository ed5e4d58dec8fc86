"""Shapes, heads, parameter count, APR gate, SE dropout and a tiny overfit of the Attention R2U-Net."""

import pytest
import torch
from monai.losses import DiceLoss

from common.networks import (
    APRAttentionGate,
    AttentionPreActivationResidual,
    AttentionR2UNet,
    PreActivationResidualUnit,
)
from common.networks.attention_r2unet import ENCODER_UNITS, DecoderStage, PreActivationConvBlock
from common.networks.blocks import SEWithDropout

TINY = (4, 8, 16, 32)


@pytest.fixture(autouse=True)
def one_thread():
    """These models are tiny: one intra-op thread is fastest, and on a loaded 2-core machine two OpenMP
    threads were ~100x slower (spin-waiting)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


HEADS = {"wt", "et", "ncr", "ed"}


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def expected_parameters(
    features=(32, 64, 128, 256),
    in_channels=4,
    dims=2,
    reduction=16,
    per_channel_gate=False,
    heads=True,
    encoder_unit="apr",
    skip_gates=False,
) -> int:
    """Parameter count from the architecture of §2.1-2.3, layer by layer (BN: weight + bias)."""
    k3, k2 = 3**dims, 2**dims

    def se(c):  # excitation MLP c -> c // r -> c with biases; r capped at c // 2 for narrow layers
        h = c // max(1, min(reduction, c // 2))
        return c * h + h + h * c + c

    def preact_block(cin, cout):  # BN, ReLU, conv3 (no bias) ; BN, ReLU, conv3 (bias)
        return 2 * cin + k3 * cin * cout + 2 * cout + k3 * cout * cout + cout

    def apr(cin, cout):
        projection = 0 if cin == cout or encoder_unit == "plain" else cin * cout
        gate = cout * (cout if per_channel_gate else 1) + (cout if per_channel_gate else 1)
        return preact_block(cin, cout) + projection + (gate if encoder_unit == "apr" else 0)

    def skip_gate(c):  # Attention U-Net gate: W_g, W_x (1x1 conv c -> c/2 + BN), psi (1x1 conv -> 1 + BN)
        f = c // 2
        return 2 * (c * f + f + 2 * f) + f + 1 + 2 if skip_gates else 0

    total = k3 * in_channels * features[0] + features[0]  # stem
    channels = [features[0], *features]
    total += sum(apr(channels[i], channels[i + 1]) + se(channels[i + 1]) for i in range(len(features)))
    for i in range(len(features) - 1):  # decoder: deconv C_{i+1} -> C_i, block 2 C_i -> C_i, SE
        c = features[i]
        total += k2 * features[i + 1] * c + c + preact_block(2 * c, c) + se(c) + skip_gate(c)
    total += features[0] + 1  # whole-tumour head
    if heads:
        total += sum(features[level] + 1 for level in (0, 1, 2))
    return total


@pytest.mark.parametrize("size", [(144, 176), (64, 40)])
def test_output_heads_and_shapes_2d(size):
    net = AttentionR2UNet(features=TINY).eval()
    with torch.no_grad():
        out = net.heads(torch.randn(2, 4, *size))
    assert set(out) == HEADS
    for logits in out.values():
        assert logits.shape == (2, 1, *size)


def test_default_model_runs_on_paper_slice_size():
    net = AttentionR2UNet().eval()
    with torch.no_grad():
        out = net.heads(torch.randn(1, 4, 144, 176))
    assert {k: tuple(v.shape) for k, v in out.items()} == {k: (1, 1, 144, 176) for k in HEADS}


def test_tiny_3d_variant():
    net = AttentionR2UNet(spatial_dims=3, features=(2, 4, 8, 8)).eval()
    with torch.no_grad():
        out = net.heads(torch.randn(1, 4, 16, 8, 24))
    assert set(out) == HEADS
    assert all(v.shape == (1, 1, 16, 8, 24) for v in out.values())


def test_nontrainable_upsampling_option():
    net = AttentionR2UNet(features=TINY, upsample="nontrainable").eval()
    with torch.no_grad():
        out = net.heads(torch.randn(1, 4, 24, 32))
    assert all(v.shape == (1, 1, 24, 32) for v in out.values())


def test_without_deep_supervision_only_whole_tumour():
    net = AttentionR2UNet(features=TINY, deep_supervision=False).eval()
    with torch.no_grad():
        out = net.heads(torch.randn(1, 4, 32, 32))
    assert list(out) == ["wt"]
    assert count(AttentionR2UNet(features=TINY)) - count(net) == sum(c + 1 for c in TINY[:3])


def test_rejects_indivisible_input_and_bad_levels():
    with pytest.raises(ValueError, match="divisible by 8"):
        AttentionR2UNet(features=TINY)(torch.randn(1, 4, 36, 32))
    with pytest.raises(ValueError, match="aux_levels"):
        AttentionR2UNet(features=TINY, aux_levels={"et": 3})


def test_aux_heads_sit_on_the_documented_decoder_levels():
    net = AttentionR2UNet()
    widths = {name: head.in_channels for name, head in net.aux_heads.items()}
    assert widths == {"et": 32, "ncr": 64, "ed": 128}  # full, 1/2 and 1/4 resolution
    swapped = AttentionR2UNet(aux_levels={"ed": 0, "et": 1, "ncr": 2})
    assert {name: head.in_channels for name, head in swapped.aux_heads.items()} == {
        "ed": 32,
        "et": 64,
        "ncr": 128,
    }


def test_parameter_count_matches_architecture():
    assert count(AttentionR2UNet()) == expected_parameters() == 1_995_284
    assert count(AttentionR2UNet(spatial_dims=3)) == expected_parameters(dims=3) == 5_690_132
    assert count(AttentionR2UNet(deep_supervision=False)) == expected_parameters(heads=False)
    wide = (48, 96, 192, 384)
    assert count(AttentionR2UNet(features=wide)) == expected_parameters(features=wide)
    assert count(AttentionR2UNet(per_channel_gate=True)) == expected_parameters(per_channel_gate=True)


@pytest.mark.parametrize("unit", ENCODER_UNITS)
@pytest.mark.parametrize("skip_gates", [False, True])
def test_apr_study_variants(unit, skip_gates):
    """Table 3's structures (§3.6.1): plain units, residual units, residual units with Attention U-Net
    skip gates, APR; parameter count from the architecture, scriptable, same output shape."""
    net = AttentionR2UNet(features=TINY, encoder_unit=unit, skip_gates=skip_gates, deep_supervision=False)
    assert count(net) == expected_parameters(
        features=TINY, heads=False, encoder_unit=unit, skip_gates=skip_gates
    )
    first = net.encoder[1][0]
    assert isinstance(
        first,
        {"plain": PreActivationConvBlock, "residual": PreActivationResidualUnit}.get(
            unit, AttentionPreActivationResidual
        ),
    )
    x = torch.randn(1, 4, 32, 24)
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.script(net)(x), net(x))
    with pytest.raises(ValueError, match="encoder_unit"):
        AttentionR2UNet(encoder_unit="dense")


def _force_skip_gate(stage: DecoderStage, bias: float) -> None:
    psi = stage.skip_gate.psi[0].conv
    with torch.no_grad():
        psi.weight.zero_()
        psi.bias.fill_(bias)


def test_skip_gate_shuts_and_opens_the_skip_connection():
    """Attention U-Net gate on the skip: coefficients ~0 remove the skip, ~1 leave the plain stage."""
    torch.manual_seed(0)
    gated = DecoderStage(2, 16, 8, 4, 0.0, "deconv", skip_gate=True).eval()
    plain = DecoderStage(2, 16, 8, 4, 0.0, "deconv").eval()
    plain.load_state_dict({k: v for k, v in gated.state_dict().items() if "skip_gate" not in k})
    x, skip = torch.randn(1, 16, 4, 6), torch.randn(1, 8, 8, 12)
    with torch.no_grad():
        _force_skip_gate(gated, -50.0)
        torch.testing.assert_close(gated(x, skip), plain(x, torch.zeros_like(skip)))
        _force_skip_gate(gated, 50.0)
        torch.testing.assert_close(gated(x, skip), plain(x, skip))


def _force_gate(gate: APRAttentionGate, bias: float) -> None:
    with torch.no_grad():
        gate.conv.weight.zero_()
        gate.conv.bias.fill_(bias)


@pytest.mark.parametrize("per_channel", [False, True])
def test_apr_gate_closed_and_open(per_channel):
    """§2.3: y_{l+1} = y_l * sigmoid(W_y ReLU(y_l)); a shut gate zeroes the module, an open one passes
    the pre-activation residual unit's output through unchanged."""
    torch.manual_seed(0)
    apr = AttentionPreActivationResidual(2, 4, 8, per_channel_gate=per_channel).eval()
    assert apr.gate.conv.out_channels == (8 if per_channel else 1)
    x = torch.randn(2, 4, 12, 10)
    with torch.no_grad():
        unit_out = apr.unit(x)
        _force_gate(apr.gate, -50.0)
        assert apr(x).abs().max() < 1e-12
        _force_gate(apr.gate, 50.0)
        torch.testing.assert_close(apr(x), unit_out)


def test_apr_gate_formula():
    torch.manual_seed(0)
    gate = APRAttentionGate(2, 6)
    y = torch.randn(2, 6, 5, 7)
    expected = y * torch.sigmoid(gate.conv(torch.relu(y)))
    torch.testing.assert_close(gate(y), expected)


def test_residual_unit_identity_and_projection():
    same = PreActivationResidualUnit(2, 8, 8).eval()
    x = torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(same(x), x + same.residual(x))
    assert isinstance(PreActivationResidualUnit(2, 8, 16).shortcut, torch.nn.Conv2d)


def test_se_dropout_train_vs_eval():
    torch.manual_seed(0)
    se = SEWithDropout(2, 16, reduction=4, dropout=0.5)
    x = torch.randn(2, 16, 6, 6)
    se.eval()
    torch.testing.assert_close(se(x), se(x))
    se.train()
    assert not torch.equal(se(x), se(x))
    net = AttentionR2UNet(features=TINY, se_dropout=0.5)
    x = torch.randn(1, 4, 16, 16)
    with torch.no_grad():
        net.train()
        assert not torch.equal(net.heads(x)["wt"], net.heads(x)["wt"])
        net.eval()
        torch.testing.assert_close(net.heads(x)["wt"], net.heads(x)["wt"])


def test_tiny_overfit_reduces_whole_tumour_dice_loss():
    torch.manual_seed(0)
    net = AttentionR2UNet(features=(8, 16, 32, 64), se_dropout=0.1)
    x = torch.rand(2, 4, 32, 32)
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    blob = (((yy - 14) ** 2 + (xx - 18) ** 2) < 64).float()
    target = blob.expand(2, 1, 32, 32)
    x[:, 0:1] += target  # FLAIR-like hyperintensity over the lesion
    loss_fn = DiceLoss(sigmoid=True)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    losses = []
    for _ in range(30):
        optimiser.zero_grad()
        loss = loss_fn(net.heads(x)["wt"], target)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
