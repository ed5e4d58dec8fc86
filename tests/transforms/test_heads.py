"""Head splitting and head targets, driven by the head spec."""

import pytest
import torch

from common.heads import HeadSpec
from common.labels import BRATS
from common.transforms import LabelToHeadMasksd, SplitHeadsd

SPEC = HeadSpec(
    {
        "seg": {"channel_names": ["tumour"]},
        "cls": {
            "channel_names": ["a", "b", "c"],
            "activation": "softmax",
            "target": "class",
            "image_level": True,
        },
        "aux": {"channel_names": ["x"], "inference": False},
    }
)


def test_split_heads_flattens_dicts():
    item = {"pred": {"seg": 1, "cls": 2}, "label": {"seg": 3}, "image": 0}
    out = SplitHeadsd(keys=["pred", "label"])(item)
    assert out == {"pred_seg": 1, "pred_cls": 2, "label_seg": 3, "image": 0}
    with pytest.raises(TypeError, match="dict of heads"):
        SplitHeadsd(keys="image")(item)


def test_label_to_head_masks():
    label = torch.tensor([[[0, 1], [2, 3]]])
    out = LabelToHeadMasksd("label", heads={"wt": [1, 2, 3], "et": [3], "ncr": [1]})({"label": label})
    assert out["label_wt"].tolist() == [[[0.0, 1.0], [1.0, 1.0]]]
    assert out["label_et"].tolist() == [[[0.0, 0.0], [0.0, 1.0]]]
    assert out["label_ncr"].tolist() == [[[0.0, 1.0], [0.0, 0.0]]]
    assert out["label_wt"].dtype == torch.float32


def test_split_heads_cuts_pred_by_the_spec_and_activates():
    seg = torch.randn(1, 6, 5)
    cls = torch.tensor([0.5, -1.0, 2.0])
    pred = torch.cat([seg, cls[:, None, None].expand(3, 6, 5)])
    out = SplitHeadsd(keys="pred", heads=SPEC, activate=True)({"pred": pred})
    torch.testing.assert_close(out["pred_seg"], torch.sigmoid(seg))
    torch.testing.assert_close(out["pred_cls"], torch.softmax(cls, dim=0))
    assert "pred_aux" not in out
    raw = SplitHeadsd(keys="pred", heads=SPEC)({"pred": pred})
    torch.testing.assert_close(raw["pred_cls"], cls)
    with pytest.raises(ValueError, match="declares 4"):
        SplitHeadsd(keys="pred", heads=SPEC)({"pred": pred[:3]})


def test_label_to_head_masks_from_the_spec_regions():
    spec = HeadSpec(
        {"wt": {"region": "wt", "channel_names": ["wt"]}, "ed": {"region": "ed", "channel_names": ["ed"]}},
        BRATS,
    )
    label = torch.tensor([[0, 1, 2, 3]])
    out = LabelToHeadMasksd("label", heads=spec)({"label": label})
    assert out["label_wt"].tolist() == [[0, 1, 1, 1]] and out["label_ed"].tolist() == [[0, 0, 1, 0]]
    assert spec.targets() == {"wt": "label_wt", "ed": "label_ed"}


def test_a_classifier_pred_without_a_grid_splits_as_it_is():
    """A classifier's pred is class logits, ``(C,)`` per item or ``(B, C)``: no grid to average."""
    spec = HeadSpec({"cls": {"channel_names": ["a", "b"], "activation": "softmax", "image_level": True}})
    logits = torch.tensor([1.0, -1.0])
    out = SplitHeadsd(keys="pred", heads=spec, activate=True)({"pred": logits})
    torch.testing.assert_close(out["pred_cls"], torch.softmax(logits, dim=0))
    batch = torch.tensor([[1.0, -1.0], [0.0, 2.0]])
    torch.testing.assert_close(spec.split(batch, channel_dim=1)["cls"], batch)
