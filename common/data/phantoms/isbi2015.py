"""Synthetic stand-ins for the ISBI 2015 longitudinal MS lesion data (tests, demo training), in its layout.

:func:`make_isbi2015_phantoms` writes patients with several time points each, in the release's
``preprocessed`` layout (:mod:`common.data.isbi2015`; Carass et al., NeuroImage 148:77-102, 2017), plus
the ground-truth tissue map of every time point, which the real data lack (Abolvardi et al. made theirs
with SPM, §VII) and which tissue-segmentation code is tested against.

**Head.** An ellipsoidal brain with a lumpy surface: a thin layer of outer CSF, a grey-matter cortical
ribbon whose inner border is folded by smooth noise (with a few CSF-filled sulci), deep grey nuclei, two
lateral ventricles (CSF) and white matter inside. Images are skull-stripped (zero outside the brain) as
the preprocessed release is; ``skull_stripped=False`` adds a skull and scalp.

**Lesions** are ovoids strictly inside the white matter: most are periventricular, with their long axis
pointing away from the ventricles (Dawson's fingers), the others in deep white matter. Across a patient's
time points (registered to the baseline, so the anatomy is the same) every lesion persists and keeps or
grows its size, and new lesions appear; the lesion mask of a time point therefore contains the earlier
ones. Contrasts, mean intensities of each tissue (arbitrary units, as 3 T scans relate them)::

                 FLAIR   MPRAGE   PD     T2
      WM          380     820     700    330        MPRAGE: WM > GM > CSF
      GM          480     560     850    520
      CSF          90     170    1050   1400        bright on PD and T2, dark on FLAIR
      lesion      900     420     980    950        bright on FLAIR, PD, T2; dark on MPRAGE

**Acquisition.** Partial volume at tissue borders, a smooth tissue texture, a smooth multiplicative bias
field, a scanner gain per time point and modality, and Rician noise (magnitude of complex Gaussian
noise).

**Raters.** Rater 1's mask is the true lesion mask. Rater 2's is the same mask dilated by one voxel (within
the white matter) in some places and eroded by one voxel in others (15 % of the voxels just outside the
lesions added, 15 % of their border voxels removed, where a smooth random field picks), as two human
raters differ at lesion borders; the two overlap with a Dice of about 0.8-0.9.

**Files** (``suffix`` ``.nii``, as released, or ``.nii.gz``), for patient ``trainingNN`` and time point
``TT``; test patients (``n_test_patients``) go to ``testdata_website/testNN/`` without masks::

    training/trainingNN/preprocessed/trainingNN_TT_{flair,mprage,pd,t2}_pp.nii   float32
    training/trainingNN/masks/trainingNN_TT_mask{1,2}.nii                         uint8 0/1
    training/trainingNN/tissues/trainingNN_TT_tissues.nii.gz                      uint8, see below

Tissue maps use :data:`ISBI2015_PHANTOM_TISSUES`: 0 outside the brain (background, and skull and scalp
when drawn), 1 CSF (outer, sulci and ventricles), 2 GM (cortex and deep nuclei), 3 WM **including the
lesions** (lesions are white matter, as Abolvardi et al. merge them, Fig. 9); the codes follow MRBrainS13's
three-tissue labels. :func:`tissue_map_path` finds the map of an adapter item.

Voxels are 1 mm isotropic on an MNI-like grid: the affine is ``diag(1, 1, 1)`` with the origin placed so
that for 181 x 217 x 181 it is the ICBM 152 grid (world origin at voxel (90, 126, 72)), scaled to other
shapes. Everything is determined by ``seed``; patient ``i`` is the same whatever ``n_patients``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from common.data.atomic import atomic_save_nifti
from common.data.isbi2015 import (
    ADAPTER,
    ISBI2015_MODALITIES,
    ISBI2015_RATERS,
    TISSUE_FOLDER,
    image_name,
    mask_name,
    tissue_map_name,
)

__all__ = [
    "ISBI2015_PHANTOM_TISSUES",
    "isbi2015_phantom_affine",
    "make_isbi2015_phantoms",
    "tissue_map_name",
    "tissue_map_path",
]

ISBI2015_PHANTOM_TISSUES: dict[str, int] = {"background": 0, "csf": 1, "gm": 2, "wm": 3}
"""Codes of the phantoms' tissue maps (lesions are ``wm``)."""

_F = np.float32
_BG, _CSF, _GM, _WM = (ISBI2015_PHANTOM_TISSUES[k] for k in ("background", "csf", "gm", "wm"))
# Mean intensities in ISBI2015_MODALITIES order (FLAIR, MPRAGE, PD, T2); see the module docstring.
_CONTRAST: dict[str, tuple[float, float, float, float]] = {
    "wm": (380.0, 820.0, 700.0, 330.0),
    "gm": (480.0, 560.0, 850.0, 520.0),
    "csf": (90.0, 170.0, 1050.0, 1400.0),
    "lesion": (900.0, 420.0, 980.0, 950.0),
    "bone": (40.0, 70.0, 90.0, 50.0),
    "scalp": (550.0, 900.0, 800.0, 500.0),
}
_MNI_ORIGIN = np.array(
    [90.0 / 180.0, 126.0 / 216.0, 72.0 / 180.0]
)  # ICBM 152 origin, as a fraction of (n - 1)


# --------------------------------------------------------------------------------------------------
# File names
# --------------------------------------------------------------------------------------------------


def tissue_map_path(dataset_dir: str | os.PathLike, item: Mapping[str, Any]) -> Path:
    """The phantom tissue map of an :mod:`~common.data.isbi2015` item.

    It is ``<patient>/tissues/<case>_tissues.nii.gz``, beside the item's image folder (image paths
    relative to ``dataset_dir``, or absolute).
    """
    patient_dir = (Path(dataset_dir) / item["image"][0]).parent.parent
    return patient_dir / TISSUE_FOLDER / tissue_map_name(str(item["case"]))


def isbi2015_phantom_affine(shape: Sequence[int]) -> np.ndarray:
    """1 mm voxels, axes ``diag(1, 1, 1)``; for 181 x 217 x 181 the ICBM 152 grid (origin -90, -126, -72)."""
    affine = np.eye(4)
    affine[:3, 3] = -np.round(_MNI_ORIGIN * (np.asarray(shape, dtype=float) - 1), 6)
    return affine


# --------------------------------------------------------------------------------------------------
# Fields
# --------------------------------------------------------------------------------------------------


def _bspline(t: np.ndarray) -> np.ndarray:
    """The cubic B-spline kernel (support ``|t| < 2``)."""
    t = np.abs(t)
    return np.where(t < 1, 2.0 / 3.0 - t**2 + t**3 / 2.0, np.where(t < 2, (2.0 - t) ** 3 / 6.0, 0.0))


def _smooth_noise(rng: np.random.Generator, shape: Sequence[int], size_mm: float) -> np.ndarray:
    """A unit-variance smooth float32 field with features of about ``size_mm``.

    Gaussian noise on a coarse grid (one node per ``size_mm``) is spread over the volume with the cubic
    B-spline kernel, axis by axis (one small matrix product per axis).
    """
    cells = [int(np.clip(round(n / size_mm), 2, 32)) for n in shape]
    field = rng.standard_normal(cells)
    for axis, (n, c) in enumerate(zip(shape, cells)):
        pos = (np.arange(n) + 0.5) / n * c - 0.5  # voxel centres in grid units
        weights = _bspline(pos[:, None] - np.arange(c)[None, :])
        weights /= weights.sum(axis=1, keepdims=True)
        field = np.moveaxis(np.tensordot(weights, field, axes=(1, axis)), 0, axis)
    field = field.astype(_F)
    return (field - field.mean()) / (field.std() + _F(1e-6))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return (_F(0.5) + _F(0.5) * np.tanh(_F(0.5) * z)).astype(_F)


def _grid(shape: Sequence[int]) -> list[np.ndarray]:
    """Broadcastable voxel coordinates of each axis (float32)."""
    out = []
    for axis, n in enumerate(shape):
        view = [1, 1, 1]
        view[axis] = n
        out.append(np.arange(n, dtype=_F).reshape(view))
    return out


def _ellipsoid(coords: Sequence[np.ndarray], centre: Sequence[float], semi: Sequence[float]) -> np.ndarray:
    """Normalised radius ``sqrt(sum(((x - c) / s) ** 2))`` (float32)."""
    return np.sqrt(sum(((x - _F(c)) / _F(s)) ** 2 for x, c, s in zip(coords, centre, semi)))


# --------------------------------------------------------------------------------------------------
# One patient
# --------------------------------------------------------------------------------------------------


class _Anatomy:
    """A patient's head, the same at every time point: tissue map, brain, partial-volume fractions."""

    def __init__(self, rng: np.random.Generator, shape: tuple[int, int, int], skull_stripped: bool) -> None:
        dims = np.asarray(shape, dtype=float)
        semi = dims * np.array([0.36, 0.37, 0.33]) * rng.uniform(0.96, 1.04, 3)
        centre = (dims - 1) / 2 + rng.normal(0.0, 0.01, 3) * dims
        mean_semi = float(semi.mean())
        coords = _grid(shape)
        rho = _ellipsoid(coords, centre, semi)
        surface = 1.0 + _F(0.03) * _smooth_noise(rng, shape, 40.0)
        depth = (surface - rho) * _F(mean_semi)  # mm below the brain surface (negative outside)
        t_csf = max(1.2, 0.03 * mean_semi)
        t_gm = np.clip(
            max(2.0, 0.14 * mean_semi) * (1.0 + _F(0.35) * _smooth_noise(rng, shape, 8.0)), 1.2, None
        )
        sulci = (_smooth_noise(rng, shape, 6.0) > 1.3) & (depth < t_csf + 0.8 * t_gm)

        tissue = np.full(shape, _WM, dtype=np.uint8)
        tissue[depth < t_csf + t_gm] = _GM
        sx, sy, sz = semi
        for side in (-1.0, 1.0):  # deep grey nuclei (thalamus, basal ganglia), lateral to the ventricles
            nucleus = (centre[0] + side * 0.27 * sx, centre[1] - 0.02 * sy, centre[2] - 0.05 * sz)
            tissue[_ellipsoid(coords, nucleus, (0.11 * sx, 0.17 * sy, 0.13 * sz)) < 1.0] = _GM
        tissue[(depth < t_csf) | sulci] = _CSF
        ventricles = np.zeros(shape, dtype=bool)
        v_half = 0.32 * sy
        bend = _F(0.25 * sz) * ((coords[1] - _F(centre[1])) / _F(v_half)) ** 2  # a banana, low at both ends
        for side in (-1.0, 1.0):
            du = (coords[0] - _F(centre[0] + side * 0.12 * sx)) / _F(max(1.5, 0.08 * sx))
            dv = (coords[1] - _F(centre[1] - 0.05 * sy)) / _F(v_half)
            dw = (coords[2] - _F(centre[2] + 0.12 * sz) + bend) / _F(max(1.5, 0.11 * sz))
            ventricles |= du**2 + dv**2 + dw**2 < 1.0
        tissue[ventricles] = _CSF
        brain = depth > 0
        tissue[~brain] = _BG

        self.shape = shape
        self.semi = semi
        self.tissue = tissue
        self.brain = brain
        self.wm = tissue == _WM
        self.ventricles = ventricles
        self.ventricle_centres = [
            np.array([centre[0] + side * 0.12 * sx, centre[1] - 0.05 * sy, centre[2] + 0.12 * sz])
            for side in (-1, 1)
        ]
        self.texture = _smooth_noise(rng, shape, 5.0)
        self.fractions = {
            name: ndimage.gaussian_filter((tissue == code).astype(_F), 0.6)
            for name, code in (("wm", _WM), ("gm", _GM), ("csf", _CSF))
        }
        self.wm_depth = ndimage.distance_transform_edt(self.wm).astype(_F)  # mm to the nearest non-WM voxel
        self.ventricle_distance = ndimage.distance_transform_edt(~ventricles).astype(_F)
        self.shells: list[tuple[str, np.ndarray]] = []
        if not skull_stripped:  # CSF gap, skull and scalp as shells outside the brain surface
            inside = _sigmoid(depth / _F(0.7))
            for name, outer in (("csf", 0.03), ("bone", 0.09), ("scalp", 0.14)):
                shell = _sigmoid((surface + _F(outer) - rho) * _F(mean_semi / 0.7))
                self.shells.append((name, np.clip(shell - inside, 0.0, 1.0)))
                inside = np.maximum(shell, inside)


class _Lesion:
    """One ovoid lesion: centre, long-axis direction, semi-axes (mm), onset time point, size at each one."""

    def __init__(
        self,
        centre: np.ndarray,
        axis: np.ndarray,
        short: float,
        long: float,
        onset: int,
        start: float,
        growth: float,
    ) -> None:
        self.centre, self.axis = centre, axis / np.linalg.norm(axis)
        self.short, self.long = short, long
        self.onset, self.start, self.growth = onset, start, growth
        self.contrast = 1.0

    def scale(self, tp: int) -> float:
        """Relative size at time point ``tp`` (0-based): 0 before onset, then non-decreasing up to 1."""
        return 0.0 if tp < self.onset else min(1.0, self.start + self.growth * (tp - self.onset))

    def field(self, shape: Sequence[int], tp: int) -> tuple[tuple[slice, ...], np.ndarray] | None:
        """Normalised ovoid radius ``q`` in a box around the lesion (``q < 1`` inside), or ``None``."""
        s = self.scale(tp)
        if s <= 0:
            return None
        reach = self.long * s + 2
        lo = np.maximum(np.floor(self.centre - reach).astype(int), 0)
        hi = np.minimum(np.ceil(self.centre + reach + 1).astype(int), shape)
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        d = [x + _F(a) - _F(c) for x, a, c in zip(_grid(hi - lo), lo, self.centre)]
        along = sum(di * _F(ui) for di, ui in zip(d, self.axis))
        across2 = np.maximum(sum(di**2 for di in d) - along**2, 0.0)
        q = np.sqrt((along / _F(self.long * s)) ** 2 + across2 / _F(self.short * s) ** 2)
        return box, q


def _plan_lesions(
    seeds: Sequence[np.random.SeedSequence], anatomy: _Anatomy, n_timepoints: int
) -> list[_Lesion]:
    """Baseline lesions and the ones that appear later; centres in white matter, mostly periventricular.

    The lesions appearing at time point ``t`` are drawn from ``seeds[t]``, so they do not depend on how
    many time points follow.
    """
    size = max(1.0, float(np.mean(anatomy.semi)) / 40.0)  # lesions in mm: larger and more in a full-size head
    lesions: list[_Lesion] = []
    for onset in range(n_timepoints):
        rng = np.random.default_rng(seeds[onset])
        count = (
            round(float(rng.uniform(3, 7)) * size)
            if onset == 0
            else int(min(rng.poisson(0.8 * size), 3 * size))
        )
        for _ in range(count):
            for _attempt in range(30):
                short = float(rng.uniform(1.5, 3.0)) * size
                long = short * float(rng.uniform(1.3, 1.9))
                periventricular = rng.random() < 0.6
                ok = anatomy.wm_depth >= 0.8 * short
                if periventricular:
                    ok &= anatomy.ventricle_distance <= short + 2.0
                candidates = np.flatnonzero(ok)
                if candidates.size == 0:
                    continue
                centre = np.array(np.unravel_index(rng.choice(candidates), anatomy.shape), dtype=float)
                if any(
                    np.linalg.norm(centre - other.centre) < 1.5 * (short + other.short) for other in lesions
                ):
                    continue
                if periventricular:  # long axis away from the nearer ventricle (Dawson's fingers)
                    nearest = min(anatomy.ventricle_centres, key=lambda v: float(np.linalg.norm(centre - v)))
                    axis = centre - nearest + rng.normal(0.0, 0.3, 3)
                else:
                    axis = rng.normal(0.0, 1.0, 3)
                start = 1.0 if onset == 0 and rng.random() < 0.5 else float(rng.uniform(0.7, 1.0))
                lesion = _Lesion(centre, axis, short, long, onset, start, float(rng.uniform(0.0, 0.2)))
                lesion.contrast = float(rng.uniform(0.8, 1.0))
                lesions.append(lesion)
                break
    return lesions


def _lesions_at(anatomy: _Anatomy, lesions: Sequence[_Lesion], tp: int) -> tuple[np.ndarray, np.ndarray]:
    """The lesion mask (inside white matter) and the soft lesion weight of time point ``tp``."""
    mask = np.zeros(anatomy.shape, dtype=bool)
    weight = np.zeros(anatomy.shape, dtype=_F)
    for lesion in lesions:
        found = lesion.field(anatomy.shape, tp)
        if found is None:
            continue
        box, q = found
        mask[box] |= q < 1.0
        soft = _sigmoid((1.0 - q) * _F(lesion.short * lesion.scale(tp) / 0.6)) * _F(lesion.contrast)
        weight[box] = np.maximum(weight[box], soft)
    mask &= anatomy.wm
    return mask, weight * anatomy.fractions["wm"]


def _second_rater(rng: np.random.Generator, anatomy: _Anatomy, truth: np.ndarray) -> np.ndarray:
    """``truth`` grown by one voxel (within white matter) in some places and shrunk by one in others.

    A smooth random field picks the places: the 15 % of the voxels just outside the lesions where it is
    highest are added, the 15 % of the lesions' border voxels where it is lowest are removed.
    """
    field = _smooth_noise(rng, anatomy.shape, 6.0)
    outside = ndimage.binary_dilation(truth) & ~truth & anatomy.wm
    border = truth & ~ndimage.binary_erosion(truth)
    second = truth.copy()
    for voxels, value, order in ((outside, True, -1), (border, False, 1)):
        where = np.flatnonzero(voxels)
        chosen = where[
            np.argsort(order * field.ravel()[where], kind="stable")[: int(np.ceil(0.15 * where.size))]
        ]
        second.ravel()[chosen] = value
    return second


def _render(
    rng: np.random.Generator, anatomy: _Anatomy, lesion_weight: np.ndarray, skull_stripped: bool
) -> list[np.ndarray]:
    """The four float32 images of one time point, in ISBI2015_MODALITIES order."""
    shape = anatomy.shape
    images = []
    for m in range(len(ISBI2015_MODALITIES)):
        level = {name: _F(values[m]) for name, values in _CONTRAST.items()}
        img = sum(anatomy.fractions[t] * level[t] for t in ("wm", "gm", "csf"))
        img = img * (1.0 + _F(0.03) * anatomy.texture)
        img += lesion_weight * (level["lesion"] - img)
        for name, shell in anatomy.shells:
            img += shell * level[name]
        bias = np.exp(_F(0.08) * _smooth_noise(rng, shape, max(shape) / 2.0))
        img *= bias * _F(rng.uniform(0.9, 1.1))
        sigma = _F(0.025 * level["wm"])
        img = np.sqrt(
            (img + sigma * rng.standard_normal(shape, dtype=_F)) ** 2
            + (sigma * rng.standard_normal(shape, dtype=_F)) ** 2
        )
        if skull_stripped:
            img *= anatomy.brain
        images.append(img.astype(_F))
    return images


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------


def _timepoints(timepoints: int | Sequence[int] | None, n_patients: int) -> list[int]:
    if timepoints is None:  # as released: four time points each, five for the third patient (training03)
        counts = [5 if i == 2 else 4 for i in range(n_patients)]
    elif isinstance(timepoints, (int, np.integer)):
        counts = [int(timepoints)] * n_patients
    else:
        cycle = [int(t) for t in timepoints]
        counts = [cycle[i % len(cycle)] for i in range(n_patients)] if cycle else []
    if n_patients and (len(counts) != n_patients or min(counts) < 1 or max(counts) > 99):
        raise ValueError(f"timepoints must be 1..99 per patient, got {timepoints!r}")
    return counts


def _write_patient(
    folder: Path,
    seed: np.random.SeedSequence,
    n_timepoints: int,
    shape: tuple[int, int, int],
    suffix: str,
    with_masks: bool,
    skull_stripped: bool,
) -> None:
    """All time points of one patient (anatomy and lesion plan from the first child of ``seed``)."""
    anatomy_seed, lesion_root, render_root = seed.spawn(3)
    lesion_seeds = lesion_root.spawn(n_timepoints)  # child t is the same whatever n_timepoints
    tp_seeds = render_root.spawn(n_timepoints)
    anatomy = _Anatomy(np.random.default_rng(anatomy_seed), shape, skull_stripped)
    lesions = _plan_lesions(lesion_seeds, anatomy, n_timepoints)
    affine = isbi2015_phantom_affine(shape)
    for tp in range(n_timepoints):
        tp_rng = np.random.default_rng(tp_seeds[tp])
        case = f"{folder.name}_{tp + 1:02d}"
        truth, weight = _lesions_at(anatomy, lesions, tp)
        for image, modality in zip(_render(tp_rng, anatomy, weight, skull_stripped), ISBI2015_MODALITIES):
            atomic_save_nifti(
                image, affine, folder / "preprocessed" / image_name("preprocessed", case, modality, suffix)
            )
        if with_masks:
            masks = {1: truth, 2: _second_rater(tp_rng, anatomy, truth)}
            for rater in ISBI2015_RATERS:
                atomic_save_nifti(
                    masks[rater].astype(np.uint8), affine, folder / "masks" / mask_name(case, rater, suffix)
                )
        atomic_save_nifti(anatomy.tissue, affine, folder / TISSUE_FOLDER / tissue_map_name(case))


def make_isbi2015_phantoms(
    out_dir: str | os.PathLike,
    n_patients: int = 5,
    timepoints: int | Sequence[int] | None = None,
    shape: Sequence[int] = (48, 56, 48),
    seed: int = 0,
    suffix: str = ".nii",
    n_test_patients: int = 0,
    skull_stripped: bool = True,
) -> list[Path]:
    """Write a synthetic ISBI 2015 data set to ``out_dir`` (see the module docstring for what is drawn).

    Args:
        out_dir: output folder, created if needed; the patients go to ``out_dir/training/trainingNN`` and
            ``out_dir/testdata_website/testNN``.
        n_patients: training patients (with both raters' masks), ``training01``, ``training02``, ...
        timepoints: time points per patient: ``None`` as released (4 each, 5 for the third patient), an
            int for every patient, or a sequence cycled over the patients.
        shape: volume shape ``(X, Y, Z)``, at least 32 per axis; the release is 181 x 217 x 181.
        seed: seed of everything; patient ``i`` uses ``SeedSequence([seed, 0]).spawn(...)[i]`` (test
            patients ``[seed, 1]``), so it does not depend on ``n_patients``.
        suffix: ``".nii"`` (as released) or ``".nii.gz"`` for images and masks; tissue maps are ``.nii.gz``.
        n_test_patients: test patients without masks, with as many time points (``timepoints`` again).
        skull_stripped: zero outside the brain, as the preprocessed release; false draws skull and scalp.

    Returns:
        The patient folders, training patients first.
    """
    shape3 = tuple(int(s) for s in shape)
    if len(shape3) != 3 or min(shape3) < 32:
        raise ValueError(f"shape must be 3D with at least 32 voxels per axis, got {shape}")
    if n_patients < 0 or n_test_patients < 0 or n_patients + n_test_patients < 1:
        raise ValueError(
            f"need at least one patient, got n_patients={n_patients}, n_test_patients={n_test_patients}"
        )
    if suffix not in (".nii", ".nii.gz"):
        raise ValueError(f"suffix must be '.nii' or '.nii.gz', got {suffix!r}")
    out = Path(out_dir)
    written: list[Path] = []
    for kind, (parent, prefix, count, with_masks) in enumerate(
        (("training", "training", n_patients, True), ("testdata_website", "test", n_test_patients, False))
    ):
        counts = _timepoints(timepoints, count)
        for index, child in enumerate(np.random.SeedSequence([seed, kind]).spawn(count)):
            folder = out / parent / f"{prefix}{index + 1:02d}"
            _write_patient(folder, child, counts[index], shape3, suffix, with_masks, skull_stripped)
            written.append(folder)
    ADAPTER.detect_layout(out)  # what was written is what the adapter reads
    return written
