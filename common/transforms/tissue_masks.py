"""White matter, grey matter and CSF masks made by the bundle itself, without SPM (paper 002, §VII).

The multiple-sclerosis paper (paper 002 in ``shared/papers``, §VII) segments each MRI into brain tissues with
SPM, merges the lesion voxels into white matter (SPM is built for healthy brains), and gives the three tissue
masks to its multi-input U-Net as extra input channels (its multi-output U-Net learns them as a second task).
Inference must not need SPM, MATLAB or masks the user lacks, so the bundle makes them itself from the T1
(MPRAGE) image, with the field's standard tools through ANTsPy:

1. a brain mask: the voxels that differ from the constant background of a skull-stripped image (the ISBI
   2015 preprocessed images: the brain is the non-zero region), or ANTsPy's ``get_mask`` (threshold at the
   mean, morphological clean-up, largest component, hole filling) when there is no constant background;
   the largest connected component is kept and holes are filled;
2. N4 bias-field correction inside the brain mask (Tustison et al. 2010, "N4ITK: improved N3 bias
   correction", IEEE TMI 29(6); ``ants.n4_bias_field_correction``);
3. a three-class Atropos segmentation of the corrected T1 inside the brain mask (Avants et al. 2011, "An open
   source multivariate framework for n-tissue segmentation with evaluation on public data",
   Neuroinformatics 9(4); ``ants.atropos``): k-means initialisation and a Markov random field prior, or,
   when tissue prior images are given as files (e.g. MNI tissue probability maps, the ISBI images being in
   MNI space), those priors as initialisation and prior term;
4. the classes ordered by mean corrected T1 intensity: CSF < GM < WM;
5. lesion voxels merged into white matter when a lesion mask is given (training: the ground truth), as the
   paper does.

Class codes and channel order, fixed for the project: the label map is 0 background, 1 CSF, 2 GM, 3 WM (the
multi-output network's tissue head: background, CSF, GM, WM), and the masks are its one-hot encoding without
the background, channels **CSF, GM, WM** (``TISSUE_CHANNELS``), so ``masks[c] == (labels == c + 1)``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Hashable, Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import DtypeLike, KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import LoadImage, MapTransform, ResampleToMatch
from monai.utils import convert_to_dst_type, convert_to_numpy
from scipy import ndimage

from common.data.atomic import atomic_output
from common.data.errors import DataFormatError

__all__ = [
    "CSF",
    "GM",
    "TISSUE_CHANNELS",
    "TISSUE_LABELS",
    "WM",
    "TissueMasksd",
    "ants_geometry",
    "brain_mask_of",
    "segment_tissues",
]

logger = logging.getLogger(__name__)

CSF, GM, WM = 1, 2, 3
TISSUE_LABELS = ("background", "csf", "gm", "wm")  # label-map codes 0..3
TISSUE_CHANNELS = ("csf", "gm", "wm")  # mask channels: label codes 1..3

BRAIN_MASK_METHODS = ("auto", "nonzero", "threshold")
OUTPUTS = ("masks", "labels")
# "auto" takes the image as skull-stripped when at least this fraction of it is the constant background
_BACKGROUND_FRACTION = 0.05
_MIN_BRAIN_VOXELS = 64
# bump when the computation changes, so that cache entries of the old one are not reused
_CACHE_VERSION = 1


# ---------------------------------------------------------------------------------------------- geometry


def ants_geometry(affine: np.ndarray | torch.Tensor | None) -> dict[str, Any]:
    """ITK/ANTs ``origin``, ``spacing`` and ``direction`` (LPS) of a MONAI/NIfTI voxel-to-RAS ``affine``.

    MONAI's affine maps voxel indices to RAS millimetres; ITK (and so ANTs) keeps physical points in LPS
    and describes a grid by origin, spacing and a direction matrix whose columns are the axes' unit vectors.
    ``ants.from_numpy(array, **ants_geometry(affine))`` indexes ``array[i, j, k]`` as the same voxel, so the
    voxel grid is shared and only spacing matters to N4 and Atropos. A sheared affine gets the nearest
    orthonormal direction (ITK needs one). ``None`` is the identity (1 mm voxels).

    The geometry is rounded (spacing to 1e-4 mm, direction to 1e-4, origin to 1e-3 mm) because N4 is
    sensitive to it: on a phantom, spacing 1 + 1e-6 mm instead of 1 mm changed the tissue label of 1.7 % of
    the voxels, so the same image read from NIfTI (float32 affine) and from DICOM (positions in decimal
    strings) gave different masks. Rounding makes such noise irrelevant; it is far below any real spacing.
    """
    if affine is None:
        return {"origin": (0.0, 0.0, 0.0), "spacing": (1.0, 1.0, 1.0), "direction": np.eye(3)}
    affine = np.asarray(convert_to_numpy(affine), dtype=np.float64)
    ras_to_lps = np.diag([-1.0, -1.0, 1.0])
    linear = ras_to_lps @ affine[:3, :3]
    spacing = np.round(np.linalg.norm(linear, axis=0), 4)
    if np.any(spacing <= 0) or not np.all(np.isfinite(spacing)):
        raise ValueError(f"affine has a degenerate axis (spacing {spacing.tolist()})")
    direction = np.round(linear / np.linalg.norm(linear, axis=0), 4) + 0.0  # + 0.0: no negative zeros
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-12):
        u, _, vt = np.linalg.svd(direction)
        direction = u @ vt
    origin = np.round(ras_to_lps @ affine[:3, 3], 3) + 0.0
    return {"origin": tuple(origin.tolist()), "spacing": tuple(spacing.tolist()), "direction": direction}


def _to_ants(array: np.ndarray, geometry: Mapping[str, Any]):
    import ants

    return ants.from_numpy(np.ascontiguousarray(array, dtype=np.float32), **geometry)


# -------------------------------------------------------------------------------------------- brain mask


def _largest_filled_component(mask: np.ndarray) -> np.ndarray:
    structure = ndimage.generate_binary_structure(mask.ndim, mask.ndim)
    components, count = ndimage.label(mask, structure=structure)
    if count > 1:
        sizes = np.bincount(components.ravel())
        sizes[0] = 0
        mask = components == sizes.argmax()
    return ndimage.binary_fill_holes(mask)


def brain_mask_of(t1: np.ndarray, method: str = "auto", affine: np.ndarray | None = None) -> np.ndarray:
    """Boolean brain mask of a T1 volume (no channel axis).

    ``"nonzero"``: the voxels that differ from the constant background value (the image minimum: 0 in the
    ISBI preprocessed images, which are skull-stripped; another constant after a shift), largest connected
    component, holes filled. ``"threshold"``: ``ants.get_mask`` (threshold at the mean intensity, erosion,
    largest component, dilation, hole filling), for a brain image whose background is noise rather than a
    constant. ``"auto"``: ``"nonzero"`` when at least 5 % of the volume is exactly the minimum, else
    ``"threshold"``. Neither is skull stripping: an image with skull and scalp needs a brain mask from a
    skull-stripping tool (``brain_mask_key`` of :class:`TissueMasksd`).
    """
    if method not in BRAIN_MASK_METHODS:
        raise ValueError(f"brain mask method must be one of {BRAIN_MASK_METHODS}, got {method!r}")
    background = t1.min()
    if method == "auto":
        method = "nonzero" if np.mean(t1 == background) >= _BACKGROUND_FRACTION else "threshold"
    if method == "nonzero":
        return _largest_filled_component(t1 != background)
    import ants

    mask = ants.get_mask(_to_ants(t1, ants_geometry(affine))).numpy() > 0
    return _largest_filled_component(mask)


# ------------------------------------------------------------------------------------------ segmentation


_ATROPOS_LOCK = threading.Lock()


@contextlib.contextmanager
def _private_tempdir() -> Iterator[None]:
    """Point ``tempfile`` at a private folder while Atropos runs, and remove what it leaves there.

    ANTsPy's ``atropos`` writes the posterior (and prior) probability images with ``tempfile.mktemp`` into
    the temporary folder and never deletes them: three volumes per call. ``tempfile.tempdir`` is global, so
    the calls of one process are serialised; only ANTsPy's own files are removed, and the folder only when
    empty, so a file another thread made meanwhile survives.
    """
    with _ATROPOS_LOCK:
        private = tempfile.mkdtemp(prefix="tissue-atropos-")
        saved = tempfile.tempdir
        tempfile.tempdir = private
        try:
            yield
        finally:
            tempfile.tempdir = saved
            for name in os.listdir(private):
                if name.startswith("antsr"):
                    with contextlib.suppress(OSError):
                        os.remove(os.path.join(private, name))
            with contextlib.suppress(OSError):
                os.rmdir(private)


def segment_tissues(
    t1: np.ndarray,
    brain: np.ndarray,
    affine: np.ndarray | torch.Tensor | None = None,
    *,
    priors: Sequence[np.ndarray] | None = None,
    prior_weight: float = 0.25,
    n4: bool = True,
    n4_shrink_factor: int = 4,
    n4_iterations: Sequence[int] = (50, 50, 50, 50),
    atropos_iterations: int = 5,
    mrf_smoothing: float = 0.1,
) -> tuple[np.ndarray, np.ndarray]:
    """N4 then three-class Atropos on a T1 volume inside ``brain``: ``(labels, corrected)``.

    ``labels`` (uint8, the volume's shape) is 0 outside the brain, 1 CSF, 2 GM, 3 WM, the classes ordered by
    their mean corrected T1 intensity; ``corrected`` is the T1 that Atropos segmented (float32): N4-corrected
    unless ``n4=False``, shifted as below. N4 (Tustison et al. 2010) models a multiplicative field and needs
    positive intensities: a volume with values <= 0 inside the brain (e.g. z-scored) is shifted up first
    (by its minimum there, plus 1 % of its range). Atropos (Avants et al. 2011) starts from k-means, or from
    ``priors`` (three arrays on the volume's grid, CSF, GM, WM, values in [0, 1]) with ``prior_weight`` (0:
    initialisation only), and runs ``atropos_iterations`` EM iterations with an MRF of weight
    ``mrf_smoothing`` over the 26-neighbourhood.
    """
    import ants

    if t1.ndim != 3:
        raise ValueError(f"expected a 3D T1 volume, got shape {t1.shape}")
    brain = np.asarray(brain, dtype=bool)
    if int(brain.sum()) < _MIN_BRAIN_VOXELS:
        raise ValueError(f"the brain mask has {int(brain.sum())} voxels, too few for three tissue classes")
    geometry = ants_geometry(affine)
    t1 = np.asarray(t1, dtype=np.float32)
    inside = t1[brain]
    if inside.min() <= 0:
        t1 = t1 - inside.min() + (0.01 * float(np.ptp(inside)) or 1.0)
    mask_image = _to_ants(brain, geometry)
    image = _to_ants(t1, geometry)
    if n4:
        image = ants.n4_bias_field_correction(
            image,
            mask=mask_image,
            shrink_factor=n4_shrink_factor,
            convergence={"iters": [int(i) for i in n4_iterations], "tol": 1e-7},
        )
    if priors is None:
        init: Any = "Kmeans[3]"
    else:
        if len(priors) != 3:
            raise ValueError(f"expected three tissue priors (CSF, GM, WM), got {len(priors)}")
        init = [_to_ants(np.clip(p, 0.0, 1.0), geometry) for p in priors]
    with _private_tempdir():
        result = ants.atropos(
            a=image,
            x=mask_image,
            i=init,
            m=f"[{mrf_smoothing},1x1x1]",
            c=f"[{int(atropos_iterations)},0]",
            priorweight=prior_weight,
        )
    corrected = image.numpy().astype(np.float32)
    classes = result["segmentation"].numpy().round().astype(np.uint8)
    classes[~brain] = 0
    means = [corrected[classes == k].mean() if np.any(classes == k) else -np.inf for k in (1, 2, 3)]
    labels = np.zeros_like(classes)
    for rank, k in enumerate(np.argsort(means, kind="stable")):
        labels[classes == k + 1] = rank + 1
    return labels, corrected


# ----------------------------------------------------------------------------------------------- cache


def _antspyx_version() -> str:
    try:
        return metadata.version("antspyx")
    except metadata.PackageNotFoundError:
        return "absent"


def _read_cache(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The cached label map at ``path``; ``None`` when there is none or it is unusable (then recomputed)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as entry:
            labels = entry["labels"]
    except Exception as err:  # truncated, overwritten or foreign: zip and zlib check what they read
        logger.warning("%s: unreadable tissue cache entry (%s); recomputing it", path, err)
        return None
    if labels.shape != shape or labels.dtype != np.uint8 or labels.size == 0 or labels.max() > WM:
        logger.warning("%s: tissue cache entry does not match its key; recomputing it", path)
        return None
    return labels


def _write_cache(path: Path, labels: np.ndarray) -> None:
    try:
        with atomic_output(path) as tmp:
            np.savez_compressed(tmp, labels=labels)
    except OSError as err:  # the masks are made; a cache that cannot be written only costs time
        logger.warning("%s: cannot write tissue cache entry (%s)", path, err)


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------- transform


def _source(value: Any, key: Hashable) -> str:
    """The file an item value came from (for error messages), else the item key."""
    if isinstance(value, MetaTensor):
        name = value.meta.get("filename_or_obj")
        if isinstance(name, (str, os.PathLike)) and str(name):
            return os.fspath(name)
    return f"<{key}>"


class TissueMasksd(MapTransform):
    """CSF, GM and WM masks of the T1 channel of an image, written to a new key (paper 002, §VII).

    See the module docstring for the method (brain mask, N4, Atropos, intensity ordering, lesion merge). The
    image under ``keys`` (one key) is channel-first ``(C, H, W, D)``: the four ISBI modalities (FLAIR,
    MPRAGE, PD, T2: the T1 is channel 1, the default ``t1_channel``) or a T1 alone (``t1_channel=0``), as a
    numpy array, torch tensor or MetaTensor. ``output_key`` receives, with the image's type, device and
    meta data (affine), either the three masks ``(3, H, W, D)``, channels CSF, GM, WM (``output="masks"``),
    or the label map ``(1, H, W, D)``, 0 background, 1 CSF, 2 GM, 3 WM (``output="labels"``).

    The masks go to their own key rather than onto the image, so that spatial transforms can treat them as
    labels (nearest-neighbour) while intensity normalisation and intensity augmentation leave them alone; the
    multi-input network gets them with ``ConcatItemsd(keys=["image", "tissue"], name="image")`` as the last
    step, and the multi-output network takes ``output="labels"`` as its tissue target. Place the transform
    after loading (and any reorientation or resampling), before intensity normalisation.

    Args:
        keys: the one image key.
        t1_channel: the T1 channel of the image.
        output_key: where the masks or the label map go.
        output: ``"masks"`` or ``"labels"``.
        brain_mask: ``"auto"``, ``"nonzero"`` or ``"threshold"`` (:func:`brain_mask_of`); used when
            ``brain_mask_key`` is not in the item.
        brain_mask_key: item key of a brain mask (non-zero = brain), used when present.
        lesion_key: item key of a lesion mask (non-zero in any channel = lesion); when present, its voxels
            become white matter (and neither CSF nor GM). Absent at inference: no merge.
        tissue_key: item key of user-supplied tissue masks, used when present instead of computing them
            (no ANTs call): a file path (read here with MONAI's ``LoadImage``, so that a pipeline needs no
            loader that tolerates its absence) or a loaded array: a label map ``(1, H, W, D)`` with codes
            0..3 as above, or masks ``(3, H, W, D)`` in ``[0, 1]``, channels CSF, GM, WM (e.g. SPM's c3,
            c1, c2 probability maps: a voxel's label is its most probable class where that probability is
            >= 0.5). The lesion merge applies to them as well (it is idempotent).
        cache_dir: folder of computed label maps (one compressed ``.npz`` each, written atomically), keyed by
            a SHA-256 of the T1 voxels, the affine, the brain mask (method, or the given mask's voxels), the
            priors' contents, the parameters and the antspyx version; an entry that cannot be read or does
            not fit is recomputed and rewritten. ``None``: no cache.
        priors: three tissue prior files (CSF, GM, WM probability maps, e.g. MNI tissue priors for images in
            MNI space), read with MONAI's ``LoadImage`` and resampled onto the image's grid by its affine
            (``ResampleToMatch``) when the grids differ; ``None``: k-means initialisation.
        prior_weight: Atropos prior weight (0: priors initialise only).
        n4: run N4 before Atropos.
        n4_shrink_factor, n4_iterations: N4's shrink factor and iterations per fitting level.
        atropos_iterations: Atropos EM iterations.
        mrf_smoothing: weight of Atropos's MRF prior (0.1 as in ANTs' ``antsAtroposN4.sh``).
        dtype: data type of the output.
        allow_missing_keys: skip an item without the image key.
    """

    def __init__(
        self,
        keys: KeysCollection,
        t1_channel: int = 1,
        output_key: str = "tissue",
        output: str = "masks",
        brain_mask: str = "auto",
        brain_mask_key: str | None = None,
        lesion_key: str | None = None,
        tissue_key: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        priors: Sequence[str | os.PathLike] | None = None,
        prior_weight: float = 0.25,
        n4: bool = True,
        n4_shrink_factor: int = 4,
        n4_iterations: Sequence[int] = (50, 50, 50, 50),
        atropos_iterations: int = 5,
        mrf_smoothing: float = 0.1,
        dtype: DtypeLike | torch.dtype = np.float32,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError(f"TissueMasksd reads one image key, got {list(self.keys)}")
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        if brain_mask not in BRAIN_MASK_METHODS:
            raise ValueError(f"brain_mask must be one of {BRAIN_MASK_METHODS}, got {brain_mask!r}")
        if t1_channel < 0:
            raise ValueError(f"t1_channel must be >= 0, got {t1_channel}")
        if atropos_iterations < 1 or n4_shrink_factor < 1 or not n4_iterations:
            raise ValueError("atropos_iterations and n4_shrink_factor must be >= 1, n4_iterations non-empty")
        self.priors: tuple[Path, ...] | None = None
        if priors is not None:
            if isinstance(priors, (str, os.PathLike)) or len(priors) != 3:
                raise ValueError(f"priors must be three files (CSF, GM, WM), got {priors!r}")
            self.priors = tuple(Path(p) for p in priors)
            for path in self.priors:
                if not path.is_file():
                    raise DataFormatError(path, "tissue prior file not found")
        self.t1_channel = t1_channel
        self.output_key = output_key
        self.output = output
        self.brain_mask = brain_mask
        self.brain_mask_key = brain_mask_key
        self.lesion_key = lesion_key
        self.tissue_key = tissue_key
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.dtype = dtype
        self.params = {
            "prior_weight": float(prior_weight),
            "n4": bool(n4),
            "n4_shrink_factor": int(n4_shrink_factor),
            "n4_iterations": [int(i) for i in n4_iterations],
            "atropos_iterations": int(atropos_iterations),
            "mrf_smoothing": float(mrf_smoothing),
        }
        self._prior_images: list[MetaTensor] | None = None
        self._prior_digests: list[str] | None = None

    # -- inputs

    def _t1(self, image: NdarrayOrTensor, source: str) -> np.ndarray:
        if image.ndim != 4:
            raise DataFormatError(
                source, f"expected a channel-first 3D image (C, H, W, D), got {image.shape}"
            )
        if self.t1_channel >= image.shape[0]:
            raise DataFormatError(
                source, f"has {image.shape[0]} channels, no T1 channel {self.t1_channel} (t1_channel)"
            )
        t1 = convert_to_numpy(image[self.t1_channel], dtype=np.float32)
        if not np.all(np.isfinite(t1)):
            raise DataFormatError(source, "the T1 channel has non-finite values")
        return t1

    def _mask_from(
        self, data: Mapping, key: str | None, shape: tuple[int, ...], what: str
    ) -> np.ndarray | None:
        """Boolean mask of ``data[key]`` (non-zero in any channel); None when the key is absent."""
        if key is None or data.get(key) is None:
            return None
        value = data[key]
        array = convert_to_numpy(value)
        if array.ndim != 4 or array.shape[1:] != shape:
            raise DataFormatError(
                _source(value, key),
                f"{what} has shape {array.shape}, expected (C, H, W, D) on the image grid {shape}",
            )
        return np.any(array != 0, axis=0)

    def _user_masks(self, data: Mapping, shape: tuple[int, ...]) -> np.ndarray | None:
        """The user's tissue masks as float32 ``(3, *shape)``, channels CSF, GM, WM, or None when absent."""
        if self.tissue_key is None or data.get(self.tissue_key) is None:
            return None
        value = data[self.tissue_key]
        if isinstance(value, (str, os.PathLike)):
            try:
                value = LoadImage(image_only=True, ensure_channel_first=True)(value)
            except Exception as err:
                raise DataFormatError(value, f"cannot read tissue masks: {err}") from err
        source = _source(value, self.tissue_key)
        array = np.array(convert_to_numpy(value), dtype=np.float32)  # a copy: the lesion merge writes to it
        if array.ndim != 4 or array.shape[1:] != shape or array.shape[0] not in (1, 3):
            raise DataFormatError(
                source,
                f"tissue masks have shape {array.shape}, expected a label map (1, H, W, D) or CSF, GM, WM "
                f"masks (3, H, W, D) on the image grid (H, W, D) = {shape}",
            )
        if array.shape[0] == 1:
            codes = np.unique(array)
            if not np.isin(codes, (0, CSF, GM, WM)).all():
                raise DataFormatError(
                    source, f"tissue label map has codes {codes.tolist()}, expected 0 bg, 1 CSF, 2 GM, 3 WM"
                )
            return np.stack([array[0] == k for k in (CSF, GM, WM)]).astype(np.float32)
        if not np.all(np.isfinite(array)) or array.min() < 0 or array.max() > 1:
            raise DataFormatError(source, "tissue masks must have values in [0, 1]")
        return array

    def _priors_on(self, t1_image: NdarrayOrTensor, shape: tuple[int, ...]) -> list[np.ndarray] | None:
        if self.priors is None:
            return None
        if self._prior_images is None:
            loader = LoadImage(image_only=True, ensure_channel_first=True)
            images = []
            for path in self.priors:
                try:
                    prior = loader(path)
                except Exception as err:
                    raise DataFormatError(path, f"cannot read tissue prior: {err}") from err
                if prior.ndim != 4 or prior.shape[0] != 1:
                    raise DataFormatError(
                        path, f"tissue prior must be one 3D volume, got shape {prior.shape[1:]}"
                    )
                images.append(prior.float())
            self._prior_images = images
        on_grid = []
        for path, prior in zip(self.priors, self._prior_images):
            if isinstance(t1_image, MetaTensor):
                same = tuple(prior.shape[1:]) == shape and torch.allclose(
                    prior.affine.double(), t1_image.affine.double(), atol=1e-4
                )
                if not same:
                    prior = ResampleToMatch(mode="bilinear", padding_mode="zeros")(prior, img_dst=t1_image)
            elif tuple(prior.shape[1:]) != shape:
                raise DataFormatError(
                    path, f"tissue prior has shape {tuple(prior.shape[1:])}, the image {shape}, and no affine"
                )
            on_grid.append(convert_to_numpy(prior[0], dtype=np.float32))
        return on_grid

    # -- cache

    def _cache_path(self, t1: np.ndarray, affine: np.ndarray | None, given_brain: np.ndarray | None) -> Path:
        if self.priors is not None and self._prior_digests is None:
            self._prior_digests = [_file_digest(p) for p in self.priors]
        header = {
            "version": _CACHE_VERSION,
            "antspyx": _antspyx_version(),
            "shape": list(t1.shape),
            "affine": None if affine is None else np.round(affine, 5).tolist(),
            "brain_mask": "given" if given_brain is not None else self.brain_mask,
            "priors": self._prior_digests,
            "params": self.params,
        }
        digest = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
        digest.update(np.ascontiguousarray(t1, dtype=np.float32).tobytes())
        if given_brain is not None:
            digest.update(np.packbits(given_brain).tobytes())
        assert self.cache_dir is not None
        return self.cache_dir / f"tissue-{digest.hexdigest()}.npz"

    # -- the transform

    def _computed_labels(
        self, data: Mapping, image: NdarrayOrTensor, t1: np.ndarray, source: str
    ) -> np.ndarray:
        affine = convert_to_numpy(image.affine, dtype=np.float64) if isinstance(image, MetaTensor) else None
        given_brain = self._mask_from(data, self.brain_mask_key, t1.shape, "the brain mask")
        cache_path = None if self.cache_dir is None else self._cache_path(t1, affine, given_brain)
        if cache_path is not None and (labels := _read_cache(cache_path, t1.shape)) is not None:
            return labels
        brain = given_brain if given_brain is not None else brain_mask_of(t1, self.brain_mask, affine)
        if int(brain.sum()) < _MIN_BRAIN_VOXELS:
            raise DataFormatError(source, f"the brain mask has {int(brain.sum())} voxels; is the T1 empty?")
        t1_image = image[self.t1_channel : self.t1_channel + 1]
        priors = self._priors_on(t1_image, t1.shape)
        try:
            labels, _ = segment_tissues(t1, brain, affine, priors=priors, **self.params)
        except Exception as err:  # ANTs reports a failed run as a bare Exception; the cause stays chained
            raise DataFormatError(source, f"tissue segmentation failed: {err}") from err
        if cache_path is not None:
            _write_cache(cache_path, labels)
        return labels

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            source = _source(image, key)
            t1 = self._t1(image, source)
            masks = self._user_masks(d, t1.shape)
            if masks is None:
                labels = self._computed_labels(d, image, t1, source)
                masks = np.stack([labels == k for k in (CSF, GM, WM)]).astype(np.float32)
            lesion = self._mask_from(d, self.lesion_key, t1.shape, "the lesion mask")
            if lesion is not None:
                masks[:, lesion] = 0.0
                masks[WM - 1, lesion] = 1.0
            if self.output == "masks":
                out = masks
            else:
                label_map = np.where(masks.max(axis=0) >= 0.5, masks.argmax(axis=0) + 1, 0)
                out = label_map[None].astype(np.float32)
            d[self.output_key] = convert_to_dst_type(out, dst=image, dtype=self.dtype)[0]
        return d
