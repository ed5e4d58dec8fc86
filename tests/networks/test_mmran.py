"""Shapes, parameter counts and the attention ablation switch of the MMRAN network."""

import pytest
import torch

from common.networks import MMRAN
from common.networks.blocks import (
    DualPoolChannelAttention,
    MultiscaleModule,
    SpatialPyramidPooling,
    attention_block,
)

TINY = (8, 16, 32, 64)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("attention", ["none", "se", "scse", "mram"])
def test_mmran_output_shapes_for_each_attention(attention):
    net = MMRAN(features=TINY, attention=attention, cls_hidden=16).eval()
    with torch.no_grad():
        out = net.heads(torch.randn(2, 1, 64, 96))
    assert set(out) == {"seg", "cls"}
    assert out["seg"].shape == (2, 1, 64, 96)
    assert out["cls"].shape == (2, 3)


def test_mmran_classifier_accepts_any_input_size():
    """SPP makes the classification branch independent of the input size (§3.1)."""
    net = MMRAN(features=TINY, cls_hidden=16).eval()
    with torch.no_grad():
        small = net.heads(torch.randn(1, 1, 32, 32))
        large = net.heads(torch.randn(1, 1, 128, 80))
    assert small["cls"].shape == large["cls"].shape == (1, 3)


def test_mmran_rejects_indivisible_input():
    net = MMRAN(features=TINY)
    with pytest.raises(ValueError, match="divisible by 8"):
        net(torch.randn(1, 1, 60, 64))


def test_mmran_rejects_unknown_attention():
    with pytest.raises(ValueError, match="attention must be one of"):
        MMRAN(features=TINY, attention="cbam")


def test_full_size_parameter_count_near_paper():
    """The paper reports 42.73 M parameters (Table 3); ours, by construction, is 45.20 M (see docs)."""
    full = MMRAN()
    assert count(full) == pytest.approx(45.20e6, rel=0.005)
    baseline = MMRAN(attention="none")
    # the MRAM stages add the multiscale convolutions: sum over levels of 4 branches C -> C/4, k = 3, 5, 7, 9
    msm = sum(c * (c // 4) * (9 + 25 + 49 + 81) for c in (64, 128, 256, 512))
    assert count(full) > count(baseline) + msm - sum(9 * c * c for c in (64, 128, 256, 512))


def test_multiscale_module_uses_kernels_3_5_7_9_and_keeps_channels():
    msm = MultiscaleModule(2, 16)
    kernels = [branch.conv.kernel_size for branch in msm.branches]
    assert kernels == [(3, 3), (5, 5), (7, 7), (9, 9)]
    assert msm(torch.randn(1, 16, 20, 20)).shape == (1, 16, 20, 20)


def test_channel_attention_is_product_of_two_sigmoid_branches():
    """eq. 5: M_c = sigmoid(MLP(GAP)) * sigmoid(MLP'(GMP)), computed here independently."""
    torch.manual_seed(0)
    att = DualPoolChannelAttention(2, 8, reduction=2)
    x = torch.randn(3, 8, 5, 6)
    gap, gmp = x.mean(dim=(2, 3)), x.amax(dim=(2, 3))
    expected = torch.sigmoid(att.avg_mlp(gap)) * torch.sigmoid(att.max_mlp(gmp))
    torch.testing.assert_close(att(x).view(3, 8), expected)


def test_mram_is_residual_over_multiscale_features():
    """eq. 9: F_att = F' + F^; with the spatial gate forced shut F^ = 0 and the output is F'."""
    mram = attention_block("mram", 2, 8, reduction=2).eval()
    conv = mram.spatial_gate[0]
    torch.nn.init.zeros_(conv.weight)
    torch.nn.init.constant_(conv.bias, -1e4)
    x = torch.randn(2, 8, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(mram(x), mram.multiscale(x))


def test_spatial_pyramid_pooling_length():
    spp = SpatialPyramidPooling(2, (1, 2, 4))
    assert spp.bins == 21
    assert spp(torch.randn(2, 5, 9, 13)).shape == (2, 5 * 21)


def test_mmran_3d_variant_runs():
    net = MMRAN(spatial_dims=3, features=(4, 8, 16), cls_hidden=8, spp_levels=(1, 2)).eval()
    with torch.no_grad():
        out = net.heads(torch.randn(1, 1, 16, 16, 16))
    assert out["seg"].shape == (1, 1, 16, 16, 16) and out["cls"].shape == (1, 3)


def test_pred_is_tumour_logit_then_class_logits_over_the_image():
    """The inference output carries both tasks: channel 0 the mask logit, then the class logits, constant."""
    net = MMRAN(features=TINY, cls_hidden=16).eval()
    x = torch.randn(2, 1, 32, 48)
    with torch.no_grad():
        heads, pred = net.heads(x), net(x)
    assert pred.shape == (2, 4, 32, 48)
    torch.testing.assert_close(pred[:, :1], heads["seg"])
    torch.testing.assert_close(pred[:, 1:], heads["cls"][:, :, None, None].expand(-1, -1, 32, 48))
