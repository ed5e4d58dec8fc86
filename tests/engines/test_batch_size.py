"""Inference batch sizes chosen for the device and the configs using it."""

from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser

from common.engines import batch_size_for

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"
# the bundles whose slice or sliding-window inferer takes its batch from the device: (cpu, gpu) of
# inference and of the validation during training (MS validates at its former 4 windows on a GPU)
DEVICE_BATCHES = {
    "attention_r2unet_brats_segmentation": {"inference": (4, 64), "train": (4, 64)},
    "multitask_unet3d_ms_lesion_segmentation": {"inference": (4, 16)},
    "unetpp_edge_stroke_lesion_segmentation": {"inference": (4, 16), "train": (4, 16)},
}
CASES = [(bundle, config) for bundle, configs in sorted(DEVICE_BATCHES.items()) for config in configs]


def test_gpu_and_cpu_values():
    assert batch_size_for("cpu", cpu=4, gpu=64) == 4
    assert batch_size_for(torch.device("cuda:0"), cpu=4, gpu=64) == 64
    assert batch_size_for("cuda", cpu=2, gpu=8) == 8
    assert batch_size_for("meta", cpu=3, gpu=8) == 3  # anything but CUDA is treated as a CPU


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "4"])
def test_rejects_non_positive_or_non_integer(bad):
    with pytest.raises(ValueError, match="positive integer"):
        batch_size_for("cpu", cpu=bad, gpu=8)
    with pytest.raises(ValueError, match="gpu must be"):
        batch_size_for("cpu", cpu=4, gpu=bad)


@pytest.mark.parametrize("bundle, config", CASES)
def test_config_follows_the_device(bundle, config):
    cpu, gpu = DEVICE_BATCHES[bundle][config]
    inferer = "inferer" if config == "inference" else "validate#inferer"
    for device, expected in (("cpu", cpu), ("cuda:0", gpu)):
        parser = ConfigParser()
        parser.read_config(str(BUNDLES / bundle / "configs" / f"{config}.json"))
        parser["device"] = f"$torch.device('{device}')"
        assert parser.get_parsed_content("sw_batch_size") == expected
        assert parser.get_parsed_content(inferer).sw_batch_size == expected
    parser["sw_batch_size"] = 7  # a user's --sw_batch_size 7 wins
    assert parser.get_parsed_content(inferer).sw_batch_size == 7
