"""The two-stage classifier: presence then source logits in one pred; one stage trains, the other keeps."""

import torch

from common.heads import HeadSpec
from common.networks import ResNeSAt, ResNeSt, TrainingHeads, TwoStageClassifier
from common.transforms import SplitHeadsd

SMALL = {"layers": (1, 1, 1, 1), "bottleneck_width": 8, "stem_width": 8}


def two_stage(**kwargs) -> TwoStageClassifier:
    torch.manual_seed(0)
    return TwoStageClassifier(
        ResNeSt(head_name="presence", **SMALL), ResNeSAt(head_name="source", **SMALL), **kwargs
    ).eval()


def test_pred_is_presence_then_source_logits():
    network = two_stage()
    x = torch.randn(3, 1, 64, 48)
    with torch.no_grad():
        pred = network(x)
        assert pred.shape == (3, 4)
        torch.testing.assert_close(pred[:, :2], network.presence(x))
        torch.testing.assert_close(pred[:, 2:], network.source(x))
        heads = TrainingHeads(network)(x)
    assert set(heads) == {"presence", "source"}
    only_presence = two_stage(pred_heads=["presence"])
    with torch.no_grad():
        torch.testing.assert_close(only_presence(x), pred[:, :2])


def test_scripted_equals_eager():
    network = two_stage()
    x = torch.randn(2, 1, 64, 64)
    scripted = torch.jit.script(network)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), network(x))


def test_head_spec_splits_and_activates_each_stage():
    spec = HeadSpec(
        {
            "presence": {
                "channel_names": ["absent", "present"],
                "activation": "softmax",
                "image_level": True,
            },
            "source": {
                "channel_names": ["primary", "secondary"],
                "activation": "softmax",
                "image_level": True,
            },
        }
    )
    pred = torch.tensor([2.0, -1.0, 0.5, 0.0])  # one item's (4,) logits
    out = SplitHeadsd(keys="pred", heads=spec, activate=True)({"pred": pred})
    torch.testing.assert_close(out["pred_presence"], torch.softmax(pred[:2], 0))
    torch.testing.assert_close(out["pred_source"], torch.softmax(pred[2:], 0))


def test_training_one_stage_leaves_the_other_unchanged():
    network = two_stage().train()
    before = {k: v.clone() for k, v in network.presence.state_dict().items()}
    stage = network.source
    optimizer = torch.optim.SGD(stage.parameters(), lr=0.1)
    x, y = torch.randn(4, 1, 64, 64), torch.tensor([0, 1, 0, 1])
    loss = torch.nn.functional.cross_entropy(TrainingHeads(stage)(x)["source"], y)
    loss.backward()
    optimizer.step()
    for key, value in network.presence.state_dict().items():
        torch.testing.assert_close(value, before[key])
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in network.source.parameters())
