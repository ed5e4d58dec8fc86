"""MONAI Deploy applications, one per task kind, over the bundles' exported TorchScript models.

* :mod:`apps.deploy.slice_segmentation_classification`: a 2D slice (or each slice of a series) -> mask and
  class probabilities (MMRAN);
* :mod:`apps.deploy.volume_segmentation`: a 4-modality BraTS case -> label volume (Attention R2U-Net);
* :mod:`apps.deploy.image_classification`: a 2D image -> class probabilities (MMRAN's class head now, any
  classification bundle later).

What they share is the application base class, :mod:`apps.deploy.application`, and the operators it wires
(input discovery, NIfTI and DICOM loading, the bundle inference operator, the writers),
:mod:`apps.deploy.operators`. They need the MONAI Deploy environment (``make deploy-env``).
"""
