"""Where a bundle lives, so its configs run from any working directory."""

from __future__ import annotations

import os
from pathlib import Path

REPO_BUNDLES = Path(__file__).resolve().parent.parent / "bundles"


def bundle_root(name: str) -> str:
    """Root folder of the bundle ``name``.

    The current directory when it is that bundle (a folder named ``name`` with ``configs/metadata.json``,
    as when the bundle is run from its own folder or unpacked from a model zoo), else ``bundles/<name>`` of
    this repository. Configs use it as the default of ``bundle_root``; ``--bundle_root`` overrides it.
    """
    cwd = Path.cwd()
    # The folder name, not metadata.json's "name": that is a display name ("MMRAN brain tumor ...").
    if cwd.name == name and (cwd / "configs" / "metadata.json").is_file():
        return os.fspath(cwd)
    candidate = REPO_BUNDLES / name
    if candidate.is_dir():
        return os.fspath(candidate)
    raise FileNotFoundError(
        f"bundle {name!r} not found in {Path.cwd()} or {REPO_BUNDLES}; pass --bundle_root"
    )
