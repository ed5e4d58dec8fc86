"""Synthetic brain MR with no tumour, a primary tumour or metastases, for the two ResNeSAt tasks.

Two writers, each in a real layout that its adapter reads:

* :func:`make_tumour_image_phantoms`: 2D T1 post-contrast slices as an image-folder tree with patients,
  ``out_dir/<class>/<patient>/slice_01.png`` (8- or 16-bit grey PNG), for
  :mod:`common.data.image_classes`;
* :func:`make_tumour_collection_phantoms`: 3D BraTS 2023 cases of the GLI, MEN and MET collections
  (``ASNR-MICCAI-BraTS2023-MET-Challenge-TrainingData/BraTS-MET-00001-000/BraTS-MET-00001-000-t1c.nii.gz``
  ...), skull-stripped, four modalities and a segmentation, for :mod:`common.data.collection_slices`.

Both draw the same head, in millimetres on a grid of any dimension (2D slices, 3D volumes): an ellipsoidal
brain with a lumpy surface, a grey-matter cortex of varying depth around white matter, two lateral
ventricles and a smooth tissue texture; the 2D slices also have a CSF gap, a dark skull ring and a bright
scalp. The tumours differ as on contrast-enhanced T1:

* **primary, intra-axial** (glioma and every primary type but meningioma): one large mass (14-20 mm
  radius) with an irregular outline, an enhancing rim around a dark necrotic core, and a wide oedema;
* **meningioma**: an extra-axial round mass on the brain surface, homogeneous bright enhancement;
* **metastasis** (every secondary type): 3 to 6 small (5-8.5 mm) round ring-enhancing lesions with dark
  centres and small oedema halos, spread over both hemispheres away from the ventricles;
* **no tumour**: the head alone.

Intensities (T1 post-contrast, as fractions of full scale): scalp 0.55, bone 0.07, CSF 0.12, grey matter
0.40, white matter 0.50, oedema 0.36, enhancing tumour 0.90, necrosis 0.15, meningioma 0.82; then a smooth
multiplicative bias field (about 5 %) and Gaussian noise (0.015). Everything is determined by ``seed``;
patient ``i`` is the same whatever ``n_patients``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from common.data.atomic import atomic_output, atomic_save_nifti
from common.data.brats import ADAPTER as BRATS_ADAPTER
from common.data.brats import modality_stems, segmentation_stem
from common.data.collection_slices import COLLECTION_TYPES
from common.data.image_classes import normalise_class_name, tumour_category
from common.labels import BRATS

__all__ = ["PHANTOM_CLASSES", "make_tumour_collection_phantoms", "make_tumour_image_phantoms"]

PHANTOM_CLASSES: tuple[str, ...] = ("no_tumour", "glioma", "meningioma", "metastasis")
"""The default class folders of :func:`make_tumour_image_phantoms`."""

_F = np.float32
_FOV_MM = 240.0  # in-plane field of view of the 2D slices and of the volumes (BraTS: 240 x 1 mm)
_HEIGHT_MM = 155.0  # volumes: BraTS's 155 x 1 mm
# T1-contrast, FLAIR, T1, T2 intensity of each tissue (fractions of full scale)
_CONTRAST: dict[str, tuple[float, float, float, float]] = {
    "scalp": (0.55, 0.60, 0.60, 0.45),
    "bone": (0.07, 0.05, 0.07, 0.05),
    "csf": (0.12, 0.08, 0.12, 0.95),
    "gm": (0.40, 0.50, 0.42, 0.55),
    "wm": (0.50, 0.40, 0.55, 0.40),
    "ed": (0.36, 0.85, 0.36, 0.80),
    "et": (0.90, 0.65, 0.42, 0.55),
    "ncr": (0.15, 0.45, 0.20, 0.85),
    "men": (0.82, 0.55, 0.45, 0.50),
}
_T1C, _FLAIR, _T1, _T2 = range(4)
_BRATS2023_CODES = ("t2f", "t1n", "t1c", "t2w")  # the file codes, in BRATS_MODALITIES order
_CHANNEL_OF_CODE = {"t2f": _FLAIR, "t1n": _T1, "t1c": _T1C, "t2w": _T2}


@dataclass
class _Lesion:
    """One tumour: centre (mm from the brain centre), radius of its enhancing part (mm), kind, shape seed."""

    centre: np.ndarray
    radius: float
    kind: str  # "mass", "meningioma", "met"
    seed: int


@dataclass
class _Patient:
    """One head: brain semi-axes (mm), a seed for its texture and surface, and its tumours."""

    semi: np.ndarray
    seed: int
    lesions: list[_Lesion]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return _F(0.5) + _F(0.5) * np.tanh(_F(0.5) * z)


def _smooth_noise(rng: np.random.Generator, shape: Sequence[int], cells: Sequence[int]) -> np.ndarray:
    """Unit-variance smooth float32 field of any dimension: a coarse Gaussian grid, Gaussian-interpolated."""
    field = rng.standard_normal(tuple(int(c) for c in cells), dtype=_F)
    for axis, (n, c) in enumerate(zip(shape, cells)):
        pos = (np.arange(n, dtype=_F) + 0.5) / n * c - 0.5
        w = np.exp(-0.5 * ((pos[:, None] - np.arange(c, dtype=_F)[None, :]) / _F(0.7)) ** 2)
        w /= w.sum(axis=1, keepdims=True)
        field = np.moveaxis(np.tensordot(w, np.moveaxis(field, axis, 0), axes=(1, 0)), 0, axis)
    return (field - field.mean()) / _F(field.std() + 1e-6)


def _cells(shape: Sequence[int], spacing: Sequence[float], feature_mm: float) -> list[int]:
    return [int(np.clip(round(n * s / feature_mm), 2, 24)) for n, s in zip(shape, spacing)]


def _coords(shape: Sequence[int], spacing: Sequence[float]) -> list[np.ndarray]:
    """Broadcastable coordinates (mm) of each axis, 0 at the grid centre."""
    out = []
    for axis, (n, s) in enumerate(zip(shape, spacing)):
        view = [1] * len(shape)
        view[axis] = n
        out.append(((np.arange(n, dtype=_F) - _F((n - 1) / 2)) * _F(s)).reshape(view))
    return out


# ------------------------------------------------------------------------------------------ sampling


def _sample_patient(rng: np.random.Generator, kind: str, ndim: int) -> _Patient:
    """A head with the tumours of ``kind`` (``none``, ``mass``, ``meningioma``, ``met``)."""
    semi = np.array([70.0, 85.0, 60.0][:ndim]) * rng.uniform(0.94, 1.04, ndim)
    lesions: list[_Lesion] = []
    if kind == "mass":
        u = np.array(
            [rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 0.5), rng.uniform(-0.4, 0.4), rng.uniform(-0.2, 0.3)]
        )
        lesions.append(_Lesion(u[:ndim] * semi, float(rng.uniform(14, 20)), "mass", int(rng.integers(2**31))))
    elif kind == "meningioma":
        theta = float(rng.uniform(-np.pi, np.pi))
        direction = np.array([np.cos(theta), np.sin(theta), rng.uniform(-0.3, 0.4)])[:ndim]
        surface = direction / np.sqrt(np.sum((direction / semi) ** 2))  # on the brain ellipsoid
        radius = float(rng.uniform(12, 18))
        centre = surface * (1.0 - 0.25 * radius / float(np.linalg.norm(surface)))
        lesions.append(_Lesion(centre, radius, "meningioma", int(rng.integers(2**31))))
    elif kind == "met":
        for _ in range(int(rng.integers(3, 7))):
            radius = float(rng.uniform(5.0, 8.5))
            for _attempt in range(200):
                u = rng.uniform(-0.78, 0.78, ndim)
                if np.linalg.norm(u) > 0.78 or (abs(u[0]) < 0.32 and abs(u[1]) < 0.45):
                    continue  # outside the brain's inner part, or on the ventricles
                centre = u * semi
                if all(np.linalg.norm(centre - o.centre) > 1.9 * (radius + o.radius) + 3 for o in lesions):
                    lesions.append(_Lesion(centre, radius, "met", int(rng.integers(2**31))))
                    break
    return _Patient(semi, int(rng.integers(2**31)), lesions)


def _jitter(rng: np.random.Generator, patient: _Patient) -> _Patient:
    """Another slice of the same patient: a slightly smaller brain section, lesions cut off-centre."""
    scale = float(rng.uniform(0.93, 1.0))
    lesions = [
        _Lesion(
            o.centre * scale + rng.normal(0, 1.0, o.centre.size),
            o.radius * float(rng.uniform(0.8, 1.0)),
            o.kind,
            o.seed,
        )
        for o in patient.lesions
    ]
    return _Patient(patient.semi * scale, patient.seed, lesions)


# ------------------------------------------------------------------------------------------ drawing


def _draw(
    patient: _Patient, shape: Sequence[int], spacing: Sequence[float], skull: bool
) -> tuple[list[tuple[str, np.ndarray]], np.ndarray, np.ndarray]:
    """Tissue layers ``(tissue, soft weight)`` in painting order, canonical BraTS labels, and the head mask
    (brain and tumours) of one head on a grid of ``shape``."""
    rng = np.random.default_rng(patient.seed)
    x = _coords(shape, spacing)
    edge = _F(0.4 * min(spacing))  # partial volume within about a voxel
    mean_semi = float(np.mean(patient.semi[:2]))
    rho = np.sqrt(sum((xi / _F(s)) ** 2 for xi, s in zip(x, patient.semi)))
    surface = 1.0 + _F(0.03) * _smooth_noise(rng, shape, _cells(shape, spacing, 40.0))
    gyri = _smooth_noise(rng, shape, _cells(shape, spacing, 9.0))
    depth = _F(4.0 / mean_semi) * (1.0 + _F(0.5) * gyri)
    layers: list[tuple[str, np.ndarray]] = []
    if skull:
        for tissue, reach in (("scalp", 1.22), ("bone", 1.15), ("csf", 1.05)):
            layers.append((tissue, _sigmoid((surface * _F(reach) - rho) * _F(mean_semi) / edge)))
    brain = _sigmoid((surface - rho) * _F(mean_semi) / edge)
    layers.append(("gm", brain))
    layers.append(("wm", _sigmoid((surface - depth - rho) * _F(mean_semi) / edge)))
    ventricles = np.zeros(shape, dtype=_F)
    offsets, semis = (0.0, -6.0, 12.0), (7.0, 22.0, 15.0)
    for side in (-1.0, 1.0):
        q = np.sqrt(
            sum(((xi - _F(o)) / _F(s)) ** 2 for xi, o, s in zip(x, (side * 9.0, *offsets[1:]), semis))
        )
        ventricles = np.maximum(ventricles, _sigmoid((1.0 - q) * _F(6.0 / edge)))
    layers.append(("csf", ventricles))
    labels = np.zeros(shape, dtype=np.uint8)
    head = rho < surface
    inside_skull = rho < surface * _F(1.05)
    for lesion in patient.lesions:
        lrng = np.random.default_rng(lesion.seed)
        dist = np.sqrt(sum((xi - _F(c)) ** 2 for xi, c in zip(x, lesion.centre)))
        if lesion.kind == "meningioma":
            amplitude, parts = 0.04, (("men", 1.0, "et"),)
        elif lesion.kind == "mass":
            amplitude, parts = 0.22, (("ed", 1.6, "ed"), ("et", 1.0, "et"), ("ncr", 0.55, "ncr"))
        else:
            amplitude, parts = 0.06, (("ed", 1.8, "ed"), ("et", 1.0, "et"), ("ncr", 0.45, "ncr"))
        # one outline for all parts: the rim is closed around the necrosis, the oedema around the rim
        deform = 1.0 + _F(amplitude) * _smooth_noise(lrng, shape, _cells(shape, spacing, lesion.radius))
        outline = dist / np.clip(deform, 0.6, 1.5)
        for tissue, factor, label in parts:
            radius = lesion.radius * factor
            q = outline / _F(radius)
            weight = _sigmoid((1.0 - q) * _F(radius) / edge) * (inside_skull if tissue == "men" else brain)
            layers.append((tissue, weight))
            hard = (q < 1.0) & (inside_skull if tissue == "men" else head)
            labels[hard] = BRATS.labels[label]
            if tissue == "men":
                head |= hard
    return layers, labels, head


def _paint(
    layers: Sequence[tuple[str, np.ndarray]], channel: int, rng: np.random.Generator, shape: Sequence[int]
) -> np.ndarray:
    """One modality of the layers: tissue intensities, texture, bias field and noise, in [0, 1]."""
    spacing = [1.0] * len(shape)
    texture = _smooth_noise(rng, shape, _cells(shape, spacing, max(3.0, min(shape) / 24)))
    img = np.zeros(shape, dtype=_F)
    for tissue, weight in layers:
        value = _F(_CONTRAST[tissue][channel] * rng.uniform(0.97, 1.03))
        if tissue in ("gm", "wm", "ed"):
            value = value * (1.0 + _F(0.04) * texture)
        img += (value - img) * weight
    img *= 1.0 + _F(0.05) * _smooth_noise(rng, shape, [3] * len(shape))
    img += rng.standard_normal(tuple(shape), dtype=_F) * _F(0.015)
    return np.clip(img, 0.0, 1.0)


def _kind(class_name: str) -> str:
    """What a class's phantom shows: ``none``, ``mass``, ``meningioma`` or ``met``."""
    category = tumour_category(class_name)
    if category == "absent":
        return "none"
    if category == "secondary":
        return "met"
    return "meningioma" if "meningioma" in normalise_class_name(class_name) else "mass"


# ------------------------------------------------------------------------------------------ 2D writer


def make_tumour_image_phantoms(
    out_dir: str | os.PathLike,
    n_patients: int = 12,
    slices_per_patient: int = 4,
    size: int = 256,
    classes: Sequence[str] = PHANTOM_CLASSES,
    bit_depth: int = 8,
    seed: int = 0,
) -> list[Path]:
    """Write ``out_dir/<class>/<patient>/slice_NN.png``: brain-like T1 post-contrast slices, by class.

    Patients ``P0001``, ``P0002``, ... get the ``classes`` in turn (``P0001`` the first class); each has
    ``slices_per_patient`` slices of one head and its tumours, cut at slightly different levels.

    Args:
        out_dir: output folder, created if needed.
        n_patients: number of patients (>= 1).
        slices_per_patient: slices of each patient (>= 1).
        size: side of the square slices in pixels (>= 16); the field of view is 240 mm at any size.
        classes: class folder names, each known to :data:`~common.data.image_classes.TUMOUR_TYPES`:
            absent classes have no tumour, secondary ones metastases, ``meningioma`` a meningioma and the
            other primary (or unknown-source) ones an intra-axial mass.
        bit_depth: 8 (``L`` PNG, 0..255) or 16 (``I;16`` PNG, 0..4095 as 12-bit MR).
        seed: seed; patient ``i`` uses ``SeedSequence(seed).spawn(n_patients)[i]``.

    Returns:
        The patient folders, in patient order.
    """
    if n_patients < 1 or slices_per_patient < 1 or int(size) < 16 or bit_depth not in (8, 16) or not classes:
        raise ValueError(
            "need n_patients >= 1, slices_per_patient >= 1, size >= 16, bit_depth 8 or 16 and some classes; "
            f"got {n_patients}, {slices_per_patient}, {size}, {bit_depth}, {classes}"
        )
    kinds = [_kind(name) for name in classes]
    shape = (int(size), int(size))
    spacing = (_FOV_MM / shape[0], _FOV_MM / shape[1])
    out = Path(out_dir)
    written = []
    for index, child in enumerate(np.random.SeedSequence(seed).spawn(n_patients)):
        rng = np.random.default_rng(child)
        name, kind = classes[index % len(classes)], kinds[index % len(classes)]
        patient = _sample_patient(rng, kind, 2)
        folder = out / name / f"P{index + 1:04d}"
        for number in range(1, slices_per_patient + 1):
            layers, _, _ = _draw(_jitter(rng, patient), shape, spacing, skull=True)
            image = _paint(layers, _T1C, rng, shape)
            if bit_depth == 8:
                pixels = np.rint(image * 255).astype(np.uint8)
            else:
                pixels = np.rint(image * 4095).astype(np.uint16)
            with atomic_output(folder / f"slice_{number:02d}.png") as tmp:
                Image.fromarray(np.ascontiguousarray(pixels.T)).save(tmp)  # rows = axis 1
        written.append(folder)
    return written


# ------------------------------------------------------------------------------------------ 3D writer


def make_tumour_collection_phantoms(
    out_dir: str | os.PathLike,
    n_patients: int = 6,
    shape: Sequence[int] = (96, 96, 64),
    collections: Sequence[str] = ("GLI", "MEN", "MET"),
    timepoints: int = 1,
    seed: int = 0,
) -> list[Path]:
    """Write BraTS 2023 cases of several collections, as the challenge releases them::

        out_dir/ASNR-MICCAI-BraTS2023-MET-Challenge-TrainingData/BraTS-MET-00001-000/
            BraTS-MET-00001-000-{t2f,t1n,t1c,t2w,seg}.nii.gz

    Patients get the ``collections`` in turn and are numbered within their collection; their tumours are
    those of the collection's tumour type (:data:`~common.data.collection_slices.COLLECTION_TYPES`:
    glioma -> mass, meningioma, metastasis -> metastases). Each patient has ``timepoints`` cases
    (``-000``, ``-001``, ...; the same head, tumours drawn anew). Images are int16 (0..1000),
    skull-stripped; segmentations uint8 in the 2023 codes (1 NCR, 2 ED, 3 ET). Voxels span 240 x 240 x 155
    mm at any shape (1 mm at 240 x 240 x 155), affine ``diag(-sx, -sy, sz)`` with origin
    ``(0, (Y - 1) sy, 0)`` as in BraTS.

    Args:
        out_dir: output folder, created if needed.
        n_patients: number of patients (>= 1).
        shape: volume shape ``(X, Y, Z)``, at least 24 per axis.
        collections: BraTS 2023 prefixes (keys of ``COLLECTION_TYPES``).
        timepoints: cases per patient (>= 1).
        seed: seed; patient ``i`` uses ``SeedSequence(seed).spawn(n_patients)[i]``.

    Returns:
        The case folders, in writing order.
    """
    shape3 = tuple(int(s) for s in shape)
    if n_patients < 1 or timepoints < 1 or len(shape3) != 3 or min(shape3) < 24:
        raise ValueError(
            "need n_patients >= 1, timepoints >= 1 and a 3D shape of at least 24 per axis, got "
            f"{n_patients}, {timepoints}, {shape}"
        )
    unknown = [c for c in collections if c.upper() not in COLLECTION_TYPES]
    if unknown or not collections:
        raise ValueError(f"collections must be some of {sorted(COLLECTION_TYPES)}, got {list(collections)}")
    spacing = (_FOV_MM / shape3[0], _FOV_MM / shape3[1], _HEIGHT_MM / shape3[2])
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    affine[1, 3] = (shape3[1] - 1) * spacing[1]
    out = Path(out_dir)
    written = []
    numbers: dict[str, int] = {}
    for index, child in enumerate(np.random.SeedSequence(seed).spawn(n_patients)):
        rng = np.random.default_rng(child)
        collection = collections[index % len(collections)].upper()
        numbers[collection] = numbers.get(collection, 0) + 1
        kind = _kind(COLLECTION_TYPES[collection])
        head = _sample_patient(rng, kind, 3)
        for time in range(timepoints):
            patient = (
                head if time == 0 else _Patient(head.semi, head.seed, _sample_patient(rng, kind, 3).lesions)
            )
            case = f"BraTS-{collection}-{numbers[collection]:05d}-{time:03d}"
            folder = out / f"ASNR-MICCAI-BraTS2023-{collection}-Challenge-TrainingData" / case
            layers, labels, mask = _draw(patient, shape3, spacing, skull=False)
            for stem, code in zip(modality_stems("brats2023", case), _BRATS2023_CODES):
                image = _paint(layers, _CHANNEL_OF_CODE[code], rng, shape3) * mask
                atomic_save_nifti(np.rint(image * 1000).astype(np.int16), affine, folder / f"{stem}.nii.gz")
            seg = BRATS_ADAPTER.from_canonical(labels, "brats2023")
            atomic_save_nifti(seg, affine, folder / f"{segmentation_stem('brats2023', case)}.nii.gz")
            written.append(folder)
    return written
