"""BraTS post-processing: 3D false-positive removal and assembly of the canonical label map.

Paper: "Multi-Task Deep Supervision on Attention R2U-Net for Brain Tumor Segmentation", Front. Oncol. 2021
(paper 001 in ``shared/papers``), §3.4. The 2D whole-tumour predictions of a patient are stacked into a 3D
volume, its connected components are computed in 3D, the largest predicted tumour is kept as the baseline,
and every other component whose volume is less than one tenth of the baseline is removed as a false
positive.

Labels follow the project's canonical BraTS convention: 0 background, 1 necrotic / non-enhancing tumour
core (NCR), 2 peritumoral oedema (ED), 3 enhancing tumour (ET).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_numpy
from scipy import ndimage

__all__ = ["AssembleBraTSLabelsd", "RemoveSmallComponents", "RemoveSmallComponentsd"]

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


class RemoveSmallComponentsd(MapTransform):
    """Dictionary-based wrapper of :class:`RemoveSmallComponents` (paper 001, §3.4).

    Args:
        keys: keys of the masks to clean.
        ratio, connectivity, independent: see :class:`RemoveSmallComponents`.
        allow_missing_keys: don't raise if a key is missing.
    """

    backend = RemoveSmallComponents.backend

    def __init__(
        self,
        keys: KeysCollection,
        ratio: float = 0.1,
        connectivity: int | None = None,
        independent: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.converter = RemoveSmallComponents(ratio, connectivity, independent)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.converter(d[key])
        return d


class AssembleBraTSLabelsd(MapTransform):
    """Build the canonical BraTS label map from the sigmoid probabilities of the four heads.

    The network of paper 001 outputs the whole tumour (WT) as its final prediction; the ET, NCR and ED
    heads are auxiliary deep-supervision outputs (MTDS, §2.2). Per case, each head is ``(1, X, Y, Z)``
    (the 2D predictions of all axial slices stacked into a volume). The rule is:

    1. whole tumour = ``wt > threshold``, cleaned in 3D by :class:`RemoveSmallComponents` with
       ``component_ratio`` (§3.4: keep the largest tumour and drop components under a tenth of it);
    2. inside the kept whole tumour: 3 (ET) where ``et > threshold``, else 1 (NCR) where
       ``ncr > threshold``, else 2 (ED); 0 outside.

    Why: the whole tumour is the output the paper evaluates and post-processes, so it alone decides
    where the tumour is, and the auxiliary heads only partition it; ET or NCR predicted outside it is
    ignored. The heads are independent sigmoids and may overlap; the precedence ET > NCR > ED follows the
    BraTS nesting WT ⊇ TC (= NCR ∪ ET) ⊇ ET. Oedema is the remainder of the whole tumour (ED = WT \\ TC)
    rather than ``ed > threshold``, so every tumour voxel gets a sub-label; the ED head is not read.

    Two outputs, ``uint8`` of shape ``(1, X, Y, Z)``, with the type, device and meta data (MetaTensor)
    of the WT input so that ``Invertd`` and ``SaveImaged`` work on them: the label map in ``output_key``
    and the cleaned whole-tumour mask (0/1, the mask the paper reports) in ``wt_mask_key``.

    Args:
        keys: the probability keys in the order ``(wt, et, ncr[, ed])``; ``ed`` is only listed so that
            ``remove_keys`` drops it too.
        output_key: where to write the label map.
        wt_mask_key: where to write the cleaned whole-tumour mask; None to skip it.
        threshold: probability threshold of every head (strictly greater is foreground).
        component_ratio: ``ratio`` of :class:`RemoveSmallComponents`; 0 disables the clean-up.
        connectivity: ``connectivity`` of :class:`RemoveSmallComponents` (None: 26-neighbourhood in 3D).
        remove_keys: drop the probability keys from the output dict.
    """

    def __init__(
        self,
        keys: KeysCollection = ("pred_wt", "pred_et", "pred_ncr", "pred_ed"),
        output_key: str = "pred_label",
        wt_mask_key: str | None = "pred_wt_mask",
        threshold: float = 0.5,
        component_ratio: float = 0.1,
        connectivity: int | None = None,
        remove_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys=False)
        if len(self.keys) not in (3, 4):
            raise ValueError(f"keys must be (wt, et, ncr[, ed]), got {self.keys}")
        self.output_key = output_key
        self.wt_mask_key = wt_mask_key
        self.threshold = float(threshold)
        self.remove_components = RemoveSmallComponents(component_ratio, connectivity)
        self.remove_keys = remove_keys

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        wt_key, et_key, ncr_key = self.keys[:3]
        wt_prob = d[wt_key]
        if wt_prob.shape[0] != 1:
            raise ValueError(f"{wt_key!r} must have one channel, got shape {tuple(wt_prob.shape)}")
        wt, et, ncr = (self._foreground(d[key], wt_prob.shape, key) for key in (wt_key, et_key, ncr_key))
        wt = self.remove_components(wt)
        label = np.where(et, 3, np.where(ncr, 1, 2)).astype(np.uint8) * wt
        if self.remove_keys:
            for key in self.keys:
                d.pop(key, None)
        d[self.output_key] = self._like(label, wt_prob)
        if self.wt_mask_key is not None:
            d[self.wt_mask_key] = self._like(wt, wt_prob)
        return d

    def _foreground(self, prob: NdarrayOrTensor, shape: Sequence[int], key: Hashable) -> np.ndarray:
        """``prob > threshold`` as a uint8 numpy array, checked against the WT shape."""
        if tuple(prob.shape) != tuple(shape):
            raise ValueError(f"{key!r} has shape {tuple(prob.shape)}, the whole tumour {tuple(shape)}")
        return (convert_to_numpy(prob) > self.threshold).astype(np.uint8)

    @staticmethod
    def _like(array: np.ndarray, reference: NdarrayOrTensor) -> NdarrayOrTensor:
        """``array`` as uint8 with the type, device and (a copy of the) meta data of ``reference``."""
        dtype = np.uint8 if isinstance(reference, np.ndarray) else torch.uint8
        return convert_to_dst_type(array, dst=reference, dtype=dtype)[0]
