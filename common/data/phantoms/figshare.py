"""Synthetic stand-ins for the Figshare brain-tumour slices (for tests and demo training runs).

:func:`make_figshare_phantoms` writes brain-like T1-CE slices with
:func:`~common.data.figshare_mat.write_figshare_mat` (the real file layout) plus a ``cvind.mat``. The
three tumour types differ only in what a network can see, as on real scans:

* **meningioma** (label 1): extra-axial, round, broad-based on the inner skull at the convexity,
  homogeneous bright enhancement, a thin CSF cleft around it and a short dural tail;
* **glioma** (label 2): intra-axial, inside a hemisphere away from skull and midline, lobulated,
  ring enhancement around a darker centre, sometimes a dark necrotic hole, surrounding hypointense oedema;
* **pituitary** (label 3): small, round, bright, on the midline low in the head (sella region) above a
  dark bony floor.

The tumour mask covers the whole tumour (rim, centre and necrotic core). Tumour areas are 3 % to 10 %
of the brain area, so segmentation stays learnable at 64×64. Arrays follow the project convention
(axis 0 = x = image column, axis 1 = y = row, y grows towards the bottom of the picture).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.data.figshare import CVIND_FILE
from common.data.figshare_mat import write_cvind, write_figshare_mat

__all__ = ["make_figshare_phantoms"]

_FRACTION_RANGE = {0: (0.04, 0.10), 1: (0.04, 0.09), 2: (0.03, 0.06)}  # tumour area / brain area
_N_FOLDS = 5


@dataclass
class _Tumour:
    """Per-patient tumour parameters; each slice jitters them."""

    kind: int  # class index: 0 meningioma, 1 glioma, 2 pituitary
    fraction: float  # tumour area / brain area
    place: tuple[float, float]  # meningioma: (angle, 0); glioma: (side, depth); pituitary: (x, depth)
    amplitudes: np.ndarray  # shape harmonics (k = 2, 3, ...)
    phases: np.ndarray
    elongation: float
    orientation: float
    brightness: float
    necrotic: bool


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function, overflow-free."""
    return 0.5 + 0.5 * np.tanh(0.5 * z)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Unit-variance smooth float32 field: a ``cells``×``cells`` Gaussian grid, Gaussian-interpolated.

    Separable (two small matrix products), so it costs almost nothing even at 512×512.
    """
    coarse = rng.standard_normal((cells, cells), dtype=np.float32)
    pos = (np.arange(size, dtype=np.float32) + 0.5) / size * cells - 0.5
    weights = np.exp(-0.5 * ((pos[:, None] - np.arange(cells, dtype=np.float32)[None, :]) / 0.7) ** 2)
    weights /= weights.sum(axis=1, keepdims=True)
    field = (weights @ coarse) @ np.ascontiguousarray(weights.T)
    return (field - field.mean()) / (field.std() + 1e-6)


def _sample_tumour(rng: np.random.Generator, kind: int) -> _Tumour:
    """Draw one patient's tumour of class ``kind``."""
    lo, hi = _FRACTION_RANGE[kind]
    if kind == 0:
        place = (float(rng.uniform(-0.75 * np.pi, 0.75 * np.pi)), 0.0)
        amplitudes = rng.uniform(0.0, 0.04, 3)
        elongation, orientation = float(rng.uniform(1.0, 1.25)), float(rng.uniform(0, np.pi))
    elif kind == 1:
        place = (float(rng.choice([-1.0, 1.0])), float(rng.uniform(-0.45, 0.3)))
        amplitudes = rng.uniform(0.05, 0.15, 4)
        elongation, orientation = float(rng.uniform(1.1, 1.5)), float(np.pi / 2 + rng.normal(0, 0.3))
    else:
        place = (float(rng.normal(0, 0.01)), float(rng.uniform(0.45, 0.62)))
        amplitudes = rng.uniform(0.0, 0.03, 2)
        elongation, orientation = float(rng.uniform(1.0, 1.3)), float(rng.normal(0, 0.15))
    return _Tumour(
        kind=kind,
        fraction=float(rng.uniform(lo, hi)),
        place=place,
        amplitudes=amplitudes,
        phases=rng.uniform(0, 2 * np.pi, amplitudes.size),
        elongation=elongation,
        orientation=orientation,
        brightness=float(rng.uniform(0.9, 1.1)),
        necrotic=bool(kind == 1 and rng.random() < 0.5),
    )


@dataclass
class _Head:
    """One slice's head geometry: float32 coordinate maps and the layer radii (in units of ``rho``)."""

    size: int
    px: float  # pixels per normalised unit; the image spans [-1, 1]²
    gx: np.ndarray  # image-frame coordinates (axis 0, axis 1)
    gy: np.ndarray
    xr: np.ndarray  # head-frame coordinates (slightly rotated and shifted)
    yr: np.ndarray
    rho: np.ndarray  # elliptical radius, 1 at the outer scalp
    a: float  # half-axes of the head
    b: float
    unit: float  # pixels per unit of rho
    t_scalp: float
    t_csf: float
    r_inner: float  # inner skull surface
    r_brain: float  # brain surface
    level: float  # slice level in [0, 1]

    def inside(self, radius: float) -> np.ndarray:
        """Soft indicator of ``rho < radius`` (about one pixel wide)."""
        return _sigmoid((radius - self.rho) * (self.unit / 0.6))


def _make_head(rng: np.random.Generator, size: int) -> _Head:
    """Draw the head outline of one slice."""
    px = size / 2.0
    grid = (np.arange(size, dtype=np.float32) + 0.5) / px - 1.0
    gx, gy = np.meshgrid(grid, grid, indexing="ij")
    level = float(rng.uniform(0.0, 1.0))
    head_scale = 0.92 + 0.08 * np.sin(np.pi * level)
    a = float(0.70 * head_scale * rng.uniform(0.97, 1.03))
    b = float(0.84 * head_scale * rng.uniform(0.97, 1.03))
    cx, cy, rot = (float(v) for v in rng.normal(0, (0.02, 0.02, 0.05)))
    c, s = float(np.cos(rot)), float(np.sin(rot))
    xr = c * (gx - cx) + s * (gy - cy)
    yr = c * (gy - cy) - s * (gx - cx)
    rho = np.sqrt((xr / a) ** 2 + (yr / b) ** 2)
    unit = a * px
    t_scalp, t_bone, t_csf = max(0.05, 1.3 / unit), max(0.04, 1.0 / unit), max(0.02, 0.7 / unit)
    r_inner = 1.0 - t_scalp - t_bone
    return _Head(size, px, gx, gy, xr, yr, rho, a, b, unit, t_scalp, t_csf, r_inner, r_inner - t_csf, level)


def _render_head(h: _Head, gyri: np.ndarray, texture: np.ndarray) -> np.ndarray:
    """Scalp, skull, CSF and brain (white matter, wavy cortex, ventricles, fissure) as float32."""
    grey = _sigmoid((h.rho - (h.r_brain - 0.13) + 0.035 * gyri) * (h.unit / 0.8))
    brain = 450.0 - 85.0 * grey + 20.0 * texture + 8.0 * gyri
    vsize = 0.6 + 0.8 * h.level  # lateral ventricles grow with the slice level
    for side in (-1.0, 1.0):
        c, s = float(np.cos(side * 0.3)), float(np.sin(side * 0.3))
        vx, vy = h.xr - side * 0.09 * h.a, h.yr + 0.12 * h.b
        u = (c * vx + s * vy) * (1.0 / (0.05 * h.a * vsize + 1.2 / h.px))
        v = (c * vy - s * vx) * (1.0 / (0.22 * h.b * vsize))
        vent = _sigmoid((1.0 - np.sqrt(u * u + v * v)) * 6.0)
        brain += (140.0 - brain) * vent
    width = max(0.008, 0.6 / h.px)  # interhemispheric fissure in front of and behind the ventricles
    fissure = np.exp(-((h.xr / width) ** 2)) * _sigmoid((np.abs(h.yr) - 0.38 * h.b) * h.px)
    brain *= 1.0 - 0.45 * fissure
    scalp = 720.0 + 30.0 * texture
    return (
        scalp * h.inside(1.0)
        + (70.0 - scalp) * h.inside(1.0 - h.t_scalp)
        + (150.0 - 70.0) * h.inside(h.r_inner)
        + (brain - 150.0) * h.inside(h.r_brain)
    )


def _place_tumour(
    rng: np.random.Generator, t: _Tumour, h: _Head, r0: float, half: tuple[float, float], lobes: float
) -> tuple[float, float, float]:
    """Tumour centre ``(tx, ty)`` in the head frame, and the meningioma's dural angle (else 0)."""
    half_x, half_y = half
    rb_a, rb_b = h.r_brain * h.a, h.r_brain * h.b
    if t.kind == 0:  # centre just inside the inner skull, so the tumour sits on the dura
        psi = t.place[0] + float(rng.normal(0, 0.06))
        bx, by = rb_a * np.sin(psi), -rb_b * np.cos(psi)
        normal = np.array([bx / h.a**2, by / h.b**2])
        normal /= np.linalg.norm(normal)
        return float(bx - 0.55 * r0 * normal[0]), float(by - 0.55 * r0 * normal[1]), psi
    if t.kind == 1:  # inside one hemisphere, clear of midline and skull
        ty = t.place[1] * rb_b + float(rng.normal(0, 0.02))
        ty = float(np.clip(ty, -rb_b + 1.3 * half_y * lobes, rb_b - 1.3 * half_y * lobes))
        lo = 0.03 + half_x * lobes
        hi = rb_a * np.sqrt(max(0.0, 1.0 - (ty / rb_b) ** 2)) - 0.04 - half_x * lobes
        frac = float(rng.uniform(0.3, 0.7))
        return t.place[0] * float((lo + hi) / 2 if lo > hi else lo + frac * (hi - lo)), ty, 0.0
    tx = t.place[0] + float(rng.normal(0, 0.01))  # pituitary: on the midline, low in the head
    ty = min(t.place[1] * rb_b + float(rng.normal(0, 0.015)), rb_b - 0.04 - 1.1 * half_y * lobes)
    return tx, float(ty), 0.0


def _render_slice(
    rng: np.random.Generator, size: int, tumour_kind: int, tumour: _Tumour | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Render one phantom slice.

    Args:
        rng: random generator (all randomness comes from it).
        size: the slice is ``size``×``size`` (64 to 512 and beyond).
        tumour_kind: class index, 0 meningioma, 1 glioma, 2 pituitary.
        tumour: per-patient tumour parameters to jitter; ``None`` draws new ones.

    Returns:
        ``(image, mask)``: int16 image with values roughly 0..1000 and uint8 0/1 mask, shape
        ``(size, size)``, axis 0 = x.
    """
    if size < 16:
        raise ValueError(f"size must be at least 16, got {size}")
    t = tumour if tumour is not None else _sample_tumour(rng, tumour_kind)
    h = _make_head(rng, size)
    gyri, texture = _smooth_noise(rng, size, 14), _smooth_noise(rng, size, 5)
    img = _render_head(h, gyri, texture)

    # Tumour outline: q < 1 inside a lobulated, elongated, rotated polar shape.
    brain_area = np.pi * h.a * h.b * h.r_brain**2
    fraction = float(np.clip(t.fraction * rng.uniform(0.75, 1.2), 0.03, 0.10))
    amplitudes = t.amplitudes * rng.uniform(0.85, 1.15, t.amplitudes.size)
    phases = t.phases + rng.normal(0, 0.25, t.phases.size)
    elong = t.elongation * float(rng.uniform(0.95, 1.05))
    orient = t.orientation + float(rng.normal(0, 0.1))
    if t.kind == 0:
        fraction /= 0.83  # the part beyond the inner skull is cut off
    r0 = float(np.sqrt(fraction * brain_area / (np.pi * (1.0 + 0.5 * float(np.sum(amplitudes**2))))))
    co, so = float(np.cos(orient)), float(np.sin(orient))
    half = (r0 * np.sqrt(elong * co**2 + so**2 / elong), r0 * np.sqrt(elong * so**2 + co**2 / elong))
    tx, ty, psi = _place_tumour(rng, t, h, r0, half, 1.0 + 0.6 * float(np.sum(amplitudes)))
    dx, dy = h.xr - tx, h.yr - ty
    u = (co * dx + so * dy) * float(1 / np.sqrt(elong))
    v = (co * dy - so * dx) * float(np.sqrt(elong))
    dist = np.sqrt(u * u + v * v)
    z = (u + 1j * v) / np.maximum(dist, 1e-6)  # e^{i theta}, no trigonometry on the grid
    outline = np.ones_like(dist)
    zk = z
    for amp, phase in zip(amplitudes, phases):
        zk = zk * z  # k = 2, 3, ...
        outline += float(amp) * (zk * complex(np.exp(1j * phase))).real
    q = dist / (r0 * outline)
    edge_px = r0 * h.px  # tumour radius in pixels
    weight = _sigmoid((1.0 - q) * (edge_px / 0.6))
    mask = q < 1.0
    if t.kind == 0:
        weight *= h.inside(h.r_inner)
        mask &= h.rho < h.r_inner

    # Tumour appearance (and its surroundings).
    gain = t.brightness
    if t.kind == 0:  # CSF cleft, dural tail, homogeneous enhancement
        cleft = _sigmoid((1.0 - q) * (edge_px / 0.6) + 1.8) * (1 - weight) * h.inside(h.r_brain)
        img += (150.0 - img) * (0.7 * cleft)
        alpha = np.arctan2(h.xr / h.a, -h.yr / h.b)
        ang = np.mod(alpha - psi + np.pi, 2 * np.pi) - np.pi
        tail_len = 1.8 * r0 / (h.r_brain * 0.5 * (h.a + h.b))
        tail = np.exp(-(((h.rho - h.r_inner + 0.5 * h.t_csf) / h.t_csf) ** 2) - (ang / tail_len) ** 2)
        img += (600.0 * gain - img) * (0.8 * tail * (1 - weight))
        value = 830.0 * gain * (1.0 + 0.02 * texture)
    elif t.kind == 1:  # oedema, enhancing ring, darker centre, maybe a necrotic hole
        oedema = _sigmoid((1.6 - q) * 4.0) * (1 - weight) * h.inside(h.r_brain)
        img *= 1 - 0.25 * oedema
        rim = min(0.8, 1.0 - 1.8 / max(edge_px, 1e-6))  # inner edge of the ring: >= ~2 px thick
        centre = _sigmoid((rim * (0.75 + 0.1 * gyri) - q) * (edge_px / 0.8))
        value = 730.0 * gain * (1.0 + 0.12 * gyri) * (1 - centre) + 280.0 * centre
        if t.necrotic:
            core = _sigmoid((0.55 * rim - q) * (edge_px / 0.8))
            value += (70.0 - value) * core
    else:  # bright, homogeneous, above the dark bony floor of the sella
        ring = _sigmoid((q - 1.0) * (edge_px / 0.6)) * _sigmoid((1.45 - q) * (edge_px / 0.6))
        below = _sigmoid((dy - 0.3 * r0) * h.px) * ring
        img += (90.0 - img) * (0.8 * below)
        value = 870.0 * gain * (1.0 + 0.03 * texture - 0.05 * np.minimum(q, 1.0) ** 2)
    img += (value - img) * weight

    # Acquisition: scanner gain, smooth multiplicative bias field, Rician noise.
    c = [float(x) for x in rng.normal(0, 0.08, 5)]
    bias = np.exp(c[0] * h.gx + c[1] * h.gy + c[2] * h.gx**2 + c[3] * h.gy**2 + c[4] * h.gx * h.gy)
    img *= bias * float(rng.uniform(0.9, 1.1))
    noise = rng.standard_normal((2, size, size), dtype=np.float32) * float(rng.uniform(8.0, 20.0))
    img = np.sqrt((img + noise[0]) ** 2 + noise[1] ** 2)
    image = np.clip(np.rint(img), 0, np.iinfo(np.int16).max).astype(np.int16)
    return image, mask.astype(np.uint8)


def make_figshare_phantoms(
    out_dir: str | os.PathLike,
    n_patients: int = 12,
    slices_per_patient: int = 4,
    size: int = 256,
    seed: int = 0,
    sizes: Sequence[int] | None = None,
) -> list[Path]:
    """Write a synthetic Figshare-like data set: ``1.mat … N.mat`` and ``cvind.mat``.

    Patients get the tumour classes in turn (meningioma, glioma, pituitary, ...), so the classes are
    balanced; a patient's slices are variations (position, size, slice level) of the same tumour.
    Patient ids are ``"P0001"``, ``"P0002"``, .... ``cvind.mat`` puts whole patients into 5 folds
    (class-stratified). Everything is determined by ``seed``.

    Args:
        out_dir: output folder, created if needed.
        n_patients: number of patients (>= 1).
        slices_per_patient: slices per patient (>= 1).
        size: side of the square slices.
        seed: seed of ``numpy.random.default_rng``.
        sizes: optional sides cycled over patients (patient ``i`` gets ``sizes[i % len(sizes)]``),
            e.g. ``(512, 512, 512, 256)`` mixes in 256×256 patients like the real data; overrides ``size``.

    Returns:
        The slice files in slice-number order (``cvind.mat`` is ``out_dir / "cvind.mat"``).
    """
    if n_patients < 1 or slices_per_patient < 1:
        raise ValueError(f"need n_patients, slices_per_patient >= 1, got {n_patients}, {slices_per_patient}")
    side_of = [int(s) for s in sizes] if sizes else [int(size)]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    files: list[Path] = []
    kinds = [p % 3 for p in range(n_patients)]
    for p, kind in enumerate(kinds):
        tumour = _sample_tumour(rng, kind)
        side = side_of[p % len(side_of)]
        for _ in range(slices_per_patient):
            image, mask = _render_slice(rng, side, kind, tumour)
            path = out / f"{len(files) + 1}.mat"
            write_figshare_mat(path, image, mask, kind + 1, f"P{p + 1:04d}")
            files.append(path)
    # Folds: stratified by class, patients shuffled within each class, then dealt round-robin.
    order = sorted(range(n_patients), key=lambda p: (kinds[p], rng.random()))
    fold_of = {p: i % _N_FOLDS + 1 for i, p in enumerate(order)}
    write_cvind(out / CVIND_FILE, np.repeat([fold_of[p] for p in range(n_patients)], slices_per_patient))
    return files
