"""Shared code for the brain-lesion MONAI bundles: what MONAI lacks, nothing more.

Sub-packages: ``networks``, ``losses``, ``data``, ``transforms``, ``metrics``, ``engines``.
Bundle configs import them as ``common.<package>.<name>``.
"""

__version__ = "0.1.0"
