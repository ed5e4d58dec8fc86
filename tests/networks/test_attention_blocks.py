"""The composable attention of MMRAN's ablation (paper 000, §3.2, eq. 1-9, Table 2) against hand computations.

Each reference below is written from the equations with the module's own weights read out, not by calling
the module's parts, so a wrong wiring (order, gate input, residual term) shows up as a mismatch.
"""

import json
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from common.networks import MMRAN
from common.networks.blocks import (
    ATTENTION_PRESETS,
    ComposableAttention,
    DoubleConv,
    attention_block,
    attention_options,
)

REPO = Path(__file__).resolve().parents[2]
ABLATION = REPO / "bundles" / "mmran_brain_tumor_segmentation_classification" / "configs" / "ablation.json"
TINY = (8, 16, 32, 64)
SCSE = {"multiscale": False, "max_pool": False, "spatial": True, "arrangement": "parallel", "residual": False}
#: Table 2, row by row: the attention of each row as a complete option set ("none" is the baseline).
TABLE_2 = {
    "baseline": None,
    "baseline_se": {**SCSE, "spatial": False},
    "baseline_scse": SCSE,
    "baseline_scse_msm": {**SCSE, "multiscale": True},
    "baseline_scse_msm_gmp": {**SCSE, "multiscale": True, "max_pool": True},
    "baseline_scse_msm_gmp_res": {**SCSE, "multiscale": True, "max_pool": True, "residual": True},
    "baseline_mram": {
        **SCSE,
        "multiscale": True,
        "max_pool": True,
        "residual": True,
        "arrangement": "sequential",
    },
}
COMPOSITIONS = [options for options in TABLE_2.values() if options is not None]
COMPOSITION_IDS = [name for name, options in TABLE_2.items() if options is not None]


def mlp(seq: torch.nn.Module, v: torch.Tensor) -> torch.Tensor:
    """Linear -> ReLU -> Linear with the weights of ``seq``."""
    hidden = F.relu(F.linear(v, seq[0].weight, seq[0].bias))
    return F.linear(hidden, seq[2].weight, seq[2].bias)


def channel_map(att: ComposableAttention, f: torch.Tensor) -> torch.Tensor:
    """eq. 3-5 on a 2D (B, C, H, W) tensor: sigmoid(MLP(GAP)) [* sigmoid(MLP'(GMP))], shape (B, C, 1, 1)."""
    ca = att.channel_attention
    m = torch.sigmoid(mlp(ca.avg_mlp, f.mean(dim=(2, 3))))
    if ca.max_mlp is not None:
        m = m * torch.sigmoid(mlp(ca.max_mlp, f.amax(dim=(2, 3))))
    return m[:, :, None, None]


def spatial_map(att: ComposableAttention, f: torch.Tensor) -> torch.Tensor:
    """eq. 7: sigmoid(conv1x1(f)) to one channel."""
    conv = att.spatial_gate[0]
    return torch.sigmoid(F.conv2d(f, conv.weight, conv.bias))


def multiscale_by_hand(att: ComposableAttention, x: torch.Tensor) -> torch.Tensor:
    """eq. 1-2 in eval mode: per branch conv (k = 3, 5, 7, 9, 'same' padding) -> BN -> ReLU, concatenated."""
    outs = []
    for branch in att.multiscale.branches:
        conv, bn = branch.conv, branch.adn.N
        y = F.conv2d(x, conv.weight, None, padding=conv.kernel_size[0] // 2)
        y = F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False, eps=bn.eps)
        outs.append(F.relu(y))
    return torch.cat(outs, dim=1)


def randomised(module: torch.nn.Module) -> torch.nn.Module:
    """Eval mode with non-trivial BN statistics, so that the multiscale reference is a real check."""
    torch.manual_seed(0)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return module.eval()


def build(options, channels: int = 8, reduction: int = 2, spatial_dims: int = 2) -> ComposableAttention:
    torch.manual_seed(0)
    return randomised(attention_block(options, spatial_dims, channels, reduction))


X = torch.randn(2, 8, 12, 10, generator=torch.Generator().manual_seed(1))


def test_se_preset_is_channel_excitation_only():
    """SE (Hu et al.): x * sigmoid(MLP(GAP(x))); no GMP branch, no spatial gate, no multiscale module."""
    att = build("se")
    assert att.multiscale is None and att.spatial_gate is None and att.channel_attention.max_mlp is None
    expected = X * torch.sigmoid(mlp(att.channel_attention.avg_mlp, X.mean(dim=(2, 3))))[:, :, None, None]
    with torch.no_grad():
        torch.testing.assert_close(att(X), expected)


def test_scse_preset_is_channel_plus_spatial_excitation():
    """scSE (Roy et al., MICCAI 2018): x * sigmoid(MLP(GAP(x))) + x * sigmoid(conv1x1(x))."""
    att = build("scse")
    c = att.channel_attention
    expected = X * torch.sigmoid(mlp(c.avg_mlp, X.mean(dim=(2, 3))))[:, :, None, None] + X * torch.sigmoid(
        F.conv2d(X, att.spatial_gate[0].weight, att.spatial_gate[0].bias)
    )
    with torch.no_grad():
        torch.testing.assert_close(att(X), expected)


def test_mram_preset_is_equation_9():
    """MRAM: F' = MSM(F); F_cSE = M_c(F') F' with M_c of both pools; F_att = F' + M_s(F_cSE) F_cSE."""
    att = build("mram")
    with torch.no_grad():
        f = multiscale_by_hand(att, X)
        torch.testing.assert_close(att.multiscale(X), f)
        f_cse = channel_map(att, f) * f
        expected = f + spatial_map(att, f_cse) * f_cse
        torch.testing.assert_close(att(X), expected)


@pytest.mark.parametrize("options", COMPOSITIONS, ids=COMPOSITION_IDS)
def test_each_table_2_composition_matches_its_equations(options):
    att = build(options)
    with torch.no_grad():
        f = multiscale_by_hand(att, X) if options["multiscale"] else X
        f_cse = channel_map(att, f) * f
        if not options["spatial"]:
            out = f_cse
        elif options["arrangement"] == "sequential":
            out = spatial_map(att, f_cse) * f_cse
        else:
            out = f_cse + spatial_map(att, f) * f
        if options["residual"]:
            out = out + f
        torch.testing.assert_close(att(X), out)


def test_mram_state_dict_keys_are_those_of_the_original_module():
    """Checkpoints of the MRAM keep loading: the submodule names did not change."""
    keys = {k.split(".")[0] + "." + k.split(".")[1] for k in build("mram").state_dict()}
    assert keys == {
        "multiscale.branches",
        "channel_attention.avg_mlp",
        "channel_attention.max_mlp",
        "spatial_gate.0",
    }


def test_sequential_and_parallel_differ_with_the_same_weights():
    parallel = build({"preset": "mram", "arrangement": "parallel"})
    sequential = build("mram")
    sequential.load_state_dict(parallel.state_dict())
    with torch.no_grad():
        assert not torch.allclose(parallel(X), sequential(X))


def test_residual_adds_the_multiscale_features():
    """Switching RES on adds exactly F' (the MSM output), and the input when there is no MSM."""
    for base in ({"multiscale": True, "max_pool": True}, {"multiscale": False}):
        plain = build(base)
        residual = build({**base, "residual": True})
        residual.load_state_dict(plain.state_dict())
        with torch.no_grad():
            f = plain.multiscale(X) if plain.multiscale is not None else X
            torch.testing.assert_close(residual(X) - plain(X), f)


def test_gmp_branch_changes_the_output():
    without = build({"multiscale": True})
    with_gmp = build({"multiscale": True, "max_pool": True})
    missing, unexpected = with_gmp.load_state_dict(without.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("channel_attention.max_mlp.") for k in missing)
    with torch.no_grad():
        assert not torch.allclose(with_gmp(X), without(X))


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("options", COMPOSITIONS, ids=COMPOSITION_IDS)
def test_each_composition_scripts_and_matches_eager(options, spatial_dims):
    torch.manual_seed(0)
    att = attention_block(options, spatial_dims, 8, 2).eval()
    scripted = torch.jit.script(att)
    x = torch.randn(2, 8, *([6] * spatial_dims))
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), att(x))


def test_narrow_layers_keep_at_least_one_hidden_unit():
    att = attention_block("mram", 2, 4, reduction=16)
    assert att.channel_attention.avg_mlp[0].out_features == 1
    assert att(torch.randn(1, 4, 8, 8)).shape == (1, 4, 8, 8)


def test_presets_and_mappings_resolve_to_complete_options():
    assert attention_options("none") is None
    assert attention_options("mram") == ATTENTION_PRESETS["mram"] == TABLE_2["baseline_mram"]
    assert attention_options("se") == TABLE_2["baseline_se"]
    assert attention_options({}) == attention_options("scse")  # a mapping starts from scSE by default
    assert attention_options({"preset": "scse", "multiscale": True}) == TABLE_2["baseline_scse_msm"]
    assert attention_options({"preset": "mram", "reduction": 4})["reduction"] == 4
    # the presets are not changed by a resolution
    attention_options("mram")["residual"] = False
    assert ATTENTION_PRESETS["mram"]["residual"] is True


def test_reduction_and_kernel_sizes_from_a_mapping():
    att = attention_block({"preset": "mram", "reduction": 4, "kernel_sizes": [3, 5]}, 2, 8, reduction=2)
    assert att.channel_attention.avg_mlp[0].out_features == 2
    assert [b.conv.kernel_size for b in att.multiscale.branches] == [(3, 3), (5, 5)]


@pytest.mark.parametrize(
    "attention, match",
    [
        ("cbam", "attention must be one of"),
        (3, "attention must be one of"),
        ({"multiscal": True}, r"unknown attention option\(s\) \['multiscal'\]"),
        ({"preset": "none"}, "attention preset must be one of"),
        ({"preset": "cbam"}, "attention preset must be one of"),
        ({"arrangement": "serial"}, "'arrangement' must be one of"),
        ({"residual": "yes"}, "'residual' must be true or false"),
        ({"max_pool": 1}, "'max_pool' must be true or false"),
        ({"reduction": 0}, "'reduction' must be a positive integer"),
        ({"kernel_sizes": [3, 4]}, "'kernel_sizes' must be a list of odd positive integers"),
    ],
)
def test_bad_attention_is_one_clear_value_error(attention, match):
    with pytest.raises(ValueError, match=match):
        attention_options(attention)
    with pytest.raises(ValueError, match=match):
        MMRAN(features=TINY, attention=attention)


@pytest.mark.parametrize("row", list(TABLE_2))
def test_mmran_with_each_table_2_row(row):
    """Output shapes, scripted = eager; the stage body is one conv unit iff there is a multiscale module."""
    options = TABLE_2[row]
    net = MMRAN(features=TINY, attention="none" if options is None else options, cls_hidden=16).eval()
    for stage in net.encoder:
        multiscale = options is not None and options["multiscale"]
        assert isinstance(stage.body, DoubleConv) is not multiscale
        assert (stage.shortcut is None) is (options is None)
    x = torch.randn(2, 1, 32, 48)
    with torch.no_grad():
        out, pred, scripted = net.heads(x), net(x), torch.jit.script(net)(x)
    assert out["seg"].shape == (2, 1, 32, 48) and out["cls"].shape == (2, 3)
    torch.testing.assert_close(scripted, pred)


def test_ablation_rows_are_the_papers_compositions():
    """configs/ablation.json's Table 2 rows resolve to the compositions above; PKP only in the last row."""
    tables = json.loads(ABLATION.read_text())["tables"]
    everything = {name: row for table in tables.values() for name, row in table.items()}

    def overrides(name: str) -> dict:  # a row that repeats another row (same_as) runs that row's overrides
        row = everything[name]
        return everything[row["same_as"]]["overrides"] if "same_as" in row else row["overrides"]

    rows = tables["Table 2: modules (dynamic weight training)"]
    assert list(rows) == [*TABLE_2, "baseline_mram_pkp"]
    for name, expected in TABLE_2.items():
        assert attention_options(overrides(name)["attention"]) == expected, name
        assert overrides(name)["fill_holes"] is False
    assert attention_options(overrides("baseline_mram_pkp")["attention"]) == TABLE_2["baseline_mram"]
    assert overrides("baseline_mram_pkp").get("fill_holes", True) is True
