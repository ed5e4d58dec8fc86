"""Assemble a canonical label map from the probabilities of region heads.

Attention R2U-Net (paper 001, §2.2 and §3.4) predicts the whole tumour as its main output and the
sub-regions as deep-supervision heads; the BraTS bundle turns them into one label map. The rule is written
once here, driven by the head spec and the label scheme (:mod:`common.heads`, :mod:`common.labels`), so
that no label value is hard-coded:

1. the ``outer`` head's mask (``p > threshold``), cleaned in 3D by :class:`RemoveSmallComponents`
   (§3.4: keep the largest lesion, drop components under ``component_ratio`` of it), says where the lesion
   is;
2. inside it, each voxel gets the label of the first head of ``precedence`` whose probability exceeds the
   threshold, else the ``remainder`` label; 0 outside.

For BraTS: ``outer="wt"``, ``precedence=["et", "ncr"]``, ``remainder="ed"``. The whole tumour is the output
the paper evaluates and post-processes, so it alone decides where the tumour is and the auxiliary heads
only partition it (ET or NCR predicted outside it is ignored). The heads are independent sigmoids and may
overlap; the precedence ET > NCR > ED follows the BraTS nesting WT ⊇ TC (= NCR ∪ ET) ⊇ ET. Oedema is the
remainder of the whole tumour (ED = WT \\ TC) rather than ``ed > threshold``, so every tumour voxel gets a
sub-label and the ED head is not read.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import NdarrayOrTensor
from monai.transforms import MapTransform
from monai.utils import convert_to_dst_type, convert_to_numpy

from common.heads import HeadSpec

from .components import RemoveSmallComponents

__all__ = ["AssembleLabelsd"]


class AssembleLabelsd(MapTransform):
    """Canonical label map from region-head probabilities (see the module docstring).

    Inputs are the per-head probability keys ``<prefix><head>`` of shape ``(1, *spatial)``. Two outputs,
    ``uint8`` with the type, device and meta data (MetaTensor) of the outer head's input so that ``Invertd``
    and ``SaveImaged`` work on them: the label map in ``output_key`` and the cleaned outer mask (0/1) in
    ``outer_mask_key``.

    Args:
        heads: the bundle's head spec; its label scheme gives the label of each head's region.
        outer: the head whose mask bounds the lesion.
        precedence: heads whose (single-label) region is assigned inside the outer mask, first wins.
        remainder: the label name given to the rest of the outer mask.
        prefix: key prefix of the probabilities (``SplitHeadsd`` writes ``pred_<head>``).
        output_key: where to write the label map.
        outer_mask_key: where to write the cleaned outer mask (default ``<prefix><outer>_mask``); "" skips.
        threshold: probability threshold of every head (strictly greater is foreground).
        component_ratio: ``ratio`` of :class:`RemoveSmallComponents`; 0 disables the clean-up.
        connectivity: ``connectivity`` of :class:`RemoveSmallComponents` (None: full connectivity).
        remove_keys: drop the probability keys from the output dict.
    """

    def __init__(
        self,
        heads: HeadSpec,
        outer: str,
        precedence: Sequence[str],
        remainder: str,
        prefix: str = "pred_",
        output_key: str = "pred_label",
        outer_mask_key: str | None = None,
        threshold: float = 0.5,
        component_ratio: float = 0.1,
        connectivity: int | None = None,
        remove_keys: bool = False,
    ) -> None:
        if heads.labels is None:
            raise ValueError("AssembleLabelsd needs a head spec with a label scheme")
        regions = heads.region_heads
        for name in (outer, *precedence):
            if name not in regions:
                raise ValueError(f"{name!r} is not a region head of the spec; region heads: {list(regions)}")
        self.labels = {name: self._single_label(name, regions[name]) for name in precedence}
        self.remainder = self._single_label(remainder, heads.labels.region(remainder))
        super().__init__([f"{prefix}{name}" for name in (outer, *precedence)], allow_missing_keys=False)
        self.output_key = output_key
        self.outer_mask_key = f"{prefix}{outer}_mask" if outer_mask_key is None else outer_mask_key
        self.threshold = float(threshold)
        self.remove_components = RemoveSmallComponents(component_ratio, connectivity)
        self.remove_keys = remove_keys

    @staticmethod
    def _single_label(name: str, values: Sequence[int]) -> int:
        if len(values) != 1:
            raise ValueError(f"{name!r} spans labels {list(values)}; assembly needs a region of one label")
        return int(values[0])

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        outer_key, *inner_keys = self.keys
        outer_prob = d[outer_key]
        if outer_prob.shape[0] != 1:
            raise ValueError(f"{outer_key!r} must have one channel, got shape {tuple(outer_prob.shape)}")
        outer = self.remove_components(self._foreground(outer_prob, outer_prob.shape, outer_key))
        label = np.full(outer.shape, self.remainder, dtype=np.uint8)
        # assign in reverse precedence so that the first head of ``precedence`` is written last and wins
        for key, value in reversed(list(zip(inner_keys, self.labels.values()))):
            label[self._foreground(d[key], outer_prob.shape, key) > 0] = value
        label *= outer
        if self.remove_keys:
            for key in self.keys:
                d.pop(key, None)
        d[self.output_key] = self._like(label, outer_prob)
        if self.outer_mask_key:
            d[self.outer_mask_key] = self._like(outer, outer_prob)
        return d

    def _foreground(self, prob: NdarrayOrTensor, shape: Sequence[int], key: Hashable) -> np.ndarray:
        """``prob > threshold`` as a uint8 numpy array, checked against the outer head's shape."""
        if tuple(prob.shape) != tuple(shape):
            raise ValueError(f"{key!r} has shape {tuple(prob.shape)}, the outer head {tuple(shape)}")
        return (convert_to_numpy(prob) > self.threshold).astype(np.uint8)

    @staticmethod
    def _like(array: np.ndarray, reference: NdarrayOrTensor) -> NdarrayOrTensor:
        """``array`` as uint8 with the type, device and (a copy of the) meta data of ``reference``."""
        dtype = np.uint8 if isinstance(reference, np.ndarray) else torch.uint8
        return convert_to_dst_type(array, dst=reference, dtype=dtype)[0]
