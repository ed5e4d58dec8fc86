"""Synthetic non-contrast head CTs with acute infarcts (tests, demo training), in image/mask folders.

:func:`make_ncct_phantoms` writes ``images/<case>.nii.gz`` (int16 Hounsfield units) and
``masks/<case>.nii.gz`` (uint8 0/1), the layout :mod:`common.data.ncct` reads, like the CT data set of Liu
et al. (§3.1: 512 x 512 x 24-32 voxels of 0.43 x 0.43 x 4.1-4.8 mm, acute infarcts within 6 h of onset).

**Head** (:class:`~common.data.phantoms.stroke_head.Head`): air outside, skin, a fat layer, the skull, a
thin CSF layer, a folded cortical ribbon with sulci, deep grey nuclei, lateral ventricles and white matter.
The axial slices run from the skull base to the vertex. Mean values (HU, as on clinical scanners)::

    air -1000   fat -90   skin 45   skull 1100 (825-1540: denser tables, lighter diploe)
    CSF 8       GM 38     WM 28     infarct 18 (acute ischaemic oedema: 10-20 HU below normal tissue)

plus a smooth tissue texture (+-1.5 HU), partial volume at borders and Gaussian noise (4 HU). **Infarcts**
(:func:`~common.data.phantoms.stroke_head.plan_lesions`) are hypodense with blurred borders, from lacunes
of a few voxels to a whole territory, cortical and subcortical; case ``i`` has ``(1, 2, 1, 3, 1, 2)[i % 6]``
of them, the first a territory, cortical or subcortical infarct in turn.

**Grid.** ``spacing=None`` keeps the field of view of the default, 220 x 220 x 126 mm (0.43 x 0.43 x 4.5
mm at 512 x 512 x 28), whatever ``shape``, so a small test volume is the same head at a lower
resolution. The affine is ``diag(-sx, -sy, sz)`` (the LPS-stored axes of DICOM conversions) with the
world origin at the volume's centre (:func:`ncct_phantom_affine`). Everything is determined by ``seed``;
case ``i`` is the same whatever ``n_cases``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from common.data.atomic import atomic_save_nifti
from common.data.ncct import ADAPTER, IMAGE_FOLDER, MASK_FOLDERS, MASK_SUFFIXES, NCCT_SHAPE, NCCT_SPACING_MM
from common.data.phantoms.stroke_head import HEAD_TISSUES, Head, Lesion, plan_lesions, smooth_noise

__all__ = ["NCCT_PHANTOM_HU", "make_ncct_phantoms", "ncct_phantom_affine", "ncct_phantom_spacing"]

NCCT_PHANTOM_HU: dict[str, float] = {
    "air": -1000.0,
    "csf": 8.0,
    "gm": 38.0,
    "wm": 28.0,
    "bone": 1100.0,
    "fat": -90.0,
    "skin": 45.0,
    "infarct": 18.0,
}
"""Mean HU of each tissue and of the infarcts (module docstring)."""

_F = np.float32
_FOV_MM = np.asarray(NCCT_SHAPE, dtype=float) * np.asarray(NCCT_SPACING_MM)  # 220.16 x 220.16 x 126 mm
_COUNTS = (1, 2, 1, 3, 1, 2)
_PRIMARY = ("territory", "cortical", "subcortical")


def ncct_phantom_spacing(shape: Sequence[int], spacing: Sequence[float] | None = None) -> tuple[float, ...]:
    """``spacing``, or the voxel size that keeps the default 220 x 220 x 126 mm field of view at ``shape``."""
    if spacing is not None:
        return tuple(float(s) for s in spacing)
    return tuple(float(round(f / n, 6)) for f, n in zip(_FOV_MM, shape))


def ncct_phantom_affine(shape: Sequence[int], spacing: Sequence[float] | None = None) -> np.ndarray:
    """``diag(-sx, -sy, sz)``, world origin at the volume's centre (spacing: :func:`ncct_phantom_spacing`)."""
    sizes = np.asarray(ncct_phantom_spacing(shape, spacing))
    affine = np.diag([-sizes[0], -sizes[1], sizes[2], 1.0])
    affine[:3, 3] = -affine[:3, :3] @ ((np.asarray(shape, dtype=float) - 1) / 2)
    return affine


def _kinds(rng: np.random.Generator, index: int) -> list[str]:
    extra = rng.choice(["cortical", "subcortical", "lacune"], size=_COUNTS[index % 6] - 1, p=[0.3, 0.3, 0.4])
    return [_PRIMARY[index % 3], *(str(k) for k in extra)]


def _case(
    rng: np.random.Generator, shape: tuple[int, int, int], spacing: tuple[float, ...], index: int
) -> tuple[np.ndarray, list[Lesion]]:
    """One CT (int16 HU) and its infarcts."""
    # brain semi-axes 70 x 88 x 63 mm at the default field of view; the slices start at the skull base
    head = Head(rng, shape, spacing, semi_fraction=(0.32, 0.40, 0.50), centre_fraction=(0.5, 0.5, 0.42))
    lesions = plan_lesions(rng, head, _kinds(rng, index))
    hu = NCCT_PHANTOM_HU
    img = head.render(hu)
    bone = head.tissue == HEAD_TISSUES["bone"]
    img[bone] *= np.clip(1.0 + _F(0.2) * smooth_noise(rng, shape, spacing, 6.0)[bone], 0.75, 1.4)
    brain = head.depth > 0
    img[brain] += _F(1.5) * head.texture[brain]
    img = ndimage.gaussian_filter(img, 0.6)  # partial volume at tissue borders
    weight = np.zeros(shape, dtype=_F)
    for lesion in lesions:
        np.maximum(weight, lesion.weight * _F(rng.uniform(0.8, 1.0)), out=weight)
    img += weight * (_F(hu["infarct"]) + _F(1.5) * head.texture - img)  # blurred by the lesion's own weight
    img += _F(4.0) * rng.standard_normal(shape, dtype=_F)
    return np.clip(np.rint(img), -1024, 3071).astype(np.int16), lesions


def make_ncct_phantoms(
    out_dir: str | os.PathLike,
    n_cases: int = 6,
    shape: Sequence[int] = NCCT_SHAPE,
    spacing: Sequence[float] | None = None,
    seed: int = 0,
    with_masks: bool = True,
    mask_folder: str = "masks",
    mask_suffix: str = "",
) -> list[Path]:
    """Write ``n_cases`` synthetic head CTs to ``out_dir/images``, their masks to ``out_dir/<mask_folder>``.

    Args:
        out_dir: output folder, created if needed.
        n_cases: number of CTs, ``ncct_001``, ``ncct_002``, ...
        shape: volume shape ``(X, Y, Z)``, at least 32 in plane and 8 slices; the default is 512 x 512 x 28
            (one case takes a few seconds).
        spacing: voxel size in mm; ``None`` keeps the 220 x 220 x 126 mm field of view (0.43 x 0.43 x 4.5 mm
            at the default shape).
        seed: seed of everything; case ``i`` uses ``SeedSequence(seed).spawn(n_cases)[i]``.
        with_masks: write the masks (else unlabelled cases only).
        mask_folder: ``"masks"`` or ``"labels"`` (:data:`~common.data.ncct.MASK_FOLDERS`).
        mask_suffix: what follows the case id in a mask's name (:data:`~common.data.ncct.MASK_SUFFIXES`).

    Returns:
        The CT files, in case order.
    """
    shape3 = tuple(int(s) for s in shape)
    if n_cases < 1 or len(shape3) != 3 or min(shape3[:2]) < 32 or shape3[2] < 8:
        raise ValueError(f"need n_cases >= 1 and a shape of at least 32 x 32 x 8, got {n_cases}, {shape}")
    if mask_folder not in MASK_FOLDERS or mask_suffix not in MASK_SUFFIXES:
        raise ValueError(f"mask_folder must be one of {MASK_FOLDERS} and mask_suffix one of {MASK_SUFFIXES}")
    sizes = ncct_phantom_spacing(shape3, spacing)
    if len(sizes) != 3 or min(sizes) <= 0:
        raise ValueError(f"spacing must be three positive sizes in mm, got {spacing}")
    out = Path(out_dir)
    affine = ncct_phantom_affine(shape3, sizes)
    written: list[Path] = []
    for index, child in enumerate(np.random.SeedSequence(seed).spawn(n_cases)):
        image, lesions = _case(np.random.default_rng(child), shape3, sizes, index)
        case = f"ncct_{index + 1:03d}"
        path = out / IMAGE_FOLDER / f"{case}.nii.gz"
        atomic_save_nifti(image, affine, path)
        if with_masks:
            union = np.any([lesion.mask for lesion in lesions], axis=0)
            atomic_save_nifti(
                union.astype(np.uint8), affine, out / mask_folder / f"{case}{mask_suffix}.nii.gz"
            )
        written.append(path)
    ADAPTER.detect_layout(out)  # what was written is what the adapter reads
    return written
