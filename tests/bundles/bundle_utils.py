"""Run a bundle config in-process through ``monai.bundle``, as ``python -m monai.bundle run`` does."""

from __future__ import annotations

from pathlib import Path

from monai.bundle import ConfigWorkflow

REPO = Path(__file__).resolve().parent.parent


def configs(bundle: str) -> Path:
    return REPO / "bundles" / bundle / "configs"


def run_bundle(bundle: str, config: str | list[str], **overrides):
    """Initialise, run and finalise ``config`` (a file name or several, merged in order) of ``bundle``."""
    names = [config] if isinstance(config, str) else config
    folder = configs(bundle)
    workflow = ConfigWorkflow(
        config_file=[str(folder / name) for name in names],
        meta_file=str(folder / "metadata.json"),
        logging_file=str(folder / "logging.conf"),
        workflow_type="train" if names[0] == "train.json" and len(names) == 1 else "infer",
        **overrides,
    )
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    return workflow
