"""The multi-head contract: dict of heads in training, one ``pred`` tensor at inference, exportable."""

import pytest
import torch

from common.engines import unwrap
from common.networks import MMRAN, AttentionR2UNet, TrainingHeads, heads_to_pred


def test_heads_to_pred_concatenates_in_order_and_repeats_vectors():
    maps = torch.randn(2, 1, 5, 6)
    vector = torch.randn(2, 3)
    pred = heads_to_pred({"cls": vector, "seg": maps}, ["seg", "cls"])
    assert pred.shape == (2, 4, 5, 6)
    torch.testing.assert_close(pred[:, 0], maps[:, 0])
    for i in range(5):
        for j in range(6):
            torch.testing.assert_close(pred[:, 1:, i, j], vector)
    with pytest.raises(ValueError, match="spatial head"):
        heads_to_pred({"cls": vector}, ["cls"])


def test_pred_heads_select_and_order_the_channels():
    net = AttentionR2UNet(features=(4, 8, 16, 32), pred_heads=["et", "wt"]).eval()
    x = torch.randn(1, 4, 16, 24)
    with torch.no_grad():
        heads, pred = net.heads(x), net(x)
    torch.testing.assert_close(pred, torch.cat([heads["et"], heads["wt"]], dim=1))
    with pytest.raises(ValueError, match="subset"):
        AttentionR2UNet(features=(4, 8, 16, 32), pred_heads=["tc"])


def test_training_heads_share_parameters_and_unwrap_to_the_network():
    net = MMRAN(features=(4, 8, 16), cls_hidden=8)
    training = TrainingHeads(net)
    assert list(training.parameters()) == list(net.parameters())
    assert unwrap(training) is net
    assert set(training.state_dict()) == {f"module.{k}" for k in net.state_dict()}
    out = training(torch.randn(2, 1, 16, 16))
    assert set(out) == {"seg", "cls"}


@pytest.mark.parametrize(
    "net, shape",
    [
        (MMRAN(features=(4, 8, 16, 32), cls_hidden=8), (2, 1, 32, 48)),
        (AttentionR2UNet(features=(4, 8, 16, 32)), (2, 4, 24, 32)),
    ],
)
def test_torchscript_matches_eager(net, shape):
    net = net.eval()
    x = torch.randn(shape)
    scripted = torch.jit.script(net)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), net(x))
