"""benchmarks/ablate.py end to end: two rows of a bundle's ablation file, resumable row by row."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
BUNDLE = "mmran_brain_tumor_segmentation_classification"
ROWS = ["fixed_alpha_0.2", "baseline_se"]
TINY = [
    "epochs=1",
    'phantom={"n_patients": 12, "slices_per_patient": 2, "size": 64, "seed": 0}',
]


def ablate(out: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(REPO / "benchmarks" / "ablate.py"), "--bundle", BUNDLE, "--output", str(out)]
    cmd += ["--only", *ROWS]
    for pair in TINY:
        cmd += ["--override", pair]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_two_row_ablation_runs_and_resumes(tmp_path):
    first = ablate(tmp_path)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    rows = list(csv.DictReader(open(tmp_path / "ablation.csv")))
    assert [r["row"] for r in rows] == ROWS
    ablation = json.loads((REPO / "bundles" / BUNDLE / "configs" / "ablation.json").read_text())
    paper = ablation["tables"]["Table 1: training methods"]["fixed_alpha_0.2"]["paper"]
    assert float(rows[0]["dice_paper"]) == paper["dice"]
    for row in rows:  # our numbers are real test-split metrics, in per cent
        assert 0 <= float(row["dice_ours"]) <= 100 and 0 <= float(row["accuracy_ours"]) <= 100
    # both rows tested on the same split
    splits = [json.loads((tmp_path / r / "runs" / "datalist.json").read_text())["testing"] for r in ROWS]
    assert splits[0] == splits[1]
    # each row's overrides reached its run: fixed weights 0.8 / 0.2; SE attention in the encoder
    last = torch.load(tmp_path / ROWS[0] / "models" / "last.pt", map_location="cpu", weights_only=True)
    assert last["loss_schedule"]["weights"] == {"seg": 0.8, "cls": 0.2}
    se_state = torch.load(tmp_path / ROWS[1] / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert any(".attention.channel_attention.avg_mlp." in key for key in se_state)
    assert not any(".attention.spatial_gate." in key for key in se_state)
    assert all(name in (tmp_path / "ablation.md").read_text() for name in ROWS)
    model = tmp_path / ROWS[0] / "models" / "model.pt"
    before = model.stat().st_mtime_ns
    again = ablate(tmp_path)  # finished rows are skipped
    assert again.returncode == 0 and model.stat().st_mtime_ns == before
