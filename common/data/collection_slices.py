"""Axial slices of 3D tumour-segmentation collections (BraTS GLI/MEN/MET...) and Figshare slices, labelled
for the two tasks of ResNeSAt (tumour presence, tumour source), so that both can be trained on public data.

**Sources**, in one data-set folder:

* **BraTS** cases, found by :mod:`common.data.brats` (all its layouts; one layout per folder). The BraTS
  2023+ collections are named by their case prefix: ``BraTS-GLI-00000-000`` (adult glioma),
  ``BraTS-MEN-...`` (meningioma), ``BraTS-MET-00001-000`` (brain metastases, e.g. in
  ``ASNR-MICCAI-BraTS2023-MET-Challenge-TrainingData/``), ``BraTS-SSA-...`` and ``BraTS-PED-...``
  (gliomas); :data:`COLLECTION_TYPES` maps each prefix to a tumour type. Cases of the 2020/2021 and MSD
  layouts are gliomas. A case needs its segmentation (slices are labelled from it) and, as for the
  ``brats`` adapter, all four modalities.
* **Figshare** ``.mat`` slices (:mod:`common.data.figshare`; meningioma, glioma, pituitary: all primary),
  when the modality is T1-contrast (theirs), unless ``figshare=False``.

**Slices.** Along the third voxel axis (axial in BraTS), every ``slice_step``-th slice of a case is

* *present* when its tumour area (``region``: ``"tc"`` tumour core = NCR + ET by default, what T1-contrast
  shows; ``"wt"`` or ``"et"``) is at least ``min_tumour_mm2``;
* *absent* when it holds no tumour label at all (oedema included) and lies inside the brain: its brain
  area (non-zero voxels of the skull-stripped image) is at least ``min_brain_fraction`` of the case's
  largest;
* left out otherwise (a sliver of tumour, only oedema, the top or bottom of the head).

Every Figshare slice is *present*. The category of a present slice is that of its case's tumour type
(:data:`~common.data.image_classes.TUMOUR_TYPES`: glioma, meningioma -> primary, metastasis -> secondary),
and the task turns categories into labels as :func:`~common.data.image_classes.task_label` does: presence
0 absent / 1 present; source 0 primary / 1 secondary (absent slices left out).

**Slice cache.** Reading a compressed volume costs far more than training on one of its slices, so the
volumes are read once, when the datalist is built: finding computes a per-case table (tumour and brain
area per slice) and writes each selected slice as a 2D NIfTI file (the volume's dtype, its affine moved to
the slice) into ``cache_dir`` (default ``<dataset_dir>/.tumour_slices``; hidden, so that the BraTS
adapter does not read it)::

    .tumour_slices/t1ce/BraTS-MET-00001-000.slices/index.json   the table, with the sources' size and time
    .tumour_slices/t1ce/BraTS-MET-00001-000.slices/z070.nii.gz  slice 70
    .tumour_slices/figshare/1.nii.gz                            Figshare 1.mat as NIfTI

A table is computed again when its volume or segmentation changed (size or modification time); missing
slice files are written from the volume. Building the datalist again reads only the tables. A data-set
folder that cannot be written needs ``cache_dir``. Training then loads 2D files only, with the same
pipeline as :mod:`common.data.image_classes` (``LoadImaged``, ``EnsureChannelFirstd``, ``ToGreySliced``).

**Items** are ``{"image": cached slice, "label": class index of the task, "patient", "case":
"<case>_z070", "tumour_type": the case's, "category": the slice's (absent/primary/secondary), "source":
volume (or .mat) path, "slice": 70, "layout": "brats2023", "tumour_mm2": 412.0}``. Patients are the
BraTS 2023+ case without its time point (``BraTS-MET-00001``), the case id in the other layouts and
``figshare-<PID>`` for Figshare; splits are by patient, stratified by tumour type.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from common.data.adapter import Cases, DatasetAdapter, OnError, check_on_error
from common.data.atomic import atomic_save_nifti, atomic_write_text
from common.data.brats import ADAPTER as BRATS_ADAPTER
from common.data.brats import BRATS_LAYOUTS, BRATS_MODALITIES
from common.data.errors import DataFormatError
from common.data.figshare import ADAPTER as FIGSHARE_ADAPTER
from common.data.figshare_mat import FIGSHARE_CLASSES, FIGSHARE_FIELD_OF_VIEW_MM, read_figshare_mat
from common.data.image_classes import (
    TASK_CLASSES,
    check_task,
    task_label,
    tumour_category,
    tumour_types_table,
)
from common.data.nifti_checks import case_error, nifti_data, open_nifti
from common.data.slices import check_slice_file
from common.labels import BRATS

__all__ = [
    "ADAPTER",
    "CACHE_FOLDER",
    "COLLECTION_LAYOUTS",
    "COLLECTION_TYPES",
    "CollectionSlicesAdapter",
    "brats_patient",
]

logger = logging.getLogger(__name__)

COLLECTION_TYPES: dict[str, str] = {
    "GLI": "glioma",
    "SSA": "glioma",
    "PED": "glioma",
    "MEN": "meningioma",
    "MET": "metastasis",
}
"""BraTS 2023+ case prefix -> tumour type (a name of :data:`~common.data.image_classes.TUMOUR_TYPES`)."""

COLLECTION_LAYOUTS: tuple[str, ...] = (
    *BRATS_LAYOUTS,
    "figshare",
    *(f"{layout}+figshare" for layout in BRATS_LAYOUTS),
)
CACHE_FOLDER = ".tumour_slices"
_MODALITY_NAMES = {"t1c": "t1ce", "t1gd": "t1ce", "t2f": "flair", "t1n": "t1", "t2w": "t2"}
_INDEX_VERSION = 1
_BRATS2023_CASE = re.compile(r"^brats-([a-z]+)-\d+-\d+$", re.I)


def brats_patient(case: str, layout: str) -> str:
    """The patient of a BraTS case: a 2023+ case id without its time point (``BraTS-MET-00001-000`` ->
    ``BraTS-MET-00001``), else the case id."""
    return re.sub(r"-\d+$", "", case) if layout == "brats2023" else case


def _stat(path: Path) -> list[int]:
    info = path.stat()
    return [int(info.st_size), int(info.st_mtime_ns)]


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _slice_affine(affine: np.ndarray, k: int) -> np.ndarray:
    """The affine of slice ``k`` of a volume: the volume's, its origin moved to the slice."""
    out = np.array(affine, dtype=np.float64)
    out[:3, 3] = out[:3, 3] + out[:3, 2] * k
    return out


class CollectionSlicesAdapter(DatasetAdapter):
    """Labelled axial slices of BraTS collections (and Figshare slices), cached as 2D NIfTI files.

    Args:
        task: ``"presence"`` or ``"source"`` (see :mod:`common.data.image_classes`).
        modality: the BraTS modality sliced: ``"t1ce"`` (also ``"t1c"``; default, as the paper's T1
            post-contrast), ``"flair"``, ``"t1"`` or ``"t2"``.
        region: the BraTS region whose area makes a slice *present*: ``"tc"``, ``"wt"`` or ``"et"``.
        min_tumour_mm2: least tumour area of a present slice, in mm² (voxel sizes from the affine).
        min_brain_fraction: least brain area of an absent slice, as a fraction of the case's largest.
        slice_step: use every ``slice_step``-th slice (neighbouring slices are nearly the same image).
        cache_dir: where the slices are written (relative to the data-set folder, or absolute).
        collection_types: BraTS 2023+ case prefix -> tumour type, default :data:`COLLECTION_TYPES`.
        tumour_types: tumour type -> category, default :data:`~common.data.image_classes.TUMOUR_TYPES`.
        figshare: also read Figshare ``.mat`` slices (T1-contrast only).
    """

    name = "collection_slices"
    title = "Brain tumour slices of 3D collections"
    layouts = COLLECTION_LAYOUTS
    no_data = (
        "no BraTS cases (BraTS-GLI-*/BraTS-MEN-*/BraTS-MET-*, BraTS20_*, BraTS2021_* case folders or MSD "
        "imagesTr) and no Figshare .mat slices found; pass a dataset_dir that holds them, or generate "
        "phantoms"
    )
    phantom_writer = "common.data.phantoms.tumour_slices:make_tumour_collection_phantoms"
    group_key = "patient"
    stratify_key = "tumour_type"
    case_key = "case"

    def __init__(
        self,
        task: str = "presence",
        modality: str = "t1ce",
        region: str = "tc",
        min_tumour_mm2: float = 25.0,
        min_brain_fraction: float = 0.5,
        slice_step: int = 1,
        cache_dir: str | os.PathLike | None = None,
        collection_types: Mapping[str, str] | None = None,
        tumour_types: Mapping[str, str] | None = None,
        figshare: bool = True,
    ) -> None:
        self.task = check_task(task)
        self.modality = _MODALITY_NAMES.get(modality.lower(), modality.lower())
        if self.modality not in BRATS_MODALITIES:
            raise ValueError(
                f"modality must be one of {BRATS_MODALITIES} (or t1c, t2f, t1n, t2w), got {modality!r}"
            )
        if region not in BRATS.regions:
            raise ValueError(f"region must be one of {sorted(BRATS.regions)}, got {region!r}")
        if not min_tumour_mm2 > 0 or not 0 <= min_brain_fraction <= 1 or int(slice_step) < 1:
            raise ValueError(
                "need min_tumour_mm2 > 0, 0 <= min_brain_fraction <= 1 and slice_step >= 1, got "
                f"{min_tumour_mm2}, {min_brain_fraction}, {slice_step}"
            )
        self.region = region
        self.min_tumour_mm2 = float(min_tumour_mm2)
        self.min_brain_fraction = float(min_brain_fraction)
        self.slice_step = int(slice_step)
        self.cache_dir = cache_dir
        self.collection_types = {
            k.upper(): v
            for k, v in (COLLECTION_TYPES if collection_types is None else collection_types).items()
        }
        self.tumour_types = tumour_types_table(tumour_types)
        self.figshare = bool(figshare)

    # ---------------------------------------------------------------------------------- layouts

    def _uses_figshare(self, root: Path) -> bool:
        return self.figshare and self.modality == "t1ce" and FIGSHARE_ADAPTER.has_data(root)

    def has_data(self, dataset_dir: str | os.PathLike) -> bool:
        root = Path(dataset_dir)
        return root.is_dir() and (BRATS_ADAPTER.has_data(root) or self._uses_figshare(root))

    def detect_layout(self, dataset_dir: str | os.PathLike) -> str:
        """The BraTS layout (``brats2023``, ...), ``figshare``, or ``<BraTS layout>+figshare``.

        Raises:
            DataFormatError: the folder is missing or holds neither, or BraTS cases of several layouts.
        """
        root = Path(dataset_dir)
        if not root.is_dir():
            raise DataFormatError(
                root, "dataset folder does not exist" if not root.exists() else "not a folder"
            )
        brats = BRATS_ADAPTER.detect_layout(root) if BRATS_ADAPTER.has_data(root) else None
        figshare = self._uses_figshare(root)
        if brats is None and not figshare:
            raise DataFormatError(root, self.no_data)
        return "+".join(([brats] if brats else []) + (["figshare"] if figshare else []))

    # ---------------------------------------------------------------------------------- the cache

    def _cache(self, root: Path) -> Path:
        cache = root / (CACHE_FOLDER if self.cache_dir is None else self.cache_dir)
        try:
            cache.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise DataFormatError(
                cache, f"cannot write the slice cache ({err}); pass cache_dir=<a writable folder>"
            ) from err
        return cache

    def _tumour_type(self, case: str, layout: str, where: Path) -> str:
        if layout != "brats2023":
            return "glioma"
        match = _BRATS2023_CASE.match(case)
        prefix = match.group(1).upper() if match else case
        if prefix not in self.collection_types:
            raise case_error(
                where,
                case,
                f"unknown BraTS collection {prefix!r} (known: {sorted(self.collection_types)}); add it with "
                f"collection_types={{**COLLECTION_TYPES, {prefix!r}: 'glioma'}}",
            )
        return self.collection_types[prefix]

    @staticmethod
    def _read_volume(item: Mapping[str, Any], channel: int | None, image: Path) -> tuple[Any, np.ndarray]:
        """``(image nibabel object, voxels of the modality)`` of a BraTS item."""
        case = str(item["case"])
        nii = open_nifti(image, case)
        data = nifti_data(nii, image, case)
        if channel is not None:  # MSD: the modalities on the last axis
            if data.ndim != 4 or data.shape[3] != len(BRATS_MODALITIES):
                raise case_error(image, case, f"expected a 4D image (X, Y, Z, 4), got shape {data.shape}")
            data = data[..., channel]
        if data.ndim != 3:
            raise case_error(image, case, f"expected a 3D volume, got shape {data.shape}")
        return nii, data

    def _table(
        self, root: Path, item: Mapping[str, Any], image: Path, seg: Path, channel: int | None, index: Path
    ) -> tuple[dict[str, Any], np.ndarray | None, Any]:
        """The case's slice table, from ``index`` when its sources are unchanged, else computed (and the
        volume, to write slices from, with its nibabel object)."""
        stats = {"image": _stat(image), "label": _stat(seg)}
        if index.is_file():
            try:
                table = json.loads(index.read_text(encoding="utf-8"))
                if table.get("version") == _INDEX_VERSION and table.get("stats") == stats:
                    return table, None, None
            except (OSError, ValueError):
                pass  # computed again below
        case = str(item["case"])
        nii, data = self._read_volume(item, channel, image)
        seg_nii = open_nifti(seg, case)
        if tuple(seg_nii.shape) != tuple(data.shape):
            raise case_error(
                seg, case, f"segmentation has shape {tuple(seg_nii.shape)} but the image {data.shape}"
            )
        try:
            labels = BRATS_ADAPTER.to_canonical(
                nifti_data(seg_nii, seg, case), str(item["layout"]), source=seg
            )
        except DataFormatError as err:
            raise case_error(seg, case, err.problem) from None
        spacing = np.linalg.norm(np.asarray(nii.affine)[:3, :2], axis=0)
        table = {
            "version": _INDEX_VERSION,
            "stats": stats,
            "pixel_mm2": float(spacing[0] * spacing[1]),
            "brain": np.count_nonzero(data, axis=(0, 1)).tolist(),
            "labels": {
                name: np.count_nonzero(labels == value, axis=(0, 1)).tolist()
                for name, value in BRATS.labels.items()
                if value
            },
        }
        atomic_write_text(index, json.dumps(table) + "\n")
        return table, data, nii

    def _select(self, table: Mapping[str, Any]) -> list[tuple[int, bool, float]]:
        """``(slice, present, tumour mm²)`` of the slices used, in order."""
        brain = np.asarray(table["brain"])
        counts = {name: np.asarray(values) for name, values in table["labels"].items()}
        region = sum(counts[name] for name in BRATS.regions[self.region]) * float(table["pixel_mm2"])
        any_label = sum(counts.values())
        inside = (brain > 0) & (brain >= self.min_brain_fraction * brain.max())
        chosen = []
        for k in range(0, brain.size, self.slice_step):
            if region[k] >= self.min_tumour_mm2:
                chosen.append((k, True, float(region[k])))
            elif any_label[k] == 0 and inside[k]:
                chosen.append((k, False, 0.0))
        return chosen

    def _brats_slices(self, root: Path, cache: Path, item: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The slice items of one BraTS case, writing the slices that are not in the cache yet."""
        case, layout = str(item["case"]), str(item["layout"])
        if layout == "msd":
            image, channel = root / item["image"], BRATS_MODALITIES.index(self.modality)
        else:
            image, channel = root / item["image"][BRATS_MODALITIES.index(self.modality)], None
        if item.get("label") is None:
            raise case_error(
                image.parent, case, "no segmentation: the slices of this case cannot be labelled"
            )
        seg = root / item["label"]
        tumour_type = self._tumour_type(case, layout, image.parent)
        category = tumour_category(tumour_type, self.tumour_types, image.parent)
        folder = cache / self.modality / f"{case}.slices"
        table, data, nii = self._table(root, item, image, seg, channel, folder / "index.json")
        out = []
        for k, present, area in self._select(table):
            label = task_label(category if present else "absent", self.task)
            if label is None:
                continue
            path = folder / f"z{k:03d}.nii.gz"
            if data is None and not path.is_file():
                nii, data = self._read_volume(item, channel, image)
            if data is not None:  # the table was computed again, or the file is missing: (re)write it
                atomic_save_nifti(np.asarray(data[:, :, k]), _slice_affine(nii.affine, k), path)
            out.append(
                {
                    "image": _relative(path, root),
                    "label": label,
                    "patient": brats_patient(case, layout),
                    "case": f"{case}_z{k:03d}",
                    "tumour_type": tumour_type,
                    "category": category if present else "absent",
                    "source": _relative(image, root),
                    "slice": k,
                    "layout": layout,
                    "tumour_mm2": round(area, 2),
                }
            )
        return out

    def _figshare_slice(self, root: Path, cache: Path, item: Mapping[str, Any]) -> dict[str, Any] | None:
        """The item of one Figshare slice, converted to NIfTI when not in the cache yet."""
        source = root / item["image"]
        tumour_type = FIGSHARE_CLASSES[int(item["class"])]
        category = tumour_category(tumour_type, self.tumour_types, source)
        label = task_label(category, self.task)
        if label is None:
            return None
        stem = str(item["image"])[: -len(".mat")].replace("/", "__")
        path = cache / "figshare" / f"{stem}.nii.gz"
        if not path.is_file() or path.stat().st_mtime_ns < source.stat().st_mtime_ns:
            image = np.asarray(read_figshare_mat(source, fields=("image",)).image)
            spacing = [FIGSHARE_FIELD_OF_VIEW_MM / n for n in image.shape]
            atomic_save_nifti(image, np.diag([*spacing, 1.0, 1.0]), path)
        return {
            "image": _relative(path, root),
            "label": label,
            "patient": f"figshare-{item['patient']}",
            "case": f"figshare-{stem}",
            "tumour_type": tumour_type,
            "category": category,
            "source": str(item["image"]),
            "slice": 0,
            "layout": "figshare",
        }

    # ---------------------------------------------------------------------------------- finding

    def find_cases(self, dataset_dir: str | os.PathLike, on_error: OnError = "raise") -> Cases:
        """The selected slices of every case (cases sorted by id, slices in order), then Figshare's.

        Reads each case's image and segmentation the first time (then its cached table), and writes the
        slices to the cache. Bad cases: those of the ``brats``/``figshare`` adapters, a case without
        segmentation, an unknown BraTS collection prefix, an image and segmentation of different shapes,
        a segmentation with codes outside the layout's.

        Raises:
            DataFormatError: missing folder, no data, no usable slice, an unwritable cache (in both modes);
                with ``"raise"`` also a bad case.
        """
        check_on_error(on_error)
        root = Path(dataset_dir)
        layout = self.detect_layout(root)
        cache = self._cache(root)
        items: list[dict[str, Any]] = []
        problems: list[tuple[str, str]] = []
        if layout != "figshare":
            cases = BRATS_ADAPTER.find_cases(root, on_error)
            problems += cases.problems
            for item in cases.items:
                try:
                    items += self._brats_slices(root, cache, item)
                except DataFormatError as err:
                    if on_error == "raise":
                        raise
                    problems.append((str(item["case"]), str(err)))
        if layout.endswith("figshare"):
            cases = FIGSHARE_ADAPTER.find_cases(root, on_error)
            problems += cases.problems
            for item in cases.items:
                try:
                    found = self._figshare_slice(root, cache, item)
                except DataFormatError as err:
                    if on_error == "raise":
                        raise
                    problems.append((str(item["image"]), str(err)))
                    continue
                if found is not None:
                    items.append(found)
        if not items:
            raise DataFormatError(
                root,
                f"no slice for the {self.task} task (region {self.region} >= {self.min_tumour_mm2} mm² for "
                f"present, no tumour and brain >= {self.min_brain_fraction} of the largest for absent)",
            )
        counts = {c: sum(it["category"] == c for it in items) for c in ("absent", "primary", "secondary")}
        logger.info("%s: %d slices for the %s task %s", root, len(items), self.task, counts)
        return Cases(layout, items, problems)

    def check_case(self, item: Mapping[str, Any], base_dir: str | os.PathLike | None = None) -> None:
        """Read the cached slice: one finite 2D image (:func:`~common.data.slices.check_slice_file`)."""
        check_slice_file(Path(base_dir or "") / item["image"])

    # ---------------------------------------------------------------------------------- datalists

    def datalist_header(self, layout: str) -> dict[str, Any]:
        return {
            "name": self.title,
            "layout": layout,
            "task": self.task,
            "labels": {str(i): name for i, name in enumerate(TASK_CLASSES[self.task])},
            "modality": self.modality,
            "region": self.region,
            "min_tumour_mm2": self.min_tumour_mm2,
            "min_brain_fraction": self.min_brain_fraction,
            "slice_step": self.slice_step,
        }


ADAPTER = CollectionSlicesAdapter()
"""The presence task on T1-contrast slices; ``CollectionSlicesAdapter(task="source")`` for stage two."""
