"""The model zoo's own CI on packages: its ``ci/verify_bundle.py``, unmodified, in an interpreter that cannot
import this repository (so a package that still needs ``common`` fails here, as it would in the zoo)."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

from . import REPO, PackError, read_json

DEFAULT_SCHEMA_DIR = REPO.parent / "shared" / "zoo"


def site_packages(python: str = sys.executable) -> list[str]:
    """The site-packages folders of ``python`` (a venv's interpreter)."""
    code = "import json, site; print(json.dumps(site.getsitepackages()))"
    return json.loads(subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout)


def isolated_python(python: str = sys.executable) -> tuple[list[str], dict[str, str]]:
    """Command prefix and environment of ``python`` with its installed packages but not this repository.

    ``-S`` skips the site module, so no ``.pth`` file runs (an editable install of this repository is one)
    and the user site is not read; the site-packages folders come back through PYTHONPATH. As with
    ``python -m``, the working directory is first on ``sys.path``: a bundle's ``scripts`` imports when run
    from the bundle folder.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env["PYTHONPATH"] = os.pathsep.join(site_packages(python))
    env["PYTHONNOUSERSITE"] = "1"
    return [python, "-S"], env


def _zoo_file(zoo: Path, rel: str, rev: str) -> str | None:
    """A file of the model zoo: from a checkout, else from a (bare) git repository at ``rev``."""
    if (zoo / rel).is_file():
        return (zoo / rel).read_text(encoding="utf-8")
    result = subprocess.run(["git", "-C", str(zoo), "show", f"{rev}:{rel}"], capture_output=True, text=True)
    return result.stdout if result.returncode == 0 else None


def extract_zoo_ci(zoo: Path, dest: Path, rev: str = "HEAD") -> Path:
    """``ci/verify_bundle.py`` and the zoo modules it imports (transitively) into ``dest/ci``; the zoo's
    ``models/model_info.json`` into ``dest/models``. Returns ``dest/ci/verify_bundle.py``."""
    (dest / "ci").mkdir(parents=True, exist_ok=True)
    todo, done = ["verify_bundle"], set()
    while todo:
        module = todo.pop()
        if module in done:
            continue
        done.add(module)
        text = _zoo_file(zoo, f"ci/{module}.py", rev)
        if text is None:
            if module == "verify_bundle":
                raise PackError(f"{zoo}: no ci/verify_bundle.py (a model-zoo checkout or git clone?)")
            continue  # not a zoo module: a package of the environment
        (dest / "ci" / f"{module}.py").write_text(text, encoding="utf-8")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                todo += [a.name.partition(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                todo.append(node.module.partition(".")[0])
    model_info = _zoo_file(zoo, "models/model_info.json", rev)
    if model_info is None:
        raise PackError(f"{zoo}: no models/model_info.json (verify_bundle.py checks the version against it)")
    (dest / "models").mkdir(exist_ok=True)
    (dest / "models" / "model_info.json").write_text(model_info, encoding="utf-8")
    return dest / "ci" / "verify_bundle.py"


def _unzip_package(zip_path: Path, models_dir: Path) -> str:
    """Extract a package into ``models_dir``; returns its folder name (checked: one top-level folder)."""
    try:
        with zipfile.ZipFile(zip_path) as zf:
            names = zf.namelist()
            tops = {n.split("/", 1)[0] for n in names}
            if len(tops) != 1 or any(".." in Path(n).parts or n.startswith("/") for n in names):
                raise PackError(f"{zip_path}: must hold exactly one top-level folder, found {sorted(tops)}")
            zf.extractall(models_dir)
    except zipfile.BadZipFile as err:
        raise PackError(f"{zip_path}: not a zip file: {err}") from err
    return tops.pop()


def _place_schema(bundle_dir: Path, schema_dir: Path | None) -> None:
    """eval/schema.json, as the zoo CI's prepare_schema.py puts it before verify_bundle.py runs: a local copy
    named like the schema URL's file when there is one, else downloaded from the URL."""
    meta = read_json(bundle_dir / "configs" / "metadata.json")
    url = meta.get("schema", "") if isinstance(meta, dict) else ""
    target = bundle_dir / "eval" / "schema.json"
    target.parent.mkdir(exist_ok=True)
    local = (schema_dir or DEFAULT_SCHEMA_DIR) / url.rsplit("/", 1)[-1]
    if url and local.is_file():
        shutil.copyfile(local, target)
        return
    from monai.apps.utils import download_url

    try:
        download_url(url=url, filepath=target, progress=False)
    except Exception as err:
        raise PackError(f"cannot get the metadata schema {url!r} (no {local}): {err}") from err


def _place_local_large_files(bundle_dir: Path, dist_dir: Path) -> None:
    """Put each large file that lies in ``dist_dir`` (named like the end of its URL) into the bundle."""
    import yaml

    listing = bundle_dir / "large_files.yml"
    if not listing.is_file():
        return
    for entry in yaml.safe_load(listing.read_text(encoding="utf-8"))["large_files"]:
        beside = dist_dir / entry["url"].rsplit("/", 1)[-1]
        if beside.is_file():
            target = bundle_dir / entry["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(beside, target)


def verify_packages(
    zoo: Path,
    zips: list[Path],
    modes: Iterable[str] = ("min", "full"),
    python: str = sys.executable,
    schema_dir: Path | None = None,
    local_large_files: bool = True,
    rev: str = "HEAD",
    workdir: Path | None = None,
) -> dict[tuple[str, str], str]:
    """Run the zoo's ``ci/verify_bundle.py`` on each package in ``zips``, per mode, as the zoo CI does
    (``python ci/verify_bundle.py -b NAME -m MODE`` from the zoo root, after its prepare_schema step), in an
    interpreter that cannot import ``common``. Returns the output per (bundle, mode); raises on a failure.

    With ``local_large_files`` a large file lying beside the zip (where ``make pack`` writes it) is put into
    the bundle first; verify_bundle.py then only checks its hash instead of downloading it.
    """
    if not zips:
        raise PackError("no packages to verify; run make pack first")
    outputs = {}
    with tempfile.TemporaryDirectory(prefix="zoo_verify_", dir=workdir) as tmp:
        root = Path(tmp)
        extract_zoo_ci(zoo, root, rev)
        command, env = isolated_python(python)
        for zip_path in zips:
            name = _unzip_package(zip_path, root / "models")
            bundle_dir = root / "models" / name
            _place_schema(bundle_dir, schema_dir)
            if local_large_files:
                _place_local_large_files(bundle_dir, zip_path.parent)
            for mode in modes:
                argv = [*command, "ci/verify_bundle.py", "-b", name, "-p", "models", "-m", mode]
                result = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True)
                output = result.stdout + result.stderr
                outputs[(name, mode)] = output
                if result.returncode != 0:
                    raise PackError(
                        f"{zip_path}: verify_bundle.py -m {mode} failed (exit {result.returncode}):\n"
                        f"{output[-4000:]}"
                    )
                print(f"{zip_path.name}: verify_bundle.py -m {mode}: passed")
    return outputs
