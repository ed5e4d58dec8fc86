"""Crop a volume to the head before inference, so that no slice or window is spent on air.

Brain MR and CT volumes carry a wide empty border: ATLAS's MNI grid (197 x 233 x 189) holds the head in
about 60 % of its voxels, BraTS's 240 x 240 x 155 in well under half. MONAI's ``CropForegroundd`` crops to
the bounding box of the non-zero voxels (plus a margin) and records the crop, so the bundles' ``Invertd``
puts the prediction back on the input's grid, zero outside the box. :class:`CropToHeadd` adds one thing: an
image with no foreground at all is left whole (``CropForegroundd`` would crop it to nothing), and so is every
image when the crop is switched off; both still record a (whole-image) crop, so ``Invertd`` works unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
from monai.data import MetaTensor
from monai.transforms import CropForegroundd

__all__ = ["CropToHeadd"]

logger = logging.getLogger(__name__)


class _Above:
    """``x > threshold`` as a picklable ``select_fn`` (data loader workers pickle the transforms)."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def __call__(self, x: Any) -> Any:
        return x > self.threshold


class CropToHeadd(CropForegroundd):
    """``CropForegroundd`` of the voxels above ``threshold`` (plus ``margin``); an empty image stays whole.

    Place it where the background is (near) zero: before intensity scaling for skull-stripped MR, after the
    window for CT (air becomes 0) and after a percentile scaling for MR (cropping first would change the
    percentiles). ``threshold`` > 0 skips background noise, e.g. 0.1 after a [0, 1] scaling of a
    non-skull-stripped T1. ``enabled=False`` passes the data through unchanged (a bundle's ``crop_to_head``
    switch), as an empty image does.
    """

    def __init__(
        self,
        keys: Any,
        source_key: str = "image",
        margin: int = 4,
        threshold: float = 0.0,
        enabled: bool = True,
        **kwargs: Any,
    ) -> None:
        self.enabled = bool(enabled)
        super().__init__(
            keys,
            source_key=source_key,
            select_fn=_Above(threshold),
            margin=margin,
            allow_smaller=True,
            **kwargs,
        )

    def __call__(self, data: Mapping[Hashable, Any], lazy: bool | None = None) -> dict[Hashable, Any]:
        d = dict(data)
        image = d[self.source_key]
        shape = np.asarray(image.peek_pending_shape() if isinstance(image, MetaTensor) else image.shape[1:])
        start, end = np.zeros_like(shape), shape  # the whole image: still recorded, so Invertd holds
        if self.enabled:
            box_start, box_end = self.cropper.compute_bounding_box(img=image)
            if np.any(np.asarray(box_end) <= np.asarray(box_start)):
                logger.warning("%s: no foreground, inferring on the whole image", self.source_key)
            else:
                start, end = box_start, box_end
        lazy_ = self.lazy if lazy is None else lazy
        for key, mode in self.key_iterator(d, self.mode):
            d[key] = self.cropper.crop_pad(img=d[key], box_start=start, box_end=end, mode=mode, lazy=lazy_)
        return d
