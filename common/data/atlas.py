"""ATLAS (Anatomical Tracings of Lesions After Stroke) R2.0 and R1.2: layouts, cases, checks.

The data set (Liew et al., "A large, curated, open-source stroke neuroimaging dataset to improve lesion
segmentation algorithms", Scientific Data 9:320, 2022, doi:10.1038/s41597-022-01401-7, for R2.0; Liew et al.,
Scientific Data 5:180011, 2018, doi:10.1038/sdata.2018.11, for R1.x) holds T1-weighted MR scans of chronic
stroke patients with manually traced lesion masks, registered to MNI-152 space (197 x 233 x 189, 1 mm; Liu et
al., "Multi-task learning improves the brain stroke lesion segmentation", §3.1, use the R1.2 MNI subset).
One **case is one scan** (a session or time point of a subject); splits keep a subject's scans together
(``group_key`` is ``"patient"``, the subject id).

**Layouts** (:data:`ATLAS_LAYOUTS`), detected from the folder::

    "r2.0"                                               "r1.2"
    Training/                                            Site1/
      R001/                                                031768/
        sub-r001s001/                                        t01/
          ses-1/anat/                                          031768_t1w_deface_stx.nii.gz
            sub-r001s001_ses-1_space-MNI152NLin2009aSym_T1w.nii.gz      031768_LesionSmooth_stx.nii.gz
            sub-r001s001_ses-1_space-MNI152NLin2009aSym_label-L_desc-T1lesion_mask.nii.gz
    Testing/                                                   031768_LesionSmooth_1_stx.nii.gz  (more)
      R001/sub-r001s0XX/ses-1/anat/..._T1w.nii.gz  (no masks)

* ``"r2.0"``: BIDS subject folders ``sub-<id>`` with session folders ``ses-<id>/anat/`` holding
  ``<sub>_<ses>[_space-<space>]_T1w.nii[.gz]`` and the lesion mask
  ``<sub>_<ses>[_space-<space>]_label-L[_desc-<desc>]_mask.nii[.gz]``. A session without a mask is
  unlabelled (the ``Testing`` release), except under a ``Training`` folder, where it is an error.
* ``"r1.2"``: ``Site<N>/<id>/t<NN>/`` holding ``<id>_t1w_deface_stx.nii[.gz]`` and one or more lesion
  masks ``<id>_LesionSmooth[_<k>]_stx.nii[.gz]`` (the release traces separate lesions in separate files;
  the case's lesion mask is their **union**). The standard-space (``_stx``) files only.

The folder given may be the one that holds ``Training``/``Testing`` (or the ``Site<N>`` folders), one of
them, a cohort or site folder, a subject folder, or up to :data:`_MAX_DEPTH` levels above the subject
folders. Names are matched case-insensitively; hidden files (``._*``) are ignored. Every folder named
``sub-<id>`` (R2.0), and every folder inside a ``Site<N>`` folder (R1.2), is a subject: one without a usable
scan is a bad case naming the subject.

**Items** are ``{"case": "sub-r001s001_ses-1", "patient": "sub-r001s001", "cohort": "R001", "session":
"ses-1", "layout": "r2.0", "image": T1w path, "label": mask path}``; in R1.2 ``{"case": "031768_t01",
"patient": "031768", "cohort": "Site1", "session": "t01", ...}`` and ``label`` is a **list** of mask paths
when the scan has several masks (one path otherwise). Unlabelled items have no ``label``. Loading with
MONAI, one pipeline for both layouts::

    LoadImaged(keys=["image", "label"]),           # [mask, mask_1] -> (2, X, Y, Z)
    EnsureChannelFirstd(keys=["image", "label"]),   # one file -> (1, X, Y, Z)
    CombineRatersd(keys="label", rater="union"),   # -> (1, X, Y, Z), 0/1: any non-zero voxel is lesion

(:class:`~common.data.raters.CombineRatersd`, which binarises a one-mask label too). Canonical labels are
:data:`~common.labels.BINARY_LESION`. Outputs are named after the case (:func:`atlas_output_name`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from common.data.adapter import Cases, DatasetAdapter, OnError, check_on_error
from common.data.errors import DataFormatError
from common.data.nifti_checks import case_error, check_finite, check_same_grid, nifti_data, open_nifti
from common.labels import BINARY_LESION

__all__ = [
    "ADAPTER",
    "ATLASAdapter",
    "ATLAS_LAYOUTS",
    "ATLAS_SHAPE",
    "ATLAS_SPACE",
    "atlas_case_name",
    "atlas_output_name",
    "check_lesion_mask",
    "r12_image_name",
    "r12_mask_name",
    "r20_image_name",
    "r20_mask_name",
]

ATLAS_LAYOUTS: tuple[str, str] = ("r2.0", "r1.2")
"""The two releases' on-disk layouts."""
ATLAS_SHAPE: tuple[int, int, int] = (197, 233, 189)
"""Grid of the MNI-152 (2009a) space both releases are registered to, 1 mm isotropic."""
ATLAS_SPACE = "MNI152NLin2009aSym"
"""The ``space-`` entity of the R2.0 file names."""

_NII = r"\.nii(?:\.gz)?$"
_SUBJECT = re.compile(r"^sub-[a-z0-9]+$", re.I)
_SESSION = re.compile(r"^ses-[a-z0-9]+$", re.I)
_R20_IMAGE = re.compile(
    r"^(?P<sub>sub-[a-z0-9]+)_(?P<ses>ses-[a-z0-9]+)(?:_space-(?P<space>[a-z0-9]+))?_T1w" + _NII, re.I
)
_R20_MASK = re.compile(
    r"^(?P<sub>sub-[a-z0-9]+)_(?P<ses>ses-[a-z0-9]+)(?:_space-(?P<space>[a-z0-9]+))?_label-L(?:_desc-[a-z0-9]+)?"
    r"_mask" + _NII,
    re.I,
)
_R20_COHORT = re.compile(r"^sub-(r\d+)s\d+$", re.I)
_SITE = re.compile(r"^site\d+$", re.I)
_TIMEPOINT = re.compile(r"^t\d+$", re.I)
_R12_IMAGE = re.compile(r"^(?P<id>[a-z0-9]+)_t1w_deface_stx" + _NII, re.I)
_R12_MASK = re.compile(r"^(?P<id>[a-z0-9]+)_LesionSmooth(?:_(?P<k>\d+))?_stx" + _NII, re.I)
_MAX_DEPTH = 4  # subject folders are looked for this many levels below dataset_dir
_NO_CASES = (
    "no ATLAS subjects found (R2.0 sub-<id>/ses-<id>/anat/ folders, or R1.2 Site<N>/<id>/t<NN>/ folders, at "
    f"most {_MAX_DEPTH} levels down); pass a dataset_dir that holds the data set, or generate phantoms"
)


# --------------------------------------------------------------------------------------------------
# File names
# --------------------------------------------------------------------------------------------------


def r20_image_name(subject: str, session: str = "ses-1", suffix: str = ".nii.gz") -> str:
    """The R2.0 T1w file name: ``sub-r001s001_ses-1_space-MNI152NLin2009aSym_T1w.nii.gz``."""
    return f"{subject}_{session}_space-{ATLAS_SPACE}_T1w{suffix}"


def r20_mask_name(subject: str, session: str = "ses-1", suffix: str = ".nii.gz") -> str:
    """The R2.0 lesion mask file name: ``..._space-MNI152NLin2009aSym_label-L_desc-T1lesion_mask.nii.gz``."""
    return f"{subject}_{session}_space-{ATLAS_SPACE}_label-L_desc-T1lesion_mask{suffix}"


def r12_image_name(subject: str, suffix: str = ".nii.gz") -> str:
    """The R1.2 T1w file name: ``031768_t1w_deface_stx.nii.gz``."""
    return f"{subject}_t1w_deface_stx{suffix}"


def r12_mask_name(subject: str, index: int = 0, suffix: str = ".nii.gz") -> str:
    """The R1.2 name of lesion mask ``index``: ``031768_LesionSmooth_stx`` (0), ``031768_LesionSmooth_1_stx``
    (1), ..."""
    return f"{subject}_LesionSmooth{'' if index == 0 else f'_{index}'}_stx{suffix}"


def atlas_case_name(path: str | os.PathLike) -> str:
    """The case of an ATLAS file: ``sub-r001s001_ses-1`` (R2.0), ``031768_t01`` (R1.2, from its time-point
    folder); any other file name without ``.nii[.gz]``."""
    path = Path(path)
    match = _R20_IMAGE.match(path.name) or _R20_MASK.match(path.name)
    if match:
        return f"{match.group('sub')}_{match.group('ses')}"
    match = _R12_IMAGE.match(path.name) or _R12_MASK.match(path.name)
    if match and _TIMEPOINT.match(path.parent.name):
        return f"{match.group('id')}_{path.parent.name}"
    return re.sub(_NII, "", path.name, flags=re.I)


def atlas_output_name(metadict: Mapping[str, Any], saver: Any = None) -> dict[str, Any]:
    """``output_name_formatter`` for MONAI's ``SaveImage``: outputs are named after the case."""
    source = metadict.get("filename_or_obj", "")
    source = source[0] if isinstance(source, (list, tuple)) else source
    return {"subject": atlas_case_name(source), "idx": None}


# --------------------------------------------------------------------------------------------------
# Finding cases
# --------------------------------------------------------------------------------------------------


def _dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _scan(root: Path) -> list[tuple[str, Path]]:
    """``(layout, subject folder)`` of every subject under ``root`` (``root`` itself when it is one)."""
    if _SUBJECT.match(root.name):
        return [("r2.0", root)]
    if _SITE.match(root.name):
        return [("r1.2", subject) for subject in _dirs(root)]
    if _SITE.match(root.parent.name) and any(_TIMEPOINT.match(d.name) for d in _dirs(root)):
        return [("r1.2", root)]  # one R1.2 subject folder
    found: list[tuple[str, Path]] = []
    for folder, dirs, _ in os.walk(root):
        here = Path(folder)
        depth = len(here.relative_to(root).parts)
        keep = []
        for name in sorted(d for d in dirs if not d.startswith(".")):
            if _SUBJECT.match(name):
                found.append(("r2.0", here / name))
            elif _SITE.match(name):
                found += [("r1.2", subject) for subject in _dirs(here / name)]
            elif depth + 1 < _MAX_DEPTH:
                keep.append(name)
        dirs[:] = keep
    return sorted(found, key=lambda f: f[1].as_posix())


def _layout_of(root: Path, found: Sequence[tuple[str, Path]]) -> str:
    if not root.is_dir():
        raise DataFormatError(root, "dataset folder does not exist" if not root.exists() else "not a folder")
    layouts = sorted({layout for layout, _ in found})
    if not layouts:
        raise DataFormatError(root, _NO_CASES)
    if len(layouts) > 1:
        counts = ", ".join(f"{lay}: {sum(f[0] == lay for f in found)} subjects" for lay in layouts)
        raise DataFormatError(
            root, f"holds subjects of both ATLAS layouts ({counts}); pass the folder of one"
        )
    return layouts[0]


def _one(paths: Sequence[Path], case: str, what: str) -> Path:
    if len(paths) > 1:
        names = " and ".join(p.name for p in paths)
        raise DataFormatError(paths[0].parent, f"case {case}: several {what} files ({names}); keep one")
    return paths[0]


def _under_training(folder: Path) -> bool:
    """True when the nearest folder above ``folder`` named ``Training`` or ``Testing`` is ``Training`` (the
    labelled release)."""
    for parent in folder.resolve().parents:
        if parent.name.lower() in ("training", "testing"):
            return parent.name.lower() == "training"
    return False


def _unrecognised(files: Sequence[Path], used: Sequence[Path]) -> list[str]:
    """NIfTI files among ``files`` not in ``used`` whose names say they are masks."""
    return [
        p.name
        for p in files
        if p not in used and re.search(_NII, p.name, re.I) and re.search(r"mask|lesion|label", p.name, re.I)
    ]


def _r20_items(root: Path, subject_dir: Path) -> list[tuple[str, dict[str, Any] | DataFormatError]]:
    """``(case, item or the problem)`` of each session of one R2.0 subject folder."""
    subject = subject_dir.name
    sessions = [d for d in _dirs(subject_dir) if _SESSION.match(d.name)]
    if not sessions:
        return [
            (
                subject,
                DataFormatError(subject_dir, f"subject {subject}: no ses-*/anat/ folder with a T1w image"),
            )
        ]
    cohort_match = _R20_COHORT.match(subject)
    cohort = cohort_match.group(1).upper() if cohort_match else subject_dir.parent.name
    labelled = _under_training(subject_dir)
    out: list[tuple[str, dict[str, Any] | DataFormatError]] = []
    for session_dir in sessions:
        case = f"{subject}_{session_dir.name}"
        anat = session_dir / "anat"
        try:
            files = _files(anat)
            images, masks = [], []
            for path in files:
                match = _R20_IMAGE.match(path.name) or _R20_MASK.match(path.name)
                if not match:
                    continue
                if f"{match.group('sub')}_{match.group('ses')}".lower() != case.lower():
                    raise DataFormatError(
                        path, f"file of {match.group('sub')}_{match.group('ses')} in the folder of {case}"
                    )
                (images if _R20_IMAGE.match(path.name) else masks).append(path)
            if not images:
                expected = r20_image_name(subject, session_dir.name, ".nii[.gz]")
                raise DataFormatError(anat, f"case {case}: no T1w image ({expected})")
            image = _one(images, case, "T1w")
            item: dict[str, Any] = {
                "case": case,
                "patient": subject,
                "cohort": cohort,
                "session": session_dir.name,
                "layout": "r2.0",
                "image": image.relative_to(root).as_posix(),
            }
            if masks:
                rel = [m.relative_to(root).as_posix() for m in masks]
                item["label"] = rel[0] if len(rel) == 1 else rel
            elif labelled:
                expected = r20_mask_name(subject, session_dir.name, ".nii[.gz]")
                raise DataFormatError(
                    anat, f"case {case}: a Training subject without its lesion mask ({expected})"
                )
            elif _unrecognised(files, images):
                raise DataFormatError(
                    anat,
                    f"case {case}: no lesion mask named ..._label-L_desc-T1lesion_mask.nii.gz but "
                    f"unrecognised file(s) {_unrecognised(files, images)}; rename the mask",
                )
            out.append((case, item))
        except DataFormatError as err:
            out.append((case, err))
    return out


def _r12_items(root: Path, subject_dir: Path) -> list[tuple[str, dict[str, Any] | DataFormatError]]:
    """``(case, item or the problem)`` of each time point of one R1.2 subject folder."""
    subject = subject_dir.name
    timepoints = [d for d in _dirs(subject_dir) if _TIMEPOINT.match(d.name)]
    if not timepoints:
        expected = f"t01/{r12_image_name(subject, '.nii[.gz]')}"
        return [
            (
                subject,
                DataFormatError(
                    subject_dir, f"subject {subject}: no t<NN>/ folder with a T1w image ({expected})"
                ),
            )
        ]
    out: list[tuple[str, dict[str, Any] | DataFormatError]] = []
    for tp_dir in timepoints:
        case = f"{subject}_{tp_dir.name}"
        try:
            files = _files(tp_dir)
            images, masks = [], []
            for path in files:
                match = _R12_IMAGE.match(path.name) or _R12_MASK.match(path.name)
                if not match:
                    continue
                if match.group("id").lower() != subject.lower():
                    raise DataFormatError(
                        path, f"file of subject {match.group('id')} in the folder of {case}"
                    )
                if _R12_IMAGE.match(path.name):
                    images.append(path)
                else:
                    masks.append((int(match.group("k") or 0), path))
            if not images:
                raise DataFormatError(
                    tp_dir, f"case {case}: no T1w image ({r12_image_name(subject, '.nii[.gz]')})"
                )
            image = _one(images, case, "T1w")
            by_index: dict[int, list[Path]] = {}
            for index, path in masks:
                by_index.setdefault(index, []).append(path)
            mask_paths = [_one(by_index[k], case, f"lesion mask {k}") for k in sorted(by_index)]
            item: dict[str, Any] = {
                "case": case,
                "patient": subject,
                "cohort": subject_dir.parent.name,
                "session": tp_dir.name,
                "layout": "r1.2",
                "image": image.relative_to(root).as_posix(),
            }
            if mask_paths:
                rel = [m.relative_to(root).as_posix() for m in mask_paths]
                item["label"] = rel[0] if len(rel) == 1 else rel
            elif _under_training(tp_dir):
                raise DataFormatError(tp_dir, f"case {case}: a Training subject without a lesion mask")
            elif _unrecognised(files, images):
                raise DataFormatError(
                    tp_dir,
                    f"case {case}: no lesion mask named {r12_mask_name(subject, 0, '.nii.gz')} but "
                    f"unrecognised file(s) {_unrecognised(files, images)}; rename the mask",
                )
            out.append((case, item))
        except DataFormatError as err:
            out.append((case, err))
    return out


# --------------------------------------------------------------------------------------------------
# Checking one case
# --------------------------------------------------------------------------------------------------


def _check_3d(image: Any, path: Path, case: str, what: str) -> None:
    if len(image.shape) != 3:
        raise case_error(
            path, case, f"{what} is {len(image.shape)}D with shape {tuple(image.shape)}; expected 3D"
        )


def check_lesion_mask(mask: Any, source: str | os.PathLike, case: str | None = None) -> None:
    """A lesion mask holds finite, non-negative whole numbers (0/1; any non-zero value is lesion).

    Fractional values (a mask resampled with interpolation) or negative ones are rejected rather than
    guessed at: binarising them would move the lesion border.

    Raises:
        DataFormatError: naming ``source`` (and ``case`` when ``source`` does not).
    """
    data = np.asarray(mask)
    kind = data.dtype.kind
    if kind == "b" or data.size == 0:
        return
    problem = None
    if kind not in "iuf":
        problem = f"mask of dtype {data.dtype} is not numeric"
    elif kind == "f" and not np.isfinite(data).all():
        problem = f"mask has {int(data.size - np.count_nonzero(np.isfinite(data)))} NaN/inf voxels"
    elif data.min() < 0:
        problem = f"mask has negative values (min {float(data.min()):g}); expected 0/1"
    elif kind == "f" and not np.array_equal(np.round(data), data):
        sample = sorted({float(v) for v in data[np.round(data) != data][:3]})
        problem = f"mask has fractional values (e.g. {sample}); expected a binary 0/1 mask (not interpolated)"
    if problem is not None:
        raise case_error(source, case, problem) if case else DataFormatError(source, problem)


# --------------------------------------------------------------------------------------------------
# The adapter
# --------------------------------------------------------------------------------------------------


class ATLASAdapter(DatasetAdapter):
    """ATLAS R2.0 and R1.2 stroke lesion T1w scans, one case per scan, split by subject."""

    name = "atlas"
    title = "ATLAS stroke lesions"
    layouts = ATLAS_LAYOUTS
    no_data = _NO_CASES
    phantom_writer = "common.data.phantoms.atlas:make_atlas_phantoms"
    group_key = "patient"
    case_key = "case"
    label_scheme = BINARY_LESION

    def has_data(self, dataset_dir: str | os.PathLike) -> bool:
        root = Path(dataset_dir)
        return root.is_dir() and bool(_scan(root))

    def detect_layout(self, dataset_dir: str | os.PathLike) -> str:
        """``"r2.0"`` or ``"r1.2"``: the layout of the subjects under ``dataset_dir``.

        Raises:
            DataFormatError: the folder is missing, holds no ATLAS subjects, or subjects of both layouts.
        """
        root = Path(dataset_dir)
        return _layout_of(root, _scan(root) if root.is_dir() else [])

    def find_cases(self, dataset_dir: str | os.PathLike, on_error: OnError = "raise") -> Cases:
        """Every scan of every subject (see the module docstring), sorted by subject and session.

        Bad cases, each naming the case (or the subject when it has no scan): a subject folder without a
        session/time-point folder, a scan folder without its T1w image or with two, a ``Training`` scan
        without a mask, an unlabelled scan folder with unrecognised mask files, a file of another subject,
        or a case id found twice.

        Raises:
            DataFormatError: missing folder, no subjects or both layouts (in both modes); with ``"raise"``
                also a bad case.
        """
        check_on_error(on_error)
        root = Path(dataset_dir)
        found = _scan(root) if root.is_dir() else []
        layout = _layout_of(root, found)
        results: list[tuple[str, dict[str, Any] | DataFormatError]] = []
        for _, subject_dir in found:
            results += (_r20_items if layout == "r2.0" else _r12_items)(root, subject_dir)
        items: list[dict[str, Any]] = []
        problems: list[tuple[str, str]] = []
        seen: dict[str, str] = {}
        for case, result in results:
            if isinstance(result, dict) and case in seen:
                result = DataFormatError(root / result["image"], f"duplicate case {case} (also {seen[case]})")
            if isinstance(result, DataFormatError):
                if on_error == "raise":
                    raise result
                problems.append((case, str(result)))
                continue
            seen[case] = result["image"]
            items.append(result)
        items.sort(key=lambda it: (it["patient"], it["session"], it["case"]))
        return Cases(layout, items, problems)

    def check_case(self, item: Mapping[str, Any], base_dir: str | os.PathLike | None = None) -> None:
        """Raise :class:`DataFormatError` (naming the case and the problem) unless the case is usable.

        Checks: the T1w image and every mask exist and are 3D NIfTI; masks share the image's shape and
        affine (within 1e-3); no NaN/inf image voxels; masks hold finite non-negative whole numbers
        (:func:`check_lesion_mask`).
        """
        case = str(item.get("case", "?"))
        self.check_layout(str(item.get("layout")))
        base = Path(base_dir) if base_dir is not None else Path()
        raw = item.get("image")
        if not isinstance(raw, (str, os.PathLike)):
            raise case_error(base, case, f"image must be the one T1w file, got {raw!r}")
        path = base / raw
        image = open_nifti(path, case)
        _check_3d(image, path, case, "T1w image")
        label = item.get("label")
        paths = [] if label is None else [label] if isinstance(label, (str, os.PathLike)) else list(label)
        masks = []
        for rel in paths:
            mask_path = base / rel
            mask = open_nifti(mask_path, case)
            _check_3d(mask, mask_path, case, "lesion mask")
            check_same_grid(mask_path, case, "lesion mask", mask, "T1w image", image)
            masks.append((mask_path, mask))
        check_finite(image, path, case)
        for mask_path, mask in masks:
            check_lesion_mask(nifti_data(mask, mask_path, case), mask_path, case)

    def datalist_header(self, layout: str) -> dict[str, Any]:
        return {
            "name": f"ATLAS {layout.upper()} stroke lesions",
            "layout": layout,
            "modalities": ["t1w"],
            "labels": BINARY_LESION.describe(),
            "label_merge": "union",
        }


ADAPTER = ATLASAdapter()
