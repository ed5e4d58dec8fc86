"""Synthetic stand-ins for ATLAS stroke lesion T1w scans (tests, demo training), in the R2.0 or R1.2 layout.

:func:`make_atlas_phantoms` writes subjects in the layout :mod:`common.data.atlas` reads (Liew et al.,
Scientific Data 9:320, 2022, for R2.0; 5:180011, 2018, for R1.2), one scan (``ses-1`` / ``t01``) each.

**Head** (:class:`~common.data.phantoms.stroke_head.Head`): a brain with a folded cortical ribbon, sulci,
deep grey nuclei, lateral ventricles and white matter, inside outer CSF, skull, fat and skin; the images
are **not** skull-stripped and the face is removed (zeroed in front of and below the brain), as the
defaced ATLAS scans are.

**Lesions** (:func:`~common.data.phantoms.stroke_head.plan_lesions`): chronic infarcts, dark on T1 (between
CSF and grey matter) with blurred borders, from a few voxels (lacunes) to a whole territory, cortical and
subcortical. Subject ``i`` has ``(1, 2, 1, 3, 1, 2)[i % 6]`` lesions, the first a territory, a cortical or
a subcortical lesion in turn (``i % 3``), the others cortical, subcortical or lacunes. Masks are uint8 0/1:
in R2.0 one mask of all lesions; in R1.2 one ``LesionSmooth`` file per lesion (their union is the lesion
mask, as the adapter's items take it).

Mean T1 intensities (arbitrary units, as on 3 T MPRAGE)::

    WM 820   GM 560   CSF 170   lesion 250   bone 90   fat 950   skin 620   air 0

plus a smooth tissue texture, partial volume at borders, a smooth multiplicative bias field, a gain per
scan and Rician noise. Images are float32 on the MNI152NLin2009aSym 1 mm grid (:func:`atlas_phantom_affine`).

**Files** (subject ``i``: cohort ``c = i // 4 + 1``, number ``s = i % 4 + 1``)::

    "r2.0"  Training/R00c/sub-r00cs00s/ses-1/anat/sub-r00cs00s_ses-1_space-MNI152NLin2009aSym_T1w.nii.gz
                                        .../sub-r00cs00s_ses-1_space-MNI152NLin2009aSym_label-L_desc-T1lesion_mask.nii.gz
            Testing/R00c/sub-r00cs1ss/ses-1/anat/..._T1w.nii.gz           (n_test_subjects, no masks)
    "r1.2"  Site<c>/<id>/t01/<id>_t1w_deface_stx.nii.gz, <id>_LesionSmooth[_k]_stx.nii.gz   (id 031001 + i)

Everything is determined by ``seed``; subject ``i`` is the same whatever ``n_subjects`` and ``layout``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from common.data.atlas import (
    ADAPTER,
    ATLAS_SHAPE,
    r12_image_name,
    r12_mask_name,
    r20_image_name,
    r20_mask_name,
)
from common.data.atomic import atomic_save_nifti
from common.data.phantoms.stroke_head import Head, Lesion, plan_lesions, smooth_noise

__all__ = ["ATLAS_PHANTOM_T1", "atlas_phantom_affine", "make_atlas_phantoms"]

ATLAS_PHANTOM_T1: dict[str, float] = {
    "air": 0.0,
    "csf": 170.0,
    "gm": 560.0,
    "wm": 820.0,
    "bone": 90.0,
    "fat": 950.0,
    "skin": 620.0,
    "lesion": 250.0,
}
"""Mean T1 intensity of each tissue and of the lesions (module docstring)."""

_F = np.float32
_MNI_ORIGIN = np.array([98.0 / 196.0, 134.0 / 232.0, 72.0 / 188.0])  # as a fraction of (n - 1)
_COUNTS = (1, 2, 1, 3, 1, 2)
_PRIMARY = ("territory", "cortical", "subcortical")


def atlas_phantom_affine(shape: Sequence[int]) -> np.ndarray:
    """1 mm voxels, ``diag(1, 1, 1)``; at 197 x 233 x 189 the MNI152NLin2009aSym grid, origin at
    (-98, -134, -72) mm; other shapes keep that origin's place as a fraction of the grid."""
    affine = np.eye(4)
    affine[:3, 3] = -np.round(_MNI_ORIGIN * (np.asarray(shape, dtype=float) - 1), 6)
    return affine


def _kinds(rng: np.random.Generator, index: int) -> list[str]:
    extra = rng.choice(["cortical", "subcortical", "lacune"], size=_COUNTS[index % 6] - 1, p=[0.3, 0.3, 0.4])
    return [_PRIMARY[index % 3], *(str(k) for k in extra)]


def _subject(
    rng: np.random.Generator, shape: tuple[int, int, int], index: int
) -> tuple[np.ndarray, list[Lesion]]:
    """One T1w scan (float32) and its lesions."""
    head = Head(
        rng, shape, (1.0, 1.0, 1.0), semi_fraction=(0.36, 0.37, 0.34), centre_fraction=(0.5, 0.5, 0.45)
    )
    lesions = plan_lesions(rng, head, _kinds(rng, index))
    level = ATLAS_PHANTOM_T1
    img = head.render(level) * (1.0 + _F(0.03) * head.texture)
    img = ndimage.gaussian_filter(img, 0.6)  # partial volume at tissue borders
    weight = np.zeros(shape, dtype=_F)
    for lesion in lesions:
        np.maximum(weight, lesion.weight * _F(rng.uniform(0.85, 1.0)), out=weight)
    img += weight * (_F(level["lesion"]) * (1.0 + _F(0.1) * head.texture) - img)  # blurred by its own weight
    bias = np.exp(_F(0.08) * smooth_noise(rng, shape, (1.0, 1.0, 1.0), max(shape) / 2.0))
    img *= bias * _F(rng.uniform(0.9, 1.1))
    sigma = _F(0.02 * level["wm"])
    img = np.sqrt(
        (img + sigma * rng.standard_normal(shape, dtype=_F)) ** 2
        + (sigma * rng.standard_normal(shape, dtype=_F)) ** 2
    )
    _, v, w = head.coords
    face = (v > 0.6) & (w < -0.25) & (head.depth < 0)  # defaced: in front of the lower brain, outside it
    img[face] = 0.0
    return img.astype(_F), lesions


def make_atlas_phantoms(
    out_dir: str | os.PathLike,
    n_subjects: int = 6,
    shape: Sequence[int] = ATLAS_SHAPE,
    seed: int = 0,
    layout: str = "r2.0",
    n_test_subjects: int = 0,
) -> list[Path]:
    """Write a synthetic ATLAS data set to ``out_dir`` (see the module docstring for what is drawn).

    Args:
        out_dir: output folder, created if needed.
        n_subjects: labelled subjects (``Training`` in R2.0, ``Site<N>`` folders in R1.2).
        shape: volume shape ``(X, Y, Z)``, at least 32 per axis; the release is 197 x 233 x 189 (one
            subject takes a few seconds).
        seed: seed of everything; subject ``i`` uses ``SeedSequence([seed, 0]).spawn(...)[i]`` (test
            subjects ``[seed, 1]``).
        layout: ``"r2.0"`` or ``"r1.2"`` (:data:`~common.data.atlas.ATLAS_LAYOUTS`).
        n_test_subjects: R2.0 only: unlabelled subjects in ``Testing`` (T1w only).

    Returns:
        The subject folders, training subjects first.
    """
    ADAPTER.check_layout(layout)
    shape3 = tuple(int(s) for s in shape)
    if len(shape3) != 3 or min(shape3) < 32:
        raise ValueError(f"shape must be 3D with at least 32 voxels per axis, got {shape}")
    if n_subjects < 0 or n_test_subjects < 0 or n_subjects + n_test_subjects < 1:
        raise ValueError(
            f"need at least one subject, got n_subjects={n_subjects}, n_test_subjects={n_test_subjects}"
        )
    if layout == "r1.2" and n_test_subjects:
        raise ValueError("ATLAS R1.2 has no test release; n_test_subjects needs layout='r2.0'")
    out = Path(out_dir)
    affine = atlas_phantom_affine(shape3)
    written: list[Path] = []
    for kind, (count, labelled) in enumerate(((n_subjects, True), (n_test_subjects, False))):
        for index, child in enumerate(np.random.SeedSequence([seed, kind]).spawn(count)):
            image, lesions = _subject(np.random.default_rng(child), shape3, index)
            cohort, number = index // 4 + 1, index % 4 + 1 + (0 if labelled else 100)
            if layout == "r2.0":
                subject = f"sub-r{cohort:03d}s{number:03d}"
                folder = out / ("Training" if labelled else "Testing") / f"R{cohort:03d}" / subject
                anat = folder / "ses-1" / "anat"
                atomic_save_nifti(image, affine, anat / r20_image_name(subject))
                if labelled:
                    union = np.any([lesion.mask for lesion in lesions], axis=0)
                    atomic_save_nifti(union.astype(np.uint8), affine, anat / r20_mask_name(subject))
            else:
                subject = f"{31001 + index:06d}"
                folder = out / f"Site{cohort}" / subject
                atomic_save_nifti(image, affine, folder / "t01" / r12_image_name(subject))
                for k, lesion in enumerate(lesions):
                    atomic_save_nifti(
                        lesion.mask.astype(np.uint8), affine, folder / "t01" / r12_mask_name(subject, k)
                    )
            written.append(folder)
    ADAPTER.detect_layout(out)  # what was written is what the adapter reads
    return written
