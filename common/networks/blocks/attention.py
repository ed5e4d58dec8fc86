"""The attention modules of MMRAN's ablation (paper 000, Table 2): SE, scSE, the MRAM and every step between.

G. Li, X. Hui, W. Li, Y. Luo, "Multitask Learning with Multiscale Residual Attention for Brain Tumor
Segmentation and Classification", Machine Intelligence Research 20(6), 2023 (paper 000), §3.2 and Table 2.
The MRAM "makes the following four changes to the scSE module" (§3.2): a multiscale module on the input,
a GMP branch in the channel attention, channel and spatial attention in sequence instead of in parallel,
and a residual connection. :class:`ComposableAttention` has one switch per change (plus one for the
spatial gate, which SE lacks), so every row of Table 2 is one set of options:

================================  ==========  ========  =======  ===========  ========
Table 2 row                       multiscale  max_pool  spatial  arrangement  residual
================================  ==========  ========  =======  ===========  ========
+SE (preset ``"se"``)             no          no        no       (parallel)   no
+scSE (preset ``"scse"``)         no          no        yes      parallel     no
+scSE+MSM                         yes         no        yes      parallel     no
+scSE+MSM+GMP                     yes         yes       yes      parallel     no
+scSE+MSM+GMP+RES                 yes         yes       yes      parallel     yes
+MRAM (preset ``"mram"``)         yes         yes       yes      sequential   yes
================================  ==========  ========  =======  ===========  ========

:func:`attention_block` builds one from a preset name or from a mapping of options (see
:func:`attention_options`); ``"none"`` is the identity (the baseline).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from monai.networks.layers.factories import Conv
from torch import nn

from .multiscale_attention import DualPoolChannelAttention, MultiscaleModule

ARRANGEMENTS = ("parallel", "sequential")
SWITCHES = ("multiscale", "max_pool", "spatial", "residual")
ATTENTION_OPTIONS = (*SWITCHES, "arrangement", "reduction", "kernel_sizes")
"""The keys of an attention mapping besides ``"preset"``."""

ATTENTION_PRESETS: dict[str, dict[str, Any]] = {
    # Hu, Shen and Sun, "Squeeze-and-Excitation Networks", CVPR 2018: x * sigmoid(MLP(GAP(x)))
    "se": {
        "multiscale": False,
        "max_pool": False,
        "spatial": False,
        "arrangement": "parallel",
        "residual": False,
    },
    # Roy, Navab and Wachinger, "Concurrent Spatial and Channel 'Squeeze & Excitation' in Fully Convolutional
    # Networks", MICCAI 2018: x * cSE(x) + x * sSE(x)
    "scse": {
        "multiscale": False,
        "max_pool": False,
        "spatial": True,
        "arrangement": "parallel",
        "residual": False,
    },
    # paper 000, §3.2, eq. 1-9
    "mram": {
        "multiscale": True,
        "max_pool": True,
        "spatial": True,
        "arrangement": "sequential",
        "residual": True,
    },
}
"""Preset name -> the switches of :class:`ComposableAttention`."""

ATTENTION_TYPES = ("none", *ATTENTION_PRESETS)
"""The names ``attention`` accepts: the identity and the presets."""

DEFAULT_PRESET = "scse"
"""What a mapping without ``"preset"`` starts from: the module that the MRAM's four switches change."""


class ComposableAttention(nn.Module):
    """SE, scSE, the MRAM and the compositions between them (paper 000, §3.2, eq. 1-9, Table 2).

    With ``F`` the input:

    * ``F' = MSM(F)`` (eq. 1-2) if ``multiscale``, else ``F' = F``;
    * ``M_c(F')``: channel attention (eq. 3-5), GAP branch only unless ``max_pool`` adds the GMP branch
      with its own MLP, the two sigmoids multiplied; ``F_cSE = M_c(F') * F'`` (eq. 6);
    * without ``spatial`` (SE): ``F^ = F_cSE``;
    * ``arrangement="parallel"`` (scSE, Roy et al., MICCAI 2018): ``F^ = F_cSE + M_s(F') * F'``;
    * ``arrangement="sequential"`` (MRAM, channel first): ``F^ = M_s(F_cSE) * F_cSE`` (eq. 7-8);
    * ``M_s(.) = sigmoid(conv1x1(.))`` to one channel (eq. 7);
    * output ``F' + F^`` (eq. 9) if ``residual``, else ``F^``.

    The channel MLPs have ``max(channels // reduction, 1)`` hidden units. Submodules: ``multiscale``
    (:class:`MultiscaleModule`, or None), ``channel_attention`` (:class:`DualPoolChannelAttention`, with
    ``avg_mlp`` and, with ``max_pool``, ``max_mlp``) and ``spatial_gate`` (conv1x1 + sigmoid, or None).
    The defaults are scSE.
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        reduction: int = 16,
        multiscale: bool = False,
        max_pool: bool = False,
        spatial: bool = True,
        arrangement: str = "parallel",
        residual: bool = False,
        kernel_sizes: Sequence[int] = (3, 5, 7, 9),
    ):
        super().__init__()
        if arrangement not in ARRANGEMENTS:
            raise ValueError(f"arrangement must be one of {ARRANGEMENTS}, got {arrangement!r}")
        self.multiscale: nn.Module | None = (
            MultiscaleModule(spatial_dims, channels, kernel_sizes) if multiscale else None
        )
        self.channel_attention = DualPoolChannelAttention(
            spatial_dims, channels, reduction, max_pool=max_pool
        )
        self.spatial_gate: nn.Module | None = (
            nn.Sequential(Conv[Conv.CONV, spatial_dims](channels, 1, kernel_size=1), nn.Sigmoid())
            if spatial
            else None
        )
        self.sequential = arrangement == "sequential"
        self.residual = bool(residual)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = x if self.multiscale is None else self.multiscale(x)  # F', eq. 2
        channel_weighted = self.channel_attention(features) * features  # F_cSE, eq. 6
        if self.spatial_gate is None:
            out = channel_weighted
        elif self.sequential:
            out = self.spatial_gate(channel_weighted) * channel_weighted  # F^, eq. 7-8
        else:
            out = channel_weighted + self.spatial_gate(features) * features  # scSE
        if self.residual:
            out = features + out  # eq. 9
        return out


def _attention_error(attention: object) -> ValueError:
    return ValueError(
        f"attention must be one of {ATTENTION_TYPES} or a mapping of options (keys 'preset' and "
        f"{ATTENTION_OPTIONS}), got {attention!r}"
    )


def attention_options(attention: str | Mapping[str, Any]) -> dict[str, Any] | None:
    """The complete options of :class:`ComposableAttention` that ``attention`` stands for; None for "none".

    ``attention`` is a name of ``ATTENTION_TYPES`` or a mapping of options: an optional ``"preset"`` (one of
    ``ATTENTION_PRESETS``, default ``"scse"``) overridden by any of ``multiscale``, ``max_pool``, ``spatial``,
    ``residual`` (bools), ``arrangement`` (``"parallel"`` or ``"sequential"``), ``reduction`` (an int,
    taking precedence over the network's) and ``kernel_sizes`` (of the multiscale branches). E.g.
    ``{"preset": "scse", "multiscale": true}`` is Table 2's +scSE+MSM. Raises ValueError for an unknown
    name, key or value.
    """
    if isinstance(attention, str):
        if attention == "none":
            return None
        if attention in ATTENTION_PRESETS:
            return dict(ATTENTION_PRESETS[attention])
        raise _attention_error(attention)
    if not isinstance(attention, Mapping):
        raise _attention_error(attention)
    unknown = sorted(set(attention) - {"preset", *ATTENTION_OPTIONS}, key=str)
    if unknown:
        raise ValueError(
            f"unknown attention option(s) {unknown} in {dict(attention)!r}; the options are 'preset' and "
            f"{ATTENTION_OPTIONS}"
        )
    preset = attention.get("preset", DEFAULT_PRESET)
    if preset not in ATTENTION_PRESETS:
        raise ValueError(f"attention preset must be one of {tuple(ATTENTION_PRESETS)}, got {preset!r}")
    options = {**ATTENTION_PRESETS[preset], **{k: v for k, v in attention.items() if k != "preset"}}
    for key in SWITCHES:
        if not isinstance(options[key], bool):
            raise ValueError(f"attention option {key!r} must be true or false, got {options[key]!r}")
    if options["arrangement"] not in ARRANGEMENTS:
        raise ValueError(
            f"attention option 'arrangement' must be one of {ARRANGEMENTS}, got {options['arrangement']!r}"
        )
    reduction = options.get("reduction", 1)
    if isinstance(reduction, bool) or not isinstance(reduction, int) or reduction < 1:
        raise ValueError(f"attention option 'reduction' must be a positive integer, got {reduction!r}")
    kernel_sizes = options.get("kernel_sizes", (3,))
    if (
        isinstance(kernel_sizes, str)
        or not isinstance(kernel_sizes, Sequence)
        or not kernel_sizes
        or not all(isinstance(k, int) and not isinstance(k, bool) and k > 0 and k % 2 for k in kernel_sizes)
    ):
        raise ValueError(
            f"attention option 'kernel_sizes' must be a list of odd positive integers, got {kernel_sizes!r}"
        )
    return options


def attention_block(
    attention: str | Mapping[str, Any], spatial_dims: int, channels: int, reduction: int = 16
) -> nn.Module:
    """The attention module ``attention`` stands for (see :func:`attention_options`); identity for "none"."""
    options = attention_options(attention)
    if options is None:
        return nn.Identity()
    return ComposableAttention(spatial_dims, channels, **{"reduction": reduction, **options})


def has_multiscale(attention: str | Mapping[str, Any]) -> bool:
    """Whether the attention module carries the multiscale module (and so a convolution of its own)."""
    options = attention_options(attention)
    return options is not None and options["multiscale"]
