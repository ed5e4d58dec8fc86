"""BraTS multi-modal brain-tumour MRI (BraTS 2018-2023+ and MSD Task01): layouts, cases, checks, label codes.

**Modalities** are always in the order :data:`BRATS_MODALITIES` = ``("flair", "t1", "t1ce", "t2")``.

**Canonical labels** are :data:`common.labels.BRATS` (0 background, 1 NCR/NET, 2 ED, 3 ET, and the regions
WT, TC, ET); this module only maps each layout's own codes to and from them.

**Layouts** (:data:`BRATS_LAYOUTS`), detected from the folder:

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

**Items** are ``{"case": id, "layout": layout, "image": ..., "label": seg}``: ``image`` is the list of the
four modality files (BraTS layouts) or the one 4D file (MSD). Splits are by case. Loading with MONAI::

    LoadImaged(keys=["image", "label"]),        # list of 4 files: stacked on a new first axis
    EnsureChannelFirstd(keys=["image", "label"]),  # MSD: moves the file's last axis first; seg: adds it
    MapBraTSLabelsd(keys="label"),               # the dataset's codes -> canonical 0..3 (uses "layout")

gives a ``(4, X, Y, Z)`` float MetaTensor with the files' affine and a ``(1, X, Y, Z)`` canonical label,
with MONAI's default reader (ITK when installed) and with ``reader="NibabelReader"`` alike (tested).
:class:`FromCanonicalBraTSLabelsd` writes predictions back in a data set's own codes and
:func:`brats_output_name` names the outputs after the case.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai.config import KeysCollection

from common.data.adapter import Cases, DatasetAdapter, OnError, check_on_error
from common.data.errors import DataFormatError
from common.data.label_transforms import MapLabelCodesd
from common.data.nifti_checks import case_error, check_finite, check_same_grid, nifti_data, open_nifti
from common.labels import BRATS

__all__ = [
    "ADAPTER",
    "BRATS_LAYOUTS",
    "BRATS_MODALITIES",
    "BraTSAdapter",
    "FromCanonicalBraTSLabelsd",
    "MapBraTSLabelsd",
    "brats_case_name",
    "brats_output_name",
    "modality_stems",
    "segmentation_stem",
]

BRATS_MODALITIES: tuple[str, str, str, str] = ("flair", "t1", "t1ce", "t2")
BRATS_LAYOUTS: tuple[str, ...] = ("brats2020", "brats2021", "brats2023", "msd")

_CODES: dict[str, dict[int, str]] = {  # code on disk -> canonical label name (common.labels.BRATS)
    "brats2020": {0: "background", 1: "ncr", 2: "ed", 4: "et"},
    "brats2021": {0: "background", 1: "ncr", 2: "ed", 4: "et"},
    "brats2023": {0: "background", 1: "ncr", 2: "ed", 3: "et"},
    "msd": {0: "background", 1: "ed", 2: "ncr", 3: "et"},
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
_NO_CASES = (
    f"no BraTS cases found (BraTS20_*/BraTS2021_*/BraTS-XXX-* case folders or an MSD Task01_BrainTumour "
    f"imagesTr/imagesTs folder, at most {_MAX_DEPTH} levels down); pass a dataset_dir that holds the data "
    "set, or generate phantoms"
)


# --------------------------------------------------------------------------------------------------
# File names
# --------------------------------------------------------------------------------------------------


def modality_stems(layout: str, case: str) -> list[str]:
    """File names without ``.nii[.gz]`` of a case folder's modalities, in :data:`BRATS_MODALITIES` order."""
    return [f"{case}{_SEPARATOR[layout]}{code}" for code in _FILE_CODES[layout]]


def segmentation_stem(layout: str, case: str) -> str:
    """File name without ``.nii[.gz]`` of a case folder's segmentation."""
    return f"{case}{_SEPARATOR[layout]}seg"


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
        raise DataFormatError(root, _NO_CASES)
    if len(layouts) > 1:
        counts = ", ".join(f"{lay}: {sum(f[0] == lay for f in found)} cases" for lay in layouts)
        raise DataFormatError(
            root, f"holds cases of several layouts ({counts}); pass the folder of one data set"
        )
    return layouts[0]


def _nifti(folder_files: Mapping[str, Path], stem: str) -> Path | None:
    """``stem.nii.gz`` or ``stem.nii`` among ``folder_files`` (lower-case name -> path); both is an error."""
    hits = [folder_files[n] for n in (f"{stem}.nii.gz".lower(), f"{stem}.nii".lower()) if n in folder_files]
    if len(hits) > 1:
        raise DataFormatError(hits[0].parent, f"both {hits[0].name} and {hits[1].name}; keep one")
    return hits[0] if hits else None


def _brats_item(root: Path, layout: str, case: str, folder: Path) -> dict[str, Any]:
    """The item of one BraTS case folder (paths relative to ``root``)."""
    files = {p.name.lower(): p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")}
    images = []
    for modality, stem in zip(BRATS_MODALITIES, modality_stems(layout, case)):
        path = _nifti(files, stem)
        if path is None:
            raise DataFormatError(folder, f"missing modality {modality} (expected {stem}.nii.gz or .nii)")
        images.append(path)
    item: dict[str, Any] = {
        "case": case,
        "layout": layout,
        "image": [p.relative_to(root).as_posix() for p in images],
    }
    seg = _nifti(files, segmentation_stem(layout, case))
    if seg is not None:
        item["label"] = seg.relative_to(root).as_posix()
    else:
        others = sorted(
            p.name for p in files.values() if p not in images and p.name.lower().endswith((".nii", ".nii.gz"))
        )
        if others:
            raise DataFormatError(
                folder,
                f"no {segmentation_stem(layout, case)}.nii.gz but unrecognised NIfTI file(s) {others}; "
                "rename the segmentation",
            )
    return item


def _msd_item(root: Path, case: str, image: Path) -> dict[str, Any]:
    """The item of one MSD image (label from the sibling ``labelsTr``/``labelsTs`` folder)."""
    label = image.parent.parent / _MSD_FOLDERS[image.parent.name] / image.name
    item: dict[str, Any] = {"case": case, "layout": "msd", "image": image.relative_to(root).as_posix()}
    if label.is_file():
        item["label"] = label.relative_to(root).as_posix()
    elif image.parent.name == "imagesTr":
        raise DataFormatError(image, f"training image without its label {label.relative_to(root).as_posix()}")
    return item


# --------------------------------------------------------------------------------------------------
# Checking one case
# --------------------------------------------------------------------------------------------------


def _ndim_problem(shape: tuple[int, ...], expected: str) -> str:
    return f"is {len(shape)}D with shape {shape}; expected {expected}"


# --------------------------------------------------------------------------------------------------
# The adapter
# --------------------------------------------------------------------------------------------------


class BraTSAdapter(DatasetAdapter):
    """BraTS 2018-2023+ case folders and the MSD Task01 layout; split by case."""

    name = "brats"
    title = "BraTS"
    layouts = BRATS_LAYOUTS
    no_data = _NO_CASES
    phantom_writer = "common.data.phantoms.brats:make_brats_phantoms"
    group_key = "case"
    case_key = "case"
    label_scheme = BRATS

    def has_data(self, dataset_dir: str | os.PathLike) -> bool:
        root = Path(dataset_dir)
        return root.is_dir() and bool(_scan(root))

    def detect_layout(self, dataset_dir: str | os.PathLike) -> str:
        """The layout of the BraTS data set in ``dataset_dir``.

        ``dataset_dir`` may hold the case folders, be one or two levels above them (e.g. the folder that
        holds ``MICCAI_BraTS2020_TrainingData/``), be the MSD task folder (with ``imagesTr``) or above it,
        or be a single case folder.

        Raises:
            DataFormatError: the folder is missing, holds no BraTS cases, or holds several layouts.
        """
        root = Path(dataset_dir)
        return _layout_of(root, _scan(root) if root.is_dir() else [])

    def find_cases(self, dataset_dir: str | os.PathLike, on_error: OnError = "raise") -> Cases:
        """All cases of ``dataset_dir`` (see :meth:`detect_layout`), sorted by case id.

        ``label`` is left out for unlabelled cases. Case-folder files are matched case-insensitively;
        hidden files (``._*`` from macOS) are ignored. Bad cases are a missing modality (the message names
        the case folder and the modality), an MSD training image without label, a duplicate case id or an
        unrecognised segmentation file name; problems are reported by case id.

        Raises:
            DataFormatError: missing folder, no cases or mixed layouts (in both modes); with ``"raise"``
                also a bad case.
        """
        check_on_error(on_error)
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
                if layout == "msd":
                    items.append(_msd_item(root, case, location))
                else:
                    items.append(_brats_item(root, layout, case, location))
            except DataFormatError as err:
                if on_error == "raise":
                    raise
                problems.append((case, str(err)))
        return Cases(layout, items, problems)

    def check_case(self, item: Mapping[str, Any], base_dir: str | os.PathLike | None = None) -> None:
        """Raise :class:`DataFormatError` (naming the case and the problem) unless the case is usable.

        Checks: every file exists and is NIfTI; BraTS modalities are 3D (the MSD image 4D with the four
        modalities on the last axis); all modalities and the segmentation share shape and affine (within
        1e-3); no NaN/inf voxels; segmentation values in the layout's label set.
        """
        case = str(item.get("case", "?"))
        layout = self.check_layout(str(item.get("layout")))
        base = Path(base_dir) if base_dir is not None else Path()
        raw = item.get("image")
        if layout == "msd":
            if not isinstance(raw, (str, os.PathLike)):
                raise case_error(base, case, f"an MSD item's image must be one 4D file, got {raw!r}")
            path = base / raw
            image = open_nifti(path, case)
            if len(image.shape) != 4 or image.shape[3] != len(BRATS_MODALITIES):
                raise case_error(path, case, _ndim_problem(image.shape, "4D (X, Y, Z, 4 modalities)"))
            images, ref, ref_name = [(path, image)], image, "image"
        else:
            if isinstance(raw, (str, os.PathLike)) or not isinstance(raw, Sequence) or len(raw) != 4:
                raise case_error(
                    base, case, f"image must list the 4 modality files {BRATS_MODALITIES}, got {raw!r}"
                )
            images = [(base / p, open_nifti(base / p, case)) for p in raw]
            for (path, image), name in zip(images, BRATS_MODALITIES):
                if len(image.shape) != 3:
                    raise case_error(path, case, f"{name} " + _ndim_problem(image.shape, "a 3D volume"))
            ref_name, ref = BRATS_MODALITIES[0], images[0][1]
            for (path, image), name in zip(images[1:], BRATS_MODALITIES[1:]):
                check_same_grid(path, case, name, image, ref_name, ref)
        if item.get("label") is not None:
            seg_path = base / item["label"]
            seg = open_nifti(seg_path, case)
            if len(seg.shape) != 3:
                raise case_error(seg_path, case, "segmentation " + _ndim_problem(seg.shape, "a 3D volume"))
            check_same_grid(seg_path, case, "segmentation", seg, ref_name, ref)
        for path, image in images:
            check_finite(image, path, case)
        if item.get("label") is not None:
            try:
                self.to_canonical(nifti_data(seg, seg_path, case), layout, source=seg_path)
            except DataFormatError as err:
                raise case_error(seg_path, case, err.problem) from None

    def label_codes(self, layout: str) -> Mapping[int, int]:
        """2020/2021: 4 -> 3 (ET); 2023: identity; MSD: 1 -> 2 (ED), 2 -> 1 (NCR/NET), 3 -> 3."""
        return {code: BRATS.labels[name] for code, name in _CODES[self.check_layout(layout)].items()}

    def datalist_header(self, layout: str) -> dict[str, Any]:
        return {
            "name": f"{self.title} ({layout})",
            "layout": layout,
            "modalities": list(BRATS_MODALITIES),
            "labels": BRATS.describe(),
        }


ADAPTER = BraTSAdapter()


class MapBraTSLabelsd(MapLabelCodesd):
    """:class:`~common.data.label_transforms.MapLabelCodesd` for BraTS: the item's own codes -> canonical."""

    def __init__(
        self,
        keys: KeysCollection = "label",
        layout_key: str = "layout",
        layout: str | None = None,
        allow_missing_keys: bool = False,
        default_layout: str | None = None,
    ) -> None:
        super().__init__(keys, ADAPTER, False, layout_key, layout, allow_missing_keys, default_layout)


class FromCanonicalBraTSLabelsd(MapLabelCodesd):
    """Inverse of :class:`MapBraTSLabelsd`: canonical labels -> the item's data-set codes.

    Predictions are written in the convention of the data set the input came from (ET 4 for BraTS
    2020/2021, 3 for 2023+; MSD's 1 oedema / 2 non-enhancing / 3 enhancing).
    """

    def __init__(
        self,
        keys: KeysCollection = "pred_label",
        layout_key: str = "layout",
        layout: str | None = None,
        allow_missing_keys: bool = False,
        default_layout: str | None = None,
    ) -> None:
        super().__init__(keys, ADAPTER, True, layout_key, layout, allow_missing_keys, default_layout)
