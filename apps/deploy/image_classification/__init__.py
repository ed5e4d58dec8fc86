"""MONAI Deploy application; see :mod:`apps.deploy.image_classification.app`."""
