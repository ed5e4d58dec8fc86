"""MONAI Deploy application; see :mod:`apps.deploy.slice_segmentation_classification.app`."""
