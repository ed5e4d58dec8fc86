"""3D U-Net for multiple-sclerosis lesions, with brain tissue as an extra input or an extra output.

A. Assadi Abolvardi, L. Hamey, K. Ho-Shon, "UNET-Based Multi-Task Architecture for Brain Lesion
Segmentation" (paper 002 in ``shared/papers``), §IV, Fig. 5-6; §VII for the training settings (64³ patches,
Adam with learning rate 5e-4, 100 epochs).

The paper compares three variants of one patch-wise 3D U-Net (Table I-II):

* ``"plain"``: the four MR modalities in, the lesion map out (the "regular 3D-UNET");
* ``"multi_input"``: the three brain-tissue masks as extra input modalities ("we ... passed each brain
  tissue mask as a different modality to the network");
* ``"multi_output"``: hard parameter sharing, "all the layers are shared except for the last layer in
  expanding path. There are two different final layers each for one task" (Fig. 6): a lesion head and a
  brain-tissue head.

The loss of eq. 1-3 is :class:`common.losses.GeneralizedDiceTPRLoss` (lesion head); the tissue head's
multi-class generalised Dice is MONAI's ``GeneralizedDiceLoss`` (see that module).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.layers.factories import Conv
from monai.networks.nets.basic_unet import Down, TwoConv, UpCat
from torch import nn

from .multihead import MultiHeadNetwork

#: The three variants of §IV (Table I-II's columns: 3D-UNET, Multi-Input, Multi-Output).
VARIANTS = ("plain", "multi_input", "multi_output")

#: Input channel order of the MR modalities (the ISBI 2015 MS lesion challenge's four, §V).
MODALITIES = ("FLAIR", "MPRAGE", "PD", "T2")

#: Classes of the tissue head (``multi_output``), in channel order; a tissue label map holds these indices.
#: The order is fixed here once: 0 background, 1 CSF, 2 grey matter, 3 white matter.
TISSUE_CLASSES = ("background", "CSF", "GM", "WM")

#: Extra input channels of ``multi_input``, after the modalities: one binary mask per tissue class except
#: the background, in :data:`TISSUE_CLASSES` order, so that input channel ``len(MODALITIES) + k - 1`` is
#: ``tissue_label == k``.
TISSUE_MASKS = TISSUE_CLASSES[1:]

#: Input channel names of each variant, in order.
INPUT_CHANNELS: dict[str, tuple[str, ...]] = {
    "plain": MODALITIES,
    "multi_input": MODALITIES + TISSUE_MASKS,
    "multi_output": MODALITIES,
}


class MultiTaskUNet3D(MultiHeadNetwork):
    """The 3D U-Net of Fig. 5 in the three variants of §IV (see the module docstring).

    Architecture (Fig. 5, the U-Net of Ronneberger et al. 2015 in 3D): per encoder level two 3x3x3
    convolutions (each with normalisation and activation), 2x max-pooling between levels, the channels
    doubling with depth; per decoder level a 2x transposed convolution halving the channels, concatenation
    of the encoder skip, and two 3x3x3 convolutions; then 1x1x1 convolutions give the heads. The blocks are
    MONAI's ``BasicUNet`` blocks (``TwoConv``, ``Down``, ``UpCat``); unlike ``BasicUNet`` (fixed at five
    levels, one final convolution) the depth follows ``features`` and the features before the final layer
    feed one head per task.

    ``features``: the paper gives no widths. The default ``(32, 64, 128, 256, 512)`` keeps Fig. 5's depth
    (four down-samplings: a 64³ patch reaches a 4³ bottleneck) and its doubling of the channels per level,
    starting from 32 channels as MONAI's ``BasicUNet`` and the usual 3D U-Nets do instead of the 2D U-Net's
    64, which would make the full-resolution 64³ activations of 3D patches four times as large. A smaller
    network is a config override (e.g. ``(32, 64, 128, 256)``, three down-samplings).

    Heads (:meth:`heads`, logits, no activation):

    * ``"lesion"``: ``(B, 1, *spatial)``, the MS lesion logit (sigmoid);
    * ``"tissue"`` (``multi_output`` only): ``(B, 4, *spatial)`` logits of :data:`TISSUE_CLASSES` (softmax).

    The ``multi_output`` variant is the ``plain`` network plus the tissue head's 1x1x1 convolution: every
    other layer, the lesion head included, is shared and has the same parameter names. ``multi_input``
    differs from ``plain`` only in the first convolution's input channels.

    Args:
        variant: one of :data:`VARIANTS`.
        in_channels: input channels; by default those of the variant (:data:`INPUT_CHANNELS`: 4, 7 or 4).
        features: channels of the encoder levels, the last being the bottleneck. The input's spatial size
            must be divisible by ``2 ** (len(features) - 1)`` (16 by default).
        spatial_dims: 3 (the paper); 2 also works.
        act, norm, bias, dropout: of every 3x3x3 convolution, as in MONAI's ``BasicUNet`` (LeakyReLU 0.1
            and affine instance normalisation by default; the paper names neither).
        upsample: ``"deconv"`` (Fig. 5's up-convolution), or ``"nontrainable"`` / ``"pixelshuffle"``.
        pred_heads: the heads of the inference output ``pred`` (:meth:`forward`), in channel order; all heads
            by default.

    Parameter counts with the defaults: 22,583,809 (``plain``), 22,586,401 (``multi_input``), 22,583,941
    (``multi_output``); with ``features=(32, 64, 128, 256)``: 5,605,121 (``plain``).
    """

    def __init__(
        self,
        variant: str = "plain",
        in_channels: int | None = None,
        features: Sequence[int] = (32, 64, 128, 256, 512),
        spatial_dims: int = 3,
        act: str | tuple = ("LeakyReLU", {"negative_slope": 0.1, "inplace": True}),
        norm: str | tuple = ("instance", {"affine": True}),
        bias: bool = True,
        dropout: float = 0.0,
        upsample: str = "deconv",
        pred_heads: Sequence[str] | None = None,
    ):
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        super().__init__(["lesion", "tissue"] if variant == "multi_output" else ["lesion"], pred_heads)
        if len(features) < 2:
            raise ValueError("features needs at least two levels (one encoder level and the bottleneck)")
        self.variant = variant
        self.in_channels = len(INPUT_CHANNELS[variant]) if in_channels is None else int(in_channels)
        self.divisor = 2 ** (len(features) - 1)
        fea = list(features)

        self.stem = TwoConv(spatial_dims, self.in_channels, fea[0], act, norm, bias, dropout)
        self.encoder = nn.ModuleList(
            Down(spatial_dims, fea[i], fea[i + 1], act, norm, bias, dropout) for i in range(len(fea) - 1)
        )
        # decoder[k] up-samples level n - k to level n - k - 1 (the deepest first)
        self.decoder = nn.ModuleList(
            UpCat(spatial_dims, fea[i + 1], fea[i], fea[i], act, norm, bias, dropout, upsample)
            for i in reversed(range(len(fea) - 1))
        )
        conv = Conv[Conv.CONV, spatial_dims]
        self.lesion_head = conv(fea[0], 1, kernel_size=1)
        self.tissue_head: nn.Module | None = (
            conv(fea[0], len(TISSUE_CLASSES), kernel_size=1) if variant == "multi_output" else None
        )

    def shared_features(self, x: torch.Tensor) -> torch.Tensor:
        """The shared features before the final 1x1x1 layers: ``(B, features[0], *spatial)``."""
        size = x.shape[2:]
        for s in size:
            if s % self.divisor != 0:
                raise ValueError(
                    f"MultiTaskUNet3D input size {size} must be divisible by {self.divisor}; pad or crop "
                    "it first (e.g. monai.transforms.DivisiblePad)"
                )
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"MultiTaskUNet3D ({self.variant}) expects {self.in_channels} input channels, "
                f"got {x.shape[1]}"
            )
        x = self.stem(x)
        skips: list[torch.Tensor] = []
        for level in self.encoder:
            skips.append(x)
            x = level(x)
        for stage in self.decoder:
            x = stage(x, skips.pop())
        return x

    def heads(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        shared = self.shared_features(x)
        out = {"lesion": self.lesion_head(shared)}
        if self.tissue_head is not None:
            out["tissue"] = self.tissue_head(shared)
        return out


__all__ = ["INPUT_CHANNELS", "MODALITIES", "TISSUE_CLASSES", "TISSUE_MASKS", "VARIANTS", "MultiTaskUNet3D"]
