"""Applications that consume the bundles; MONAI Deploy apps in :mod:`apps.deploy` (docs/monai_deploy.md)."""
