"""EdgeTargetsd: the boundary band of a lesion mask, the edge head's target (paper 003, §2.1)."""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from common.transforms import EdgeTargetsd, edge_band


def square(size: int = 12, lo: int = 3, hi: int = 9) -> np.ndarray:
    """A 6x6 lesion (rows and columns 3..8) in a 12x12 slice."""
    mask = np.zeros((size, size), bool)
    mask[lo:hi, lo:hi] = True
    return mask


def box(lo: int, hi: int, size: int = 12) -> np.ndarray:
    """The filled square of rows and columns ``lo .. hi - 1``."""
    return square(size, lo, hi)


# hand-drawn bands of the 6x6 square (rows 3..8): rings between nested squares
RINGS = {
    ("inner", 1): box(3, 9) & ~box(4, 8),  # the square's outer pixels: 36 - 16 = 20
    ("inner", 2): box(3, 9) & ~box(5, 7),  # 36 - 4 = 32
    ("outer", 1): box(2, 10) & ~box(3, 9),  # the pixels around it: 64 - 36 = 28
    ("outer", 2): box(1, 11) & ~box(3, 9),  # 100 - 36 = 64
    ("both", 1): box(2, 10) & ~box(4, 8),  # 64 - 16 = 48
    ("both", 2): box(1, 11) & ~box(5, 7),  # 100 - 4 = 96
}
PIXELS = {
    ("inner", 1): 20,
    ("inner", 2): 32,
    ("outer", 1): 28,
    ("outer", 2): 64,
    ("both", 1): 48,
    ("both", 2): 96,
}


@pytest.mark.parametrize(("side", "width"), list(RINGS))
def test_band_of_a_square_is_its_ring(side, width):
    band = edge_band(square(), width=width, side=side)
    np.testing.assert_array_equal(band, RINGS[(side, width)])
    assert band.sum() == PIXELS[(side, width)]


def test_connectivity_one_leaves_the_diagonal_corners_out():
    band = edge_band(square(), width=1, side="outer", connectivity=1)
    expected = RINGS[("outer", 1)].copy()
    for r, c in ((2, 2), (2, 9), (9, 2), (9, 9)):
        expected[r, c] = False
    np.testing.assert_array_equal(band, expected)
    assert band.sum() == 24
    # the inner band of a square is the same ring in both connectivities
    np.testing.assert_array_equal(edge_band(square(), side="inner", connectivity=1), RINGS[("inner", 1)])


def test_empty_and_full_masks_have_no_edge():
    assert not edge_band(np.zeros((8, 8), bool)).any()
    assert not edge_band(np.ones((8, 8), bool), width=2).any()  # the image border is no lesion boundary
    touching = np.zeros((8, 8), bool)
    touching[:, :3] = True  # a lesion cut by the left image border: the band is along column 2/3 only
    band = edge_band(touching)
    np.testing.assert_array_equal(np.flatnonzero(band.any(axis=0)), [2, 3])


def test_dict_transform_on_a_metatensor_keeps_meta_and_shape():
    affine = torch.diag(torch.tensor([0.5, 0.5, 4.0, 1.0], dtype=torch.float64))
    label = MetaTensor(torch.as_tensor(square()[None], dtype=torch.float32), affine=affine)
    label.meta["filename_or_obj"] = "case_01_label.nii.gz"
    out = EdgeTargetsd(keys="label", output_key="edge", width=1)({"label": label, "image": 0})
    edge = out["edge"]
    assert isinstance(edge, MetaTensor) and edge.shape == (1, 12, 12) and edge.dtype == torch.float32
    torch.testing.assert_close(edge.affine, affine)
    assert edge.meta["filename_or_obj"] == "case_01_label.nii.gz"
    np.testing.assert_array_equal(edge[0].numpy(), RINGS[("both", 1)].astype(np.float32))
    assert out["label"] is label and out["image"] == 0


def test_numpy_and_tensor_inputs_keep_their_type_and_channels_are_separate():
    two = np.stack([square() * 255, np.zeros((12, 12))]).astype(np.uint8)  # a 0/255 mask and an empty one
    out = EdgeTargetsd("label", side="inner")({"label": two})["edge"]
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (2, 12, 12)
    np.testing.assert_array_equal(out[0], RINGS[("inner", 1)])
    assert not out[1].any()
    tensor = EdgeTargetsd("label", dtype=torch.uint8)({"label": torch.as_tensor(two)})["edge"]
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.uint8


def test_3d_band_and_in_plane_band_across_slices():
    cube = np.zeros((1, 10, 10, 10), np.float32)
    cube[0, 3:7, 3:7, 3:7] = 1.0
    full = EdgeTargetsd("label", side="outer")({"label": cube})["edge"][0]
    in_plane = EdgeTargetsd("label", side="outer", slice_axis=2)({"label": cube})["edge"][0]
    ring = box(2, 8, 10) & ~box(3, 7, 10)
    # slices through the cube: the same 2D ring either way
    for z in range(3, 7):
        np.testing.assert_array_equal(in_plane[:, :, z], ring)
        np.testing.assert_array_equal(full[:, :, z], ring)
    # the slices just above and below: the cube's faces are an edge in 3D, none in-plane
    for z in (2, 7):
        np.testing.assert_array_equal(full[:, :, z], box(2, 8, 10))
        assert not in_plane[:, :, z].any()


def test_errors():
    with pytest.raises(ValueError, match="side"):
        EdgeTargetsd("label", side="middle")
    with pytest.raises(ValueError, match="width"):
        EdgeTargetsd("label", width=0)
    with pytest.raises(ValueError, match="one mask key"):
        EdgeTargetsd(["label", "other"])
    with pytest.raises(ValueError, match="channel-first"):
        EdgeTargetsd("label")({"label": np.zeros((12, 12))})
    with pytest.raises(ValueError, match="slice_axis needs a 3D mask"):
        EdgeTargetsd("label", slice_axis=2)({"label": np.zeros((1, 12, 12))})
    with pytest.raises(ValueError, match="connectivity"):
        edge_band(square(), connectivity=3)
    assert EdgeTargetsd("label", allow_missing_keys=True)({"image": 1}) == {"image": 1}
