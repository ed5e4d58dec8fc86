"""Synthetic stand-ins for BraTS cases (for tests and demo training runs), in the real file layouts.

:func:`make_brats_phantoms` writes multi-modal 3D head phantoms with a glioma-like tumour:

* **brain**: an ellipsoid with a lumpy surface, white matter inside a grey-matter cortex whose inner
  border is folded by smooth noise, a thin layer of sulcal CSF and two lateral ventricles, a smooth
  tissue texture; by default skull-stripped (zero outside the brain) as the released BraTS volumes are,
  or with CSF gap, skull and scalp (``skull_stripped=False``);
* **tumour**: three nested, irregular regions (radius fields deformed by low-frequency noise) at a random
  place in one hemisphere: peritumoral oedema (ED) around an enhancing rim (ET) around a necrotic core
  (NCR), each with the contrast it has on real scans::

                 FLAIR   T1     T1ce   T2
      WM          380    700    680    380
      GM          480    520    500    560
      CSF         120    200    190   1300
      ED          820    480    470   1050     bright on FLAIR and T2, a little dark on T1
      ET          700    480   1250    780     bright on T1ce only
      NCR         420    220    230   1150     dark on T1/T1ce, bright on T2

* **acquisition**: per-modality scanner gain, a smooth multiplicative bias field and Gaussian noise.

Images are **int16** (the dtype of the BraTS 2021/2023 releases; MONAI loads them as float32 anyway),
except the MSD layout's 4D images, which are float32; segmentations are **uint8** in the output layout's
own codes. Voxels are 1 mm isotropic with the affine ``diag(-1, -1, 1)`` and origin ``(0, Y - 1, 0)``
(240x240x155: ``(0, 239, 0)``), as in the BraTS releases. Everything is determined by ``seed``; case
``i`` is the same whatever ``n_cases``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from common.data.atomic import atomic_save_nifti, atomic_write_text
from common.data.brats import ADAPTER, BRATS_MODALITIES, modality_stems, segmentation_stem
from common.labels import BRATS

__all__ = ["make_brats_phantoms"]

_F = np.float32
# Mean intensities (FLAIR, T1, T1ce, T2) of each tissue; see the module docstring.
_CONTRAST = {
    "wm": (380.0, 700.0, 680.0, 380.0),
    "gm": (480.0, 520.0, 500.0, 560.0),
    "csf": (120.0, 200.0, 190.0, 1300.0),
    "ed": (820.0, 480.0, 470.0, 1050.0),
    "et": (700.0, 480.0, 1250.0, 780.0),
    "ncr": (420.0, 220.0, 230.0, 1150.0),
    "bone": (60.0, 90.0, 90.0, 70.0),
    "scalp": (650.0, 900.0, 880.0, 600.0),
}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function, overflow-free, in the input's dtype."""
    return _F(0.5) + _F(0.5) * np.tanh(_F(0.5) * z)


def _smooth_noise(rng: np.random.Generator, shape: Sequence[int], cells: Sequence[int]) -> np.ndarray:
    """Roughly unit-variance smooth float32 field: a coarse Gaussian grid, Gaussian-interpolated per axis.

    Separable (three small matrix products), so it costs about one pass over the volume per cell.
    """
    coarse = rng.standard_normal(tuple(cells), dtype=_F)
    mats = []
    for n, c in zip(shape, cells):
        pos = (np.arange(n, dtype=_F) + 0.5) / n * c - 0.5
        w = np.exp(-0.5 * ((pos[:, None] - np.arange(c, dtype=_F)[None, :]) / _F(0.7)) ** 2)
        mats.append(w / w.sum(axis=1, keepdims=True))
    field = np.tensordot(mats[0], coarse, axes=(1, 0))  # (X, cy, cz)
    field = np.tensordot(field, mats[1], axes=(1, 1))  # (X, cz, Y)
    field = np.tensordot(field, mats[2], axes=(1, 1))  # (X, Y, Z)
    sample = field[::3, ::3, ::3]
    return (field - _F(sample.mean())) * _F(1.0 / (sample.std() + 1e-6))


def _cells(shape: Sequence[int], size_mm: float) -> tuple[int, ...]:
    """Coarse-grid size for noise with features of about ``size_mm``."""
    return tuple(int(np.clip(round(n / size_mm), 2, 24)) for n in shape)


def _axis(n: int, lo: int, hi: int, centre: float, half: float) -> np.ndarray:
    """Normalised coordinate ``(i - centre) / half`` of voxels ``lo..hi-1`` on one axis."""
    return (np.arange(lo, hi, dtype=_F) - _F(centre)) / _F(half)


def _tumour(
    rng: np.random.Generator, shape: tuple[int, int, int], centre: np.ndarray, semi: np.ndarray
) -> tuple[tuple[slice, ...], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Draw a tumour; return its box, the soft weights and the hard masks of ``ed``/``tc``/``ncr``.

    The masks are nested (ncr ⊂ tc ⊂ ed). Radii are in mm; each boundary is a radius field deformed by
    its own low-frequency noise.
    """
    mean_semi = float(semi.mean())
    r_ed = float(rng.uniform(0.32, 0.48)) * mean_semi
    r_tc = max(r_ed * float(rng.uniform(0.6, 0.75)), 3.4)
    r_ncr = max(r_tc * float(rng.uniform(0.6, 0.8)), 2.0)
    r_tc = max(r_tc, r_ncr + 2.0)  # an enhancing rim of at least ~2 voxels
    r_ed = max(r_ed, r_tc + 3.0)  # an oedema halo of at least ~3 voxels
    stretch = rng.uniform(0.85, 1.2, 3)
    reach = r_ed * 1.4 * stretch  # mm, the farthest the deformed oedema can go
    side = float(rng.choice([-1.0, 1.0]))
    limit = np.maximum(0.9 - reach / semi, 0.05)  # keep the oedema mostly inside the brain
    pos = np.array([side * rng.uniform(0.3, 0.6), rng.uniform(-0.5, 0.5), rng.uniform(-0.3, 0.5)])
    pos = np.clip(pos, -limit, limit)
    if np.linalg.norm(pos / limit) > 1.0:
        pos = pos / np.linalg.norm(pos / limit)
    where = centre + pos * semi
    lo = np.maximum(np.floor(where - reach - 2).astype(int), 0)
    hi = np.minimum(np.ceil(where + reach + 3).astype(int), shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    size = tuple(int(b - a) for a, b in zip(lo, hi))
    axes = [_axis(n, int(a), int(b), c, s) for n, a, b, c, s in zip(shape, lo, hi, where, stretch)]
    dist = np.sqrt(axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[2][None, None, :] ** 2)
    weights, masks = {}, {}
    for name, radius, amp in (("ed", r_ed, 0.3), ("tc", r_tc, 0.2), ("ncr", r_ncr, 0.25)):
        deform = np.clip(1.0 + _F(amp) * _smooth_noise(rng, size, _cells(size, 0.9 * radius)), 0.55, 1.6)
        q = dist / (_F(radius) * deform)
        weights[name] = _sigmoid((1.0 - q) * _F(radius / 0.5))
        masks[name] = q < 1.0
    masks["tc"] &= masks["ed"]
    masks["ncr"] &= masks["tc"]
    return box, weights, masks


def _render_case(
    rng: np.random.Generator, shape: tuple[int, int, int], skull_stripped: bool
) -> tuple[list[np.ndarray], np.ndarray]:
    """One case: four float32 modalities (``BRATS_MODALITIES`` order) and canonical uint8 labels."""
    dims = np.asarray(shape, dtype=float)
    semi = dims * np.array([0.29, 0.355, 0.40]) * rng.uniform(0.96, 1.04, 3)
    centre = (dims - 1) / 2 + rng.normal(0, 0.01, 3) * dims
    head = 1.18 if not skull_stripped else 1.0  # region rendered: the brain, or the whole head
    lo = np.maximum(np.floor(centre - head * semi - 2).astype(int), 0)
    hi = np.minimum(np.ceil(centre + head * semi + 3).astype(int), shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    size = tuple(int(b - a) for a, b in zip(lo, hi))
    mean_semi = float(semi.mean())

    u, v, w = (_axis(n, int(a), int(b), c, s) for n, a, b, c, s in zip(shape, lo, hi, centre, semi))
    rho = np.sqrt(u[:, None, None] ** 2 + v[None, :, None] ** 2 + w[None, None, :] ** 2)
    surface = 1.0 + _F(0.035) * _smooth_noise(rng, size, _cells(size, 40.0))
    brain_soft = _sigmoid((surface - rho) * _F(mean_semi / 0.7))
    gyri = _smooth_noise(rng, size, _cells(size, 9.0))
    gm_depth = _F(3.5 / mean_semi) * (1.0 + _F(0.6) * gyri)
    wm = _sigmoid((surface - gm_depth - _F(1.5 / mean_semi) - rho) * _F(mean_semi / 0.8))
    sulci = _sigmoid((rho - surface + _F(1.3 / mean_semi)) * _F(mean_semi / 0.6)) * _sigmoid(_F(2.0) * gyri)
    csf = sulci
    for side in (-1.0, 1.0):
        du = (u[:, None, None] - _F(side * 0.1)) / _F(0.085)  # lateral ventricles
        dv = (v[None, :, None] + _F(0.05)) / _F(0.32)
        dw = (w[None, None, :] - _F(0.12)) / _F(0.13)
        q = np.sqrt(du**2 + dv**2 + dw**2)
        csf = np.maximum(csf, _sigmoid((1.0 - q) * _F(4.0)))
    tumour_box, tw, tmask = _tumour(rng, size, centre - lo, semi)  # box relative to the head box
    texture = _smooth_noise(rng, size, _cells(size, 6.0))
    brain = brain_soft > 0.5

    labels = np.zeros(shape, dtype=np.uint8)
    sub = np.zeros(tmask["ed"].shape, dtype=np.uint8)
    # nested masks, painted outside-in: oedema, then the enhancing core, then necrosis inside it
    sub[tmask["ed"]], sub[tmask["tc"]], sub[tmask["ncr"]] = (BRATS.labels[n] for n in ("ed", "et", "ncr"))
    labels[box][tumour_box] = np.where(brain[tumour_box], sub, 0)

    images = []
    for m in range(len(BRATS_MODALITIES)):
        c = {k: _F(val[m] * rng.uniform(0.95, 1.05)) for k, val in _CONTRAST.items()}
        img = c["gm"] + (c["wm"] - c["gm"]) * wm
        img *= 1.0 + _F(0.04) * texture
        img += (c["csf"] - img) * csf
        t = img[tumour_box]  # a view: edited in place
        jitter = 1.0 + _F(0.08) * texture[tumour_box]
        inner = c["et"] * jitter + (c["ncr"] - c["et"]) * tw["ncr"]
        core = c["ed"] * jitter + (inner - c["ed"] * jitter) * tw["tc"]
        t += (core - t) * (tw["ed"] * brain_soft[tumour_box])
        if skull_stripped:
            img *= brain
        else:  # CSF gap, skull and scalp as shells outside the brain surface
            inside = brain_soft
            img *= inside
            for tissue, depth in (("csf", 0.03), ("bone", 0.08), ("scalp", 0.14)):
                shell = _sigmoid((surface + _F(depth) - rho) * _F(mean_semi / 0.7))
                img += c[tissue] * (shell - inside)
                inside = shell
        gain = [
            np.exp(_F(a) * x + _F(b) * x * x) for x, (a, b) in zip((u, v, w), rng.normal(0, 0.12, (3, 2)))
        ]
        img *= gain[0][:, None, None] * gain[1][None, :, None] * gain[2][None, None, :]
        img *= _F(rng.uniform(0.85, 1.15))
        img += rng.standard_normal(size, dtype=_F) * _F(0.025 * c["wm"])
        if skull_stripped:
            img *= brain
        full = np.zeros(shape, dtype=_F)
        if not skull_stripped:
            full[...] = np.abs(rng.standard_normal(shape, dtype=_F)) * _F(0.01 * c["wm"])
        full[box] = np.maximum(img, 0.0)
        images.append(full)
    return images, labels


def _affine(shape: Sequence[int]) -> np.ndarray:
    """1 mm voxels, ``diag(-1, -1, 1)`` axes and origin ``(0, Y - 1, 0)`` as in the BraTS releases."""
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    affine[1, 3] = shape[1] - 1
    return affine


def _case_name(layout: str, index: int, labelled: bool) -> str:
    if layout == "brats2020":
        return f"BraTS20_{'Training' if labelled else 'Validation'}_{index + 1:03d}"
    if layout == "brats2021":
        return f"BraTS2021_{index:05d}"
    if layout == "brats2023":
        return f"BraTS-GLI-{index:05d}-000"
    return f"BRATS_{index + 1:03d}"


def _to_int16(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, np.iinfo(np.int16).max).astype(np.int16)


def make_brats_phantoms(
    out_dir: str | os.PathLike,
    n_cases: int = 4,
    shape: Sequence[int] = (240, 240, 155),
    seed: int = 0,
    layout: str = "brats2020",
    with_labels: bool = True,
    skull_stripped: bool = True,
) -> list[Path]:
    """Write a synthetic BraTS-like data set of ``n_cases`` cases to ``out_dir`` in ``layout``.

    * ``"brats2020"``: ``BraTS20_Training_001/BraTS20_Training_001_{flair,t1,t1ce,t2,seg}.nii.gz``
      (``BraTS20_Validation_*`` without ``seg`` when ``with_labels`` is false);
    * ``"brats2021"``: ``BraTS2021_00000/BraTS2021_00000_*.nii.gz``;
    * ``"brats2023"``: ``BraTS-GLI-00000-000/BraTS-GLI-00000-000-{t2f,t1n,t1c,t2w,seg}.nii.gz``;
    * ``"msd"``: ``imagesTr/BRATS_001.nii.gz`` (4D float32, channels last), ``labelsTr/BRATS_001.nii.gz``
      and ``dataset.json`` (``imagesTs`` without labels when ``with_labels`` is false).

    Segmentations use the layout's own codes (ET = 4 for 2020/2021; MSD 1 ED, 2 NCR/NET, 3 ET).

    Args:
        out_dir: output folder, created if needed.
        n_cases: number of cases (>= 1).
        shape: volume shape ``(X, Y, Z)``, at least 24 per axis; BraTS is 240x240x155.
        seed: seed of the generator; case ``i`` uses ``SeedSequence(seed).spawn(n_cases)[i]``.
        layout: output layout, one of :data:`~common.data.brats.BRATS_LAYOUTS`.
        with_labels: write segmentations (else validation-like unlabelled cases).
        skull_stripped: zero outside the brain as in BraTS; false renders CSF gap, skull and scalp.

    Returns:
        The case folders (BraTS layouts) or the 4D image files (MSD), in case order.
    """
    ADAPTER.check_layout(layout)
    shape3 = tuple(int(s) for s in shape)
    if n_cases < 1 or len(shape3) != 3 or min(shape3) < 24:
        raise ValueError(f"need n_cases >= 1 and a 3D shape of at least 24 per axis, got {n_cases}, {shape}")
    out = Path(out_dir)
    affine = _affine(shape3)
    written: list[Path] = []
    for index, child in enumerate(np.random.SeedSequence(seed).spawn(n_cases)):
        images, labels = _render_case(np.random.default_rng(child), shape3, skull_stripped)
        case = _case_name(layout, index, with_labels)
        if layout == "msd":
            folder = "imagesTr" if with_labels else "imagesTs"
            path = out / folder / f"{case}.nii.gz"
            atomic_save_nifti(np.stack(images, axis=-1), affine, path)
            if with_labels:
                atomic_save_nifti(
                    ADAPTER.from_canonical(labels, layout), affine, out / "labelsTr" / f"{case}.nii.gz"
                )
            written.append(path)
            continue
        folder = out / case
        for image, stem in zip(images, modality_stems(layout, case)):
            atomic_save_nifti(_to_int16(image), affine, folder / f"{stem}.nii.gz")
        if with_labels:
            atomic_save_nifti(
                ADAPTER.from_canonical(labels, layout),
                affine,
                folder / f"{segmentation_stem(layout, case)}.nii.gz",
            )
        written.append(folder)
    if layout == "msd":
        _write_msd_json(out, written, with_labels)
    return written


def _write_msd_json(out: Path, images: Sequence[Path], with_labels: bool) -> None:
    """A ``dataset.json`` like the Decathlon's (modalities and label names of Task01)."""
    names = [p.name for p in images]
    content = {
        "name": "BRATS (synthetic phantoms)",
        "tensorImageSize": "4D",
        "modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
        "labels": {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"},
        "numTraining": len(names) if with_labels else 0,
        "numTest": 0 if with_labels else len(names),
        "training": [{"image": f"./imagesTr/{n}", "label": f"./labelsTr/{n}"} for n in names]
        if with_labels
        else [],
        "test": [] if with_labels else [f"./imagesTs/{n}" for n in names],
    }
    atomic_write_text(out / "dataset.json", json.dumps(content, indent=2) + "\n")
