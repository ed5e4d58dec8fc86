"""Any 2D input to one channel-first slice, and MONAI's hole filling as the paper's flood fill."""

import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import FillHoles

from common.transforms import ToSingleChannelSliced


def test_to_single_channel_slice():
    nifti_slice = MetaTensor(torch.rand(1, 10, 12, 1))
    assert ToSingleChannelSliced("image")({"image": nifti_slice})["image"].shape == (1, 10, 12)
    rgb = torch.stack([torch.full((4, 4), v) for v in (0.0, 0.3, 0.6)])
    out = ToSingleChannelSliced("image")({"image": rgb})["image"]
    torch.testing.assert_close(out, torch.full((1, 4, 4), 0.3))
    with pytest.raises(ValueError, match="expected a 2D image"):
        ToSingleChannelSliced("image")({"image": torch.rand(1, 4, 4, 3)})


def test_monai_fill_holes_is_the_papers_flood_fill():
    """§3.5: holes enclosed by the tumour are filled; background open to the border is not."""
    mask = torch.zeros(1, 12, 12)
    mask[0, 2:9, 2:9] = 1
    mask[0, 4:6, 4:7] = 0  # necrotic hole
    mask[0, 0:5, 10] = 1
    mask[0, 2, 10] = 0  # gap touching the border stays
    filled = FillHoles(connectivity=1)(mask.clone())
    assert filled[0, 4:6, 4:7].eq(1).all()
    assert filled[0, 2, 10] == 0 and filled.sum() == mask.sum() + 6
