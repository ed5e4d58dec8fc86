"""Attention R2U-Net with multi-task deep supervision (MTDS) for BraTS.

"Multi-Task Deep Supervision on Attention R2U-Net for Brain Tumor Segmentation" (authors S.M., J.T., F.G.),
Front. Oncol. 2021 (paper 001 in ``shared/papers``), §2.1-2.3, Fig. 1-4.

A 2D U-Net-like network (``spatial_dims=3`` also works). The encoder stacks attention pre-activation
residual (APR) modules, each followed by an SE module with dropout, with max-pool down-sampling in between;
the decoder up-samples, concatenates the skip, and applies a pre-activation convolution block and an SE
module per level. A 1x1 convolution gives the whole-tumour output and three auxiliary 1x1 heads on the
decoder levels are supervised by the tumour sub-regions (MTDS, §2.2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from monai.networks.blocks import ADN, UpSample
from monai.networks.layers.factories import Conv, Pool
from monai.networks.nets.attentionunet import AttentionBlock
from torch import nn
from torch.nn import functional as F

from .blocks import SEWithDropout
from .multihead import MultiHeadNetwork

#: Default decoder level of each auxiliary head; level 0 is the full-resolution (shallowest) level.
DEFAULT_AUX_LEVELS: dict[str, int] = {"et": 0, "ncr": 1, "ed": 2}

#: Encoder units of the APR study (§3.6.1, Table 3): plain pre-activation blocks (no shortcut, no gate),
#: pre-activation residual units (shortcut, no gate) and APR modules (shortcut and attention gate).
ENCODER_UNITS = ("plain", "residual", "apr")


class PreActivationUnit(nn.Sequential):
    """One pre-activation sub-unit ``F_r`` of §2.3: batch norm, ReLU, then a 3x3 convolution."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__(
            ADN(ordering="NA", in_channels=in_channels, act="RELU", norm="BATCH", norm_dim=spatial_dims),
            Conv[Conv.CONV, spatial_dims](in_channels, out_channels, kernel_size=3, padding=1, bias=bias),
        )


class PreActivationConvBlock(nn.Sequential):
    """Two cascaded pre-activation sub-units without a shortcut: ``F(x) = F_r(F_r(x))`` (§2.3).

    This is the residual function of the APR module, and on its own the decoder's "pre-activation
    convolution block" (§2.1). The first convolution has no bias because a batch norm follows it.
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int):
        super().__init__(
            PreActivationUnit(spatial_dims, in_channels, out_channels, bias=False),
            PreActivationUnit(spatial_dims, out_channels, out_channels, bias=True),
        )


class PreActivationResidualUnit(nn.Module):
    """Pre-activation residual unit (He et al., ECCV 2016; §2.3): ``x_{l+1} = x_l + F(x_l, w_l)``.

    The shortcut is the identity when the channel count is kept; when it changes (the first unit of each
    deeper encoder level, where the kernels double) it is a bias-free 1x1 projection of ``x_l`` (He et al.'s
    "1x1 convolutional shortcut", which §2.3 cites).
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int):
        super().__init__()
        self.residual = PreActivationConvBlock(spatial_dims, in_channels, out_channels)
        self.shortcut: nn.Module = (
            nn.Identity()
            if in_channels == out_channels
            else Conv[Conv.CONV, spatial_dims](in_channels, out_channels, kernel_size=1, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.residual(x)


class APRAttentionGate(nn.Module):
    """Attention gate of the APR module (§2.3, Fig. 4): ``y_{l+1} = y_l * sigmoid(W_y ReLU(y_l))``.

    ``W_y`` is a 1x1 convolution. By default it gives ONE channel, a spatial attention map broadcast over the
    feature channels: the paper says the gate "generates a gating signal to control the importance of
    features in different spatial regions, to suppress the feature response of irrelevant background
    regions" and takes its gates from Attention U-Net (ref. 31), whose attention coefficients are one
    scalar per pixel. ``per_channel=True`` gives ``C`` channels instead (an element-wise gate like He et
    al.'s "shortcut-only gating", which §2.3 also names).
    """

    def __init__(self, spatial_dims: int, channels: int, per_channel: bool = False):
        super().__init__()
        self.act = nn.ReLU()
        self.conv = Conv[Conv.CONV, spatial_dims](channels, channels if per_channel else 1, kernel_size=1)

    def gate(self, y: torch.Tensor) -> torch.Tensor:
        """The attention coefficients ``sigmoid(W_y ReLU(y))`` in [0, 1]."""
        return torch.sigmoid(self.conv(self.act(y)))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.gate(y)


class AttentionPreActivationResidual(nn.Module):
    """APR module (§2.3, Fig. 4): a pre-activation residual unit followed by an attention gate."""

    def __init__(
        self, spatial_dims: int, in_channels: int, out_channels: int, per_channel_gate: bool = False
    ):
        super().__init__()
        self.unit = PreActivationResidualUnit(spatial_dims, in_channels, out_channels)
        self.gate = APRAttentionGate(spatial_dims, out_channels, per_channel=per_channel_gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gate(self.unit(x))


def build_encoder_unit(
    kind: str, spatial_dims: int, in_channels: int, out_channels: int, per_channel_gate: bool = False
) -> nn.Module:
    """The encoder unit named by ``kind`` (one of :data:`ENCODER_UNITS`); the APR module by default."""
    if kind == "plain":
        return PreActivationConvBlock(spatial_dims, in_channels, out_channels)
    if kind == "residual":
        return PreActivationResidualUnit(spatial_dims, in_channels, out_channels)
    if kind == "apr":
        return AttentionPreActivationResidual(spatial_dims, in_channels, out_channels, per_channel_gate)
    raise ValueError(f"encoder_unit must be one of {ENCODER_UNITS}, got {kind!r}")


class DecoderStage(nn.Module):
    """Decoder level (§2.1): up-sample to half the channels, concatenate the skip, pre-activation
    convolution block, SE module with dropout.

    ``skip_gate=True`` gates the skip first, as Attention U-Net does (Oktay et al., MIDL 2018; the third
    structure of the APR study, §3.6.1): ``skip * sigmoid(psi(ReLU(W_x skip + W_g up)))`` with the
    up-sampled decoder features as the gating signal (MONAI's ``AttentionBlock``, intermediate width half
    the skip's channels).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        se_reduction: int,
        se_dropout: float,
        upsample: str,
        skip_gate: bool = False,
    ):
        super().__init__()
        self.up = UpSample(spatial_dims, in_channels, out_channels, scale_factor=2, mode=upsample)
        self.skip_gate: nn.Module | None = (
            AttentionBlock(spatial_dims, f_int=max(out_channels // 2, 1), f_g=out_channels, f_l=out_channels)
            if skip_gate
            else None
        )
        self.conv = PreActivationConvBlock(spatial_dims, 2 * out_channels, out_channels)
        self.se = SEWithDropout(spatial_dims, out_channels, se_reduction, se_dropout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = self.up(x)
        if self.skip_gate is not None:
            skip = self.skip_gate(up, skip)
        return self.se(self.conv(torch.cat([skip, up], dim=1)))


class AttentionR2UNet(MultiHeadNetwork):
    """Attention R2U-Net with multi-task deep supervision (Front. Oncol. 2021, Fig. 1).

    Encoder (§2.1): a 3x3 stem convolution lifts the modalities to ``features[0]`` channels, then each level
    is an APR module (Fig. 4) and an SE module with dropout (Fig. 2), with 2x max-pooling between levels:
    4 APR + 4 SE modules and 3 down-samplings for the paper's ``features=(32, 64, 128, 256)``. The stem
    follows the pre-activation ResNet (and ref. 24, whose 32-filter initial convolution the paper
    resembles): it lets the first residual unit keep an identity shortcut and keeps batch norm + ReLU off
    the raw intensities; deeper levels double the kernels with a 1x1 projection shortcut.

    Decoder (§2.1): per level, a learnable up-sampling (transposed 2x2 convolution, stride 2, halving the
    channels; ``upsample="nontrainable"`` uses linear interpolation + 1x1 convolution instead), skip
    concatenation, a pre-activation convolution block and an SE module with dropout: 3 up-samplings,
    3 blocks and 3 SE modules; then the 1x1 convolution of the whole-tumour output.

    Multi-task deep supervision (§2.2): 1x1 convolution heads on decoder levels, supervised by the
    enhancing tumour ("et"), the necrotic and non-enhancing core ("ncr") and the peritumoral oedema
    ("ed"). §2.2 puts the enhancing tumour on "the first deep supervision" because "the shallow layers of
    network can better capture the boundary details of the enhancing tumor area", and lists necrosis and
    oedema "respectively" as the other two. We read "shallow" as the high-resolution end of the U (the
    level fed by the first encoder skip, which carries the low-level boundary features): ``et`` on the
    full-resolution decoder level 0, ``ncr`` on level 1 (1/2) and ``ed``, the largest region, on level 2
    (1/4). Fig. 1's caption numbers the outputs ed, et, ncr; it names them but does not fix their depth,
    and where it conflicts with the text we follow the text. ``aux_levels`` overrides the placement.
    Coarser auxiliary logits are up-sampled (bi/trilinear) to the input size, so every head is supervised
    with full-resolution targets.

    The network returns LOGITS: the paper's final sigmoid (and one per auxiliary head) belongs to the loss
    and the post-processing (e.g. ``DiceCELoss(sigmoid=True)``, ``Activations(sigmoid=True)``).

    Args:
        spatial_dims: 2 (the paper: axial slices) or 3.
        in_channels: input modalities (FLAIR, T1, T1ce, T2).
        features: channels of the encoder levels; the last is the bottleneck. The input's spatial size
            must be divisible by ``2 ** (len(features) - 1)`` (8 by default; the paper crops to 144x176).
        se_reduction: reduction ratio of the SE excitation MLP (the paper gives none; Hu et al. use 16).
        se_dropout: dropout rate on the SE channel weights (the paper gives no value).
        per_channel_gate: APR attention gate with ``C`` output channels instead of one spatial map.
        encoder_unit: ``"apr"`` (the paper), or for the APR study (§3.6.1, Table 3) ``"residual"``
            (pre-activation residual units, no gate) or ``"plain"`` (no shortcut, no gate).
        skip_gates: Attention U-Net gates on the skip connections (Table 3's third structure, with
            ``encoder_unit="residual"``).
        upsample: ``"deconv"`` (default) or ``"nontrainable"``, see ``monai.networks.blocks.UpSample``.
        deep_supervision: return the three auxiliary heads as well as the whole tumour.
        aux_levels: decoder level (0 = full resolution) of each auxiliary head.
        pred_heads: the heads in the inference output (``forward``), in channel order; all by default.

    :meth:`heads` returns a dict of ``(B, 1, *spatial)`` logits: ``{"wt", "et", "ncr", "ed"}`` with deep
    supervision, else ``{"wt"}``. ``forward`` returns them concatenated in ``pred_heads`` order (the BraTS
    bundle builds its label map from the sub-region heads, so they stay in ``pred``).

    Parameter count with the defaults (2D, 4 -> 32/64/128/256, SE r=16): 1,995,284 (1,995,024 without
    the four 1x1 heads; 3D: 5,690,132). The paper gives no figure in its text, only that its model is the
    smallest of those compared in Table 6.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 4,
        features: Sequence[int] = (32, 64, 128, 256),
        se_reduction: int = 16,
        se_dropout: float = 0.2,
        per_channel_gate: bool = False,
        encoder_unit: str = "apr",
        skip_gates: bool = False,
        upsample: str = "deconv",
        deep_supervision: bool = True,
        aux_levels: Mapping[str, int] | None = None,
        pred_heads: Sequence[str] | None = None,
    ):
        aux_levels = dict(DEFAULT_AUX_LEVELS if aux_levels is None else aux_levels)
        super().__init__(["wt", *(aux_levels if deep_supervision else [])], pred_heads)
        if len(features) < 2:
            raise ValueError("features needs at least two levels (one encoder level and the bottleneck)")
        n_decoder = len(features) - 1
        if deep_supervision and any(not 0 <= level < n_decoder for level in aux_levels.values()):
            raise ValueError(f"aux_levels must lie in [0, {n_decoder - 1}], got {aux_levels}")
        if encoder_unit not in ENCODER_UNITS:
            raise ValueError(f"encoder_unit must be one of {ENCODER_UNITS}, got {encoder_unit!r}")
        if "wt" in aux_levels:
            raise ValueError("'wt' is the main head and cannot be an auxiliary head")
        self.spatial_dims = spatial_dims
        self.divisor = 2**n_decoder
        self.deep_supervision = deep_supervision
        self.aux_levels = aux_levels if deep_supervision else {}
        conv = Conv[Conv.CONV, spatial_dims]

        self.stem = conv(in_channels, features[0], kernel_size=3, padding=1)
        channels = [features[0], *features]
        self.encoder = nn.ModuleList(
            nn.Sequential(
                build_encoder_unit(
                    encoder_unit, spatial_dims, channels[i], channels[i + 1], per_channel_gate
                ),
                SEWithDropout(spatial_dims, channels[i + 1], se_reduction, se_dropout),
            )
            for i in range(len(features))
        )
        self.pool = Pool[Pool.MAX, spatial_dims](kernel_size=2)
        # decoder[k] produces decoder level n_decoder - 1 - k (the deepest first)
        self.decoder = nn.ModuleList(
            DecoderStage(
                spatial_dims, features[i + 1], features[i], se_reduction, se_dropout, upsample, skip_gates
            )
            for i in reversed(range(n_decoder))
        )
        self.wt_head = conv(features[0], 1, kernel_size=1)
        self.aux_heads = nn.ModuleDict(
            {name: conv(features[level], 1, kernel_size=1) for name, level in self.aux_levels.items()}
        )

    def _to_input_size(self, logits: torch.Tensor, size: list[int]) -> torch.Tensor:
        if logits.shape[2:] == size:
            return logits
        mode = "bilinear" if self.spatial_dims == 2 else "trilinear"
        return F.interpolate(logits, size=size, mode=mode, align_corners=False)

    def heads(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        size = x.shape[2:]
        for s in size:
            if s % self.divisor != 0:
                raise ValueError(
                    f"AttentionR2UNet input size {size} must be divisible by {self.divisor}; pad or crop "
                    "it first (e.g. monai.transforms.DivisiblePad)"
                )
        x = self.stem(x)
        skips: list[torch.Tensor] = []
        for i, level in enumerate(self.encoder):
            if i:
                x = self.pool(x)
            x = level(x)
            skips.append(x)
        skips.pop()  # the bottleneck output is not a skip
        decoded: dict[int, torch.Tensor] = {}
        for k, stage in enumerate(self.decoder):
            x = stage(x, skips.pop())
            decoded[len(self.decoder) - 1 - k] = x
        out = {"wt": self.wt_head(x)}
        for name, head in self.aux_heads.items():
            out[name] = self._to_input_size(head(decoded[self.aux_levels[name]]), size)
        return out


__all__ = [
    "DEFAULT_AUX_LEVELS",
    "ENCODER_UNITS",
    "APRAttentionGate",
    "AttentionPreActivationResidual",
    "AttentionR2UNet",
    "DecoderStage",
    "PreActivationConvBlock",
    "PreActivationResidualUnit",
    "PreActivationUnit",
    "build_encoder_unit",
]
