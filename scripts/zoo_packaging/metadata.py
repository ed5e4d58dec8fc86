"""The requirements of a package: what a plain ``pip install`` of its ``metadata.json`` gives, without this
repository's distribution (its code is vendored), must cover what the vendored code imports."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

from . import REPO, PackError
from .closure import ModuleScan


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def repo_distribution() -> str:
    """This repository's distribution name, from pyproject.toml."""
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["name"]


def declared_distributions(meta: Mapping) -> set[str]:
    """Normalised names of every distribution metadata.json asks for."""
    base = {"monai_version": "monai", "pytorch_version": "torch", "numpy_version": "numpy"}
    names = {dist for key, dist in base.items() if key in meta}
    for key in ("required_packages_version", "optional_packages_version"):
        names |= {_normalise(n) for n in meta.get(key, {})}
    return names


def _with_dependencies(names: set[str]) -> set[str]:
    """``names`` and, transitively, the dependencies installed distributions declare (markers evaluated
    here, extras left out)."""
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import InvalidRequirement, Requirement

    found, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        try:
            declared = requires(name) or []
        except PackageNotFoundError:
            continue
        for text in declared:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(_normalise(req.name))
    return found


def package_metadata(meta: dict, metadata_file: Path, imports: ModuleScan) -> dict:
    """metadata.json of the package: this repository's distribution left out of the requirements, and a
    check that every package the vendored code imports is required (or a dependency of a required one)."""
    from importlib.metadata import packages_distributions

    own = _normalise(repo_distribution())
    meta = json.loads(json.dumps(meta))  # a copy
    for key in ("required_packages_version", "optional_packages_version"):
        if key in meta:
            meta[key] = {k: v for k, v in meta[key].items() if _normalise(k) != own}
    available = _with_dependencies(declared_distributions(meta))
    by_import = packages_distributions()
    missing = []
    for top in sorted(imports.third_party):
        dists = {_normalise(d) for d in by_import.get(top, [])}
        if not dists:
            raise PackError(
                f"the vendored code imports {top!r}, which is not installed here, so {metadata_file} cannot "
                "be checked against it; install it"
            )
        if not dists & available:
            missing.append(f"{top} (pip: {', '.join(sorted(dists))})")
    if missing:
        raise PackError(
            f"{metadata_file}: required_packages_version lacks what the vendored code imports: "
            f"{'; '.join(missing)}"
        )
    return meta
