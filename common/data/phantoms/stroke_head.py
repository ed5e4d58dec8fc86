"""A synthetic head with stroke lesions, shared by the ATLAS (T1 MR) and NCCT (CT) phantom writers.

:class:`Head` draws the anatomy on any grid and voxel size: a brain (an ellipsoid with a lumpy surface), a
grey-matter cortical ribbon folded by smooth noise with a few CSF-filled sulci, deep grey nuclei, two lateral
ventricles and white matter inside; outside it a thin CSF layer, the skull, a fat layer and the skin. The
head is placed by fractions of the field of view, so a small test grid holds the same head at a lower
resolution; layers are given in mm, never thinner than about one voxel.

:func:`plan_lesions` draws stroke lesions of four kinds, from a few voxels to a whole vascular territory:

* ``"territory"``: a wedge of one hemisphere from the cortex down towards the basal ganglia (a large
  middle-cerebral-artery-like infarct), cortical and subcortical;
* ``"cortical"``: an ovoid (4-15 mm) centred in the cortical ribbon;
* ``"subcortical"``: an ovoid (3-9 mm) in deep white matter or the deep grey nuclei;
* ``"lacune"``: a small ovoid (1-2.5 mm): a few voxels.

Every lesion's border is deformed by smooth noise and blurred (a soft weight that the writers blend the
lesion intensity with), and its mask is the part of its ovoid or wedge inside the brain parenchyma (grey
or white matter), never in CSF. The writers render the tissue codes with their modality's intensities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["HEAD_TISSUES", "LESION_KINDS", "Head", "Lesion", "plan_lesions", "sigmoid", "smooth_noise"]

HEAD_TISSUES: dict[str, int] = {"air": 0, "csf": 1, "gm": 2, "wm": 3, "bone": 4, "fat": 5, "skin": 6}
"""Tissue codes of :attr:`Head.tissue`."""
LESION_KINDS: tuple[str, ...] = ("territory", "cortical", "subcortical", "lacune")

_F = np.float32


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function, overflow-free, float32."""
    return (_F(0.5) + _F(0.5) * np.tanh(_F(0.5) * np.asarray(z, dtype=_F))).astype(_F)


def smooth_noise(
    rng: np.random.Generator, shape: Sequence[int], spacing: Sequence[float], size_mm: float
) -> np.ndarray:
    """A roughly unit-variance smooth float32 field with features of about ``size_mm``.

    Gaussian noise on a coarse grid (one node per ``size_mm``, 2-24 per axis) is spread over the volume by
    Gaussian interpolation, axis by axis (three small matrix products).
    """
    cells = [int(np.clip(round(n * s / size_mm), 2, 24)) for n, s in zip(shape, spacing)]
    field = rng.standard_normal(cells).astype(_F)
    for axis, (n, c) in enumerate(zip(shape, cells)):
        pos = (np.arange(n, dtype=_F) + 0.5) / n * c - 0.5
        weights = np.exp(-0.5 * ((pos[:, None] - np.arange(c, dtype=_F)[None, :]) / _F(0.7)) ** 2)
        weights /= weights.sum(axis=1, keepdims=True)
        field = np.moveaxis(np.tensordot(weights, field, axes=(1, axis)), 0, axis)
    return ((field - field.mean()) / (field.std() + _F(1e-6))).astype(_F)


class Head:
    """A head on a grid of ``shape`` voxels of ``spacing`` mm (see the module docstring).

    Args:
        rng: the generator of everything drawn.
        shape: grid ``(X, Y, Z)``.
        spacing: voxel size in mm per axis.
        semi_fraction: the brain's semi-axes as fractions of the field of view (``shape * spacing``).
        centre_fraction: the brain's centre as fractions of the grid (0.5: the middle).

    Attributes:
        tissue: uint8 codes of :data:`HEAD_TISSUES`.
        coords: normalised coordinates ``(u, v, w)`` (broadcastable; 1 at the brain's semi-axes).
        depth: normalised depth below the brain surface (negative outside the brain).
        parenchyma: grey or white matter (where lesions may be).
        texture: a smooth unit-variance field with 5 mm features.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        shape: Sequence[int],
        spacing: Sequence[float],
        semi_fraction: Sequence[float],
        centre_fraction: Sequence[float] = (0.5, 0.5, 0.5),
    ) -> None:
        self.shape = tuple(int(n) for n in shape)
        self.spacing = np.asarray(spacing, dtype=float)
        dims = np.asarray(self.shape, dtype=float)
        self.semi_mm = dims * self.spacing * np.asarray(semi_fraction) * rng.uniform(0.96, 1.04, 3)
        self.centre = (dims - 1) * np.asarray(centre_fraction) + rng.normal(0.0, 0.01, 3) * dims
        self.coords = []
        for axis, (n, c, s, semi) in enumerate(zip(self.shape, self.centre, self.spacing, self.semi_mm)):
            view = [1, 1, 1]
            view[axis] = n
            self.coords.append(((np.arange(n) - c) * s / semi).astype(_F).reshape(view))
        u, v, w = self.coords
        rho = np.sqrt(u**2 + v**2 + w**2)
        mean_semi = float(self.semi_mm.mean())
        self.voxel = float(self.spacing.min()) / mean_semi  # the finest voxel, normalised

        def thick(mm: float) -> float:
            return max(mm / mean_semi, 1.2 * self.voxel)

        noise = lambda size: smooth_noise(rng, self.shape, self.spacing, size)  # noqa: E731
        surface = 1.0 + _F(0.03) * noise(40.0)
        depth = surface - rho
        t_gm = _F(thick(4.5)) * np.clip(1.0 + _F(0.45) * noise(8.0), 0.4, 2.2)  # folded: 2-10 mm
        sulci = (noise(6.0) > 1.1) & (depth > 0) & (depth < 0.9 * t_gm)

        codes = HEAD_TISSUES
        tissue = np.full(self.shape, codes["air"], dtype=np.uint8)
        outside = -depth
        edge = 0.0
        layers = []
        for name, mm in (("csf", 2.5), ("bone", 7.0), ("fat", 3.0), ("skin", 3.0)):
            edge += thick(mm)
            layers.append((name, edge))
        for name, outer in reversed(layers):  # outermost first, each inner layer painted over it
            tissue[outside < outer] = codes[name]
        tissue[depth > 0] = codes["wm"]
        tissue[(depth > 0) & (depth < t_gm)] = codes["gm"]
        for side in (-1.0, 1.0):  # deep grey nuclei (basal ganglia, thalamus), lateral to the ventricles
            q = (
                ((u - _F(side * 0.27)) / 0.11) ** 2
                + ((v + _F(0.02)) / 0.17) ** 2
                + ((w + _F(0.05)) / 0.13) ** 2
            )
            tissue[q < 1.0] = codes["gm"]
        tissue[sulci] = codes["csf"]
        ventricles = np.zeros(self.shape, dtype=bool)
        width = max(0.08, 1.5 * float(self.spacing[0] / self.semi_mm[0]))
        height = max(0.11, 1.5 * float(self.spacing[2] / self.semi_mm[2]))
        for side in (-1.0, 1.0):  # lateral ventricles: bananas, low at both ends
            dv = (v + _F(0.05)) / _F(0.32)
            dw = (w - _F(0.12) + _F(0.25) * dv**2) / _F(height)
            ventricles |= ((u - _F(side * 0.12)) / _F(width)) ** 2 + dv**2 + dw**2 < 1.0
        tissue[ventricles] = codes["csf"]

        self.tissue = tissue
        self.depth = depth
        self.surface = surface
        self.t_gm = t_gm
        self.ventricles = ventricles
        self.parenchyma = (tissue == codes["gm"]) | (tissue == codes["wm"])
        self.texture = noise(5.0)

    def render(self, levels: dict[str, float]) -> np.ndarray:
        """The tissue map with each code replaced by ``levels[name]`` (float32; every tissue needed)."""
        table = np.zeros(max(HEAD_TISSUES.values()) + 1, dtype=_F)
        for name, code in HEAD_TISSUES.items():
            table[code] = levels[name]
        return table[self.tissue]


@dataclass
class Lesion:
    """One drawn lesion: its kind, hemisphere (+1/-1), hard mask and soft weight (0..1, blurred border)."""

    kind: str
    side: float
    mask: np.ndarray
    weight: np.ndarray


def _ovoid(
    rng: np.random.Generator, head: Head, centre: np.ndarray, semi_mm: np.ndarray, blur_mm: float
) -> tuple[np.ndarray, np.ndarray]:
    """Mask and soft weight of a randomly oriented, noise-deformed ovoid around voxel ``centre``."""
    reach = np.ceil(1.7 * semi_mm.max() / head.spacing).astype(int) + 2
    lo = np.maximum(centre - reach, 0)
    hi = np.minimum(centre + reach + 1, head.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    size = tuple(int(b - a) for a, b in zip(lo, hi))
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    d = [((np.arange(a, b) - c) * s).astype(_F) for a, b, c, s in zip(lo, hi, centre, head.spacing)]
    grid = np.meshgrid(*d, indexing="ij")
    q2 = np.zeros(size, dtype=_F)
    for k in range(3):
        along = sum(_F(rotation[k, i]) * grid[i] for i in range(3))
        q2 += (along / _F(semi_mm[k])) ** 2
    deform = np.clip(1.0 + _F(0.2) * smooth_noise(rng, size, head.spacing, float(semi_mm.mean())), 0.6, 1.5)
    q = np.sqrt(q2) / deform
    mask = np.zeros(head.shape, dtype=bool)
    weight = np.zeros(head.shape, dtype=_F)
    mask[box] = (q < 1.0) & head.parenchyma[box]
    weight[box] = sigmoid((1.0 - q) * _F(float(semi_mm.mean()) / blur_mm)) * head.parenchyma[box]
    return mask, weight


def _territory(rng: np.random.Generator, head: Head, side: float) -> tuple[np.ndarray, np.ndarray]:
    """Mask and soft weight of a wedge of one hemisphere: cortex and white matter down to the deep nuclei."""
    u, v, w = head.coords
    azimuth = float(rng.uniform(-0.6, 0.6))  # 0: straight lateral; +-: anterior / posterior
    elevation = float(rng.uniform(-0.15, 0.45))
    direction = np.array(
        [side * np.cos(azimuth) * np.cos(elevation), np.sin(azimuth) * np.cos(elevation), np.sin(elevation)]
    )
    half_angle = float(rng.uniform(0.45, 0.8))  # with ``inner``: 5-15 % of the brain
    inner = float(rng.uniform(0.25, 0.45))
    x = u - _F(side * 0.05)
    r = np.sqrt(x**2 + v**2 + w**2) + _F(1e-6)
    cosine = (x * _F(direction[0]) + v * _F(direction[1]) + w * _F(direction[2])) / r
    angle = np.arccos(np.clip(cosine, -1.0, 1.0))
    deform = np.clip(1.0 + _F(0.2) * smooth_noise(rng, head.shape, head.spacing, 15.0), 0.6, 1.5)
    q = np.maximum(angle / (_F(half_angle) * deform), _F(inner) / r)
    mask = (q < 1.0) & head.parenchyma
    weight = sigmoid((1.0 - q) / _F(0.05)) * head.parenchyma
    return mask, weight


def _pick(rng: np.random.Generator, where: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """A random voxel of ``where`` (else of ``fallback``) as an index array."""
    candidates = np.flatnonzero(where)
    if candidates.size == 0:
        candidates = np.flatnonzero(fallback)
    return np.array(np.unravel_index(int(rng.choice(candidates)), where.shape))


def _draw(rng: np.random.Generator, head: Head, kind: str, side: float) -> Lesion:
    if kind == "territory":
        mask, weight = _territory(rng, head, side)
        if mask.any():
            return Lesion(kind, side, mask, weight)
        kind = "subcortical"  # a wedge that missed the parenchyma (a very coarse grid): draw an ovoid
    u = head.coords[0]
    hemisphere = (u * _F(side) > 0.08) & head.parenchyma
    if kind == "cortical":
        where = hemisphere & (head.depth < head.t_gm) & (head.tissue == HEAD_TISSUES["gm"])
        semi = rng.uniform(4.0, 15.0) * np.array([1.0, *rng.uniform(0.6, 1.0, 2)])
    else:
        where = hemisphere & (head.depth > 0.25) & ~head.ventricles
        low, high = (3.0, 9.0) if kind == "subcortical" else (1.0, 2.5)
        semi = rng.uniform(low, high) * np.array([1.0, *rng.uniform(0.6, 1.0, 2)])
    centre = _pick(rng, where, head.parenchyma)
    blur = min(1.5, 0.5 * float(semi.mean()))
    mask, weight = _ovoid(rng, head, centre, semi, blur)
    return Lesion(kind, side, mask, weight)


def plan_lesions(rng: np.random.Generator, head: Head, kinds: Sequence[str]) -> list[Lesion]:
    """Draw one lesion of each of ``kinds`` (:data:`LESION_KINDS`); the first picks the hemisphere, the
    others are on the same side two times out of three. Every lesion has at least one mask voxel."""
    lesions: list[Lesion] = []
    side = float(rng.choice([-1.0, 1.0]))
    for index, kind in enumerate(kinds):
        if kind not in LESION_KINDS:
            raise ValueError(f"unknown lesion kind {kind!r}; expected one of {LESION_KINDS}")
        this_side = side if index == 0 or rng.random() < 2 / 3 else -side
        lesions.append(_draw(rng, head, kind, this_side))
    return lesions
