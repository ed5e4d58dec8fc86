"""Writers of a result: NIfTI masks, the mask as the image the SDK's DICOM SEG writer takes, the
classification JSON (and the text of a DICOM SR), and what the SDK's DICOM writers are told of the bundle."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from monai.deploy.core import ConditionType, Fragment, Image, Operator, OperatorSpec
from monai.deploy.operators.dicom_seg_writer_operator import SegmentDescription
from monai.deploy.operators.dicom_utils import ModelInfo
from pydicom.uid import generate_uid

from apps.deploy.operators.result import RESULT, class_probabilities, mask_keys, mask_volume, probability_key
from common.data.atomic import atomic_output, atomic_write_text

logger = logging.getLogger(__name__)


class NiftiMaskWriterOperator(Operator):
    """Writes the masks of a result as ``<case>_<postfix>.nii.gz`` on the input's grid and affine.

    ``keys`` maps output keys to file postfixes; by default the main mask (:func:`mask_keys`) is ``seg`` and
    any other mask is named after its key (``pred_wt_mask`` -> ``wt_mask``).
    """

    def __init__(
        self,
        fragment: Fragment,
        *args: Any,
        output_folder: str | Path,
        keys: Mapping[str, str] | None = None,
        **kw,
    ):
        self.output_folder = Path(output_folder)
        self.keys = dict(keys) if keys else None
        self.written: list[Path] = []
        super().__init__(fragment, *args, **kw)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input(RESULT)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        self.write(op_input.receive(RESULT))

    def write(self, result: Mapping[str, Any]) -> list[Path]:
        keys = self.keys
        if keys is None:
            found = mask_keys(result)
            keys = {k: ("seg" if i == 0 else re.sub(r"^pred_", "", k)) for i, k in enumerate(found)}
        affine = np.asarray(result["meta"]["original_affine"], dtype=np.float64)
        paths = []
        for key, postfix in keys.items():
            image = nib.Nifti1Image(mask_volume(result, key), affine)
            image.set_qform(affine, code=1)
            image.set_sform(affine, code=1)
            path = self.output_folder / f"{result['case']}_{postfix}.nii.gz"
            with atomic_output(path) as tmp:
                nib.save(image, tmp)
            logger.info("wrote %s", path)
            paths.append(path)
        self.written.extend(paths)
        return paths


class SegImageOperator(Operator):
    """The main mask of a result as the SDK image the DICOM SEG writer takes: ``(slices, rows, columns)``."""

    def __init__(self, fragment: Fragment, *args: Any, key: str | None = None, **kwargs: Any):
        self.key = key
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input(RESULT)
        spec.output("seg_image")

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        result = op_input.receive(RESULT)
        key = self.key or mask_keys(result)[0]
        mask = mask_volume(result, key)
        if mask.ndim == 2:
            mask = mask[..., None]
        op_output.emit(Image(np.ascontiguousarray(mask.transpose(2, 1, 0))), "seg_image")


class ClassificationWriterOperator(Operator):
    """Writes ``<case>_classification.json`` (class probabilities per image or slice) and emits it as text.

    The JSON: ``bundle`` (name, version), ``case``, ``source``, ``classes``, and ``results``: one entry per
    image (``slice`` null) or per slice of a series (``slice`` k, the k-th slice along the last axis), each
    with ``probabilities`` (class -> p, summing to 1) and ``predicted_class``. A bundle with several class
    outputs adds ``other_outputs``: output key -> the same ``classes`` and ``results``. An output whose
    model-card entry has ``"given": {"<other output>": "<class>"}`` is chained to that output (the two-stage
    classifier's ``pred_source`` is given ``pred_presence`` = "present"): where the other output predicts
    another class, its ``probabilities`` and ``predicted_class`` are null. The ``text`` output (optional
    receiver) is a readable summary for a DICOM SR.
    """

    def __init__(
        self, fragment: Fragment, *args: Any, output_folder: str | Path, key: str | None = None, **kw
    ):
        self.output_folder = Path(output_folder)
        self.key = key
        self.written: list[Path] = []
        super().__init__(fragment, *args, **kw)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input(RESULT)
        spec.output("text").condition(ConditionType.NONE)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        report = self.write(op_input.receive(RESULT))
        op_output.emit(self.summary(report), "text")

    def write(self, result: Mapping[str, Any]) -> dict[str, Any]:
        main = self.key or probability_key(result)
        per_slice = bool(result.get("slice_wise"))

        def predicted(key: str) -> list[str]:
            names, scores = class_probabilities(result, key)
            return [names[int(np.argmax(row))] for row in scores]

        def section(key: str) -> dict[str, Any]:
            names, scores = class_probabilities(result, key)
            # a chained output applies only where the output it is given predicts the named class
            given = result["formats"][key].get("given", {})
            applies = [
                all(conds) for conds in zip(*([p == c for p in predicted(k)] for k, c in given.items()))
            ]
            applies = applies or [True] * len(scores)
            return {
                "classes": names,
                **({"given": dict(given)} if given else {}),
                "results": [
                    {
                        "slice": k if per_slice else None,
                        "probabilities": {n: float(p) for n, p in zip(names, row)} if ok else None,
                        "predicted_class": names[int(np.argmax(row))] if ok else None,
                    }
                    for k, (row, ok) in enumerate(zip(scores, applies))
                ],
            }

        report = {
            "bundle": result["bundle"],
            "case": result["case"],
            "source": str(result["meta"].get("filename_or_obj", "")),
            **section(main),
        }
        # a bundle with several class outputs (the two-stage classifier's presence and source): the others too
        others = [k for k, f in result["formats"].items() if f.get("type") == "probabilities" and k != main]
        if others:
            report["other_outputs"] = {key: section(key) for key in others}
        path = self.output_folder / f"{result['case']}_classification.json"
        atomic_write_text(path, json.dumps(report, indent=2) + "\n")
        logger.info("wrote %s", path)
        self.written.append(path)
        return report

    @staticmethod
    def summary(report: Mapping[str, Any]) -> str:
        lines = [f"{report['bundle']['name']} {report['bundle']['version']} (research use only)"]
        sections = [report, *report.get("other_outputs", {}).values()]
        for k, entry in enumerate(report["results"]):
            where = "image" if entry["slice"] is None else f"slice {entry['slice']}"
            found = []
            for section in sections:
                item = section["results"][k]
                if item["predicted_class"] is not None:
                    probs = ", ".join(f"{n} {p:.3f}" for n, p in item["probabilities"].items())
                    found.append(f"{item['predicted_class']} ({probs})")
            lines.append(f"{where}: {'; '.join(found)}")
        return "\n".join(lines)


# what the SDK's DICOM writers are told of the bundle


def segment_description(label: str, property_type: Any, bundle: Mapping[str, str]) -> SegmentDescription:
    """A DICOM SEG segment of a brain lesion made by the bundle (SNOMED category: abnormal structure)."""
    from pydicom.sr.codedict import codes

    return SegmentDescription(
        segment_label=label[:64],
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=property_type,
        algorithm_name=str(bundle.get("name", "bundle"))[:64],
        algorithm_family=codes.DCM.ArtificialIntelligence,
        algorithm_version=str(bundle.get("version", ""))[:64],
        anatomic_regions=[codes.SCT.Brain],
    )


def model_info(bundle: Mapping[str, str]) -> ModelInfo:
    """The model a DICOM output names; its UID derives from name and version, so a model keeps one."""
    name, version = str(bundle.get("name", "bundle")), str(bundle.get("version", ""))
    return ModelInfo(
        "brain-lesion-bundles", name[:64], version[:64], str(generate_uid(entropy_srcs=[name, version]))
    )
