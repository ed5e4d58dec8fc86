"""False-positive removal by connected-component size (paper 001, §3.4).

"Multi-Task Deep Supervision on Attention R2U-Net for Brain Tumor Segmentation", Front. Oncol. 2021 (paper
001 in ``shared/papers``), §3.4: the 2D predictions of a patient are stacked into a 3D volume, its connected
components are computed in 3D, the largest predicted tumour is kept as the baseline, and every other
component whose volume is less than one tenth of the baseline is removed as a false positive.
"""

from __future__ import annotations

import numpy as np
from monai.config import NdarrayOrTensor
from monai.transforms import Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_numpy
from scipy import ndimage

__all__ = ["RemoveSmallComponents"]

# Absolute slack on the size threshold: voxel counts are integers, so this only absorbs floating-point
# error in ``ratio * largest`` (e.g. 0.1 * 30 = 3.0000000000000004) and keeps a component of exactly
# one tenth of the largest, which the paper does not call a false positive ("less than one-tenth").
_SIZE_TOLERANCE = 1e-6


def _kept_components(foreground: np.ndarray, ratio: float, connectivity: int | None) -> np.ndarray:
    """Boolean mask of the components of ``foreground`` (no channel axis) that survive the size test."""
    structure = ndimage.generate_binary_structure(foreground.ndim, connectivity or foreground.ndim)
    components, count = ndimage.label(foreground, structure=structure)
    if count <= 1:  # empty, or a single component which is the largest
        return foreground.astype(bool, copy=False)
    sizes = np.bincount(components.ravel())
    sizes[0] = 0  # background
    keep = sizes >= ratio * sizes.max() - _SIZE_TOLERANCE
    keep[0] = False
    return keep[components]


class RemoveSmallComponents(Transform):
    """Remove the connected components that are small relative to the largest one (paper 001, §3.4).

    The input is a channel-first mask ``(C, spatial_dim1[, spatial_dim2, ...])`` (2D or 3D spatial),
    as a numpy array, torch tensor or MetaTensor; non-zero voxels are foreground. In each channel the
    connected components are labelled, the largest is kept and every other component with fewer than
    ``ratio`` times the largest's voxel count is set to 0. Kept voxels keep their value; the output has
    the input's type, dtype, device and meta data. An empty channel stays empty; with ties for the
    largest, all of them are kept.

    The paper keeps the largest predicted tumour of a patient in 3D and removes the others whose volume
    is less than one tenth of it, hence ``ratio=0.1``. A component of exactly ``ratio`` times the
    largest is kept. ``ratio=0`` keeps everything, ``ratio=1`` keeps only components as large as the
    largest.

    Args:
        ratio: relative size threshold in ``[0, 1]``.
        connectivity: maximum number of orthogonal hops for two voxels to be neighbours, from 1 to the
            number of spatial dimensions (``scipy.ndimage.generate_binary_structure``). The paper does not
            say which it used; the default ``None`` is full connectivity (26-neighbourhood in 3D,
            8-neighbourhood in 2D), as in MONAI's ``KeepLargestConnectedComponent``. It is the
            conservative choice here: a fragment touching the main tumour only by an edge or a corner
            counts as part of it and is not removed.
        independent: when True each channel is analysed on its own; when False the components are
            those of the union of the channels' foregrounds, and a removed component is zeroed in every
            channel.
    """

    backend = [TransformBackends.NUMPY]

    def __init__(self, ratio: float = 0.1, connectivity: int | None = None, independent: bool = True) -> None:
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"ratio must be in [0, 1], got {ratio}")
        if connectivity is not None and connectivity < 1:
            raise ValueError(f"connectivity must be None or >= 1, got {connectivity}")
        self.ratio = float(ratio)
        self.connectivity = connectivity
        self.independent = independent

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """
        Args:
            img: channel-first mask of shape ``(C, spatial_dim1[, spatial_dim2, ...])``.

        Returns:
            the mask with the small components set to 0, of the same type, shape and dtype.
        """
        if img.ndim < 2:
            raise ValueError(f"expected a channel-first image (C, spatial...), got shape {tuple(img.shape)}")
        spatial_ndim = img.ndim - 1
        if self.connectivity is not None and self.connectivity > spatial_ndim:
            raise ValueError(
                f"connectivity {self.connectivity} exceeds the {spatial_ndim} spatial dimensions of the input"
            )
        data = convert_to_numpy(img, wrap_sequence=True)
        foreground = data != 0
        if self.independent:
            keep = np.stack([_kept_components(fg, self.ratio, self.connectivity) for fg in foreground])
        else:
            keep = _kept_components(foreground.any(axis=0), self.ratio, self.connectivity)[None]
        out = np.where(keep, data, np.zeros((), dtype=data.dtype))
        return convert_to_dst_type(out, dst=img)[0]
