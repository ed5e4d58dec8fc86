"""Evaluation metrics of the MMRAN paper (§4.2, eq. 16-23) that MONAI lacks, with their ignite handlers.

Also the BraTS region metrics (:mod:`.brats`) and the per-case lesion metrics (:mod:`.ms_lesions`): the ISBI
2015 MS lesion metrics and challenge score, and IoU / lesion counts for one-reference bundles (stroke).

Classification evaluation files: the ROC curve (:mod:`.roc_curve`), the confusion matrix
(:mod:`.classification`) and the k-fold table (:mod:`.cross_validation`).

Use MONAI directly for Dice (``DiceMetric`` / ``MeanDice``), MIoU (``MeanIoU`` / ``MeanIoUHandler`` with
``include_background=True``, see :func:`mean_iou_metric`) and macro ROC AUC (``ROCAUCMetric`` / ``ROCAUC``).
"""

from .brats import (
    BRATS_EMPTY_HD95,
    BRATS_METRICS,
    BraTSRegionHandler,
    BraTSRegionMetric,
    brats_region_handlers,
    brats_region_masks,
)
from .classification import (
    BINARY_REPORT_SCALARS,
    REPORT_SCALARS,
    ClassificationReport,
    ClassificationReportMetric,
    ConfusionMatrixSaver,
    ROCAUCForClass,
    ROCAUCForClassMetric,
    classification_handlers,
    classification_report,
    save_confusion_matrix,
    to_class_labels,
)
from .combined import AverageOfMetrics
from .cross_validation import read_metrics_csv, summarise_folds
from .ms_lesions import (
    LESION_METRICS,
    MS_CHALLENGE_METRICS,
    MS_LESION_METRICS,
    MSChallengeScore,
    MSChallengeScoreHandler,
    MSLesionHandler,
    MSLesionMetric,
    lesion_handlers,
    lesion_structure,
    ms_challenge_score,
    ms_lesion_case_metrics,
    ms_lesion_handlers,
    ms_lesion_metric_name,
    ms_lesion_tables_from_csv,
    ms_lesion_tables_from_details,
)
from .roc_curve import ROCCurveSaver, roc_curve, save_roc_curve
from .segmentation import (
    HausdorffDistance95mm,
    HausdorffDistance95mmMetric,
    MeanPixelAccuracy,
    MeanPixelAccuracyMetric,
    compute_mean_pixel_accuracy,
    mean_iou_metric,
    spacing_from_meta,
)

__all__ = [
    "AverageOfMetrics",
    "BRATS_EMPTY_HD95",
    "BRATS_METRICS",
    "BraTSRegionHandler",
    "BraTSRegionMetric",
    "brats_region_handlers",
    "brats_region_masks",
    "BINARY_REPORT_SCALARS",
    "REPORT_SCALARS",
    "ClassificationReport",
    "ClassificationReportMetric",
    "ConfusionMatrixSaver",
    "HausdorffDistance95mm",
    "HausdorffDistance95mmMetric",
    "MeanPixelAccuracy",
    "MeanPixelAccuracyMetric",
    "LESION_METRICS",
    "MS_CHALLENGE_METRICS",
    "MS_LESION_METRICS",
    "MSChallengeScore",
    "MSChallengeScoreHandler",
    "MSLesionHandler",
    "MSLesionMetric",
    "ROCAUCForClass",
    "ROCAUCForClassMetric",
    "ROCCurveSaver",
    "classification_handlers",
    "classification_report",
    "compute_mean_pixel_accuracy",
    "lesion_handlers",
    "lesion_structure",
    "mean_iou_metric",
    "ms_challenge_score",
    "ms_lesion_case_metrics",
    "ms_lesion_handlers",
    "ms_lesion_metric_name",
    "ms_lesion_tables_from_csv",
    "ms_lesion_tables_from_details",
    "read_metrics_csv",
    "roc_curve",
    "save_confusion_matrix",
    "save_roc_curve",
    "summarise_folds",
    "spacing_from_meta",
    "to_class_labels",
]
