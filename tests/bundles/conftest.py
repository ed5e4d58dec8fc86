"""Fixtures shared by the bundle tests: a bundle copied to a temporary folder and run as a user would."""

from __future__ import annotations

import shutil
from pathlib import Path

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
