"""MONAI Deploy application; see :mod:`apps.deploy.lesion_segmentation.app`."""
