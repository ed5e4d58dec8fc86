"""ISBI 2015 longitudinal MS lesion segmentation challenge: layouts, cases, checks, rater choice.

The data set (Carass et al., "Longitudinal multiple sclerosis lesion segmentation: Resource and
challenge", NeuroImage 148:77-102, 2017, doi:10.1016/j.neuroimage.2016.12.064; used by Abolvardi et al.,
"UNET-Based Multi-Task Architecture for Brain Lesion Segmentation", §V) has five training patients with
4-5 time points each (21 scans; ``training03`` has five) and fourteen test patients (61 scans). Every
time point has four MR modalities; every training time point has lesion masks from two raters. One
**case is one patient time point**; splits keep a patient's time points together (``group_key`` is
``"patient"``, so ``fold=k`` alone leaves patient ``k`` out: five folds on the training set, the paper's
cross-validation).

**Modalities** are always in the order :data:`ISBI2015_MODALITIES` = ``("flair", "mprage", "pd", "t2")``.

**Layouts** (:data:`ISBI2015_LAYOUTS`): the release holds both image kinds side by side, and the adapter
option ``images`` chooses which one the items name (default ``"preprocessed"``)::

    training/                                      testdata_website/       (the test release)
      training01/                                    test01/
        preprocessed/                                  preprocessed/test01_01_flair_pp.nii ...
          training01_01_{flair,mprage,pd,t2}_pp.nii    orig/test01_01_flair.nii.gz ...
        masks/                                         (no masks/)
          training01_01_mask{1,2}.nii
        orig/
          training01_01_{flair,mprage,pd,t2}.nii.gz

* ``"preprocessed"``: ``<patient>_<TT>_<modality>_pp.nii``: skull-stripped, bias-corrected images,
  rigidly registered to 1 mm MNI space (181 x 217 x 181); the masks are drawn on this grid.
* ``"orig"``: ``<patient>_<TT>_<modality>.nii.gz``: the images as acquired. Their modalities have
  different grids (MPRAGE about 256 x 256 x 120, T2/PD/FLAIR thicker slices) and none is the masks' MNI
  grid, so they must be registered before image and label can be paired; the grid checks below apply to
  ``"preprocessed"`` only.

Every file may be ``.nii`` or ``.nii.gz`` (both for one file is an error); names are matched
case-insensitively and hidden files (``._*``) are ignored. The folder given may be the ``training`` (or
``testdata_website``) folder, a patient folder, or up to two levels above the patient folders (the folder
that holds both ``training`` and ``testdata_website``).

**Raters.** The adapter option ``rater`` (:func:`~common.data.raters.check_rater`) is ``1`` (default) or
``2`` (that rater's mask is the ``label``), or ``"union"``, ``"intersection"`` or ``"vote"`` (``label``
lists both masks, ``[mask1, mask2]``, combined at load time by
:class:`~common.data.raters.CombineRatersd`). ``"vote"`` is a strict majority, so for two raters it equals
``"intersection"`` (see :mod:`common.data.raters`). A labelled time point must have the mask(s) the rule
needs.

**Items** are ``{"case": "training01_01", "patient": "training01", "timepoint": 1, "layout": layout,
"image": [4 files], "label": mask | [mask1, mask2], "rater": rule}``; a patient folder without ``masks/``
(the test release) gives unlabelled items (no ``label``/``rater``), which datalists put in ``predict``.
Masks are 0/1, already the canonical :data:`~common.labels.BINARY_LESION` codes. Loading with MONAI::

    LoadImaged(keys=["image", "label"]),           # 4 files -> (4, X, Y, Z); [mask1, mask2] -> (2, X, Y, Z)
    EnsureChannelFirstd(keys=["image", "label"]),   # one mask file -> (1, X, Y, Z)
    CombineRatersd(keys="label"),                  # the item's rater rule -> (1, X, Y, Z)

Other options: ``ISBI2015Adapter(images="orig", rater="union")``; configs pass such an adapter to
``prepare_datalist`` in place of the name ``"isbi2015"`` (whose adapter has the defaults).

**Tissue maps** (not part of the release): a patient folder may hold ``tissues/<case>_tissues.nii[.gz]``,
a brain-tissue label map of the time point on its image grid, 0 background, 1 CSF, 2 GM, 3 WM (the phantoms
write one; a user may put e.g. SPM's or FreeSurfer's there). Items do not name them; :func:`with_tissue_maps`
adds their paths to items (key ``"tissue_map"``) where they exist, for
:class:`~common.transforms.TissueMasksd`'s ``tissue_key``.

**Outputs** are named after the case: :func:`isbi2015_output_name` is an ``output_name_formatter`` for
MONAI's ``SaveImage`` that gives ``training01_01`` for the loaded ``training01_01_flair_pp.nii``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from common.data.adapter import Cases, DatasetAdapter, OnError, check_on_error
from common.data.errors import DataFormatError
from common.data.nifti_checks import case_error, check_finite, check_same_grid, nifti_data, open_nifti
from common.data.raters import RATER_RULES, check_rater
from common.labels import BINARY_LESION

__all__ = [
    "ADAPTER",
    "ISBI2015Adapter",
    "ISBI2015_LAYOUTS",
    "ISBI2015_MODALITIES",
    "ISBI2015_RATERS",
    "TISSUE_FOLDER",
    "find_tissue_map",
    "image_name",
    "isbi2015_case_name",
    "isbi2015_output_name",
    "mask_name",
    "tissue_map_name",
    "with_tissue_maps",
]

ISBI2015_MODALITIES: tuple[str, str, str, str] = ("flair", "mprage", "pd", "t2")
"""The order of the four modality files in every item's ``image`` (and of the loaded channels)."""
ISBI2015_LAYOUTS: tuple[str, str] = ("preprocessed", "orig")
"""The two image kinds of the release, named after their folders."""
ISBI2015_RATERS: tuple[int, int] = (1, 2)
"""The raters whose masks (``mask1``, ``mask2``) every training time point has."""
TISSUE_FOLDER = "tissues"
"""Folder of a patient's tissue label maps, beside ``preprocessed/`` and ``masks/`` (module docstring)."""

_PATIENT = re.compile(r"^(?:training|test)\d+$", re.I)
_SUBFOLDERS = ("preprocessed", "orig", "masks")
_IMAGE = {
    "preprocessed": re.compile(
        r"^(?P<patient>(?:training|test)\d+)_(?P<tp>\d+)_(?P<mod>flair|mprage|pd|t2)_pp\.nii(?:\.gz)?$", re.I
    ),
    "orig": re.compile(
        r"^(?P<patient>(?:training|test)\d+)_(?P<tp>\d+)_(?P<mod>flair|mprage|pd|t2)\.nii(?:\.gz)?$", re.I
    ),
}
_MASK = re.compile(r"^(?P<patient>(?:training|test)\d+)_(?P<tp>\d+)_mask(?P<rater>\d+)\.nii(?:\.gz)?$", re.I)
_MAX_DEPTH = 3  # patient folders are looked for this many levels below dataset_dir
_NO_CASES = (
    "no ISBI 2015 patient folders found (trainingNN/ or testNN/ with preprocessed/, orig/ or masks/, at most "
    f"{_MAX_DEPTH} levels down); pass a dataset_dir that holds the data set, or generate phantoms"
)


# --------------------------------------------------------------------------------------------------
# File names
# --------------------------------------------------------------------------------------------------


def image_name(layout: str, case: str, modality: str, suffix: str = ".nii") -> str:
    """The file name of one modality of ``case`` (``"training01_01"``) in ``layout``."""
    return f"{case}_{modality}{'_pp' if layout == 'preprocessed' else ''}{suffix}"


def mask_name(case: str, rater: int, suffix: str = ".nii") -> str:
    """The file name of rater ``rater``'s mask of ``case``."""
    return f"{case}_mask{rater}{suffix}"


def tissue_map_name(case: str, suffix: str = ".nii.gz") -> str:
    """The file name of the tissue label map of ``case``: ``training01_01_tissues.nii.gz``."""
    return f"{case}_tissues{suffix}"


def find_tissue_map(item: Mapping[str, Any], base_dir: str | os.PathLike | None = None) -> Path | None:
    """The tissue label map of an item, ``<patient>/tissues/<case>_tissues.nii.gz`` (else ``.nii``), or None.

    The patient folder is the one above the item's image folder (image paths relative to ``base_dir``, or
    absolute).
    """
    base = Path(base_dir) if base_dir is not None else Path()
    folder = (base / item["image"][0]).parent.parent / TISSUE_FOLDER
    for suffix in (".nii.gz", ".nii"):
        path = folder / tissue_map_name(str(item["case"]), suffix)
        if path.is_file():
            return path
    return None


def with_tissue_maps(
    items: Sequence[Mapping[str, Any]], base_dir: str | os.PathLike | None = None, key: str = "tissue_map"
) -> list[dict[str, Any]]:
    """Copies of ``items``, each with ``key`` set to the path of its tissue map where it has one.

    Paths are ``base_dir``-joined like the images (absolute when the items' are); items without a map are
    copied unchanged, so the tissue masks of those are computed (:class:`~common.transforms.TissueMasksd`).
    """
    out = []
    for item in items:
        found = find_tissue_map(item, base_dir)
        out.append({**item, key: os.fspath(found)} if found is not None else dict(item))
    return out


def isbi2015_case_name(path: str | os.PathLike) -> str:
    """The case of an image file: ``training01_01`` for ``training01_01_flair_pp.nii`` (either layout);
    any other file name without ``.nii[.gz]``."""
    name = Path(path).name
    for pattern in _IMAGE.values():
        match = pattern.match(name)
        if match:
            return f"{match.group('patient')}_{match.group('tp')}"
    return re.sub(r"\.nii(\.gz)?$", "", name, flags=re.I)


def isbi2015_output_name(metadict: Mapping[str, Any], saver: Any = None) -> dict[str, Any]:
    """``output_name_formatter`` for MONAI's ``SaveImage``: outputs are named after the case."""
    source = metadict.get("filename_or_obj", "")
    source = source[0] if isinstance(source, (list, tuple)) else source
    return {"subject": isbi2015_case_name(source), "idx": None}


# --------------------------------------------------------------------------------------------------
# Finding cases
# --------------------------------------------------------------------------------------------------


def _is_patient(folder: Path) -> bool:
    return bool(_PATIENT.match(folder.name)) and any((folder / sub).is_dir() for sub in _SUBFOLDERS)


def _scan(root: Path) -> list[Path]:
    """The patient folders of ``root`` (``root`` itself when it is one), sorted by path."""
    if _is_patient(root):
        return [root]
    found: list[Path] = []
    for folder, dirs, _ in os.walk(root):
        here = Path(folder)
        depth = len(here.relative_to(root).parts)
        keep = []
        for name in sorted(d for d in dirs if not d.startswith(".")):
            if _is_patient(here / name):
                found.append(here / name)
            elif depth + 1 < _MAX_DEPTH:
                keep.append(name)
        dirs[:] = keep
    return sorted(found, key=lambda p: p.as_posix())


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _group(
    folder: Path, pattern: re.Pattern[str], patient: str, key: str
) -> dict[str, dict[str, list[Path]]]:
    """``{time point: {modality or rater: [paths]}}`` of the files of ``folder`` that match ``pattern``."""
    groups: dict[str, dict[str, list[Path]]] = {}
    for path in _files(folder):
        match = pattern.match(path.name)
        if not match:
            continue
        if match.group("patient").lower() != patient.lower():
            raise DataFormatError(
                path, f"file of patient {match.group('patient')} in patient folder {patient}"
            )
        groups.setdefault(match.group("tp"), {}).setdefault(match.group(key).lower(), []).append(path)
    return groups


def _one(paths: Sequence[Path], case: str) -> Path:
    if len(paths) > 1:
        names = " and ".join(p.name for p in paths)
        raise DataFormatError(paths[0].parent, f"case {case}: both {names}; keep one")
    return paths[0]


def _patient_items(
    root: Path, folder: Path, layout: str, rater: int | str
) -> list[tuple[str, dict[str, Any] | DataFormatError]]:
    """``(case, item or the problem)`` of each time point of one patient folder, in time-point order."""
    patient = folder.name
    images = _group(folder / layout, _IMAGE[layout], patient, "mod")
    masks = _group(folder / "masks", _MASK, patient, "rater")
    labelled = bool(masks)
    needed = (rater,) if isinstance(rater, int) else ISBI2015_RATERS
    if not images and not masks:
        raise DataFormatError(folder, f"patient {patient}: no {layout}/ images")
    out: list[tuple[str, dict[str, Any] | DataFormatError]] = []
    for tp in sorted(set(images) | set(masks), key=lambda t: (int(t), t)):
        case = f"{patient}_{tp}"
        try:
            found = images.get(tp, {})
            if not found:
                raise DataFormatError(folder / layout, f"case {case}: rater masks but no {layout} images")
            paths = []
            for modality in ISBI2015_MODALITIES:
                if modality not in found:
                    expected = image_name(layout, case, modality, ".nii[.gz]")
                    raise DataFormatError(
                        folder / layout, f"case {case}: missing modality {modality} ({expected})"
                    )
                paths.append(_one(found[modality], case))
            item: dict[str, Any] = {
                "case": case,
                "patient": patient,
                "timepoint": int(tp),
                "layout": layout,
                "image": [p.relative_to(root).as_posix() for p in paths],
            }
            if labelled:
                rated = masks.get(tp, {})
                labels = []
                for k in needed:
                    if str(k) not in rated:
                        why = "" if isinstance(rater, int) else f"; rater={rater!r} needs both raters' masks"
                        raise DataFormatError(
                            folder / "masks",
                            f"case {case}: missing rater {k} mask ({mask_name(case, k, '.nii[.gz]')}){why}",
                        )
                    labels.append(_one(rated[str(k)], case).relative_to(root).as_posix())
                item["label"] = labels[0] if isinstance(rater, int) else labels
                item["rater"] = rater
            out.append((case, item))
        except DataFormatError as err:
            out.append((case, err))
    return out


# --------------------------------------------------------------------------------------------------
# Checking one case
# --------------------------------------------------------------------------------------------------


def _check_3d(image: Any, path: Path, case: str, what: str) -> None:
    if len(image.shape) != 3:
        raise case_error(path, case, f"{what} is {len(image.shape)}D with shape {image.shape}; expected 3D")


# --------------------------------------------------------------------------------------------------
# The adapter
# --------------------------------------------------------------------------------------------------


class ISBI2015Adapter(DatasetAdapter):
    """The ISBI 2015 longitudinal MS lesion data: one case per patient time point, split by patient.

    Args:
        images: which images the items name: ``"preprocessed"`` (default; MNI grid, the masks' grid) or
            ``"orig"`` (as acquired).
        rater: the reference: ``1`` (default) or ``2``, or ``"union"``, ``"intersection"``, ``"vote"`` of
            both raters (:mod:`common.data.raters`).
    """

    name = "isbi2015"
    title = "ISBI 2015 longitudinal MS lesions"
    layouts = ISBI2015_LAYOUTS
    no_data = _NO_CASES
    phantom_writer = "common.data.phantoms.isbi2015:make_isbi2015_phantoms"
    group_key = "patient"
    case_key = "case"
    label_scheme = BINARY_LESION

    def __init__(self, images: str = "preprocessed", rater: int | str = 1) -> None:
        self.images = self.check_layout(images)
        self.rater = check_rater(rater, n_raters=len(ISBI2015_RATERS))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(images={self.images!r}, rater={self.rater!r})"

    def has_data(self, dataset_dir: str | os.PathLike) -> bool:
        root = Path(dataset_dir)
        return root.is_dir() and bool(_scan(root))

    def detect_layout(self, dataset_dir: str | os.PathLike) -> str:
        """The adapter's ``images`` kind, once the folder is found to hold it.

        Raises:
            DataFormatError: the folder is missing, holds no ISBI 2015 patient folders, or holds none of
                the chosen kind (the message says when the other kind is there).
        """
        root = Path(dataset_dir)
        if not root.is_dir():
            raise DataFormatError(
                root, "dataset folder does not exist" if not root.exists() else "not a folder"
            )
        patients = _scan(root)
        if not patients:
            raise DataFormatError(root, _NO_CASES)
        if not any(_files(p / self.images) for p in patients):
            other = next(k for k in ISBI2015_LAYOUTS if k != self.images)
            if any(_files(p / other) for p in patients):
                raise DataFormatError(
                    root,
                    f"holds no {self.images}/ images, only {other}/; use ISBI2015Adapter(images={other!r})",
                )
            raise DataFormatError(root, f"its patient folders hold no {self.images}/ images")
        return self.images

    def find_cases(self, dataset_dir: str | os.PathLike, on_error: OnError = "raise") -> Cases:
        """All time points of every patient folder (see :meth:`detect_layout`), sorted by patient and time.

        Bad cases are a missing modality, a file of both ``.nii`` and ``.nii.gz``, masks without images, a
        missing mask of a labelled patient that the rater rule needs, or a case id found twice; each names
        the case. A patient folder without the chosen images, or with a file of another patient, is
        reported under the patient's name.

        Raises:
            DataFormatError: missing folder, no patient folders or none of the chosen images (in both
                modes); with ``"raise"`` also a bad case.
        """
        check_on_error(on_error)
        root = Path(dataset_dir)
        layout = self.detect_layout(root)
        found: list[tuple[str, dict[str, Any] | DataFormatError]] = []
        for folder in _scan(root):
            try:
                found += _patient_items(root, folder, layout, self.rater)
            except DataFormatError as err:  # a file of another patient: the whole folder is suspect
                found.append((folder.name, err))
        items: list[dict[str, Any]] = []
        problems: list[tuple[str, str]] = []
        seen: dict[str, str] = {}
        for case, result in found:
            if isinstance(result, dict) and case in seen:
                result = DataFormatError(
                    root / result["image"][0], f"duplicate case {case} (also {seen[case]})"
                )
            if isinstance(result, DataFormatError):
                if on_error == "raise":
                    raise result
                problems.append((case, str(result)))
                continue
            seen[case] = result["image"][0]
            items.append(result)
        items.sort(key=lambda it: (it["patient"], it["timepoint"], it["case"]))
        return Cases(layout, items, problems)

    def check_case(self, item: Mapping[str, Any], base_dir: str | os.PathLike | None = None) -> None:
        """Raise :class:`DataFormatError` (naming the case and the problem) unless the case is usable.

        Checks: every file exists and is a 3D NIfTI; no NaN/inf image voxels; masks hold only 0 and 1; a
        combining rater rule lists two masks; in ``"preprocessed"`` all modalities and masks share the
        FLAIR's shape and affine (within 1e-3); in ``"orig"`` (modalities acquired on different grids, masks
        on the MNI grid) only the two masks must share theirs.
        """
        case = str(item.get("case", "?"))
        layout = self.check_layout(str(item.get("layout")))
        base = Path(base_dir) if base_dir is not None else Path()
        raw = item.get("image")
        if isinstance(raw, (str, os.PathLike)) or not isinstance(raw, Sequence) or len(raw) != 4:
            raise case_error(
                base, case, f"image must list the 4 modality files {ISBI2015_MODALITIES}, got {raw!r}"
            )
        label = item.get("label")
        paths = [] if label is None else [label] if isinstance(label, (str, os.PathLike)) else list(label)
        rule = check_rater(item.get("rater", 1 if len(paths) == 1 else RATER_RULES[0]))
        if paths and not isinstance(rule, int) and len(paths) < 2:
            raise case_error(
                base, case, f"rater {rule!r} combines both raters' masks, but the item lists {paths}"
            )
        images = [(base / p, open_nifti(base / p, case)) for p in raw]
        for (path, image), modality in zip(images, ISBI2015_MODALITIES):
            _check_3d(image, path, case, modality)
        flair = images[0][1]
        if layout == "preprocessed":
            for (path, image), modality in zip(images[1:], ISBI2015_MODALITIES[1:]):
                check_same_grid(path, case, modality, image, "flair", flair)
        for path, image in images:
            check_finite(image, path, case)
        ref_name, ref = ("flair", flair) if layout == "preprocessed" else ("first mask", None)
        for rel in paths:
            path = base / rel
            mask = open_nifti(path, case)
            _check_3d(mask, path, case, "mask")
            if ref is None:
                ref = mask
            else:
                check_same_grid(path, case, "mask", mask, ref_name, ref)
            try:
                self.to_canonical(nifti_data(mask, path, case), layout, source=path)
            except DataFormatError as err:
                raise case_error(path, case, err.problem) from None

    def datalist_header(self, layout: str) -> dict[str, Any]:
        return {
            "name": f"{self.title} ({layout})",
            "layout": layout,
            "modalities": list(ISBI2015_MODALITIES),
            "labels": BINARY_LESION.describe(),
            "rater": self.rater,
        }


ADAPTER = ISBI2015Adapter()
