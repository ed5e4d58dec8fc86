"""MONAI Deploy application; see :mod:`apps.deploy.volume_segmentation.app`."""
