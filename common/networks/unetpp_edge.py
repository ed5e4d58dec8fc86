"""UNet++ with an auxiliary lesion-edge branch and the low-frequency feature generation module (LFFGM).

L. Liu, C. Huang, C. Cai, X. Zhang, Q. Hu, "Multi-task learning improves the brain stroke lesion
segmentation" (paper 003 in ``shared/papers``), §2.1-2.2, Fig. 1, Table 2.

The main task is the stroke-lesion mask, the auxiliary task the lesion's edge (§2.1). The lesion network is
"exactly UNet++" (Fig. 1), here MONAI's ``BasicUNetPlusPlus``, unmodified: its last feature map ``F_whole``
(``x_0_4`` in MONAI's naming) feeds the lesion head, a 1x1 convolution (MONAI's own ``final_conv_0_4``) whose
sigmoid is the lesion mask. The edge branch takes the deepest feature map (the encoder bottom ``x_4_0``)
through the LFFGM (§2.2) to low-frequency features ``F_low``, up-samples them to ``F_whole``'s resolution and
subtracts them (eq. 1)::

    F_edge = F_whole - F_low

then a 1x1 convolution + sigmoid predicts the edge. "Because the main task branch and the auxiliary task
branch can be separated, only parameters of the main task will be retained after training" (§1): the
inference network is the single-task UNet++, with its parameter count and speed.

Losses (eq. 2-6) are in :mod:`common.losses.edge_lesion`, the edge targets in
:mod:`common.transforms.edge_targets`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution, UpSample
from monai.networks.layers.factories import Conv, Pool
from monai.networks.nets import BasicUNetPlusPlus
from monai.utils import ensure_tuple_rep
from torch import nn

from .multihead import MultiHeadNetwork, heads_to_pred

#: The edge branch of each row of Table 2: no auxiliary task (plain UNet++), a simple edge head on
#: ``F_whole``, or the edge head on ``F_whole - F_low`` (the proposed method; the consistency loss of the
#: last row is a loss setting, see :mod:`common.losses.edge_lesion`).
EDGE_BRANCHES = ("none", "simple", "lffgm")

#: Submodules of the edge branch: absent from the inference network, their checkpoint keys dropped on load.
EDGE_BRANCH_MODULES = ("lffgm", "edge_head")

_INTERPOLATION = {1: "linear", 2: "bilinear", 3: "trilinear"}


def _crop_to(x: torch.Tensor, size: list[int]) -> torch.Tensor:
    """The first ``size[d]`` elements of each spatial dim of ``x`` (``(B, C, *spatial)``)."""
    for d in range(len(size)):
        x = x.narrow(d + 2, 0, size[d])
    return x


class LowFrequencyFeatureModule(nn.Module):
    """The LFFGM of §2.2 / Fig. 1: a small U whose output is concatenated with its input, then 1x1 conv.

    * two steps of 2x2 max-pooling (stride 2) + 3x3 convolution + batch norm + ReLU, reducing the resolution
      4 times;
    * two steps of x2 up-sampling ("2x2 linear interpolation", Fig. 1) + 3x3 convolution + batch norm + ReLU,
      back to the input's resolution;
    * concatenation of that output and the module's input (the skip connection);
    * a 1x1 convolution to ``out_channels`` (``F_whole``'s channels): ``F_low``.

    **Sizes not divisible by 4.** The input is the UNet++ bottom (1/16 of the image), e.g. 6x5 for a 96x80
    slice. The pools use ``ceil_mode`` (a last, partial window covers the odd row or column: 6x5 -> 3x3 ->
    2x2), and each x2 up-sampling is cropped back to the size of the map it mirrors (2x2 -> 4x4 -> 3x3, then
    6x6 -> 6x5). With ``align_corners=False`` the x2 interpolation puts coarse cell ``j`` over fine cells
    ``2j, 2j + 1``, which is exactly the window that pooled into it, so the crop only removes positions
    beyond the map and the geometry stays that of an even size; for sizes divisible by 4 the crops do
    nothing.

    **Batch norm** (the paper's) needs more than one value per channel in training: at the coarsest level
    (1/64 of the image) ``batch * h * w > 1``, e.g. a 64x64 input needs a batch of 2 or more. ``norm``
    switches to another MONAI norm if a bundle trains on single small slices.

    Args:
        spatial_dims: 2 (the paper) or 3.
        in_channels: channels of the deepest feature map (``features[4]`` of UNet++: 256 by default).
        out_channels: channels of ``F_low`` (``F_whole``'s: ``features[5]``, 32 by default).
        channels: channels of the inner 3x3 convolutions; Fig. 1: "32 is the number of channels in each
            feature map". Default: ``out_channels``.
        norm, act: of the inner convolutions (batch norm and ReLU in §2.2).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        channels: int | None = None,
        norm: str | tuple = "batch",
        act: str | tuple = "relu",
    ):
        super().__init__()
        inner = out_channels if channels is None else int(channels)

        def conv3(cin: int, cout: int) -> Convolution:
            return Convolution(spatial_dims, cin, cout, kernel_size=3, norm=norm, act=act)

        self.pool = Pool[Pool.MAX, spatial_dims](kernel_size=2, stride=2, ceil_mode=True)
        self.down_1 = conv3(in_channels, inner)
        self.down_2 = conv3(inner, inner)
        # parameter-free interpolation; align_corners=False is TF/Keras' bilinear resize (see the class doc)
        self.upsample = UpSample(
            spatial_dims,
            scale_factor=2,
            mode="nontrainable",
            pre_conv=None,
            interp_mode="linear",
            align_corners=False,
        )
        self.up_1 = conv3(inner, inner)
        self.up_2 = conv3(inner, inner)
        self.fuse = Convolution(
            spatial_dims, inner + in_channels, out_channels, kernel_size=1, conv_only=True
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.down_1(self.pool(x))
        quarter = self.down_2(self.pool(half))
        up = self.up_1(_crop_to(self.upsample(quarter), half.shape[2:]))
        up = self.up_2(_crop_to(self.upsample(up), x.shape[2:]))
        return self.fuse(torch.cat([up, x], dim=1))


class UNetPlusPlusEdge(MultiHeadNetwork):
    """UNet++ lesion network with the edge branch of paper 003 (see the module docstring).

    Heads (:meth:`heads`, logits; the head spec's ``"sigmoid"`` activation and ``DiceCELoss(sigmoid=True)``
    apply the paper's sigmoids):

    * ``"lesion"``: ``(B, out_channels, *spatial)``, ``final_conv_0_4(F_whole)``;
    * ``"edge"`` (``edge != "none"``): ``(B, out_channels, *spatial)``, a 1x1 convolution of ``F_edge``:
      ``F_whole - up(LFFGM(x_4_0))`` for ``"lffgm"``, ``F_whole`` itself for ``"simple"`` (Table 2's "simple
      edge segmentation head").

    ``forward`` (the inference ``network_def``, TorchScript and ONNX) returns ``pred``, the ``pred_heads``
    concatenated; with the default ``pred_heads=["lesion"]`` it runs the UNet++ and the lesion head only.

    **The inference network** is built with ``inference_only=True``: the heads outside ``pred_heads`` (the
    edge branch) are not built at all, so the network holds exactly the parameters of
    ``BasicUNetPlusPlus(spatial_dims, in_channels, out_channels, features)`` (inside ``self.unetpp``), and its
    state-dict keys are a subset of the training network's. A training checkpoint loads into it with
    ``strict=True`` (MONAI's ``CheckpointLoader``, ``load_state_dict``): a network without an edge branch
    drops the checkpoint's ``lffgm.*`` and ``edge_head.*`` entries before loading (a load-state-dict pre-hook;
    any other key mismatch still fails). :func:`strip_edge_branch` does the same to a state dict, e.g. to ship
    an inference-only ``model.pt``.

    The UNet++ is MONAI's: its ``act``, ``norm`` (LeakyReLU 0.1 and instance norm by default), ``bias``,
    ``dropout`` and ``upsample`` pass through, ``deep_supervision`` is off (the paper supervises ``F_whole``
    only; MONAI still builds the three unused deep-supervision convolutions ``final_conv_0_1..3``, which are
    part of its parameter count, so multi-GPU training needs DDP's ``find_unused_parameters``). Any input
    size works (MONAI's ``UpCat`` pads odd sizes); sizes divisible by 16 avoid that padding.

    Args:
        spatial_dims: 2 (the paper: axial slices); 3 also works.
        in_channels: image channels (1: a CT or T1 slice).
        out_channels: channels of the lesion and edge heads (1: binary, sigmoid).
        features: the six ``BasicUNetPlusPlus`` features: five encoder levels and ``F_whole``'s channels.
        edge: ``"lffgm"`` (default, the proposed method), ``"simple"`` or ``"none"`` (:data:`EDGE_BRANCHES`).
        lffgm_channels: inner channels of the LFFGM (default ``features[5]``, Fig. 1's 32).
        lffgm_norm: normalisation of the LFFGM's convolutions (batch norm in §2.2).
        pred_heads: heads of ``pred``, in channel order; ``["lesion"]`` by default (the paper drops the edge
            head at inference).
        inference_only: build only the heads of ``pred_heads`` (the inference ``network_def``).
        act, norm, bias, dropout, upsample: of the UNet++ (``BasicUNetPlusPlus``).

    Parameter counts, 2D, one input and one output channel, default features: 2,410,180 for the plain UNet++
    (``edge="none"`` and every inference network), 2,410,213 with the simple edge head (+33), 2,521,221 with
    the LFFGM (+111,008 for the module: 256 -> 32 channels at 1/16 of the image).
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        features: Sequence[int] = (32, 32, 64, 128, 256, 32),
        edge: str = "lffgm",
        lffgm_channels: int | None = None,
        lffgm_norm: str | tuple = "batch",
        pred_heads: Sequence[str] | None = ("lesion",),
        inference_only: bool = False,
        act: str | tuple = ("LeakyReLU", {"negative_slope": 0.1, "inplace": True}),
        norm: str | tuple = ("instance", {"affine": True}),
        bias: bool = True,
        dropout: float | tuple = 0.0,
        upsample: str = "deconv",
    ):
        if edge not in EDGE_BRANCHES:
            raise ValueError(f"edge must be one of {EDGE_BRANCHES}, got {edge!r}")
        pred = ["lesion"] if pred_heads is None else list(pred_heads)
        build_edge = edge != "none" and (not inference_only or "edge" in pred)
        super().__init__(["lesion", "edge"] if build_edge else ["lesion"], pred)
        if spatial_dims not in _INTERPOLATION:
            raise ValueError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims}")
        fea = ensure_tuple_rep(features, 6)
        self.edge = edge if build_edge else "none"
        self.interp_mode: str = _INTERPOLATION[spatial_dims]
        self.edge_in_pred: bool = "edge" in self.pred_heads
        self.unetpp = BasicUNetPlusPlus(
            spatial_dims, in_channels, out_channels, fea, False, act, norm, bias, dropout, upsample
        )
        self.lffgm: nn.Module | None = (
            LowFrequencyFeatureModule(spatial_dims, fea[4], fea[5], lffgm_channels, lffgm_norm)
            if self.edge == "lffgm"
            else None
        )
        self.edge_head: nn.Module | None = (
            Conv[Conv.CONV, spatial_dims](fea[5], out_channels, kernel_size=1) if build_edge else None
        )
        if not build_edge:
            self.register_load_state_dict_pre_hook(_drop_edge_branch_keys)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x_4_0, F_whole)``: the encoder bottom and the last UNet++ feature map ``x_0_4``.

        MONAI's ``BasicUNetPlusPlus.forward`` returns only the logits; this is its wiring with the two maps
        the edge branch needs returned (the deep-supervision nodes feed the next ones and are computed
        anyway).
        """
        net = self.unetpp
        x_0_0 = net.conv_0_0(x)
        x_1_0 = net.conv_1_0(x_0_0)
        x_0_1 = net.upcat_0_1(x_1_0, x_0_0)

        x_2_0 = net.conv_2_0(x_1_0)
        x_1_1 = net.upcat_1_1(x_2_0, x_1_0)
        x_0_2 = net.upcat_0_2(x_1_1, torch.cat([x_0_0, x_0_1], dim=1))

        x_3_0 = net.conv_3_0(x_2_0)
        x_2_1 = net.upcat_2_1(x_3_0, x_2_0)
        x_1_2 = net.upcat_1_2(x_2_1, torch.cat([x_1_0, x_1_1], dim=1))
        x_0_3 = net.upcat_0_3(x_1_2, torch.cat([x_0_0, x_0_1, x_0_2], dim=1))

        x_4_0 = net.conv_4_0(x_3_0)
        x_3_1 = net.upcat_3_1(x_4_0, x_3_0)
        x_2_2 = net.upcat_2_2(x_3_1, torch.cat([x_2_0, x_2_1], dim=1))
        x_1_3 = net.upcat_1_3(x_2_2, torch.cat([x_1_0, x_1_1, x_1_2], dim=1))
        x_0_4 = net.upcat_0_4(x_1_3, torch.cat([x_0_0, x_0_1, x_0_2, x_0_3], dim=1))
        return x_4_0, x_0_4

    def low_frequency(self, bottom: torch.Tensor, size: list[int]) -> torch.Tensor:
        """``F_low``: the LFFGM of the encoder bottom, interpolated (bi/trilinear) to ``F_whole``'s ``size``.

        The 1x1 convolution ends the LFFGM before the interpolation: both are linear and the interpolation
        weights sum to 1, so the order does not change ``F_low``, and the 1x1 convolution runs at 1/16 of the
        resolution.
        """
        if self.lffgm is None:
            raise RuntimeError("this network has no LFFGM (edge != 'lffgm')")
        return F.interpolate(self.lffgm(bottom), size=size, mode=self.interp_mode, align_corners=False)

    def heads(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        bottom, whole = self.features(x)
        out = {"lesion": self.unetpp.final_conv_0_4(whole)}
        if self.edge_head is not None:
            edge_features = whole
            if self.lffgm is not None:
                edge_features = whole - self.low_frequency(bottom, whole.shape[2:])  # eq. 1
            out["edge"] = self.edge_head(edge_features)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.edge_in_pred:
            return heads_to_pred(self.heads(x), self.pred_heads)
        # the inference path: the lesion branch only, the edge branch is not run
        _, whole = self.features(x)
        return self.unetpp.final_conv_0_4(whole)


def strip_edge_branch(state_dict: Mapping[str, Any], prefix: str = "") -> OrderedDict[str, Any]:
    """``state_dict`` without the edge branch's entries (``<prefix>lffgm.*``, ``<prefix>edge_head.*``).

    What remains is the inference network's state dict (``UNetPlusPlusEdge(inference_only=True)``, or
    ``edge="none"``), e.g. to write an inference-only ``model.pt``.
    """
    branch = tuple(f"{prefix}{name}." for name in EDGE_BRANCH_MODULES)
    return OrderedDict((k, v) for k, v in state_dict.items() if not k.startswith(branch))


def _drop_edge_branch_keys(
    module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
) -> None:
    """Load-state-dict pre-hook of a network built without the edge branch: drop its checkpoint entries.

    ``state_dict`` is ``load_state_dict``'s own copy, so the caller's dict is left as it was.
    """
    branch = tuple(f"{prefix}{name}." for name in EDGE_BRANCH_MODULES)
    for key in [k for k in state_dict if k.startswith(branch)]:
        del state_dict[key]


__all__ = [
    "EDGE_BRANCHES",
    "EDGE_BRANCH_MODULES",
    "LowFrequencyFeatureModule",
    "UNetPlusPlusEdge",
    "strip_edge_branch",
]
