"""Shared code for the brain-lesion MONAI bundles: what MONAI lacks, nothing more.

Sub-packages: ``networks``, ``losses``, ``data``, ``transforms``, ``metrics``, ``engines``, and the modules
``labels`` (canonical labels and regions) and ``heads`` (the head spec). They are all
imported here so that a bundle config needs only ``"$import common"`` and then names
``common.<package>.<name>`` (MONAI's config parser binds ``import a.b`` to the name ``a.b``, not ``a``).
"""

from . import data, engines, heads, labels, losses, metrics, networks, paths, transforms

__version__ = "0.1.0"
__all__ = ["data", "engines", "heads", "labels", "losses", "metrics", "networks", "paths", "transforms"]
