"""Where a bundle lives, so its configs run from any working directory."""

from __future__ import annotations

import json
import os
from pathlib import Path

REPO_BUNDLES = Path(__file__).resolve().parent.parent / "bundles"


def bundle_root(name: str) -> str:
    """Root folder of the bundle ``name``.

    The current directory when it is that bundle (``configs/metadata.json`` names it, as when the bundle
    is run from its own folder or unpacked from a model zoo), else ``bundles/<name>`` of this repository.
    Configs use it as the default of ``bundle_root``; ``--bundle_root`` overrides it as usual.
    """
    cwd_meta = Path.cwd() / "configs" / "metadata.json"
    if cwd_meta.is_file():
        try:
            if json.loads(cwd_meta.read_text()).get("name", "").strip().lower().replace(" ", "_") == name or (
                Path.cwd().name == name
            ):
                return os.fspath(Path.cwd())
        except (OSError, json.JSONDecodeError):
            pass
    candidate = REPO_BUNDLES / name
    if candidate.is_dir():
        return os.fspath(candidate)
    raise FileNotFoundError(
        f"bundle {name!r} not found in {Path.cwd()} or {REPO_BUNDLES}; pass --bundle_root"
    )
