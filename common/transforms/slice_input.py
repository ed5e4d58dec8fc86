"""Bring any 2D input (Figshare .mat, PNG, 2D or single-slice NIfTI) to one channel-first slice."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform


class ToSingleChannelSliced(MapTransform):
    """(C, X, Y) or (C, X, Y, 1) -> (1, X, Y).

    A trailing singleton spatial axis (a NIfTI slice stored as X x Y x 1) is dropped and several channels
    (an RGB or RGBA rendering of a grey image) are averaged, ignoring an alpha channel. Anything that is
    still not a 2D image raises ``ValueError`` naming the file.
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            while img.ndim > 3 and img.shape[-1] == 1:
                img = img[..., 0]
            if img.ndim != 3:
                source = img.meta.get("filename_or_obj", key) if isinstance(img, MetaTensor) else key
                raise ValueError(f"{source}: expected a 2D image, got spatial shape {tuple(img.shape[1:])}")
            if img.shape[0] == 4:
                img = img[:3]
            if img.shape[0] > 1:
                img = img.mean(dim=0, keepdim=True)
            if isinstance(img, MetaTensor):
                # keep the meta data a 2D single-channel slice too (an RGB(A) PNG says channel-last):
                # MONAI's SaveImage reads the channel layout of the output mask from it
                img.meta["spatial_shape"] = tuple(img.shape[1:])
                img.meta["original_channel_dim"] = "no_channel"
            d[key] = img
        return d
