"""Targets of the auxiliary edge head: the boundary band of the lesion mask, made on the fly.

Paper 003 in ``shared/papers`` (L. Liu et al., "Multi-task learning improves the brain stroke lesion
segmentation", §2.1) trains an edge head "supervised by edges of the stroke lesion task" next to the lesion
head, without saying how the edge ground truth is drawn. The edge here is the morphological boundary band of
the binary lesion mask (scipy.ndimage binary dilation and erosion):

* ``side="both"`` (default): ``dilation XOR erosion``, the pixels within ``width`` of the boundary on either
  side: the lesion pixels that have a background pixel within ``width`` steps and the background pixels
  that have a lesion pixel within ``width`` steps. The band is ``2 * width`` pixels thick and centred on the
  boundary, which lies between pixels (a discrete Laplacian of the mask is non-zero on both sides too);
* ``side="inner"``: ``mask AND NOT erosion``, the lesion's own outer ``width`` pixels;
* ``side="outer"``: ``dilation AND NOT mask``, the ``width`` background pixels around the lesion.

A step follows the structuring element of ``connectivity`` (scipy's ``generate_binary_structure``): the full
3x3 (3x3x3) neighbourhood by default (chessboard distance: the band around a square is a square ring), or
``connectivity=1`` for the 4- (6-) neighbourhood (city-block distance). The image border is not a boundary:
the erosion takes the mask as continuing beyond it, so a lesion cut by the image edge gets no band along it.

With ``slice_axis`` the band of a 3D volume is drawn in each 2D slice across that axis (the structuring
element is flat along it), which is what a 2D network fed slices of the volume sees: the top and bottom faces
of a lesion are no edge in-plane.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import DtypeLike, KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform
from monai.utils import convert_to_dst_type, convert_to_numpy
from scipy import ndimage

__all__ = ["EDGE_SIDES", "EdgeTargetsd", "edge_band"]

EDGE_SIDES = ("both", "inner", "outer")


def edge_band(
    mask: np.ndarray,
    width: int = 1,
    side: str = "both",
    connectivity: int | None = None,
    slice_axis: int | None = None,
) -> np.ndarray:
    """Boolean boundary band of one binary ``mask`` (no channel axis; see the module docstring).

    Args:
        mask: boolean (or 0/1) array, 2D or 3D.
        width: band width in steps of the structuring element on each covered side (>= 1).
        side: ``"both"``, ``"inner"`` or ``"outer"`` (:data:`EDGE_SIDES`).
        connectivity: of the structuring element, 1 .. ``mask.ndim`` (``None``: ``mask.ndim``, the full
            neighbourhood); counted in the slice's 2D when ``slice_axis`` is set.
        slice_axis: axis of ``mask`` across which the band is drawn slice by slice; ``None``: in full N-D.
    """
    if side not in EDGE_SIDES:
        raise ValueError(f"side must be one of {EDGE_SIDES}, got {side!r}")
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    mask = np.asarray(mask, dtype=bool)
    rank = mask.ndim if slice_axis is None else mask.ndim - 1
    if slice_axis is not None and not 0 <= slice_axis < mask.ndim:
        raise ValueError(f"slice_axis {slice_axis} is not an axis of a {mask.ndim}D mask")
    connectivity = rank if connectivity is None else int(connectivity)
    if not 1 <= connectivity <= rank:
        raise ValueError(f"connectivity must be in 1..{rank}, got {connectivity}")
    structure = ndimage.generate_binary_structure(rank, connectivity)
    if slice_axis is not None:
        structure = np.expand_dims(structure, slice_axis)  # flat across the slices
    if not mask.any():
        return np.zeros_like(mask)
    inner = outer = np.zeros_like(mask)
    if side in ("both", "inner"):
        # border_value=1: the mask continues beyond the image border, which is no lesion boundary
        inner = mask & ~ndimage.binary_erosion(mask, structure, iterations=width, border_value=1)
    if side in ("both", "outer"):
        outer = ndimage.binary_dilation(mask, structure, iterations=width) & ~mask
    return inner | outer


class EdgeTargetsd(MapTransform):
    """The edge head's target: the boundary band of a lesion mask, written to ``output_key``.

    The value under ``keys`` (one key) is a channel-first mask ``(C, H, W)`` or ``(C, H, W, D)`` as a numpy
    array, torch tensor or MetaTensor; a pixel is lesion where it exceeds ``threshold``. Each channel gets
    its band (:func:`edge_band`, see the module docstring for the sides, the width and the connectivity);
    the result has the input's shape, type, device and meta data (affine, file name) and ``dtype``.

    Args:
        keys: the lesion-mask key (e.g. ``"label"``).
        output_key: where the edge target goes (the edge head's ``target`` in the head spec).
        width: band width on each covered side, in pixels (chessboard steps by default).
        side: ``"both"`` (default), ``"inner"`` or ``"outer"``.
        connectivity: of the structuring element (default: full neighbourhood).
        slice_axis: for 3D masks fed to a 2D network: the spatial axis (0, 1 or 2 of ``(H, W, D)``) across
            which the band is drawn slice by slice; ``None``: in full 3D.
        threshold: a pixel is lesion where the mask exceeds it (0.5: 0/1 masks, 0/255 masks, label maps).
        dtype: of the output (float32 suits ``DiceCELoss``).
        allow_missing_keys: skip an item without the mask (e.g. at inference).
    """

    def __init__(
        self,
        keys: KeysCollection = "label",
        output_key: str = "edge",
        width: int = 1,
        side: str = "both",
        connectivity: int | None = None,
        slice_axis: int | None = None,
        threshold: float = 0.5,
        dtype: DtypeLike | torch.dtype = np.float32,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError(f"EdgeTargetsd reads one mask key, got {list(self.keys)}")
        edge_band(np.zeros((3, 3, 3), bool), width, side, connectivity, slice_axis)  # check the options now
        self.output_key = output_key
        self.width = int(width)
        self.side = side
        self.connectivity = connectivity
        self.slice_axis = slice_axis
        self.threshold = float(threshold)
        self.dtype = dtype

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            label = d[key]
            if label.ndim not in (3, 4):
                raise ValueError(
                    f"EdgeTargetsd: {key!r} has shape {tuple(label.shape)}; expected a channel-first 2D or "
                    "3D mask (C, H, W[, D])"
                )
            if self.slice_axis is not None and label.ndim != 4:
                raise ValueError(f"EdgeTargetsd: slice_axis needs a 3D mask (C, H, W, D), got {label.shape}")
            mask = convert_to_numpy(label) > self.threshold
            band = np.stack(
                [edge_band(c, self.width, self.side, self.connectivity, self.slice_axis) for c in mask]
            )
            d[self.output_key] = convert_to_dst_type(band, dst=label, dtype=self.dtype)[0]
        return d
