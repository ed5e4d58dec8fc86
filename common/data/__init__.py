"""Data access: a generic core plus one adapter module per data set.

Generic core, each piece written once:

* :mod:`~common.data.adapter`: the interface every data-set adapter implements;
* :mod:`~common.data.registry`: the one place data sets are registered (name -> adapter module);
* :mod:`~common.data.splits`: group-wise splits (by ratio, k-fold, leave-one-group-out), stratified;
* :mod:`~common.data.datalist`: build, write and load MONAI datalists of any registered data set;
* :mod:`~common.data.inference_inputs`: find and check inference inputs, skipping and reporting bad ones;
* :mod:`~common.data.label_codes`, :mod:`~common.data.label_transforms`: data-set label codes <-> canonical;
* :mod:`~common.data.atomic`, :mod:`~common.data.writers`: atomic file output;
  :mod:`~common.data.errors`: the one error type for bad data;
* :mod:`~common.data.nifti_checks`: checks of one case's NIfTI files (naming the case), for 3D adapters.

Adapters: :mod:`~common.data.figshare` (Figshare ``.mat`` slices; file format in
:mod:`~common.data.figshare_mat`), :mod:`~common.data.brats` (BraTS 2018-2023+, MSD Task01),
:mod:`~common.data.slices` (any 2D image file, for 2D inference), :mod:`~common.data.isbi2015` (ISBI 2015
longitudinal MS lesions; several raters' masks combined by :mod:`~common.data.raters`),
:mod:`~common.data.atlas` (ATLAS R2.0/R1.2 stroke lesions), :mod:`~common.data.ncct` (non-contrast head CT
infarcts, Hounsfield-unit checks and windows), :mod:`~common.data.image_classes` (brain-tumour images in
class folders or a CSV, labelled for tumour presence or source) and :mod:`~common.data.collection_slices`
(labelled axial slices of BraTS collections and Figshare slices, for the same two tasks). Phantom writers,
one per data set: :mod:`~common.data.phantoms`.

Importing this package imports none of them: submodules and the names below are imported on first
attribute access (PEP 562), so ``import common.metrics`` does not load h5py for the Figshare reader.
Configs may write ``common.data.<name>`` or ``common.data.<module>.<name>``.
"""

from __future__ import annotations

import importlib
from typing import Any

_SUBMODULES = frozenset(
    {
        "adapter",
        "atlas",
        "atomic",
        "brats",
        "collection_slices",
        "datalist",
        "errors",
        "figshare",
        "figshare_mat",
        "image_classes",
        "inference_inputs",
        "isbi2015",
        "label_codes",
        "label_transforms",
        "ncct",
        "nifti_checks",
        "phantoms",
        "raters",
        "registry",
        "slices",
        "splits",
        "writers",
    }
)

_EXPORTS: dict[str, str] = {
    # generic core
    "DataFormatError": "errors",
    "atomic_output": "atomic",
    "atomic_write_text": "atomic",
    "atomic_writer_for": "writers",
    "Cases": "adapter",
    "DatasetAdapter": "adapter",
    "ADAPTERS": "registry",
    "ensure_data": "registry",
    "get_adapter": "registry",
    "write_phantoms": "registry",
    "fold_groups": "splits",
    "leave_one_group_out": "splits",
    "split_by_group": "splits",
    "split_counts": "splits",
    "split_with_test": "splits",
    "DATALIST_SECTIONS": "datalist",
    "build_datalist": "datalist",
    "load_datalist_section": "datalist",
    "prepare_datalist": "datalist",
    "write_datalist": "datalist",
    "prepare_inputs": "inference_inputs",
    "remap_labels": "label_codes",
    "MapLabelCodesd": "label_transforms",
    # Figshare
    "FIGSHARE_CLASSES": "figshare_mat",
    "FIGSHARE_FIELDS": "figshare_mat",
    "FIGSHARE_FIELD_OF_VIEW_MM": "figshare_mat",
    "FIGSHARE_PIXEL_SPACING_MM": "figshare_mat",
    "FigshareMatReader": "figshare_mat",
    "FigshareSlice": "figshare_mat",
    "mask_border": "figshare_mat",
    "read_cvind": "figshare_mat",
    "read_figshare_mat": "figshare_mat",
    "write_cvind": "figshare_mat",
    "write_figshare_mat": "figshare_mat",
    "find_figshare_files": "figshare",
    # 2D slices
    "SLICE_SUFFIXES": "slices",
    "check_slice_file": "slices",
    "find_slice_files": "slices",
    # BraTS
    "BRATS_LAYOUTS": "brats",
    "BRATS_MODALITIES": "brats",
    "FromCanonicalBraTSLabelsd": "brats",
    "MapBraTSLabelsd": "brats",
    "brats_case_name": "brats",
    "brats_output_name": "brats",
    # ISBI 2015 longitudinal MS lesions; rater masks
    "ISBI2015Adapter": "isbi2015",
    "ISBI2015_LAYOUTS": "isbi2015",
    "ISBI2015_MODALITIES": "isbi2015",
    "isbi2015_output_name": "isbi2015",
    "with_tissue_maps": "isbi2015",
    "RATER_RULES": "raters",
    "CombineRatersd": "raters",
    "combine_raters": "raters",
    # ATLAS stroke lesions (R2.0, R1.2)
    "ATLASAdapter": "atlas",
    "ATLAS_LAYOUTS": "atlas",
    "atlas_output_name": "atlas",
    "check_lesion_mask": "atlas",
    # non-contrast CT infarcts; Hounsfield units
    "NCCTAdapter": "ncct",
    "BRAIN_WINDOW_HU": "ncct",
    "STROKE_WINDOW_HU": "ncct",
    "CheckHounsfieldd": "ncct",
    "check_hounsfield": "ncct",
    # brain-tumour classes (presence, source): image folders or CSV, slices of 3D collections
    "CATEGORIES": "image_classes",
    "PAPER_TUMOUR_TYPES": "image_classes",
    "POSITIVE_CLASS": "image_classes",
    "TASK_CLASSES": "image_classes",
    "TUMOUR_TYPES": "image_classes",
    "ImageClassesAdapter": "image_classes",
    "ToGreySliced": "image_classes",
    "check_image_file": "image_classes",
    "task_label": "image_classes",
    "tumour_category": "image_classes",
    "COLLECTION_TYPES": "collection_slices",
    "CollectionSlicesAdapter": "collection_slices",
    # phantoms
    "make_atlas_phantoms": "phantoms.atlas",
    "make_brats_phantoms": "phantoms.brats",
    "make_figshare_phantoms": "phantoms.figshare",
    "make_isbi2015_phantoms": "phantoms.isbi2015",
    "make_ncct_phantoms": "phantoms.ncct",
    "make_tumour_collection_phantoms": "phantoms.tumour_slices",
    "make_tumour_image_phantoms": "phantoms.tumour_slices",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import a submodule, or the submodule that defines an exported name, on first access."""
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_SUBMODULES, *_EXPORTS})
