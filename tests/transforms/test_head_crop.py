"""CropToHeadd: the crop to the head, its inverse back onto the input grid, and an empty image left whole."""

import logging

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, Invertd

from common.transforms import CropToHeadd


def head(shape=(40, 48, 30), box=((8, 30), (10, 40), (5, 20))) -> MetaTensor:
    image = torch.zeros(2, *shape)
    (x0, x1), (y0, y1), (z0, z1) = box
    image[0, x0:x1, y0:y1, z0:z1] = torch.rand(x1 - x0, y1 - y0, z1 - z0) + 0.5
    image[1, x0 + 2 : x1, y0:y1, z0:z1] = 1.0  # a second channel inside the first one's box
    affine = torch.diag(torch.tensor([1.0, 1.2, 2.0, 1.0]))
    return MetaTensor(image, affine=affine)


def test_crops_to_the_head_with_a_margin_and_inverts_onto_the_input_grid():
    image = head()
    pipeline = Compose([CropToHeadd(keys=["image", "tissue"], margin=3, allow_missing_keys=True)])
    out = pipeline({"image": image})
    # the box (8-30, 10-40, 5-20) plus 3 voxels each side, clipped to the image
    assert out["image"].shape == (2, 22 + 6, 30 + 6, 15 + 6)
    # the cropped affine moves the origin to the box's first voxel (x 5, y 7, z 2)
    np.testing.assert_allclose(out["image"].affine[:3, 3], [5 * 1.0, 7 * 1.2, 2 * 2.0])
    # a 'prediction' on the crop goes back onto the input grid, zero outside the box
    out["pred"] = (out["image"][:1] > 0).float()
    restored = Invertd(keys="pred", transform=pipeline, orig_keys="image", nearest_interp=True)(out)["pred"]
    assert restored.shape == (1, 40, 48, 30)
    torch.testing.assert_close(torch.as_tensor(restored), (image[:1] > 0).float())
    np.testing.assert_allclose(restored.affine, image.affine)


def test_an_image_without_foreground_stays_whole(caplog):
    image = MetaTensor(torch.zeros(1, 16, 16, 8))
    pipeline = Compose([CropToHeadd(keys="image")])
    with caplog.at_level(logging.WARNING):
        out = pipeline({"image": image})
    assert out["image"].shape == (1, 16, 16, 8)
    assert "no foreground" in caplog.text
    out["pred"] = torch.ones_like(out["image"])  # the inverse still finds the crop it undoes
    restored = Invertd(keys="pred", transform=pipeline, orig_keys="image", nearest_interp=True)(out)["pred"]
    assert restored.shape == (1, 16, 16, 8) and bool(torch.all(torch.as_tensor(restored) == 1))


def test_threshold_skips_background_noise():
    image = head()
    image[0] += 0.05 * torch.rand(image.shape[1:])  # noise everywhere below 0.1, the head above 0.5
    assert CropToHeadd(keys="image")({"image": image})["image"].shape == (2, 40, 48, 30)  # noise is "head"
    assert CropToHeadd(keys="image", threshold=0.1)({"image": image})["image"].shape == (2, 30, 38, 23)


def test_disabled_crop_passes_through_and_the_inverse_still_holds():
    image = head()
    pipeline = Compose([CropToHeadd(keys="image", enabled=False)])
    out = pipeline({"image": image})
    assert out["image"].shape == image.shape
    out["pred"] = (out["image"][:1] > 0).float()
    restored = Invertd(keys="pred", transform=pipeline, orig_keys="image", nearest_interp=True)(out)["pred"]
    torch.testing.assert_close(torch.as_tensor(restored), (image[:1] > 0).float())
