"""BraTS post-processing (paper 001, §3.4): relative-size component removal and label-map assembly."""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, Flipd, Invertd

from common.heads import HeadSpec
from common.labels import BRATS
from common.transforms import AssembleLabelsd, RemoveSmallComponents

AFFINE = torch.diag(torch.tensor([2.0, 2.0, 3.0, 1.0]))


def _crafted_volume() -> np.ndarray:
    """(1, 30, 30, 30) uint8 mask with a 1000-voxel cube, 150- and 50-voxel blocks and diagonal fragments."""
    mask = np.zeros((1, 30, 30, 30), dtype=np.uint8)
    mask[0, 2:12, 2:12, 2:12] = 1  # largest: 1000 voxels
    mask[0, 15:20, 15:20, 15:21] = 1  # 150 voxels = 15 %: kept
    mask[0, 2:7, 20:25, 20:22] = 1  # 50 voxels = 5 %: removed
    mask[0, 12, 12, 12] = mask[0, 13, 13, 13] = 1  # corner-touching chain off the cube's corner (11, 11, 11)
    mask[0, 12, 12, 5] = 1  # touches the cube's edge voxel (11, 11, 5) along an edge only
    return mask


def _regions(mask: np.ndarray) -> dict[str, bool]:
    """Which crafted regions are (fully) present in ``mask``."""
    m = mask[0]
    return {
        "cube": bool(m[2:12, 2:12, 2:12].all()),
        "block15": bool(m[15:20, 15:20, 15:21].all()),
        "block5": bool(m[2:7, 20:25, 20:22].any()),
        "corner": bool(m[12, 12, 12] or m[13, 13, 13]),
        "edge": bool(m[12, 12, 5]),
    }


@pytest.mark.parametrize(
    "connectivity, corner, edge",
    [(None, True, True), (3, True, True), (2, False, True), (1, False, False)],
)
def test_remove_small_components_paper_rule_and_connectivity(connectivity, corner, edge):
    out = RemoveSmallComponents(ratio=0.1, connectivity=connectivity)(_crafted_volume())
    assert _regions(out) == {"cube": True, "block15": True, "block5": False, "corner": corner, "edge": edge}
    # nothing is ever added
    assert not (out.astype(bool) & ~_crafted_volume().astype(bool)).any()


def test_remove_small_components_ratio_edge_cases():
    mask = _crafted_volume()
    np.testing.assert_array_equal(RemoveSmallComponents(ratio=0.0)(mask), mask)
    only_largest = RemoveSmallComponents(ratio=1.0)(mask)
    assert only_largest.sum() == 1003  # the cube and its 26-connected fragments
    assert _regions(only_largest)["block15"] is False
    # ties for the largest are all kept at ratio 1
    twins = np.zeros((1, 10, 10, 10), dtype=np.uint8)
    twins[0, :3, :3, :3] = twins[0, 6:9, 6:9, 6:9] = 1
    np.testing.assert_array_equal(RemoveSmallComponents(ratio=1.0)(twins), twins)
    # a component of exactly ratio x largest is kept ("less than one tenth" is removed)
    line = np.zeros((1, 40, 5, 5), dtype=np.uint8)
    line[0, :30, 0, 0] = 1  # 30 voxels; 0.1 * 30 is 3.0000000000000004 in floating point
    line[0, 35:38, 4, 4] = 1  # 3 voxels: kept
    line[0, 0:2, 4, 4] = 1  # 2 voxels: removed
    out = RemoveSmallComponents(ratio=0.1)(line)
    assert out[0, 35:38, 4, 4].all() and not out[0, 0:2, 4, 4].any()
    with pytest.raises(ValueError, match="ratio"):
        RemoveSmallComponents(ratio=1.5)
    with pytest.raises(ValueError, match="connectivity"):
        RemoveSmallComponents(connectivity=4)(mask)


def test_remove_small_components_empty_and_2d():
    empty = torch.zeros(2, 8, 8, 8)
    out = RemoveSmallComponents()(empty)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and not out.any()

    image = np.zeros((1, 20, 20), dtype=np.int64)
    image[0, 1:11, 1:11] = 1  # 100 pixels
    image[0, 11, 11] = 1  # touches the square's corner: part of it with 8-connectivity
    image[0, 14:17, 14:19] = 1  # 15 pixels: kept
    image[0, 1:6, 15] = 1  # 5 pixels: removed
    out = RemoveSmallComponents()(image)
    assert out.dtype == np.int64 and out.shape == (1, 20, 20)
    assert out[0, 1:11, 1:11].all() and out[0, 11, 11] and out[0, 14:17, 14:19].all()
    assert not out[0, 1:6, 15].any()
    assert not RemoveSmallComponents(connectivity=1)(image)[0, 11, 11]


def test_remove_small_components_keeps_type_values_and_meta():
    mask = _crafted_volume()
    expected = RemoveSmallComponents()(mask)
    assert isinstance(expected, np.ndarray) and expected.dtype == np.uint8

    as_tensor = RemoveSmallComponents()(torch.as_tensor(mask, dtype=torch.float32) * 2)
    assert type(as_tensor) is torch.Tensor and as_tensor.dtype == torch.float32
    np.testing.assert_array_equal(as_tensor.numpy(), expected * 2)  # kept voxels keep their value

    meta = MetaTensor(torch.as_tensor(mask), affine=AFFINE, meta={"filename_or_obj": "case_001.nii.gz"})
    out = RemoveSmallComponents()(meta)
    assert isinstance(out, MetaTensor) and out.dtype == torch.uint8
    assert torch.equal(out.affine, AFFINE) and out.meta["filename_or_obj"] == "case_001.nii.gz"
    np.testing.assert_array_equal(out.numpy(), expected)


def test_remove_small_components_channel_independence():
    mask = np.zeros((2, 16, 16, 16), dtype=np.uint8)
    mask[0, :10, :10, :10] = 1  # 1000 voxels, channel 0 only
    mask[:, 13:15, 13:15, 13:15] = 1  # 8 voxels in both channels: the largest of channel 1
    independent = RemoveSmallComponents(independent=True)(mask)
    assert not independent[0, 13:15, 13:15, 13:15].any() and independent[1, 13:15, 13:15, 13:15].all()
    assert independent[0, :10, :10, :10].all()
    joint = RemoveSmallComponents(independent=False)(mask)
    assert not joint[:, 13:15, 13:15, 13:15].any() and joint[0, :10, :10, :10].all()


SHAPE = (1, 24, 24, 16)
SPEC = HeadSpec(
    {name: {"region": name, "channel_names": [name]} for name in ("wt", "et", "ncr", "ed")}, BRATS
)


def brats_assembly(**kwargs) -> AssembleLabelsd:
    """The BraTS bundle's rule: ET, else NCR, else ED inside the whole tumour."""
    return AssembleLabelsd(SPEC, outer="wt", precedence=["et", "ncr"], remainder="ed", **kwargs)


def _heads(as_meta: bool = True) -> dict:
    """Crafted head probabilities (1, 24, 24, 16) and the expected label map."""
    wt = np.full(SHAPE, 0.1, dtype=np.float32)
    et = np.zeros(SHAPE, dtype=np.float32)
    ncr = np.zeros(SHAPE, dtype=np.float32)
    ed = np.zeros(SHAPE, dtype=np.float32)  # never read: oedema is the rest of the whole tumour
    wt[0, 2:14, 2:14, 2:12] = 0.9  # tumour: 1440 voxels
    wt[0, 2, 2, 2] = 0.5  # exactly the threshold: not tumour
    et[0, 4:8, 4:8, 4:8] = 0.8
    ncr[0, 6:10, 6:10, 4:8] = 0.7  # overlaps et on [6:8, 6:8, 4:8]: et wins
    et[0, 16:19, 2:5, 2:5] = 0.9  # et and ncr outside the whole tumour: ignored
    ncr[0, 2:5, 16:19, 2:5] = 0.9
    wt[0, 20:22, 20:22, 13:15] = 0.9  # far 8-voxel blob (< 10 % of 1440): removed, with its sub-labels
    et[0, 20:22, 20:22, 13:15] = 0.9

    expected = np.zeros(SHAPE, dtype=np.uint8)
    expected[0, 2:14, 2:14, 2:12] = 2
    expected[0, 2, 2, 2] = 0
    expected[0, 6:10, 6:10, 4:8] = 1
    expected[0, 4:8, 4:8, 4:8] = 3

    def wrap(array: np.ndarray):
        if not as_meta:
            return array
        return MetaTensor(torch.as_tensor(array), affine=AFFINE, meta={"filename_or_obj": "case_001.nii.gz"})

    data = {"pred_wt": wrap(wt), "pred_et": wrap(et), "pred_ncr": wrap(ncr), "pred_ed": wrap(ed)}
    return {"data": data, "expected": expected}


def test_assemble_brats_labels_regions_and_meta():
    case = _heads()
    out = brats_assembly()(case["data"])
    label, wt_mask = out["pred_label"], out["pred_wt_mask"]
    for result in (label, wt_mask):
        assert isinstance(result, MetaTensor) and result.dtype == torch.uint8 and result.shape == SHAPE
        assert torch.equal(result.affine, AFFINE) and result.meta["filename_or_obj"] == "case_001.nii.gz"
    np.testing.assert_array_equal(label.numpy(), case["expected"])
    np.testing.assert_array_equal(wt_mask.numpy(), (case["expected"] > 0).astype(np.uint8))
    assert set(np.unique(label.numpy())) == {0, 1, 2, 3}
    assert label.meta is not wt_mask.meta  # each output owns its meta data
    assert "pred_wt" in out and "pred_ed" in out  # inputs kept by default


def test_assemble_brats_labels_options():
    case = _heads(as_meta=False)
    out = brats_assembly(component_ratio=0.0, outer_mask_key="", remove_keys=True)(case["data"])
    assert set(out) == {"pred_label", "pred_ed"}  # only the heads it reads are removed
    label = out["pred_label"]
    assert isinstance(label, np.ndarray) and label.dtype == np.uint8 and label.shape == SHAPE
    # without the clean-up the far blob survives, labelled et
    assert (label[0, 20:22, 20:22, 13:15] == 3).all()
    np.testing.assert_array_equal(label[0, :, :, :13], case["expected"][0, :, :, :13])

    bad = _heads(as_meta=False)["data"]
    bad["pred_et"] = bad["pred_et"][..., :8]
    with pytest.raises(ValueError, match="pred_et"):
        brats_assembly()(bad)
    with pytest.raises(ValueError, match="not a region head"):
        AssembleLabelsd(SPEC, outer="tc", precedence=["et"], remainder="ed")
    with pytest.raises(ValueError, match="one label"):
        AssembleLabelsd(SPEC, outer="et", precedence=["wt"], remainder="ed")


def test_assemble_brats_labels_then_invertd():
    """The outputs carry the wt meta data, so Invertd undoes the pre-processing on them."""
    pre = Flipd(keys="image", spatial_axis=0)
    item = pre({"image": MetaTensor(torch.zeros(SHAPE), affine=AFFINE)})
    case = _heads()
    for key, prob in case["data"].items():  # the network output carries the image's meta data
        item[key] = MetaTensor(prob.as_tensor(), meta=dict(item["image"].meta))
    keys = ["pred_label", "pred_wt_mask"]
    invert = Invertd(keys=keys, transform=pre, orig_keys="image", nearest_interp=True)
    post = Compose([brats_assembly(), invert])
    out = post(item)
    np.testing.assert_array_equal(out["pred_label"].numpy(), np.flip(case["expected"], axis=1))
    assert out["pred_label"].dtype == torch.uint8
