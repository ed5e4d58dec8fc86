"""End-to-end check of ``benchmarks/run.py`` on the MMRAN bundle, shrunk by ``--override`` pairs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BUNDLE = "mmran_brain_tumor_segmentation_classification"


def _table(stdout: str) -> dict[str, str]:
    """measurement -> median cell of the printed markdown table's rows for the bundle itself."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and BUNDLE in cells[0]:
            rows[cells[1]] = cells[2]
    return rows


@pytest.mark.slow
def test_runner_prints_inference_training_and_memory_rows(tmp_path):
    report = tmp_path / "bench.md"
    cmd = [sys.executable, str(REPO / "benchmarks" / "run.py"), "--bundle", BUNDLE, "--device", "cpu"]
    cmd += ["--repeats", "1", "--train-steps", "2", "--output", str(report)]
    cmd += ["--override", "image_size=64", "--override", "features=[8,16,32,64]"]
    cmd += ["--runtimes", "plain", "onnxruntime:fp32"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _table(proc.stdout)
    wanted = (
        "inference, whole case",
        "inference, network only",
        "peak memory, inference",
        "training step",
        "peak memory, training",
    )
    for name in wanted:
        assert name in rows, f"no row {name!r} in:\n{proc.stdout}"
        number = re.match(r"[0-9.]+", rows[name])
        assert number and float(number.group()) > 0, f"{name}: {rows[name]!r}"
    assert "samples/s" in proc.stdout and "cases/s" in proc.stdout
    # one inference run per runtime variant; the fast one names its runtime and compares with the first
    assert f"`{BUNDLE}` (inference.json, plain)" in proc.stdout
    fast = next(line for line in proc.stdout.splitlines() if "(inference.json, onnxruntime:fp32)" in line)
    assert "onnxruntime fp32" in fast and "first row / this: whole case" in fast
    assert "OPENBLAS_CORETYPE=" in proc.stdout
    assert report.read_text().strip() == proc.stdout.strip()  # --output writes the same report
