"""MONAI Deploy application; see :mod:`apps.deploy.ms_lesion_segmentation.app`."""
