"""ResNeSt-50 and ResNeSAt: split-attention residual networks; ResNeSAt adds CBAM spatial attention.

* ResNeSt: H. Zhang, C. Wu, Z. Zhang, Y. Zhu, H. Lin, Z. Zhang, Y. Sun, T. He, J. Mueller, R. Manmatha,
  M. Li, A. Smola, "ResNeSt: Split-Attention Networks", arXiv:2004.08955 (2020), §3-4 and Table 2/9: the
  ResNet-D variant (deep stem, average-pool down-sampling) with split-attention bottlenecks; ResNeSt-50 is
  radix 2, cardinality 1, bottleneck width 64 ("2s1x64d"), stem width 32, layers 3, 4, 6, 3.
* ResNeSAt: Y. Zhang, S. Wang, H. Wu, K. Hu, S. Ji, "Brain Tumors Classification for MR images based on
  Attention Guided Deep Learning Model" (paper 004 in ``shared/papers``), §III.C, Fig. 4, Table II:
  ResNeSt-50 with CBAM's spatial attention (:class:`~common.networks.blocks.SpatialAttention`, Woo et al.,
  ECCV 2018, eq. 3) "inserted into each bottleneck".

The layout follows the official implementation (zhanghang1989/ResNeSt, ``resnest50``) so that its ImageNet
weights load (:func:`load_resnest_checkpoint`):

==============  =======================================================================================
stem            3x3 conv stride 2 (in -> 32) + BN + ReLU, 3x3 conv (32 -> 32) + BN + ReLU,
                3x3 conv (32 -> 64) + BN + ReLU, 3x3 max-pool stride 2
layers 1-4      3, 4, 6, 3 bottlenecks of planes 64, 128, 256, 512 (output 4 x planes); the first of
                layers 2-4 has stride 2
bottleneck      1x1 conv + BN + ReLU (``reduce``), split-attention 3x3 conv (radix 2) at stride 1, then, in
                a stride-2 block, a 3x3 average pool of stride 2 ("avd", official ``avd_first=False``),
                1x1 conv + BN (``expand``); shortcut: identity, or (stride-2 average pool, ceil mode,
                padding not counted: "avg_down") + 1x1 conv + BN; sum, ReLU
classifier      global average pool, dropout, fully connected to ``num_classes``
==============  =======================================================================================

Where the spatial attention sits. The text says only that SA is "inserted into each bottleneck". Table II
lists each bottleneck's modules in the order PyTorch registers them (the avd pool before ``SplAtConv`` and
the shortcut's ``AvgPool, Conv1, BN`` last, where the official code defines them), with ``SA`` after
``conv3``/``bn3``; the caption of Fig. 4 names an elementwise product and an elementwise sum, like CBAM's
Fig. 3 ("CBAM integrated with a ResBlock"), where the module refines the residual branch's output just
before the residual sum. That is the default here (``spatial_attention_position="residual"``:
``out = SA(bn3(conv3(...))) + shortcut``); ``"split"`` applies it right after the split-attention
convolution (and its avd pool) instead, before the last 1x1 convolution. The parameter count is the same
either way.

Parameter counts (tested in ``tests/networks/test_resnest.py``; the spatial attention adds 2 x 7 x 7 = 98
weights, no bias, per bottleneck, 16 x 98 = 1,568 in all):

======================================  ============  ============
configuration                           ResNeSt-50    ResNeSAt
======================================  ============  ============
3 channels, 1000 classes (ImageNet)     27,483,240    27,484,808
1 channel, 2 classes (the bundle)       25,437,762    25,439,330
3 channels, 2 classes                   25,438,338    25,439,906
======================================  ============  ============

The first row is exactly the official ResNeSt-50's 27.48 M. The paper's "97.45 MB" and "97.46 MB" (§IV)
are the size of a saved 2-class ``state_dict`` (float32, batch-norm running statistics included) in MiB:
97.45 and 97.46 here too (``torch.save``; the parameters alone are 97.04 MiB and 97.04 MiB).

The network is a :class:`~common.networks.multihead.MultiHeadNetwork` with a single image-level head
(default name ``"cls"``): :meth:`ResNeSt.heads` returns ``{"cls": (B, num_classes) logits}`` for training
(through :class:`~common.networks.multihead.TrainingHeads`), and ``forward`` returns the same logits as the
one ``pred`` tensor ``(B, num_classes)``. There is no spatial head, so ``pred`` is not spread over an image
grid (:func:`~common.networks.multihead.heads_to_pred` needs a spatial head for that): a classifier's
``pred`` is the class-logit vector that MONAI's classification bundles also return.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import torch
from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Pool
from torch import nn

from .blocks import SpatialAttention, SplitAttentionConv
from .multihead import MultiHeadNetwork

__all__ = [
    "RESNEST_KEY_SCHEMES",
    "ResNeSAt",
    "ResNeSt",
    "ResNeStBottleneck",
    "ResNeStCheckpointReport",
    "load_resnest_checkpoint",
]

logger = logging.getLogger(__name__)

SPATIAL_ATTENTION_POSITIONS = ("residual", "split")
"""Where :class:`ResNeStBottleneck` applies the spatial attention (see the module docstring)."""

EXPANSION = 4
"""Output channels of a bottleneck per ``planes`` (ResNet-50's bottleneck expansion)."""


def _relu() -> tuple[str, dict[str, bool]]:
    return ("RELU", {"inplace": True})


class ResNeStBottleneck(nn.Module):
    """One ResNeSt bottleneck (ResNeSt §3.2, Fig. 2 right), optionally with ResNeSAt's spatial attention.

    ``reduce`` (1x1 conv + BN + ReLU to ``width = planes * bottleneck_width / 64 * cardinality``),
    ``split_attention`` (:class:`~common.networks.blocks.SplitAttentionConv`, 3x3, stride 1),
    ``stride_pool`` (3x3 average pool of stride ``stride``, padding 1, when ``stride > 1``, else identity),
    ``expand`` (1x1 conv + BN to ``4 * planes``), ``spatial_attention`` (CBAM's spatial attention or
    identity; where, see ``spatial_attention_position``), then ``relu(out + shortcut(shortcut_pool(x)))``.
    The shortcut is the identity when the shape is kept, else a 1x1 conv + BN after a ``stride`` x
    ``stride`` average pool (ceil mode, padding not counted).

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        planes: the bottleneck's base width; the output has ``4 * planes`` channels.
        stride: 1, or 2 to halve the grid.
        radix, cardinality, bottleneck_width: split-attention settings (ResNeSt-50: 2, 1, 64).
        spatial_attention: add CBAM's spatial attention (ResNeSAt).
        spatial_attention_kernel: its window (7).
        spatial_attention_position: ``"residual"`` (after ``expand``, before the sum) or ``"split"`` (after
            the split-attention convolution, before ``expand``).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        planes: int,
        stride: int = 1,
        radix: int = 2,
        cardinality: int = 1,
        bottleneck_width: int = 64,
        spatial_attention: bool = False,
        spatial_attention_kernel: int = 7,
        spatial_attention_position: str = "residual",
    ):
        super().__init__()
        if spatial_attention_position not in SPATIAL_ATTENTION_POSITIONS:
            raise ValueError(
                f"spatial_attention_position must be one of {SPATIAL_ATTENTION_POSITIONS}, "
                f"got {spatial_attention_position!r}"
            )
        width = int(planes * (bottleneck_width / 64.0)) * cardinality
        out_channels = planes * EXPANSION
        avg_pool = Pool[Pool.AVG, spatial_dims]
        self.reduce = Convolution(
            spatial_dims, in_channels, width, kernel_size=1, act=_relu(), norm="BATCH", bias=False
        )
        self.split_attention = SplitAttentionConv(
            spatial_dims, width, width, kernel_size=3, radix=radix, cardinality=cardinality
        )
        self.stride_pool: nn.Module = (
            avg_pool(kernel_size=3, stride=stride, padding=1) if stride > 1 else nn.Identity()
        )
        self.expand = Convolution(
            spatial_dims, width, out_channels, kernel_size=1, act=None, norm="BATCH", bias=False
        )
        self.spatial_attention: nn.Module = (
            SpatialAttention(spatial_dims, spatial_attention_kernel) if spatial_attention else nn.Identity()
        )
        self.attention_after_split = spatial_attention_position == "split"
        self.shortcut_pool: nn.Module = nn.Identity()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            if stride > 1:
                self.shortcut_pool = avg_pool(
                    kernel_size=stride, stride=stride, ceil_mode=True, count_include_pad=False
                )
            self.shortcut = Convolution(
                spatial_dims, in_channels, out_channels, kernel_size=1, act=None, norm="BATCH", bias=False
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.stride_pool(self.split_attention(self.reduce(x)))
        if self.attention_after_split:
            out = self.expand(self.spatial_attention(out))
        else:
            out = self.spatial_attention(self.expand(out))
        return self.relu(out + self.shortcut(self.shortcut_pool(x)))


class ResNeSt(MultiHeadNetwork):
    """ResNeSt (ResNeSt-50 by default) or, with ``spatial_attention=True``, ResNeSAt; a one-head classifier.

    Args:
        spatial_dims: 2 (the paper) or 3.
        in_channels: image channels (1 for MR slices; 3 for ImageNet weights as they are).
        num_classes: classes of the head (2: tumour / no tumour, or primary / secondary).
        layers: bottlenecks per stage; (3, 4, 6, 3) is ResNeSt-50, (1, 1, 1, 1) a small test network.
        radix: splits per cardinal group of the split-attention convolutions (2).
        cardinality: cardinal groups (1).
        bottleneck_width: width per cardinal group at planes 64 (64).
        stem_width: width of the deep stem's first two convolutions; the third gives twice that (32).
        base_planes: planes of the first stage, doubled at each next one (64: 64, 128, 256, 512, outputs
            4 x planes); smaller only for tiny test networks.
        spatial_attention: ResNeSAt's CBAM spatial attention in every bottleneck; the ablation's one switch.
        spatial_attention_kernel: its convolution window (7).
        spatial_attention_position: ``"residual"`` (default) or ``"split"``, see the module docstring.
        dropout: dropout before the fully connected layer (the official ``final_drop``; 0 for ResNeSt-50).
        head_name: the name of the classification head in :meth:`heads` (the head spec's name).
        pred_heads: the heads in ``pred``; only ``[head_name]`` is possible (the bundle passes
            ``$@heads.inference_names``).

    ``heads(x)`` is ``{head_name: (B, num_classes) logits}``, ``forward(x)`` the same logits as one tensor.
    The total stride is 32, then global pooling: any 2D size works (odd sizes too); in 3D each side must
    exceed 32, as PyTorch's 3D average pool refuses a 2-voxel grid for its 3-voxel window.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        num_classes: int = 2,
        layers: Sequence[int] = (3, 4, 6, 3),
        radix: int = 2,
        cardinality: int = 1,
        bottleneck_width: int = 64,
        stem_width: int = 32,
        base_planes: int = 64,
        spatial_attention: bool = False,
        spatial_attention_kernel: int = 7,
        spatial_attention_position: str = "residual",
        dropout: float = 0.0,
        head_name: str = "cls",
        pred_heads: Sequence[str] | None = None,
    ):
        super().__init__((head_name,), pred_heads)
        if len(layers) != 4 or any(n < 1 for n in layers):
            raise ValueError(f"layers must be four positive block counts, got {tuple(layers)}")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.head_name = head_name
        self.stem = nn.Sequential(
            Convolution(
                spatial_dims,
                in_channels,
                stem_width,
                strides=2,
                kernel_size=3,
                act=_relu(),
                norm="BATCH",
                bias=False,
            ),
            Convolution(
                spatial_dims, stem_width, stem_width, kernel_size=3, act=_relu(), norm="BATCH", bias=False
            ),
            Convolution(
                spatial_dims, stem_width, 2 * stem_width, kernel_size=3, act=_relu(), norm="BATCH", bias=False
            ),
            Pool[Pool.MAX, spatial_dims](kernel_size=3, stride=2, padding=1),
        )
        channels = 2 * stem_width
        stages: list[nn.Module] = []
        for stage, (blocks, planes) in enumerate(zip(layers, [base_planes * 2**i for i in range(4)])):
            stage_blocks: list[nn.Module] = []
            for block in range(blocks):
                stage_blocks.append(
                    ResNeStBottleneck(
                        spatial_dims,
                        channels,
                        planes,
                        stride=2 if stage > 0 and block == 0 else 1,
                        radix=radix,
                        cardinality=cardinality,
                        bottleneck_width=bottleneck_width,
                        spatial_attention=spatial_attention,
                        spatial_attention_kernel=spatial_attention_kernel,
                        spatial_attention_position=spatial_attention_position,
                    )
                )
                channels = planes * EXPANSION
            stages.append(nn.Sequential(*stage_blocks))
        self.layers = nn.ModuleList(stages)
        self.pool = Pool[Pool.ADAPTIVEAVG, spatial_dims](1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """He initialisation (fan-out) of the ResNeSt convolutions, as the official code; BN weight 1, bias 0.

        The spatial attention's convolution keeps PyTorch's default, which starts its map near 0.5
        everywhere instead of saturating the sigmoid.
        """
        attention_convs = {id(m.conv) for m in self.modules() if isinstance(m, SpatialAttention)}
        for module in self.modules():
            if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and id(module) not in attention_convs:
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The globally pooled features of the last stage, ``(B, 2048)``."""
        x = self.stem(x)
        for stage in self.layers:
            x = stage(x)
        return self.pool(x).flatten(1)

    def heads(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {self.head_name: self.fc(self.dropout(self.features(x)))}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = self.heads(x)
        return torch.cat([outputs[name] for name in self.pred_heads], dim=1)


class ResNeSAt(ResNeSt):
    """ResNeSAt (paper 004, §III.C): :class:`ResNeSt` with ``spatial_attention=True``, the same otherwise."""

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        num_classes: int = 2,
        layers: Sequence[int] = (3, 4, 6, 3),
        radix: int = 2,
        cardinality: int = 1,
        bottleneck_width: int = 64,
        stem_width: int = 32,
        base_planes: int = 64,
        spatial_attention_kernel: int = 7,
        spatial_attention_position: str = "residual",
        dropout: float = 0.0,
        head_name: str = "cls",
        pred_heads: Sequence[str] | None = None,
    ):
        super().__init__(
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            num_classes=num_classes,
            layers=layers,
            radix=radix,
            cardinality=cardinality,
            bottleneck_width=bottleneck_width,
            stem_width=stem_width,
            base_planes=base_planes,
            spatial_attention=True,
            spatial_attention_kernel=spatial_attention_kernel,
            spatial_attention_position=spatial_attention_position,
            dropout=dropout,
            head_name=head_name,
            pred_heads=pred_heads,
        )


# ---------------------------------------------------------------------------------------- pretrained weights

_OFFICIAL_MODULES: dict[str, str] = {
    # deep stem: conv1 = Sequential(conv, bn, relu, conv, bn, relu, conv), then bn1
    "conv1.0": "stem.0.conv",
    "conv1.1": "stem.0.adn.N",
    "conv1.3": "stem.1.conv",
    "conv1.4": "stem.1.adn.N",
    "conv1.6": "stem.2.conv",
    "bn1": "stem.2.adn.N",
    # bottleneck {block} of layer{layer} (1-based) -> layers.{stage}.{block} (stage = layer - 1)
    "layer{layer}.{block}.conv1": "layers.{stage}.{block}.reduce.conv",
    "layer{layer}.{block}.bn1": "layers.{stage}.{block}.reduce.adn.N",
    "layer{layer}.{block}.conv2.conv": "layers.{stage}.{block}.split_attention.splits.conv",
    "layer{layer}.{block}.conv2.bn0": "layers.{stage}.{block}.split_attention.splits.adn.N",
    "layer{layer}.{block}.conv2.fc1": "layers.{stage}.{block}.split_attention.squeeze.conv",
    "layer{layer}.{block}.conv2.bn1": "layers.{stage}.{block}.split_attention.squeeze.adn.N",
    "layer{layer}.{block}.conv2.fc2": "layers.{stage}.{block}.split_attention.excite",
    "layer{layer}.{block}.conv3": "layers.{stage}.{block}.expand.conv",
    "layer{layer}.{block}.bn3": "layers.{stage}.{block}.expand.adn.N",
    # downsample = Sequential(AvgPool (no weights), conv, bn)
    "layer{layer}.{block}.downsample.1": "layers.{stage}.{block}.shortcut.conv",
    "layer{layer}.{block}.downsample.2": "layers.{stage}.{block}.shortcut.adn.N",
    "fc": "fc",
}

RESNEST_KEY_SCHEMES: dict[str, dict[str, str]] = {
    # zhanghang1989/ResNeSt, resnest/torch/models/resnet.py + splat.py (resnest50-528c19ca.pth)
    "official": _OFFICIAL_MODULES,
    # timm resnest50d (timm/models/resnest.py, timm/layers/split_attn.py): timm kept the official module
    # names (its extra bn2 / act / drop_block / avd modules are identities or pools without weights)
    "timm": dict(_OFFICIAL_MODULES),
}
"""Checkpoint naming scheme -> {checkpoint module path: module path in :class:`ResNeSt`}.

A tensor ``<module>.<name>`` (``weight``, ``bias``, ``running_mean``...) of a checkpoint is loaded into
``<our module>.<name>``. ``{layer}`` and ``{block}`` match decimal numbers; ``{stage}`` is ``layer - 1``.
Adding a scheme is one entry here.
"""


def _compile_scheme(modules: Mapping[str, str]) -> list[tuple[re.Pattern[str], str]]:
    rules = []
    for source, target in modules.items():
        pattern = (
            re.escape(source)
            .replace(r"\{layer\}", r"(?P<layer>\d+)")
            .replace(r"\{block\}", r"(?P<block>\d+)")
        )
        rules.append((re.compile(rf"{pattern}\.(?P<tensor>[A-Za-z_]+)"), target))
    return rules


def _rename(key: str, rules: list[tuple[re.Pattern[str], str]]) -> str | None:
    for pattern, target in rules:
        match = pattern.fullmatch(key)
        if match is None:
            continue
        groups = match.groupdict()
        fields = {}
        if groups.get("layer") is not None:
            fields = {"stage": int(groups["layer"]) - 1, "block": int(groups["block"])}
        return f"{target.format(**fields)}.{groups['tensor']}"
    return None


@dataclass
class ResNeStCheckpointReport:
    """What :func:`load_resnest_checkpoint` did, key by key (our module names, except ``unexpected``).

    Attributes:
        path: the checkpoint file.
        scheme: the naming scheme used (a key of ``RESNEST_KEY_SCHEMES``).
        loaded: network tensors copied from the checkpoint as they are.
        adapted: the first convolution, converted to the network's input channels.
        skipped: network tensors left as initialised although the checkpoint has them: the classifier
            when its class count differs.
        missing: network tensors the checkpoint lacks (e.g. the spatial attention of ResNeSAt), left as
            initialised; batch norms' ``num_batches_tracked`` counters are not listed.
        unexpected: checkpoint keys (its own names) with no place in the network.
    """

    path: str
    scheme: str
    loaded: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.path} ({self.scheme} names): {len(self.loaded)} tensors loaded, "
            f"{len(self.adapted)} adapted {self.adapted}, {len(self.skipped)} skipped {self.skipped}, "
            f"{len(self.missing)} missing {self.missing}, {len(self.unexpected)} unexpected {self.unexpected}"
        )


def adapt_first_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """RGB convolution weights ``(O, 3, ...)`` for ``in_channels`` input channels.

    One channel: the sum over the RGB channels (a grey image ``g`` fed as ``(g, g, g)`` gives the same
    response). Otherwise the RGB weights are repeated cyclically up to ``in_channels`` and scaled by
    ``3 / in_channels``, which keeps the response to an input whose channels are all equal.
    """
    source = weight.shape[1]
    if in_channels == source:
        return weight.clone()
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = -(-in_channels // source)
    return torch.cat([weight] * repeats, dim=1)[:, :in_channels] * (source / in_channels)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such ResNeSt checkpoint file")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and weights_only errors all mean the same to the user
        raise ValueError(f"{path}: not a PyTorch checkpoint readable with weights_only=True ({exc})") from exc
    for wrapper in ("state_dict", "model"):
        if isinstance(content, Mapping) and isinstance(content.get(wrapper), Mapping):
            content = content[wrapper]
            break
    if not isinstance(content, Mapping) or not content:
        raise ValueError(f"{path}: expected a state_dict (or {{'state_dict': ...}} / {{'model': ...}})")
    state = {str(k): v for k, v in content.items() if isinstance(v, torch.Tensor)}
    if all(k.startswith("module.") for k in state):  # saved from DataParallel / DDP
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def load_resnest_checkpoint(
    network: nn.Module,
    path: str | PathLike[str],
    scheme: str = "auto",
    strict: bool = True,
) -> ResNeStCheckpointReport:
    """Load a local ResNeSt-50 checkpoint (official or timm names) into :class:`ResNeSt` or :class:`ResNeSAt`.

    Nothing is downloaded: ``path`` is a file on disk (``torch.load(..., weights_only=True)``) holding a
    plain ``state_dict`` or ``{"state_dict": ...}`` / ``{"model": ...}``, optionally with DataParallel's
    ``module.`` prefix, e.g. the official ``resnest50-528c19ca.pth`` or timm's ``resnest50d`` weights saved
    with ``torch.save(model.state_dict(), ...)``. Keys are renamed by ``RESNEST_KEY_SCHEMES[scheme]``
    (``"auto"``: the scheme that places the most keys).

    * The first convolution is adapted to the network's input channels (:func:`adapt_first_conv`: the sum
      over RGB for one channel).
    * The classifier ``fc`` is skipped, and stays freshly initialised, when its shape differs (another class
      count).
    * The spatial attention of ResNeSAt is not in ResNeSt checkpoints and stays initialised.
    * Any other shape mismatch is an error naming the file and the key.
    * ``strict``: also an error when a network tensor other than those above (or the classifier, absent from
      a headless checkpoint) is missing, or the checkpoint has
      keys the network cannot place (a checkpoint of another depth or architecture). With ``strict=False``
      the report lists them and the rest is loaded.

    ``network`` may be wrapped (``TrainingHeads``, DataParallel): the bare network inside is loaded. Only
    2D networks take ImageNet weights. Returns a :class:`ResNeStCheckpointReport`, also logged.
    """
    while isinstance(getattr(network, "module", None), nn.Module):
        network = network.module
    path = Path(path)
    if getattr(network, "spatial_dims", 2) != 2:
        raise ValueError(
            f"{path}: ResNeSt checkpoints are 2D; the network has spatial_dims={network.spatial_dims}"
        )
    if scheme != "auto" and scheme not in RESNEST_KEY_SCHEMES:
        raise ValueError(f"scheme must be 'auto' or one of {tuple(RESNEST_KEY_SCHEMES)}, got {scheme!r}")
    checkpoint = _read_state_dict(path)
    ours = network.state_dict()

    def placed(name: str) -> dict[str, str]:
        rules = _compile_scheme(RESNEST_KEY_SCHEMES[name])
        renamed = {key: _rename(key, rules) for key in checkpoint}
        return {key: new for key, new in renamed.items() if new is not None and new in ours}

    candidates = list(RESNEST_KEY_SCHEMES) if scheme == "auto" else [scheme]
    mapping, chosen = {}, candidates[0]
    for name in candidates:
        found = placed(name)
        if len(found) > len(mapping):
            mapping, chosen = found, name
    report = ResNeStCheckpointReport(path=str(path), scheme=chosen)
    report.unexpected = sorted(key for key in checkpoint if key not in mapping)

    first_conv, classifier = "stem.0.conv.weight", ("fc.weight", "fc.bias")
    update: dict[str, torch.Tensor] = {}
    for key, target in mapping.items():
        value, expected = checkpoint[key], ours[target]
        if target == first_conv and value.dim() == expected.dim() and value.shape[1] != expected.shape[1]:
            value = adapt_first_conv(value.float(), expected.shape[1])
            report.adapted.append(target)
        elif target in classifier and value.shape != expected.shape:
            report.skipped.append(target)
            continue
        else:
            report.loaded.append(target)
        if value.shape != expected.shape:
            raise ValueError(
                f"{path}: {key} (-> {target}) has shape {tuple(value.shape)}, the network expects "
                f"{tuple(expected.shape)}"
            )
        update[target] = value.to(dtype=expected.dtype)
    if "fc.weight" in report.skipped and "fc.bias" in report.loaded:  # the pair goes together
        report.loaded.remove("fc.bias")
        report.skipped.append("fc.bias")
        del update["fc.bias"]
    report.missing = sorted(
        key
        for key in ours
        if key not in update and key not in report.skipped and not key.endswith("num_batches_tracked")
    )
    if strict:
        unexplained = [
            key for key in report.missing if ".spatial_attention." not in key and key not in classifier
        ]
        if unexplained or report.unexpected:
            raise ValueError(
                f"{path}: not a checkpoint of this network ({chosen} names): missing {unexplained}, "
                f"unexpected {report.unexpected} (strict=False loads what matches)"
            )
    state = network.state_dict()
    state.update(update)
    network.load_state_dict(state)
    logger.info("ResNeSt checkpoint %s", report.summary())
    return report
