"""Fixtures shared by the bundle tests: a bundle copied to a temporary folder and run as a user would."""

from __future__ import annotations

import csv
import importlib.util
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from monai.bundle import ConfigWorkflow

REPO = Path(__file__).resolve().parents[2]
BUNDLES = sorted(p.name for p in (REPO / "bundles").iterdir() if (p / "configs" / "metadata.json").is_file())
#: outputs a bundle run writes into its folder; never copied
RUN_OUTPUTS = ("phantom_data", "runs", "models", "eval", "predictions", "tissue_cache")


def copy_bundle(name: str, dest: Path) -> Path:
    """A clean copy of ``bundles/<name>`` (configs, docs, LICENSE) under ``dest``."""
    target = dest / name
    shutil.copytree(REPO / "bundles" / name, target, ignore=shutil.ignore_patterns(*RUN_OUTPUTS))
    return target


def workflow(bundle_dir: Path, configs: list[str], workflow_type: str, smoke: bool = True, **overrides):
    """An initialised ``ConfigWorkflow`` of ``configs`` (merged in order, then ``smoke_test.json``)."""
    folder = bundle_dir / "configs"
    files = [folder / name for name in configs] + ([folder / "smoke_test.json"] if smoke else [])
    wf = ConfigWorkflow(
        config_file=[str(f) for f in files],
        meta_file=str(folder / "metadata.json"),
        logging_file=str(folder / "logging.conf"),
        workflow_type=workflow_type,
        bundle_root=str(bundle_dir),
        **overrides,
    )
    wf.initialize()
    return wf


def configs(bundle: str) -> Path:
    """The configs folder of ``bundles/<bundle>`` in this checkout."""
    return REPO / "bundles" / bundle / "configs"


def run_bundle(bundle: str, config: str | list[str], **overrides):
    """Initialise, run and finalise ``config`` (a file name or several, merged in order) of ``bundle`` in
    this checkout, as ``python -m monai.bundle run`` does."""
    names = [config] if isinstance(config, str) else config
    folder = configs(bundle)
    wf = ConfigWorkflow(
        config_file=[str(folder / name) for name in names],
        meta_file=str(folder / "metadata.json"),
        logging_file=str(folder / "logging.conf"),
        workflow_type="train" if names[0] == "train.json" and len(names) == 1 else "infer",
        **overrides,
    )
    wf.initialize()
    wf.run()
    wf.finalize()
    return wf


# ------------------------------------------------------------------------------ the fast inference gate

# the paths ``runtime: auto`` may take on a CPU; PyTorch bf16 (opt-in only) missed the mask bound on two
# bundles (Dice 0.993 on MMRAN and stroke phantoms, 2026-12-04), so auto never picks it
FAST_PATHS = [("onnxruntime", "fp32"), ("openvino", "fp32"), ("openvino", "bf16")]
MASK_DICE_BOUND = 0.995  # least Dice of a fast path's mask with PyTorch fp32's, per label
PROBABILITY_BOUND = 0.02  # largest difference of a written probability from PyTorch fp32's


def compare_predictions(reference: Path, fast: Path) -> dict[str, float]:
    """Worst agreement of every prediction file in ``fast`` with the same file in ``reference``.

    NIfTI label maps: the Dice of each label (``foreground``: labelled voxels of the reference); NIfTI float
    maps and CSV number cells: the largest absolute difference; CSV text cells (classes): the share that
    agree.
    """
    import nibabel as nib

    worst = {"dice": 1.0, "max_abs_diff": 0.0, "text_agreement": 1.0, "masks": 0, "foreground": 0}
    files = sorted(p.relative_to(reference) for p in reference.rglob("*") if p.is_file())
    assert files, f"no predictions in {reference}"
    for name in files:
        a, b = reference / name, fast / name
        assert b.is_file(), f"{name} missing from the fast path's predictions"
        if name.name.endswith((".nii", ".nii.gz")):
            x, y = np.asarray(nib.load(a).dataobj), np.asarray(nib.load(b).dataobj)
            assert x.shape == y.shape
            if np.issubdtype(x.dtype, np.integer) or x.dtype == bool:
                worst["masks"] += 1
                worst["foreground"] += int((x != 0).sum())
                for label in np.setdiff1d(np.union1d(np.unique(x), np.unique(y)), [0]):
                    p, q = x == label, y == label
                    worst["dice"] = min(worst["dice"], 2 * float((p & q).sum()) / float(p.sum() + q.sum()))
            else:
                worst["max_abs_diff"] = max(worst["max_abs_diff"], float(np.abs(x - y).max()))
        elif name.suffix == ".csv":
            rows_a, rows_b = list(csv.reader(open(a))), list(csv.reader(open(b)))
            assert len(rows_a) == len(rows_b)
            same = cells = 0
            for ra, rb in zip(rows_a, rows_b):
                for ca, cb in zip(ra, rb):
                    try:
                        worst["max_abs_diff"] = max(worst["max_abs_diff"], abs(float(ca) - float(cb)))
                    except ValueError:
                        same, cells = same + (ca == cb), cells + 1
            if cells:
                worst["text_agreement"] = min(worst["text_agreement"], same / cells)
    return worst


def fast_path_agreement(
    bundle: str,
    tmp_path: Path,
    config_overrides: dict[str, Any],
    bundle_dir: Path | None = None,
    paths: list[tuple[str, str]] = FAST_PATHS,
) -> dict[tuple[str, str], dict[str, float]]:
    """``inference.json`` with PyTorch fp32, then with each installed fast path of ``paths``: agreement.

    ``bundle_dir``: a copy of the bundle (default: this checkout's); ``config_overrides``: the inference
    overrides of the test (data, checkpoint, network size). Prints one line per path (``pytest -s``).
    """
    folder = (bundle_dir or REPO / "bundles" / bundle) / "configs"

    def infer(runtime: str, precision: str) -> Path:
        out = tmp_path / f"{runtime}_{precision}"
        overrides = {**config_overrides, "runtime": runtime, "precision": precision, "output_dir": str(out)}
        files = [str(folder / "inference.json")] + ([str(folder / "smoke_test.json")] if bundle_dir else [])
        wf = ConfigWorkflow(
            config_file=files,
            meta_file=str(folder / "metadata.json"),
            logging_file=str(folder / "logging.conf"),
            workflow_type="infer",
            **({"bundle_root": str(bundle_dir)} if bundle_dir else {}),
            **overrides,
        )
        wf.initialize()
        wf.run()
        wf.finalize()
        return out

    reference = infer("torch", "fp32")
    results = {}
    for runtime, precision in paths:
        if runtime != "torch" and importlib.util.find_spec(runtime) is None:
            continue
        results[runtime, precision] = compare_predictions(reference, infer(runtime, precision))
        print(f"{bundle} {runtime} {precision}: {results[runtime, precision]}")
    return results


def assert_fast_paths_agree(results: dict[tuple[str, str], dict[str, float]], trained: bool = True) -> None:
    """The gate: masks Dice >= 0.995 per label and written probabilities within 0.02 of PyTorch fp32's.

    ``trained``: the model was trained on phantoms, so its reference masks must have labelled voxels (the
    Dice is not vacuous). A predicted class may differ where its probability sits within the bound of the
    threshold; the share of equal class cells is reported, not asserted.
    """
    assert results
    for path, worst in results.items():
        if trained:
            empty = worst["masks"] and not worst["foreground"]
            assert not empty, f"{path}: the reference masks are empty, the gate would say nothing"
        assert worst["dice"] >= MASK_DICE_BOUND, (path, worst)
        assert worst["max_abs_diff"] <= PROBABILITY_BOUND, (path, worst)
