"""The application base class: input (NIfTI or DICOM) -> bundle inference -> the writers an app adds.

Data flow of every application (:class:`BundleApplication`)::

    NIfTI file(s) --NiftiLoaderOperator-----------------------------+
                                                                    +--> image --> BundleInferenceOperator
    DICOM folder --DICOMDataLoaderOperator--DICOMSeriesSelector--SeriesToImageOperator      |
                                                 |                                       result
                                                 +-- study_selected_series_list --+         |
                                                                                  v         v
                        writers: NiftiMaskWriterOperator, SegImageOperator -> DICOMSegmentationWriterOperator,
                                 ClassificationWriterOperator (-> DICOMTextSRWriterOperator)

The operators are in :mod:`apps.deploy.operators`. Bad input raises :class:`common.data.DataFormatError`: one
line naming the file or folder and the problem.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai.deploy.conditions import CountCondition
from monai.deploy.core import Application, Operator, init_app_context
from monai.deploy.operators.dicom_data_loader_operator import DICOMDataLoaderOperator
from monai.deploy.operators.dicom_seg_writer_operator import DICOMSegmentationWriterOperator
from monai.deploy.operators.dicom_series_selector_operator import DICOMSeriesSelectorOperator
from monai.deploy.operators.dicom_text_sr_writer_operator import DICOMTextSRWriterOperator

from apps.deploy.operators.dicom import SeriesToImageOperator
from apps.deploy.operators.inference import BundleInferenceOperator
from apps.deploy.operators.inputs import IMAGE, NiftiCase, NiftiLoaderOperator, find_nifti_slices, input_kind
from apps.deploy.operators.result import RESULT
from apps.deploy.operators.writers import (
    ClassificationWriterOperator,
    NiftiMaskWriterOperator,
    SegImageOperator,
    model_info,
    segment_description,
)

ANY_MR_SERIES: dict[str, Any] = {"selections": [{"name": IMAGE, "conditions": {"Modality": "(?i)^MR$"}}]}
"""Default DICOM selection of the 2D apps: the first MR series of the (first) study."""


def model_file(model_path: str | Path | None) -> Path | None:
    """The TorchScript file of ``-m``: the path itself, or the one ``*.ts`` in a folder (a MAP's models)."""
    if not model_path:
        return None
    path = Path(model_path)
    if path.is_file():
        return path
    found = sorted(path.rglob("*.ts")) if path.is_dir() else []
    return found[0] if len(found) == 1 else None


def _model_card_name(inference: BundleInferenceOperator) -> dict[str, Any]:
    """Name and version of the bundle's model card: what the DICOM outputs say made them."""
    card = inference.model_card
    return {"name": card.get("name", ""), "version": card.get("version", "")}


class BundleApplication(Application):
    """An app over one bundle: input (NIfTI or DICOM, from ``-i``) -> :class:`BundleInferenceOperator`.

    Subclasses set ``channels`` (the bundle's input channels, named as the DICOM selections), ``slice_wise``,
    ``default_rules`` (DICOM series selection), optionally ``config_overrides`` (bundle config ids set for
    the run), and implement :meth:`compose_outputs`; they may override
    :meth:`find_nifti_cases` and :meth:`extra_items`. ``-i``/``-o``/``-m`` are the SDK's options (or
    ``HOLOSCAN_INPUT_PATH``/``HOLOSCAN_OUTPUT_PATH``/``HOLOSCAN_MODEL_PATH``).

    Args:
        config_names: configs embedded in the model to merge (``("inference", "smoke_test")`` for a smoke-size
            export).
        selection_rules: DICOM series selection rules (the SDK's JSON format, as a dict); default
            ``default_rules``.
        argv: as for Holoscan's ``Application``: ``[python, program, -i, IN, -o, OUT, -m, MODEL]``.
    """

    channels: tuple[str, ...] = (IMAGE,)
    slice_wise: bool = False
    default_rules: dict[str, Any] = ANY_MR_SERIES
    config_overrides: dict[str, Any] = {}

    def __init__(
        self,
        *args: Any,
        config_names: Sequence[str] = ("inference",),
        selection_rules: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ):
        self.config_names = tuple(config_names)
        self.selection_rules = dict(selection_rules or self.default_rules)
        super().__init__(*args, **kwargs)

    def find_nifti_cases(self, path: Path) -> list[NiftiCase]:
        return find_nifti_slices(path)

    def extra_items(self) -> dict[str, Any]:
        return {}

    def compose(self) -> None:
        app_context = init_app_context(self.argv)
        input_path = Path(app_context.input_path)
        output_path = Path(app_context.output_path)
        output_path.mkdir(parents=True, exist_ok=True)
        inference = BundleInferenceOperator(
            self,
            app_context=app_context,
            bundle_path=model_file(app_context.model_path),
            config_names=self.config_names,
            extra_items=self.extra_items(),
            slice_wise=self.slice_wise,
            input_channels=len(self.channels),
            config_overrides=self.config_overrides,
            name="bundle_inference",
        )
        if input_kind(input_path) == "nifti":
            cases = self.find_nifti_cases(input_path)
            loader = NiftiLoaderOperator(
                self,
                CountCondition(self, len(cases)),
                cases=cases,
                channels=len(self.channels),
                name="nifti_loader",
            )
            self.add_flow(loader, inference, {(IMAGE, IMAGE)})
            selector = None
        else:
            study_loader = DICOMDataLoaderOperator(
                self, CountCondition(self, 1), input_folder=input_path, name="dicom_loader"
            )
            selector = DICOMSeriesSelectorOperator(
                self, rules=json.dumps(self.selection_rules), name="series_selector"
            )
            names = [s["name"] for s in self.selection_rules["selections"]]
            to_image = SeriesToImageOperator(
                self, selection_names=names, input_folder=input_path, name="series_to_image"
            )
            self.add_flow(study_loader, selector, {("dicom_study_list", "dicom_study_list")})
            self.add_flow(selector, to_image, {("study_selected_series_list", "study_selected_series_list")})
            self.add_flow(to_image, inference, {(IMAGE, IMAGE)})
        self.compose_outputs(inference, selector, output_path)

    def compose_outputs(
        self, inference: BundleInferenceOperator, selector: Operator | None, output_path: Path
    ) -> None:
        """Add the writers; ``selector`` is the DICOM series selector (``None`` for NIfTI input)."""
        raise NotImplementedError

    # helpers for compose_outputs

    def add_nifti_writer(
        self, inference: Operator, output_path: Path, keys: Mapping[str, str] | None = None
    ) -> None:
        writer = NiftiMaskWriterOperator(self, output_folder=output_path, keys=keys, name="nifti_writer")
        self.add_flow(inference, writer, {(RESULT, RESULT)})

    def add_seg_writer(
        self,
        inference: BundleInferenceOperator,
        selector: Operator,
        output_path: Path,
        segments: Sequence[tuple[str, Any]],
        key: str | None = None,
    ) -> None:
        """DICOM SEG of the main mask; ``segments``: ``(label, SNOMED property type)`` of values 1, 2..."""
        bundle = _model_card_name(inference)
        to_seg = SegImageOperator(self, key=key, name="mask_to_seg_image")
        seg_writer = DICOMSegmentationWriterOperator(
            self,
            segment_descriptions=[segment_description(label, code, bundle) for label, code in segments],
            output_folder=output_path,
            model_info=model_info(bundle),
            custom_tags={"SeriesDescription": f"AI segmentation ({bundle['name']}), research use only"[:64]},
            omit_empty_frames=False,
            name="dicom_seg_writer",
        )
        self.add_flow(inference, to_seg, {(RESULT, RESULT)})
        self.add_flow(to_seg, seg_writer, {("seg_image", "seg_image")})
        self.add_flow(selector, seg_writer, {("study_selected_series_list", "study_selected_series_list")})

    def add_classification_writer(
        self,
        inference: BundleInferenceOperator,
        selector: Operator | None,
        output_path: Path,
        key: str | None = None,
    ) -> None:
        """JSON of class probabilities; for DICOM input also a Basic Text SR in the source study."""
        writer = ClassificationWriterOperator(
            self, output_folder=output_path, key=key, name="classification_writer"
        )
        self.add_flow(inference, writer, {(RESULT, RESULT)})
        if selector is not None:
            bundle = _model_card_name(inference)
            sr_writer = DICOMTextSRWriterOperator(
                self,
                copy_tags=True,
                model_info=model_info(bundle),
                output_folder=output_path,
                custom_tags={"SeriesDescription": f"AI classification ({bundle['name']})"[:64]},
                name="dicom_sr_writer",
            )
            self.add_flow(writer, sr_writer, {("text", "text")})
            self.add_flow(selector, sr_writer, {("study_selected_series_list", "study_selected_series_list")})
