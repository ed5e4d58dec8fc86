"""DICOM input: the voxel grid of a series (:func:`dicom_affine`), and selected series as one :class:`Image`.

:class:`SeriesToImageOperator` subclasses the SDK's ``DICOMSeriesToVolumeOperator`` to stack several selected
series (one per channel), and to give a single-image series an affine (the SDK gives it none).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.deploy.core import Fragment, Image
from monai.deploy.operators.dicom_series_to_volume_operator import DICOMSeriesToVolumeOperator

from apps.deploy.operators.inputs import AFFINE_TOL, image_meta
from common.data.errors import DataFormatError

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def dicom_affine(first: Any, last: Any, n_slices: int, where: str | Path = "DICOM series") -> np.ndarray:
    """The LPS affine of a series' voxel grid indexed ``(column, row, slice)`` from its first and last image.

    Index ``i`` runs along a row (direction ``ImageOrientationPatient[:3]``, step ``PixelSpacing[1]``), ``j``
    down a column (``ImageOrientationPatient[3:]``, step ``PixelSpacing[0]``), ``k`` from the first to the
    last slice; a single image steps along the normal by ``SliceThickness`` (1 mm if absent).
    """
    for name in ("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing"):
        if name not in first:
            raise DataFormatError(where, f"image {getattr(first, 'SOPInstanceUID', '?')} has no {name}")
    iop = np.asarray([float(v) for v in first.ImageOrientationPatient])
    row, col = iop[:3], iop[3:]
    spacing_between_rows, spacing_between_columns = (float(v) for v in first.PixelSpacing)
    affine = np.eye(4)
    affine[:3, 0] = row * spacing_between_columns
    affine[:3, 1] = col * spacing_between_rows
    origin = np.asarray([float(v) for v in first.ImagePositionPatient])
    if n_slices > 1:
        affine[:3, 2] = (np.asarray([float(v) for v in last.ImagePositionPatient]) - origin) / (n_slices - 1)
    else:
        thickness = float(first.get("SliceThickness", None) or 1.0)
        affine[:3, 2] = np.cross(row, col) * thickness
    affine[:3, 3] = origin
    return affine


class SeriesToImageOperator(DICOMSeriesToVolumeOperator):
    """Selected DICOM series -> one channel-first :class:`Image` ``(C, X, Y, Z)`` in RAS.

    ``selection_names`` lists the selections of the series selector in channel order (BraTS: FLAIR, T1, T1ce,
    T2); every one must have matched a series of the first study, and all must share one voxel grid. Without
    it the first selected series is the one channel. Slices are ordered along the normal as the SDK does; the
    affine is computed here (also for a single image, which the SDK leaves without one).
    """

    def __init__(
        self,
        fragment: Fragment,
        *args: Any,
        selection_names: Sequence[str] | None = None,
        input_folder: str | Path | None = None,
        **kwargs: Any,
    ):
        self.selection_names = list(selection_names) if selection_names else None
        self.input_folder = Path(input_folder) if input_folder else Path("DICOM input")
        super().__init__(fragment, *args, affine_lps_to_ras=True, **kwargs)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        op_output.emit(self.to_image(op_input.receive(self.input_name_series)), self.output_name_image)

    def compute_affine_transform(self, s_1: Any, s_n: Any, n: int, series: Any) -> None:
        lps = dicom_affine(s_1.get_native_sop_instance(), s_n.get_native_sop_instance(), n, self.input_folder)
        setattr(series, self.ATTRIBUTE_DICOM_AFFINE, lps)
        setattr(series, self.ATTRIBUTE_NIFTI_AFFINE, _LPS_TO_RAS @ lps)

    def prepare_series(self, series: Any) -> None:
        super().prepare_series(series)
        instances = series.get_sop_instances()
        if len(instances) == 1:  # the SDK computes no affine for one image
            self.compute_affine_transform(instances[0], instances[0], 1, series)

    def to_image(self, study_selected_series_list: Sequence[Any]) -> Image:
        wanted = self.selection_names or ["(first selection)"]
        if not study_selected_series_list:
            raise DataFormatError(self.input_folder, f"no DICOM series matched the selection rules {wanted}")
        study = study_selected_series_list[0]
        by_name: dict[str, Any] = {}
        for selected in study.selected_series:
            by_name.setdefault(selected.selection_name, selected)
        names = self.selection_names or [study.selected_series[0].selection_name]
        missing = [name for name in names if name not in by_name]
        if missing:
            found = sorted(str(s.SeriesDescription) for s in study.study.get_all_series())
            raise DataFormatError(
                self.input_folder,
                f"no series for {missing} in study {study.study.StudyInstanceUID}; series descriptions "
                f"found: {found}",
            )
        arrays, affines, uids = [], [], []
        for name in names:
            series = by_name[name].series
            self.prepare_series(series)
            voxels = np.asarray(self.generate_voxel_data(series), dtype=np.float32)  # (slices, rows, columns)
            arrays.append(voxels.transpose(2, 1, 0))
            affines.append(np.asarray(getattr(series, self.ATTRIBUTE_NIFTI_AFFINE), dtype=np.float64))
            uids.append(str(series.SeriesInstanceUID))
        for name, array, affine, uid in zip(names[1:], arrays[1:], affines[1:], uids[1:]):
            if array.shape != arrays[0].shape or not np.allclose(affine, affines[0], atol=AFFINE_TOL):
                raise DataFormatError(
                    self.input_folder,
                    f"series {uid} ({name}, grid {array.shape}) is not on the voxel grid of series "
                    f"{uids[0]} ({names[0]}, grid {arrays[0].shape}); the channels must share one grid",
                )
        array = np.stack(arrays)
        meta = image_meta(affines[0], array.shape[1:], uids[0], re.sub(r"[^\w.-]", "_", uids[0]))
        meta["series_instance_uids"] = uids
        return Image(array, meta)
