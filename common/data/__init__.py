"""Data access: readers and writers for the data sets, datalists, synthetic phantoms.

* :mod:`common.data.figshare`: the Figshare brain-tumour ``.mat`` slices (reader, writer, MONAI reader).
* :mod:`common.data.datalist`: patient-wise train/validation/test datalists.
* :mod:`common.data.brats`: BraTS 2020/2021/2023 and MSD Task01 cases: layouts, checks, labels, datalists.
* :mod:`common.data.phantoms`: synthetic data sets in the real file formats.
* :mod:`common.data.inference_inputs`: find and check inference inputs, skipping bad files.
* :mod:`common.data.atomic`, :mod:`common.data.writers`: atomic file output.
"""

from common.data.atomic import atomic_output, atomic_write_text
from common.data.brats import (
    BRATS_LABELS,
    BRATS_LAYOUTS,
    BRATS_MODALITIES,
    BRATS_REGIONS,
    FromCanonicalBraTSLabelsd,
    MapBraTSLabelsd,
    brats_case_name,
    brats_output_name,
    brats_regions,
    build_brats_datalist,
    check_brats_case,
    detect_brats_layout,
    find_brats_cases,
    from_canonical_labels,
    load_brats_datalist_section,
    prepare_brats_datalist,
    to_canonical_labels,
)
from common.data.datalist import (
    DATALIST_SECTIONS,
    build_figshare_datalist,
    find_figshare_files,
    load_datalist_section,
    prepare_figshare_datalist,
    split_counts,
    write_datalist,
)
from common.data.errors import DataFormatError
from common.data.figshare import (
    FIGSHARE_CLASSES,
    FIGSHARE_FIELDS,
    FIGSHARE_PIXEL_SPACING_MM,
    FigshareMatReader,
    FigshareSlice,
    mask_border,
    read_cvind,
    read_figshare_mat,
    write_cvind,
    write_figshare_mat,
)
from common.data.inference_inputs import (
    check_slice_file,
    find_slice_files,
    prepare_brats_inputs,
    prepare_slice_inputs,
)
from common.data.phantoms import make_brats_phantoms, make_figshare_phantoms
from common.data.writers import atomic_writer_for

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
    "make_brats_phantoms",
    "prepare_brats_datalist",
    "to_canonical_labels",
    "DATALIST_SECTIONS",
    "FIGSHARE_CLASSES",
    "FIGSHARE_FIELDS",
    "FIGSHARE_PIXEL_SPACING_MM",
    "DataFormatError",
    "FigshareMatReader",
    "FigshareSlice",
    "atomic_output",
    "atomic_write_text",
    "atomic_writer_for",
    "build_figshare_datalist",
    "check_slice_file",
    "find_slice_files",
    "find_figshare_files",
    "load_datalist_section",
    "make_figshare_phantoms",
    "mask_border",
    "prepare_figshare_datalist",
    "prepare_brats_inputs",
    "prepare_slice_inputs",
    "read_cvind",
    "read_figshare_mat",
    "split_counts",
    "write_cvind",
    "write_datalist",
    "write_figshare_mat",
]
