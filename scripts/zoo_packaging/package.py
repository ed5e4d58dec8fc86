"""One bundle's package: built and checked in memory, then written atomically; :func:`pack` does every bundle.

A weights file over ``max_zip_file_mb`` (25 MB, the zoo's limit) is left out of the zip, listed in
``<name>/large_files.yml`` with its URL (``large_files_url`` + file name) and SHA-256, and written beside the
zip for upload.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import PACKAGE, REPO, VENDORED, PackError, read_json
from .closure import ModuleScan, closure, config_references, module_files
from .metadata import package_metadata
from .rewrite import (
    config_leftovers,
    python_leftovers,
    rewrite_config,
    rewrite_python,
    text_refers_to_package,
)

BUNDLES_DIR = REPO / "bundles"
RUN_OUTPUTS = {"phantom_data", "runs", "models", "eval", "predictions", "tissue_cache"}
MAX_ZIP_FILE_MB = 25.0
ZIP_DATE = (2022, 5, 30, 0, 0, 0)  # fixed, as the zoo's own compress_bundle does: same input, same bytes


def dump_json(value: object) -> str:
    """The repository's JSON format."""
    return json.dumps(value, indent=4, ensure_ascii=False) + "\n"


@dataclass
class LargeFile:
    """A file kept out of the zip: written beside it, downloaded from ``url`` by ``large_files.yml``."""

    path: str  # inside the bundle, e.g. models/model.pt
    source: Path
    size: int
    sha256: str
    dist_name: str  # the file name beside the zip, and at the end of its URL
    url: str


@dataclass
class Package:
    """Everything a package holds, checked, before anything is written."""

    name: str
    version: str
    members: dict[str, bytes | Path] = field(default_factory=dict)  # path inside the zip -> content
    large_files: list[LargeFile] = field(default_factory=list)
    vendored: list[str] = field(default_factory=list)  # modules of common, sorted
    third_party: list[str] = field(default_factory=list)

    @property
    def zip_name(self) -> str:
        return f"{self.name}_v{self.version}.zip"


# ----------------------------------------------------------------------------------------------------------
# building: every check happens here, before anything is written


def build_package(
    name: str,
    weights: Path | None = None,
    large_files_url: str | None = None,
    max_zip_file_mb: float = MAX_ZIP_FILE_MB,
    bundles_dir: Path = BUNDLES_DIR,
) -> Package:
    """The package of ``bundles_dir/name``, checked; nothing is written."""
    bundle_dir = bundles_dir / name
    metadata_file = bundle_dir / "configs" / "metadata.json"
    if not metadata_file.is_file():
        raise PackError(f"{metadata_file}: missing; is {name!r} a bundle?")
    meta = read_json(metadata_file)
    if not isinstance(meta, dict) or not isinstance(meta.get("version"), str):
        raise PackError(f'{metadata_file}: no "version" string')
    package = Package(name=name, version=meta["version"])
    weights = bundle_dir / "models" / "model.pt" if weights is None else Path(weights)
    _check_weights(weights, name)

    roots = {PACKAGE} | _add_bundle_files(package, bundle_dir)
    imports = _add_vendored_code(package, roots)
    package.members[f"{name}/configs/metadata.json"] = dump_json(
        package_metadata(meta, metadata_file, imports)
    ).encode("utf-8")
    _add_weights(package, weights, large_files_url, max_zip_file_mb)
    return package


def _check_weights(path: Path, bundle: str) -> None:
    """``path`` must be a state dict that ``torch.load(weights_only=True)`` reads (what CheckpointLoader and
    ``monai.bundle.load`` do)."""
    if not path.is_file():
        raise PackError(f"bundle {bundle}: no weights at {path}: train first or pass --weights {bundle}=PATH")
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # torch raises many kinds for a file that is not a checkpoint
        raise PackError(f"{path}: not a checkpoint torch.load(weights_only=True) can read: {err}") from err
    if not isinstance(state, Mapping) or not state:
        raise PackError(f"{path}: not a state dict (a mapping of parameter names to tensors)")


def _bundle_files(bundle_dir: Path) -> list[Path]:
    """configs/, docs/ and LICENSE of a bundle; no run outputs, caches or hidden files."""
    files = []
    for sub in ("configs", "docs"):
        folder = bundle_dir / sub
        if not folder.is_dir():
            raise PackError(f"{folder}: missing")
        for path in sorted(folder.rglob("*")):
            parts = path.relative_to(bundle_dir).parts
            if path.is_file() and not any(p.startswith(".") or p == "__pycache__" for p in parts):
                files.append(path)
    license_file = bundle_dir / "LICENSE"
    if not license_file.is_file():
        raise PackError(f"{license_file}: missing (the zoo requires a LICENSE)")
    return [license_file, *files]


def _add_bundle_files(package: Package, bundle_dir: Path) -> set[str]:
    """The bundle's files into ``package``, JSON configs rewritten (metadata.json apart: it comes last);
    returns the references to ``common`` the configs make."""
    references: set[str] = set()
    for path in _bundle_files(bundle_dir):
        rel = path.relative_to(bundle_dir).as_posix()
        if rel == "configs/metadata.json":
            continue
        if rel.startswith("configs/") and path.suffix == ".json":
            config = read_json(path)
            references |= config_references(config)
            package.members[f"{package.name}/{rel}"] = _packaged_config(path, config)
        elif rel.startswith("configs/"):
            if text_refers_to_package(path.read_text(encoding="utf-8", errors="replace")):
                raise PackError(f"{path}: refers to {PACKAGE}, and only JSON configs are rewritten")
            package.members[f"{package.name}/{rel}"] = path
        else:
            package.members[f"{package.name}/{rel}"] = path
    return references


def _packaged_config(path: Path, config: object) -> bytes:
    """A JSON config as packaged: ``common`` renamed (checked), ``bundle_root`` the bundle folder."""
    config = rewrite_config(config)
    # commands run from the bundle folder, as in the zoo; --bundle_root overrides it
    root = config.get("bundle_root") if isinstance(config, dict) else None
    if isinstance(root, str) and "paths.bundle_root" in root:
        config["bundle_root"] = "."
    leftovers = config_leftovers(config)
    if leftovers:
        raise PackError(f"{path}: references to {PACKAGE} left after rewriting: {'; '.join(leftovers)}")
    return dump_json(config).encode("utf-8")


def _add_vendored_code(package: Package, roots: set[str]) -> ModuleScan:
    """The modules of ``common`` that ``roots`` need, renamed ``scripts`` (checked), into ``package``;
    returns what they import."""
    modules = module_files()
    needed, imports = closure(roots, modules)
    package.vendored = sorted(needed)
    package.third_party = sorted(imports.third_party)
    for module in package.vendored:
        path = modules[module]
        rel = path.relative_to(REPO / PACKAGE).as_posix()
        source = rewrite_python(path.read_text(encoding="utf-8"), str(path))
        problems = python_leftovers(source, str(path))
        if problems:
            raise PackError(f"references to {PACKAGE} left after rewriting: {'; '.join(problems)}")
        package.members[f"{package.name}/{VENDORED}/{rel}"] = source.encode("utf-8")
    return imports


def _add_weights(
    package: Package, weights: Path, large_files_url: str | None, max_zip_file_mb: float
) -> None:
    """``models/model.pt`` in the zip, or, over ``max_zip_file_mb``, a large file beside it."""
    size = weights.stat().st_size
    if size <= max_zip_file_mb * 1e6:
        package.members[f"{package.name}/models/model.pt"] = weights
        return
    dist_name = f"{package.name}_v{package.version}_model.pt"
    if not large_files_url:
        raise PackError(
            f"{weights}: {size / 1e6:.0f} MB, over the {max_zip_file_mb:g} MB a zoo package may hold; "
            f"pass --large-files-url BASE (the folder URL where {dist_name}, written beside the zip, "
            "will be uploaded)"
        )
    package.large_files.append(
        LargeFile(
            path="models/model.pt",
            source=weights,
            size=size,
            sha256=_sha256(weights),
            dist_name=dist_name,
            url=f"{large_files_url.rstrip('/')}/{dist_name}",
        )
    )
    package.members[f"{package.name}/large_files.yml"] = _large_files_yml(package.large_files)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _large_files_yml(large_files: list[LargeFile]) -> bytes:
    """``large_files.yml`` as ``monai.bundle download_large_files`` and the zoo's CI read it."""
    lines = ["large_files:"]
    for lf in large_files:
        lines += [
            f"- path: {json.dumps(lf.path)}",
            f"  url: {json.dumps(lf.url)}",
            f"  hash_val: {json.dumps(lf.sha256)}",
            '  hash_type: "sha256"',
        ]
    return ("\n".join(lines) + "\n").encode("utf-8")


# ----------------------------------------------------------------------------------------------------------
# writing, atomically


def _atomic_target(dest: Path) -> Path:
    """A temporary file beside ``dest`` (same file system, so os.replace is atomic)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    return Path(tmp)


def _replace_atomically(dest: Path, write) -> None:
    """``write(tmp)``, then ``tmp`` becomes ``dest``; on any failure ``dest`` is left as it was."""
    tmp = _atomic_target(dest)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; a package is for sharing
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_package(package: Package, out_dir: Path) -> Path:
    """Write the large files, then the zip (so a zip never names a file that is not there)."""
    for lf in package.large_files:
        _replace_atomically(out_dir / lf.dist_name, lambda tmp, src=lf.source: shutil.copyfile(src, tmp))

    def write_zip(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
            for arcname in sorted(package.members):
                info = zipfile.ZipInfo(arcname, date_time=ZIP_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o100644 << 16
                content = package.members[arcname]
                if isinstance(content, Path):
                    with open(content, "rb") as src, zf.open(info, "w", force_zip64=True) as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                else:
                    zf.writestr(info, content)

    dest = out_dir / package.zip_name
    _replace_atomically(dest, write_zip)
    return dest


# ----------------------------------------------------------------------------------------------------------
# every bundle: all checked, then all written


def bundle_names(bundles_dir: Path = BUNDLES_DIR) -> list[str]:
    """Every folder of ``bundles_dir`` with a configs/metadata.json."""
    return sorted(p.name for p in bundles_dir.iterdir() if (p / "configs" / "metadata.json").is_file())


def parse_weights(items: list[str], names: list[str]) -> dict[str, Path]:
    """``--weights NAME=PATH`` items as bundle name -> weights file; NAME must be one of ``names``."""
    weights = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not path:
            raise PackError(f"--weights {item!r}: expected NAME=PATH")
        if name not in names:
            raise PackError(f"--weights {item!r}: {name!r} is not a bundle being packed ({', '.join(names)})")
        weights[name] = Path(path)
    return weights


def pack(
    out_dir: Path,
    names: list[str] | None = None,
    weights: Mapping[str, Path] | None = None,
    large_files_url: str | None = None,
    max_zip_file_mb: float = MAX_ZIP_FILE_MB,
) -> list[Path]:
    """Check every bundle's package, then write them all; returns the zips."""
    all_names = bundle_names()
    names = names or all_names
    unknown = sorted(set(names) - set(all_names))
    if unknown:
        raise PackError(f"{BUNDLES_DIR}: no bundle {', '.join(unknown)} (bundles: {', '.join(all_names)})")
    weights = weights or {}
    packages = [
        build_package(n, weights.get(n), large_files_url=large_files_url, max_zip_file_mb=max_zip_file_mb)
        for n in names
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    ignore = out_dir / ".gitignore"
    if not ignore.exists():  # packages and large files are release artefacts, never commits
        ignore.write_text("# written by scripts/pack.py\n*\n", encoding="utf-8")
    written = []
    for package in packages:
        dest = write_package(package, out_dir)
        written.append(dest)
        large = "".join(
            f"; {lf.path} ({lf.size / 1e6:.0f} MB) -> {out_dir / lf.dist_name}" for lf in package.large_files
        )
        print(f"{dest}: {len(package.vendored)} modules of {PACKAGE} as {VENDORED}/{large}")
    return written
