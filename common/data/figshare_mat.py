"""Figshare brain-tumour slices of Cheng et al. (MATLAB v7.3 ``.mat``): reader, writer, MONAI reader.

This module knows the file format only; finding the slices of a folder, splitting them by patient and
checking them is the Figshare adapter's work (:mod:`common.data.figshare`).

The data set has 3064 T1-weighted contrast-enhanced slices of 233 patients, one file per slice
(``1.mat`` ... ``3064.mat``). Each file is a MATLAB v7.3 MAT-file, i.e. an HDF5 file with a 512-byte
user block holding a MATLAB text header, and a struct ``cjdata`` with the fields

* ``image``: int16, 512×512 (some 256×256),
* ``tumorMask``: uint8 0/1, same shape as the image,
* ``label``: double 1×1, 1 = meningioma, 2 = glioma, 3 = pituitary tumour,
* ``PID``: patient id, a MATLAB ``char`` (uint16 character codes),
* ``tumorBorder``: double, boundary points ``x1, y1, x2, y2, ...``.

Orientation convention (used everywhere in this project): MATLAB stores arrays column-major, so
h5py returns the *transpose* of MATLAB's array. We keep the array exactly as h5py returns it:
**axis 0 is the image column (x), axis 1 is the image row (y)**; MATLAB's ``I(row, col)`` is our
``arr[col, row]``. This matches MONAI's ``PILReader`` (``reverse_indexing=True``) and the x-first
order of NIfTI, so our arrays have shape ``(W, H)`` and ``arr.T`` is the picture as MATLAB shows it.

Pixel spacing is not stored in the files; the MMRAN paper (section 4.1) gives 0.49 × 0.49 mm
(:data:`FIGSHARE_PIXEL_SPACING_MM`), which holds for the 512 × 512 slices. Some slices are 256 × 256 of
the same head, so the reader assumes one field of view for every slice, :data:`FIGSHARE_FIELD_OF_VIEW_MM`
= 512 × 0.49 mm = 250.88 mm, and gives each slice the spacing of its own grid (0.98 mm at 256 × 256).
Resizing then scales the spacing with it, so HD95 in mm means the same for both slice sizes.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np
from monai.data import ImageReader
from monai.data.utils import is_supported_format
from monai.utils import MetaKeys, SpaceKeys, ensure_tuple
from scipy import ndimage
from scipy.io import loadmat

from common.data.atomic import atomic_output
from common.data.errors import DataFormatError

__all__ = [
    "FIGSHARE_CLASSES",
    "FIGSHARE_FIELDS",
    "FIGSHARE_FIELD_OF_VIEW_MM",
    "FIGSHARE_PIXEL_SPACING_MM",
    "FigshareMatReader",
    "FigshareSlice",
    "read_cvind",
    "mask_border",
    "read_figshare_mat",
    "write_cvind",
    "write_figshare_mat",
]

FIGSHARE_CLASSES: tuple[str, str, str] = ("meningioma", "glioma", "pituitary")
"""Class names; class index ``i`` is Figshare ``label == i + 1``."""

FIGSHARE_PIXEL_SPACING_MM: float = 0.49
"""Pixel size of the 512 × 512 Figshare slices in mm (MMRAN paper, section 4.1); not stored in the files."""

FIGSHARE_FIELD_OF_VIEW_MM: float = 512 * FIGSHARE_PIXEL_SPACING_MM
"""In-plane extent assumed for every slice (250.88 mm): 512 pixels of 0.49 mm; see the module docstring."""

FIGSHARE_FIELDS: tuple[str, ...] = ("image", "tumorMask", "label", "PID", "tumorBorder")
"""The fields of the ``cjdata`` struct that :func:`read_figshare_mat` knows."""

_STRUCT = "cjdata"
_USERBLOCK_SIZE = 512
_MATLAB_CLASS_BY_DTYPE = {
    "int8": "int8",
    "uint8": "uint8",
    "int16": "int16",
    "uint16": "uint16",
    "int32": "int32",
    "uint32": "uint32",
    "int64": "int64",
    "uint64": "uint64",
    "float32": "single",
    "float64": "double",
}


@dataclass
class FigshareSlice:
    """One Figshare slice; fields that were not read are ``None``.

    Attributes:
        image: the image as stored (int16 for the real data), shape ``(W, H)``: axis 0 = x (column).
        mask: the tumour mask as uint8 0/1, same shape and orientation as ``image``.
        label: the Figshare label 1 (meningioma), 2 (glioma) or 3 (pituitary); class index is ``label - 1``.
        patient_id: the patient id string (``cjdata.PID``).
        border: ``cjdata.tumorBorder`` flattened to 1-D float64 ``[x1, y1, x2, y2, ...]``.
    """

    image: np.ndarray | None
    mask: np.ndarray | None
    label: int | None
    patient_id: str | None
    border: np.ndarray | None


# --------------------------------------------------------------------------------------- reading


def _open_v73(path: str | os.PathLike) -> h5py.File:
    """Open a MATLAB v7.3 file read-only, raising :class:`DataFormatError` for anything else."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "file not found" if not path.exists() else "not a regular file")
    try:
        return h5py.File(path, "r")
    except OSError as err:  # diagnose only on failure: one open per file on the fast path
        reason = err
    try:
        is_hdf5 = h5py.is_hdf5(path)
        with open(path, "rb") as fh:
            head = fh.read(128)
    except OSError as err:  # unreadable file (permissions, I/O error)
        raise DataFormatError(path, f"cannot be read ({err})") from err
    if is_hdf5:
        problem = f"cannot be opened as HDF5, the file is corrupt or truncated ({reason})"
    elif head.startswith(b"MATLAB 5.0 MAT-file"):
        problem = (
            "is a MATLAB v5 MAT-file, not MATLAB v7.3 (HDF5); re-save it in MATLAB with save(..., '-v7.3')"
        )
    else:
        problem = (
            "not an HDF5 (MATLAB v7.3) file; it may be an older MATLAB v5 .mat file, "
            "or corrupt/truncated (re-download it)"
        )
    raise DataFormatError(path, problem) from reason


def _is_matlab_empty(ds: h5py.Dataset) -> bool:
    """MATLAB v7.3 writes empty arrays as their dimensions plus the attribute ``MATLAB_empty``."""
    return bool(ds.attrs.get("MATLAB_empty", 0))


def _decode_char(path: Path, ds: h5py.Dataset) -> str:
    """Decode a MATLAB ``char`` dataset (uint16 character codes) or a plain HDF5 string."""
    if _is_matlab_empty(ds):
        return ""
    data = ds[()]
    if isinstance(data, bytes):
        return data.decode("utf-8")
    if isinstance(data, str):
        return data
    arr = np.asarray(data)
    if arr.dtype.kind in "SO":
        return "".join(x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in arr.ravel())
    if arr.dtype.kind not in "iu":
        raise DataFormatError(path, f"cjdata/PID has dtype {arr.dtype}, expected MATLAB char (uint16 codes)")
    return "".join(chr(int(c)) for c in arr.ravel())


def _read_label(path: Path, ds: h5py.Dataset) -> int:
    """Read ``cjdata/label`` and check it is 1, 2 or 3."""
    arr = np.asarray(ds[()])
    if arr.size != 1 or arr.dtype.kind not in "iuf":
        problem = f"cjdata/label must be one number, got shape {arr.shape} dtype {arr.dtype}"
        raise DataFormatError(path, problem)
    value = float(arr.ravel()[0])
    if value not in (1.0, 2.0, 3.0):
        problem = f"cjdata/label is {value:g}, expected 1 (meningioma), 2 (glioma) or 3 (pituitary)"
        raise DataFormatError(path, problem)
    return int(value)


def _read_image(path: Path, ds: h5py.Dataset) -> np.ndarray:
    """Read ``cjdata/image``: 2-D, numeric, finite; returned as stored."""
    if len(ds.shape) != 2:
        raise DataFormatError(path, f"cjdata/image must be 2-D, got shape {ds.shape}")
    if ds.dtype.kind not in "iuf":
        raise DataFormatError(path, f"cjdata/image has non-numeric dtype {ds.dtype}")
    image = np.asarray(ds[()])
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise DataFormatError(path, f"cjdata/image has {int((~np.isfinite(image)).sum())} NaN/inf values")
    return image


def _read_mask(path: Path, ds: h5py.Dataset, image_shape: tuple[int, ...] | None) -> np.ndarray:
    """Read ``cjdata/tumorMask``: same shape as the image, values in {0, 1}; returned as uint8."""
    if image_shape is not None and tuple(ds.shape) != tuple(image_shape):
        raise DataFormatError(
            path,
            f"cjdata/tumorMask has shape {tuple(ds.shape)} but cjdata/image has shape {tuple(image_shape)}",
        )
    if len(ds.shape) != 2:
        raise DataFormatError(path, f"cjdata/tumorMask must be 2-D, got shape {ds.shape}")
    if ds.dtype.kind not in "iufb":
        raise DataFormatError(path, f"cjdata/tumorMask has non-numeric dtype {ds.dtype}")
    mask = np.asarray(ds[()])
    bad = (mask != 0) & (mask != 1)
    if bad.any():
        values = np.unique(mask[bad])[:5]
        problem = f"cjdata/tumorMask must hold only 0 and 1, found values {values.tolist()}"
        raise DataFormatError(path, problem)
    return mask.astype(np.uint8)


def _read_fields(
    path: str | os.PathLike, required: Sequence[str], optional: Sequence[str] = ()
) -> FigshareSlice:
    """Read the ``required`` fields (missing ones are an error) and those of ``optional`` that exist."""
    unknown = [f for f in (*required, *optional) if f not in FIGSHARE_FIELDS]
    if unknown:
        raise ValueError(f"unknown Figshare field(s) {unknown}; known fields are {FIGSHARE_FIELDS}")
    path = Path(path)
    out = FigshareSlice(image=None, mask=None, label=None, patient_id=None, border=None)
    with _open_v73(path) as f:
        try:
            group = f.get(_STRUCT)
            if not isinstance(group, h5py.Group):
                raise DataFormatError(path, f"no group '{_STRUCT}' (top-level entries: {sorted(f.keys())})")
            missing = [name for name in required if name not in group]
            if missing:
                problem = f"{_STRUCT} has no field(s) {missing} (fields: {sorted(group.keys())})"
                raise DataFormatError(path, problem)
            wanted = [*required, *(name for name in optional if name in group and name not in required)]
            for name in wanted:
                if not isinstance(group[name], h5py.Dataset):
                    raise DataFormatError(path, f"{_STRUCT}/{name} is not a dataset")
            if "image" in wanted:
                out.image = _read_image(path, group["image"])
            if "tumorMask" in wanted:
                image_ds = group.get("image")
                image_shape = image_ds.shape if isinstance(image_ds, h5py.Dataset) else None
                out.mask = _read_mask(path, group["tumorMask"], image_shape)
            if "label" in wanted:
                out.label = _read_label(path, group["label"])
            if "PID" in wanted:
                out.patient_id = _decode_char(path, group["PID"]).strip()
            if "tumorBorder" in wanted:
                ds = group["tumorBorder"]
                empty = _is_matlab_empty(ds)
                out.border = np.zeros(0) if empty else np.asarray(ds[()], np.float64).ravel()
        except OSError as err:  # HDF5 read errors inside a damaged file
            raise DataFormatError(path, f"cannot be read, the file is corrupt or truncated ({err})") from err
    return out


def read_figshare_mat(
    path: str | os.PathLike, fields: Sequence[str] = ("image", "tumorMask", "label", "PID")
) -> FigshareSlice:
    """Read the requested fields of one Figshare slice file.

    Only the requested datasets are read, so ``fields=("label", "PID")`` is fast (used to build the
    patient-wise splits over all 3064 files).

    Args:
        path: a MATLAB v7.3 ``.mat`` file with the struct ``cjdata``.
        fields: any of ``"image"``, ``"tumorMask"``, ``"label"``, ``"PID"``, ``"tumorBorder"``.

    Returns:
        A :class:`FigshareSlice`; the image is returned as stored (int16; the caller scales it), the
        mask as uint8, both with axis 0 = x (image column), see the module docstring.

    Raises:
        DataFormatError: the file is missing, not HDF5/v7.3, has no ``cjdata`` or a requested field, or
            holds bad values (non-2-D or non-finite image, mask shape or values, label not 1..3).
        ValueError: ``fields`` names an unknown field.
    """
    return _read_fields(path, tuple(fields))


# --------------------------------------------------------------------------------------- MONAI reader


class _MatImage(NamedTuple):
    """What :meth:`FigshareMatReader.read` returns: the file name and its slice."""

    filename: str
    slice: FigshareSlice


class FigshareMatReader(ImageReader):
    """MONAI image reader for the Figshare ``.mat`` slices, for ``LoadImage(d)(reader=...)``.

    The array keeps our x-first orientation (axis 0 = image column, see the module docstring), like
    MONAI's ``PILReader`` with ``reverse_indexing=True``. It is 2-D without a channel
    (``original_channel_dim`` is NaN), so ``EnsureChannelFirst(d)`` gives ``(1, W, H)``. The affine is
    ``diag(fov / W, fov / H, 1, 1)``: the slice spans ``field_of_view_mm`` whatever its size (see the module
    docstring), so ``MetaTensor.pixdim`` is 0.49 mm for a 512 × 512 slice and 0.98 mm for a 256 × 256 one.

    Args:
        field: ``"image"`` (returned as float32) or ``"tumorMask"`` (returned as uint8; note that
            ``LoadImage`` casts to its ``dtype``, float32 by default).
        field_of_view_mm: in-plane extent of every slice, default :data:`FIGSHARE_FIELD_OF_VIEW_MM`.

    Besides MONAI's usual keys, the meta data hold ``figshare_label`` (1..3) and ``patient_id`` when
    the file has them.
    """

    def __init__(self, field: str = "image", field_of_view_mm: float | None = None):
        super().__init__()
        if field not in ("image", "tumorMask"):
            raise ValueError(f"field must be 'image' or 'tumorMask', got {field!r}")
        fov = FIGSHARE_FIELD_OF_VIEW_MM if field_of_view_mm is None else float(field_of_view_mm)
        if not fov > 0:
            raise ValueError(f"field_of_view_mm must be positive, got {field_of_view_mm}")
        self.field = field
        self.field_of_view_mm = fov

    def verify_suffix(self, filename: Sequence[str | os.PathLike] | str | os.PathLike) -> bool:
        """True when every file name ends with ``.mat``."""
        return is_supported_format(filename, ["mat"])

    def read(self, data: Sequence[str | os.PathLike] | str | os.PathLike, **kwargs: Any) -> _MatImage:
        """Read ``self.field`` (plus label and PID when present) from one file (a path or a 1-sequence)."""
        filenames = ensure_tuple(data)
        if len(filenames) != 1:
            raise ValueError(f"FigshareMatReader reads one file per item, got {len(filenames)}: {filenames}")
        filename = os.fspath(filenames[0])
        return _MatImage(filename, _read_fields(filename, (self.field,), optional=("label", "PID")))

    def get_data(self, img: _MatImage) -> tuple[np.ndarray, dict]:
        """Return the 2-D array and a MONAI meta dict (affine, spatial shape, channel dim, ids)."""
        if isinstance(img, (list, tuple)) and not isinstance(img, _MatImage):
            if len(img) != 1:
                raise ValueError(f"FigshareMatReader handles one image per item, got {len(img)}")
            img = img[0]
        sl = img.slice
        if self.field == "image":
            array = np.asarray(sl.image, dtype=np.float32)
        else:
            array = np.asarray(sl.mask, dtype=np.uint8)
        spacing = [self.field_of_view_mm / n for n in array.shape]
        affine = np.diag([*spacing, 1.0, 1.0])
        meta: dict[str, Any] = {
            MetaKeys.AFFINE: affine,
            MetaKeys.ORIGINAL_AFFINE: affine.copy(),
            MetaKeys.SPATIAL_SHAPE: np.asarray(array.shape),
            MetaKeys.ORIGINAL_CHANNEL_DIM: float("nan"),
            MetaKeys.SPACE: SpaceKeys.RAS,
            "filename_or_obj": img.filename,
        }
        if sl.label is not None:
            meta["figshare_label"] = sl.label
        if sl.patient_id is not None:
            meta["patient_id"] = sl.patient_id
        return array, meta


# --------------------------------------------------------------------------------------- writing


def _matlab_header() -> bytes:
    """The 128-byte MATLAB v7.3 header that opens the 512-byte HDF5 user block."""
    created = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime())
    text = f"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: {created} HDF5 schema 1.00 .".encode("ascii")
    # 116 bytes of text, 8 bytes of subsystem data offset, version 0x0200, endian indicator "IM".
    return text.ljust(116, b" ")[:116] + b"\x00" * 8 + b"\x00\x02" + b"IM"


@contextlib.contextmanager
def _atomic_v73_file(path: str | os.PathLike) -> Iterator[h5py.File]:
    """Yield a new HDF5 file with a MATLAB v7.3 user block; it replaces ``path`` only on success."""
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w", userblock_size=_USERBLOCK_SIZE) as f:
            yield f
        with open(tmp, "r+b") as fh:
            fh.write(_matlab_header())


def _set_class(obj: h5py.HLObject, matlab_class: str) -> None:
    """Write the ``MATLAB_class`` attribute as a fixed-length ASCII string, as MATLAB does."""
    obj.attrs.create("MATLAB_class", np.bytes_(matlab_class))


def _write_numeric(group: h5py.Group, name: str, data: np.ndarray) -> None:
    """Write a numeric array as-is (h5py order) with its ``MATLAB_class``; empty arrays the MATLAB way."""
    data = np.asarray(data)
    if data.dtype == np.bool_:
        data, matlab_class = data.astype(np.uint8), "logical"
    else:
        matlab_class = _MATLAB_CLASS_BY_DTYPE.get(data.dtype.name, "")
        if not matlab_class:
            raise ValueError(f"cannot write dtype {data.dtype} as a MATLAB array ({name})")
    if data.size == 0:
        ds = group.create_dataset(name, data=np.asarray(data.shape[::-1], dtype=np.uint64))
        ds.attrs.create("MATLAB_empty", np.uint8(1))
    else:
        ds = group.create_dataset(name, data=data)
    _set_class(ds, matlab_class)


def _write_char(group: h5py.Group, name: str, text: str) -> None:
    """Write a MATLAB ``char`` row vector: uint16 codes stored with h5py shape ``(n, 1)``."""
    codes = np.array([ord(c) for c in text], dtype=np.uint16).reshape(-1, 1)
    if any(ord(c) > 0xFFFF for c in text):
        raise ValueError(f"{name} has characters outside the MATLAB char range: {text!r}")
    if codes.size == 0:
        ds = group.create_dataset(name, data=np.array([0, 1], dtype=np.uint64))
        ds.attrs.create("MATLAB_empty", np.uint8(1))
    else:
        ds = group.create_dataset(name, data=codes)
    _set_class(ds, "char")
    ds.attrs.create("MATLAB_int_decode", np.int32(2))


def mask_border(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of a mask as a flat ``[x1, y1, x2, y2, ...]`` float64 vector.

    ``x`` is the axis-0 index and ``y`` the axis-1 index, 1-based as MATLAB coordinates, and the
    points are ordered by angle around the mask centroid. (The exact convention of ``tumorBorder`` in
    the real files is not relied on anywhere in this project.)
    """
    mask = np.asarray(mask) != 0
    edge = mask & ~ndimage.binary_erosion(mask, border_value=0)
    xs, ys = np.nonzero(edge)
    if xs.size == 0:
        return np.zeros(0, dtype=np.float64)
    angle = np.arctan2(ys - ys.mean(), xs - xs.mean())
    order = np.lexsort((ys, xs, angle))
    return np.stack([xs[order] + 1.0, ys[order] + 1.0], axis=1).ravel()


def write_figshare_mat(
    path: str | os.PathLike,
    image: np.ndarray,
    mask: np.ndarray,
    label: int,
    patient_id: str,
    border: np.ndarray | None = None,
) -> Path:
    """Write one slice in the MATLAB v7.3 layout of the Figshare files, atomically.

    The arrays are in our x-first convention (axis 0 = image column), which is exactly what h5py
    stores for a MATLAB array, so they are written as-is; MATLAB then sees ``image.T``. The label is a
    1×1 double and the PID a MATLAB ``char`` (uint16 codes, h5py shape ``(n, 1)``); every dataset
    carries its ``MATLAB_class`` and the struct group ``cjdata`` has ``MATLAB_class = "struct"``.

    Args:
        path: output ``.mat`` file; parent folders are created. The file is written to a temporary
            file in the same folder and moved into place with ``os.replace``.
        image: 2-D array (int16 for real-like data; any numeric dtype is accepted).
        mask: 0/1 array of the image's shape, written as uint8.
        label: Figshare label 1, 2 or 3.
        patient_id: patient id string.
        border: flat ``[x1, y1, ...]`` vector; ``None`` computes it from the mask (:func:`mask_border`).

    Returns:
        ``Path(path)``.

    Raises:
        ValueError: the inputs do not form a valid slice.
    """
    image = np.asarray(image)
    mask = np.asarray(mask)
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {image.shape}")
    if mask.shape != image.shape:
        raise ValueError(f"mask shape {mask.shape} differs from image shape {image.shape}")
    if ((mask != 0) & (mask != 1)).any():
        raise ValueError("mask must hold only 0 and 1")
    if int(label) != label or int(label) not in (1, 2, 3):
        raise ValueError(f"label must be 1, 2 or 3, got {label}")
    border = mask_border(mask) if border is None else np.asarray(border, dtype=np.float64).ravel()
    with _atomic_v73_file(path) as f:
        group = f.create_group(_STRUCT)
        _set_class(group, "struct")
        _write_numeric(group, "label", np.array([[float(label)]], dtype=np.float64))
        _write_char(group, "PID", str(patient_id))
        _write_numeric(group, "image", image)
        _write_numeric(group, "tumorBorder", border.reshape(1, -1))
        _write_numeric(group, "tumorMask", mask.astype(np.uint8))
        fields = np.empty(5, dtype=object)
        for i, name in enumerate(("label", "PID", "image", "tumorBorder", "tumorMask")):
            fields[i] = np.frombuffer(name.encode("ascii"), dtype="S1")
        group.attrs.create("MATLAB_fields", fields, dtype=h5py.vlen_dtype(np.dtype("S1")))
    return Path(path)


# --------------------------------------------------------------------------------------- cvind.mat


def write_cvind(path: str | os.PathLike, cvind: Sequence[int] | np.ndarray) -> Path:
    """Write ``cvind.mat`` (MATLAB v7.3): variable ``cvind``, an N×1 double column of fold ids."""
    values = np.asarray(cvind, dtype=np.float64).ravel()
    with _atomic_v73_file(path) as f:
        _write_numeric(f, "cvind", values.reshape(1, -1))  # h5py (1, N) == MATLAB N×1
    return Path(path)


def read_cvind(path: str | os.PathLike) -> np.ndarray:
    """Read the 5-fold ids of ``cvind.mat`` (one per slice, in slice-number order).

    Both MATLAB v7.3 (HDF5) and older v5 files (via ``scipy.io.loadmat``) are supported.

    Returns:
        1-D int64 array with values in 1..5.

    Raises:
        DataFormatError: the file is missing or unreadable, has no variable ``cvind``, or holds values
            that are not integers 1..5.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "file not found")
    if h5py.is_hdf5(path):
        try:
            with h5py.File(path, "r") as f:
                if not isinstance(f.get("cvind"), h5py.Dataset):
                    raise DataFormatError(path, f"no variable 'cvind' (variables: {sorted(f.keys())})")
                raw = np.asarray(f["cvind"][()])
        except OSError as err:
            raise DataFormatError(path, f"cannot be read, the file is corrupt or truncated ({err})") from err
    else:
        try:
            content = loadmat(path, variable_names=["cvind"])
        except Exception as err:  # scipy raises several types for bad files
            raise DataFormatError(path, f"not a readable MATLAB file (v5 or v7.3): {err}") from err
        if "cvind" not in content:
            raise DataFormatError(path, "no variable 'cvind'")
        raw = np.asarray(content["cvind"])
    if raw.dtype.kind not in "iuf" or raw.size == 0:
        problem = f"cvind must be a non-empty numeric vector, got dtype {raw.dtype} size {raw.size}"
        raise DataFormatError(path, problem)
    values = raw.astype(np.float64).ravel()
    if not np.isin(values, (1, 2, 3, 4, 5)).all():
        bad = np.unique(values[~np.isin(values, (1, 2, 3, 4, 5))])[:5]
        raise DataFormatError(path, f"cvind must hold fold ids 1..5, found {bad.tolist()}")
    return values.astype(np.int64)
