"""BraTS multi-modal brain-tumour MRI: find cases, check them, map labels, build datalists.

**Modalities** are always in the order :data:`BRATS_MODALITIES` = ``("flair", "t1", "t1ce", "t2")``.

**Canonical labels** (the one convention used inside the project, :data:`BRATS_LABELS`):
``0`` background, ``1`` necrotic / non-enhancing tumour core (NCR/NET), ``2`` peritumoral oedema (ED),
``3`` enhancing tumour (ET). The evaluation regions are WT = {1, 2, 3}, TC = {1, 3}, ET = {3}
(:func:`brats_regions`).

**Layouts** (:data:`BRATS_LAYOUTS`), detected from the folder by :func:`detect_brats_layout`:

* ``"brats2020"``: ``BraTS20_Training_001/BraTS20_Training_001_{flair,t1,t1ce,t2,seg}.nii.gz``; the
  same file scheme with the 2018/2019 folder names (``Brats18_*``, ``BraTS19_*``) counts as this layout.
  Labels 1 NCR/NET, 2 ED, 4 ET.
* ``"brats2021"``: ``BraTS2021_00000/BraTS2021_00000_{flair,t1,t1ce,t2,seg}.nii.gz``; labels as 2020.
* ``"brats2023"``: ``BraTS-GLI-00000-000/BraTS-GLI-00000-000-{t2f,t1n,t1c,t2w,seg}.nii.gz`` (also the
  ``MEN``, ``MET``, ``SSA``, ``PED``, ... prefixes); t2f = FLAIR, t1n = T1, t1c = T1ce, t2w = T2.
  Labels 1 NCR, 2 ED, 3 ET.
* ``"msd"``: Medical Segmentation Decathlon ``Task01_BrainTumour``: ``imagesTr/BRATS_001.nii.gz`` is 4D
  ``(X, Y, Z, 4)`` with channels FLAIR, T1w, T1gd, T2w (our order), ``labelsTr/BRATS_001.nii.gz`` has
  labels **1 oedema, 2 non-enhancing tumour, 3 enhancing tumour**; ``imagesTs`` has no labels.

Every layout also accepts ``.nii`` for ``.nii.gz``. Cases without a segmentation (validation/test
releases, ``imagesTs``) are read as unlabelled.

**Loading with MONAI.** A datalist item's ``"image"`` is the list of the four modality files (BraTS
layouts) or the one 4D file (MSD). Either way::

    LoadImaged(keys=["image", "label"]),        # list of 4 files: stacked on a new first axis
    EnsureChannelFirstd(keys=["image", "label"]),  # MSD: moves the file's last axis first; seg: adds it
    MapBraTSLabelsd(keys="label"),               # the dataset's codes -> canonical 0..3 (uses "layout")

gives a ``(4, X, Y, Z)`` float MetaTensor with the files' affine and a ``(1, X, Y, Z)`` canonical label,
with MONAI's default reader (ITK when installed) and with ``reader="NibabelReader"`` alike (tested).
Spatial transforms (``Orientationd``, cropping, flips) must act on ``image`` and ``label`` together.
For region channels use ``ConvertToMultiChannelBasedOnBratsClassesd(keys="label", et_label=3)`` after
:class:`MapBraTSLabelsd` (channels TC, WT, ET), and :func:`from_canonical_labels` to write predictions
in a data set's own codes. Datalists are loaded with :func:`load_brats_datalist_section`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, overload

import nibabel as nib
import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform
from monai.utils import convert_to_dst_type, convert_to_numpy

from common.data.datalist import DATALIST_SECTIONS, load_datalist_section, split_counts, write_datalist
from common.data.errors import DataFormatError

__all__ = [
    "BRATS_LABELS",
    "BRATS_LAYOUTS",
    "BRATS_MODALITIES",
    "BRATS_REGIONS",
    "FromCanonicalBraTSLabelsd",
    "MapBraTSLabelsd",
    "brats_case_name",
    "brats_output_name",
    "brats_regions",
    "build_brats_datalist",
    "check_brats_case",
    "detect_brats_layout",
    "find_brats_cases",
    "from_canonical_labels",
    "load_brats_datalist_section",
    "prepare_brats_datalist",
    "to_canonical_labels",
]

BRATS_MODALITIES: tuple[str, str, str, str] = ("flair", "t1", "t1ce", "t2")
BRATS_LAYOUTS: tuple[str, ...] = ("brats2020", "brats2021", "brats2023", "msd")
BRATS_LABELS: dict[int, str] = {
    0: "background",
    1: "necrotic / non-enhancing tumour core (NCR/NET)",
    2: "peritumoral oedema (ED)",
    3: "enhancing tumour (ET)",
}
BRATS_REGIONS: dict[str, tuple[int, ...]] = {"wt": (1, 2, 3), "tc": (1, 3), "et": (3,)}

_TO_CANONICAL: dict[str, dict[int, int]] = {
    "brats2020": {0: 0, 1: 1, 2: 2, 4: 3},
    "brats2021": {0: 0, 1: 1, 2: 2, 4: 3},
    "brats2023": {0: 0, 1: 1, 2: 2, 3: 3},
    "msd": {0: 0, 1: 2, 2: 1, 3: 3},
}
_FILE_CODES: dict[str, tuple[str, ...]] = {  # file-name codes of BRATS_MODALITIES, in that order
    "brats2020": BRATS_MODALITIES,
    "brats2021": BRATS_MODALITIES,
    "brats2023": ("t2f", "t1n", "t1c", "t2w"),
}
_SEPARATOR = {"brats2020": "_", "brats2021": "_", "brats2023": "-"}
_CASE_NAMES: dict[str, re.Pattern[str]] = {
    "brats2020": re.compile(
        r"^(?:brats(?:18|19)_\w+_\d+|brats20_(?:training|validation|testing)_\d+)$", re.I
    ),
    "brats2021": re.compile(r"^brats2021_\d+$", re.I),
    "brats2023": re.compile(r"^brats-[a-z]+-\d+-\d+$", re.I),
}
_MSD_IMAGE = re.compile(r"^(brats_\d+)\.nii(?:\.gz)?$", re.I)
_MSD_FOLDERS = {"imagesTr": "labelsTr", "imagesTs": "labelsTs"}
_MAX_DEPTH = 3  # case folders (or MSD task folders) are looked for this many levels below dataset_dir
_AFFINE_TOL = 1e-3
_NO_CASES = (
    "no BraTS cases found (BraTS20_*/BraTS2021_*/BraTS-XXX-* case folders or an MSD Task01_BrainTumour "
    "imagesTr/imagesTs folder, at most {depth} levels down); pass a dataset_dir that holds the data set, "
    "or generate phantoms"
)


# --------------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------------


def _check_layout(layout: str) -> str:
    if layout not in BRATS_LAYOUTS:
        raise ValueError(f"unknown BraTS layout {layout!r}; expected one of {BRATS_LAYOUTS}")
    return layout


def _remap(values: Any, table: Mapping[int, int], what: str, source: str | os.PathLike | None) -> np.ndarray:
    """``table[values]`` as uint8; any value not a key of ``table`` is a :class:`DataFormatError`."""
    arr = np.asarray(convert_to_numpy(values))
    if arr.dtype.kind == "b":
        arr = arr.astype(np.uint8)
    size = max(table) + 1
    lut = np.full(size + 1, 255, dtype=np.uint8)  # the last entry catches everything out of range
    for code, value in table.items():
        lut[code] = value
    if arr.dtype.kind == "f":
        whole = np.isfinite(arr) & (np.round(arr) == arr)
        index = np.where(whole, np.clip(arr, -1, size), -1).astype(np.int64)
    elif arr.dtype.kind in "iu":
        index = arr
    else:
        raise DataFormatError(source or "label array", f"labels of dtype {arr.dtype} are not numbers")
    out = lut[np.where((index >= 0) & (index < size), index, size)]
    bad = out == 255
    if bad.any():
        values_found = np.unique(arr[bad])
        shown = ", ".join(f"{v:g}" for v in values_found[:10]) + (" ..." if values_found.size > 10 else "")
        raise DataFormatError(
            source or "label array",
            f"{int(bad.sum())} voxels have label values [{shown}] outside the {what} label set "
            f"{sorted(table)}",
        )
    return out


def to_canonical_labels(
    seg: NdarrayOrTensor, layout: str, source: str | os.PathLike | None = None
) -> np.ndarray:
    """Map a segmentation in ``layout``'s own codes to the canonical labels (uint8, same shape).

    2020/2021: 4 -> 3; 2023: identity; MSD: 1 -> 2, 2 -> 1, 3 -> 3. Float arrays (as loaded by MONAI)
    are accepted when they hold whole numbers.

    Raises:
        DataFormatError: a value outside the layout's label set (or NaN); the message names ``source``.
        ValueError: unknown ``layout``.
    """
    return _remap(seg, _TO_CANONICAL[_check_layout(layout)], layout, source)


def from_canonical_labels(
    canonical: NdarrayOrTensor, layout: str, source: str | os.PathLike | None = None
) -> np.ndarray:
    """Inverse of :func:`to_canonical_labels`: canonical 0..3 -> ``layout``'s own codes (uint8).

    2020/2021: ET 3 -> 4; 2023: identity; MSD: 1 (NCR/NET) -> 2, 2 (ED) -> 1, 3 -> 3.

    Raises:
        DataFormatError: a value outside 0..3.
    """
    inverse = {v: k for k, v in _TO_CANONICAL[_check_layout(layout)].items()}
    return _remap(canonical, inverse, "canonical", source)


def brats_regions(canonical: NdarrayOrTensor) -> dict[str, NdarrayOrTensor]:
    """Boolean masks of the BraTS evaluation regions: ``"wt"`` {1, 2, 3}, ``"tc"`` {1, 3}, ``"et"`` {3}.

    Works on numpy arrays and torch tensors of canonical labels (any shape).
    """
    masks = {}
    for name, labels in BRATS_REGIONS.items():
        mask = canonical == labels[0]
        for label in labels[1:]:
            mask = mask | (canonical == label)
        masks[name] = mask
    return masks


class MapBraTSLabelsd(MapTransform):
    """Map loaded segmentations from the item's layout codes to canonical labels.

    The layout is read from ``data[layout_key]`` (datalist items carry ``"layout"``) unless a fixed
    ``layout`` is given. The result keeps the input's type, dtype and MetaTensor metadata.
    """

    def __init__(
        self,
        keys: KeysCollection = "label",
        layout_key: str = "layout",
        layout: str | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.layout_key = layout_key
        self.layout = _check_layout(layout) if layout is not None else None

    #: the mapping applied: (labels, layout, source) -> labels
    convert = staticmethod(to_canonical_labels)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            layout = self.layout or d.get(self.layout_key)
            if layout is None:
                raise KeyError(
                    f"{type(self).__name__}: the item has no {self.layout_key!r} and no layout was given"
                )
            value = d[key]
            source = value.meta.get("filename_or_obj") if isinstance(value, MetaTensor) else None
            mapped = self.convert(value, str(layout), source=source or str(key))
            if isinstance(value, (np.ndarray, torch.Tensor)):
                d[key] = convert_to_dst_type(mapped, value, dtype=value.dtype)[0]
            else:
                d[key] = mapped
        return d


# --------------------------------------------------------------------------------------------------
# Finding cases
# --------------------------------------------------------------------------------------------------


def _case_layout(name: str) -> str | None:
    """The BraTS layout whose case-folder naming ``name`` follows, if any."""
    return next((layout for layout, pattern in _CASE_NAMES.items() if pattern.match(name)), None)


def _scan(root: Path) -> list[tuple[str, str, Path]]:
    """``(layout, case id, location)`` candidates: BraTS case folders and MSD image files, unsorted."""
    found: list[tuple[str, str, Path]] = []
    if _case_layout(root.name):  # dataset_dir is itself one case folder
        return [(str(_case_layout(root.name)), root.name, root)]
    for folder, dirs, _ in os.walk(root):
        here = Path(folder)
        depth = len(here.relative_to(root).parts)
        keep = []
        for name in sorted(d for d in dirs if not d.startswith(".")):
            layout = _case_layout(name)
            if layout:
                found.append((layout, name, here / name))
            elif name in _MSD_FOLDERS:
                for image in sorted((here / name).iterdir()):
                    match = _MSD_IMAGE.match(image.name)
                    if match and image.is_file():
                        found.append(("msd", match.group(1), image))
            elif name not in _MSD_FOLDERS.values() and depth + 1 < _MAX_DEPTH:
                keep.append(name)
        dirs[:] = keep
    return found


def _layout_of(root: Path, found: Sequence[tuple[str, str, Path]]) -> str:
    if not root.is_dir():
        raise DataFormatError(root, "dataset folder does not exist" if not root.exists() else "not a folder")
    layouts = sorted({layout for layout, _, _ in found})
    if not layouts:
        raise DataFormatError(root, _NO_CASES.format(depth=_MAX_DEPTH))
    if len(layouts) > 1:
        counts = ", ".join(f"{lay}: {sum(f[0] == lay for f in found)} cases" for lay in layouts)
        raise DataFormatError(
            root, f"holds cases of several layouts ({counts}); pass the folder of one data set"
        )
    return layouts[0]


def detect_brats_layout(dataset_dir: str | os.PathLike) -> str:
    """The layout (one of :data:`BRATS_LAYOUTS`) of the BraTS data set in ``dataset_dir``.

    ``dataset_dir`` may hold the case folders, be one or two levels above them (e.g. the folder that
    holds ``MICCAI_BraTS2020_TrainingData/``), be the MSD task folder (with ``imagesTr``) or above it,
    or be a single case folder.

    Raises:
        DataFormatError: the folder is missing, holds no BraTS cases, or holds several layouts.
    """
    root = Path(dataset_dir)
    return _layout_of(root, _scan(root) if root.is_dir() else [])


def _nifti(folder_files: Mapping[str, Path], stem: str) -> Path | None:
    """``stem.nii.gz`` or ``stem.nii`` among ``folder_files`` (lower-case name -> path); both is an error."""
    hits = [folder_files[n] for n in (f"{stem}.nii.gz".lower(), f"{stem}.nii".lower()) if n in folder_files]
    if len(hits) > 1:
        raise DataFormatError(hits[0].parent, f"both {hits[0].name} and {hits[1].name}; keep one")
    return hits[0] if hits else None


def _brats_item(root: Path, layout: str, case: str, folder: Path) -> dict[str, Any]:
    """The datalist item of one BraTS case folder (paths relative to ``root``)."""
    files = {p.name.lower(): p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")}
    sep = _SEPARATOR[layout]
    images = []
    for modality, code in zip(BRATS_MODALITIES, _FILE_CODES[layout]):
        path = _nifti(files, f"{case}{sep}{code}")
        if path is None:
            raise DataFormatError(
                folder, f"missing modality {modality} (expected {case}{sep}{code}.nii.gz or .nii)"
            )
        images.append(path)
    item: dict[str, Any] = {
        "case": case,
        "layout": layout,
        "image": [p.relative_to(root).as_posix() for p in images],
    }
    seg = _nifti(files, f"{case}{sep}seg")
    if seg is not None:
        item["label"] = seg.relative_to(root).as_posix()
    else:
        others = sorted(
            p.name for p in files.values() if p not in images and p.name.lower().endswith((".nii", ".nii.gz"))
        )
        if others:
            raise DataFormatError(
                folder,
                f"no {case}{sep}seg.nii.gz but unrecognised NIfTI file(s) {others}; rename the segmentation",
            )
    return item


def _msd_item(root: Path, case: str, image: Path) -> dict[str, Any]:
    """The datalist item of one MSD image (label from the sibling ``labelsTr``/``labelsTs`` folder)."""
    label_dir = image.parent.parent / _MSD_FOLDERS[image.parent.name]
    label = label_dir / image.name
    item: dict[str, Any] = {"case": case, "layout": "msd", "image": image.relative_to(root).as_posix()}
    if label.is_file():
        item["label"] = label.relative_to(root).as_posix()
    elif image.parent.name == "imagesTr":
        raise DataFormatError(image, f"training image without its label {label.relative_to(root).as_posix()}")
    return item


@overload
def find_brats_cases(
    dataset_dir: str | os.PathLike, on_error: Literal["raise"] = "raise", check: bool = False
) -> tuple[str, list[dict[str, Any]]]: ...


@overload
def find_brats_cases(
    dataset_dir: str | os.PathLike, on_error: Literal["collect"], check: bool = False
) -> tuple[str, list[dict[str, Any]], list[tuple[str, str]]]: ...


def find_brats_cases(
    dataset_dir: str | os.PathLike, on_error: Literal["raise", "collect"] = "raise", check: bool = False
) -> tuple[str, list[dict[str, Any]]] | tuple[str, list[dict[str, Any]], list[tuple[str, str]]]:
    """All cases of the BraTS data set in ``dataset_dir``, sorted by case id.

    Each item is ``{"case": id, "layout": layout, "image": ..., "label": seg}``: ``image`` is the list of
    the four modality files in :data:`BRATS_MODALITIES` order (BraTS layouts) or the one 4D file (MSD);
    ``label`` is left out for unlabelled cases. Paths are relative to ``dataset_dir``, POSIX style.
    Case-folder files are matched case-insensitively; hidden files (``._*`` from macOS) are ignored.

    Args:
        dataset_dir: see :func:`detect_brats_layout`.
        on_error: ``"raise"`` stops at the first bad case; ``"collect"`` leaves bad cases out and also
            returns ``[(case, message), ...]`` so that a batch can go on past them.
        check: also run :func:`check_brats_case` on every case (reads every file).

    Returns:
        ``(layout, items)``, or ``(layout, items, problems)`` with ``on_error="collect"``.

    Raises:
        DataFormatError: missing folder, no cases or mixed layouts (in both modes); with ``"raise"``
            also a bad case: a missing modality (the message names the case folder and the modality),
            an MSD training image without label, a duplicate case id, or what ``check`` finds.
    """
    if on_error not in ("raise", "collect"):
        raise ValueError(f"on_error must be 'raise' or 'collect', got {on_error!r}")
    root = Path(dataset_dir)
    found = _scan(root) if root.is_dir() else []
    layout = _layout_of(root, found)
    items: list[dict[str, Any]] = []
    problems: list[tuple[str, str]] = []
    seen: dict[str, Path] = {}
    for _, case, location in sorted(found, key=lambda f: (f[1], f[2].as_posix())):
        try:
            if case in seen:
                raise DataFormatError(location, f"duplicate case {case} (also at {seen[case]})")
            seen[case] = location
            item = (
                _msd_item(root, case, location)
                if layout == "msd"
                else _brats_item(root, layout, case, location)
            )
            if check:
                check_brats_case(item, root)
        except DataFormatError as err:
            if on_error == "raise":
                raise
            problems.append((case, str(err)))
            continue
        items.append(item)
    return (layout, items, problems) if on_error == "collect" else (layout, items)


# --------------------------------------------------------------------------------------------------
# Checking one case
# --------------------------------------------------------------------------------------------------


def _case_error(path: str | os.PathLike, case: str, problem: str) -> DataFormatError:
    """A :class:`DataFormatError` whose message names ``case`` (in the path or else in the problem)."""
    return DataFormatError(path, problem if case in os.fspath(path) else f"case {case}: {problem}")


def _open(path: Path, case: str) -> Any:
    """The nibabel image of ``path`` (header only; data stays on disk)."""
    if not path.is_file():
        raise _case_error(path, case, "file does not exist")
    try:
        return nib.load(os.fspath(path))
    except Exception as err:  # nibabel raises several types for corrupt or non-NIfTI files
        raise _case_error(path, case, f"cannot be read as NIfTI ({err})") from err


def _data(image: Any, path: Path, case: str) -> np.ndarray:
    try:
        return np.asanyarray(image.dataobj)
    except Exception as err:  # truncated .gz, short file, ...
        raise _case_error(path, case, f"cannot read the voxel data ({err})") from err


def _check_finite(image: Any, path: Path, case: str) -> None:
    data = _data(image, path, case)
    if data.dtype.kind in "fc":
        bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        if bad:
            raise _case_error(path, case, f"{bad} NaN/inf voxels")


def _same_grid(path: Path, case: str, what: str, image: Any, ref_name: str, ref: Any) -> None:
    """``image``'s spatial shape and affine equal ``ref``'s (affine within ``_AFFINE_TOL``)."""
    shape, ref_shape = tuple(image.shape[:3]), tuple(ref.shape[:3])
    if shape != ref_shape:
        raise _case_error(path, case, f"{what} has shape {shape} but {ref_name} has {ref_shape}")
    diff = float(np.max(np.abs(np.asarray(image.affine) - np.asarray(ref.affine))))
    if not diff <= _AFFINE_TOL:
        raise _case_error(
            path, case, f"{what} affine differs from the {ref_name} affine (by up to {diff:.4g})"
        )


def _ndim_problem(shape: tuple[int, ...], expected: str) -> str:
    return f"is {len(shape)}D with shape {shape}; expected {expected}"


def check_brats_case(item: Mapping[str, Any], base_dir: str | os.PathLike | None = None) -> None:
    """Raise :class:`DataFormatError` (naming the case and the problem) unless the case is usable.

    Checks: every file exists and is NIfTI; BraTS modalities are 3D (the MSD image 4D with the four
    modalities on the last axis); all modalities and the segmentation share shape and affine (within
    1e-3); no NaN/inf voxels; segmentation values in the layout's label set. ``item`` is a datalist
    item (:func:`find_brats_cases`); relative paths are taken from ``base_dir``.
    """
    case = str(item.get("case", "?"))
    layout = _check_layout(str(item.get("layout")))
    base = Path(base_dir) if base_dir is not None else Path()
    raw = item.get("image")
    if layout == "msd":
        if not isinstance(raw, (str, os.PathLike)):
            raise _case_error(base, case, f"an MSD item's image must be one 4D file, got {raw!r}")
        path = base / raw
        image = _open(path, case)
        if len(image.shape) != 4 or image.shape[3] != len(BRATS_MODALITIES):
            raise _case_error(path, case, _ndim_problem(image.shape, "4D (X, Y, Z, 4 modalities)"))
        images, ref, ref_name = [(path, image)], image, "image"
    else:
        if isinstance(raw, (str, os.PathLike)) or not isinstance(raw, Sequence) or len(raw) != 4:
            raise _case_error(
                base, case, f"image must list the 4 modality files {BRATS_MODALITIES}, got {raw!r}"
            )
        images = [(base / p, _open(base / p, case)) for p in raw]
        names = list(BRATS_MODALITIES)
        for (path, image), name in zip(images, names):
            if len(image.shape) != 3:
                raise _case_error(path, case, f"{name} " + _ndim_problem(image.shape, "a 3D volume"))
        ref_name, ref = names[0], images[0][1]
        for (path, image), name in zip(images[1:], names[1:]):
            _same_grid(path, case, name, image, ref_name, ref)
    if item.get("label") is not None:
        seg_path = base / item["label"]
        seg = _open(seg_path, case)
        if len(seg.shape) != 3:
            raise _case_error(seg_path, case, "segmentation " + _ndim_problem(seg.shape, "a 3D volume"))
        _same_grid(seg_path, case, "segmentation", seg, ref_name, ref)
    for path, image in images:
        _check_finite(image, path, case)
    if item.get("label") is not None:
        values = _data(seg, seg_path, case)
        try:
            to_canonical_labels(values, layout, source=seg_path)
        except DataFormatError as err:
            raise _case_error(seg_path, case, err.problem) from None


# --------------------------------------------------------------------------------------------------
# Datalists
# --------------------------------------------------------------------------------------------------


def build_brats_datalist(
    dataset_dir: str | os.PathLike,
    seed: int = 0,
    ratios: Sequence[float] = (8, 1, 1),
    check: bool = False,
) -> dict[str, Any]:
    """Split the labelled cases of ``dataset_dir`` by case into training/validation/testing.

    The sorted case ids are shuffled with ``numpy.random.default_rng(seed)`` and cut by
    :func:`~common.data.datalist.split_counts` ``(n, ratios)``; every section is then sorted by case id.
    Unlabelled cases go to a ``"predict"`` section. Deterministic for a given seed and set of cases.

    Returns:
        ``{"training", "validation", "testing", "predict": [items], "layout", "modalities", "labels",
        ...}`` with the items of :func:`find_brats_cases`.

    Raises:
        DataFormatError: as :func:`find_brats_cases` (``on_error="raise"``).
        ValueError: bad ``ratios``.
    """
    if len(ratios) != 3:
        raise ValueError(f"ratios must be (train, validation, test), got {ratios}")
    layout, items = find_brats_cases(dataset_dir, on_error="raise", check=check)
    labelled = [it for it in items if "label" in it]
    order = np.random.default_rng(seed).permutation(len(labelled))
    sections: dict[str, list[dict[str, Any]]] = {}
    start = 0
    for name, count in zip(DATALIST_SECTIONS, split_counts(len(labelled), ratios)):
        chosen = [labelled[i] for i in order[start : start + count]]
        sections[name] = sorted(chosen, key=lambda it: it["case"])
        start += count
    return {
        "name": f"BraTS ({layout})",
        "layout": layout,
        "modalities": list(BRATS_MODALITIES),
        "labels": {str(k): v for k, v in BRATS_LABELS.items()},
        "seed": seed,
        "ratios": list(ratios),
        **sections,
        "predict": [it for it in items if "label" not in it],
    }


def _has_cases(root: Path) -> bool:
    return root.is_dir() and bool(_scan(root))


def prepare_brats_datalist(
    dataset_dir: str,
    datalist_file: str,
    seed: int = 0,
    ratios: Sequence[float] = (8, 1, 1),
    generate_phantoms: bool = False,
    phantom_kwargs: dict[str, Any] | None = None,
) -> str:
    """Make sure a datalist exists for ``dataset_dir`` (for bundle configs); returns its path.

    If ``generate_phantoms`` is true and ``dataset_dir`` holds no cases, synthetic ones are written there
    first with :func:`~common.data.phantoms.make_brats_phantoms` ``(**phantom_kwargs)``. Then the datalist
    is built (:func:`build_brats_datalist`) and written to ``datalist_file`` atomically.

    Raises:
        DataFormatError: no cases and ``generate_phantoms`` is false, or any bad case.
    """
    root = Path(dataset_dir)
    if not _has_cases(root):
        if not generate_phantoms:
            raise DataFormatError(root, _NO_CASES.format(depth=_MAX_DEPTH))
        from common.data.phantoms import make_brats_phantoms

        make_brats_phantoms(root, **(phantom_kwargs or {}))
    datalist = build_brats_datalist(root, seed=seed, ratios=ratios)
    return str(write_datalist(datalist, datalist_file))


def load_brats_datalist_section(
    datalist_file: str | os.PathLike, section: str, base_dir: str | os.PathLike
) -> list[dict[str, Any]]:
    """Items of one section with ``image``/``label`` joined to ``base_dir``, ``case``/``layout`` as written.

    :func:`~common.data.datalist.load_datalist_section` (MONAI) joins every other string value to
    ``base_dir`` when that makes an existing path, which turns a case id into its case folder when the
    case folders sit directly in ``base_dir``; this wrapper puts the written values back.

    Raises:
        DataFormatError: as :func:`~common.data.datalist.load_datalist_section`.
    """
    items = load_datalist_section(datalist_file, section, base_dir)
    raw = json.loads(Path(datalist_file).read_text(encoding="utf-8"))[section]
    for item, written in zip(items, raw):
        for key, value in written.items():
            if key not in ("image", "label"):
                item[key] = value
    return items


class FromCanonicalBraTSLabelsd(MapBraTSLabelsd):
    """Inverse of :class:`MapBraTSLabelsd`: canonical labels 0..3 -> the item's data-set codes.

    Predictions are written in the convention of the data set the input came from (ET 4 for BraTS
    2020/2021, 3 for 2023+; MSD's 1 oedema / 2 non-enhancing / 3 enhancing).
    """

    convert = staticmethod(from_canonical_labels)

    def __init__(
        self,
        keys: KeysCollection = "pred_label",
        layout_key: str = "layout",
        layout: str | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, layout_key, layout, allow_missing_keys)


def brats_case_name(path: str | os.PathLike) -> str:
    """The case id of a BraTS input file: its folder's name for the case-folder layouts
    (``BraTS20_Training_001/BraTS20_Training_001_flair.nii.gz``), else the file name without ``.nii[.gz]``
    (MSD ``BRATS_001.nii.gz``)."""
    path = Path(path)
    stem = re.sub(r"\.nii(\.gz)?$", "", path.name, flags=re.I)
    return path.parent.name if path.parent.name and stem.startswith(path.parent.name) else stem


def brats_output_name(metadict: Mapping[str, Any], saver: Any = None) -> dict[str, Any]:
    """``output_name_formatter`` for MONAI's ``SaveImage``: outputs are named after the case."""
    source = metadict.get("filename_or_obj", "")
    source = source[0] if isinstance(source, (list, tuple)) else source
    return {"subject": brats_case_name(source), "idx": None}
