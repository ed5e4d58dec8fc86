"""Model-zoo packages (``scripts/pack.py``, ``make pack``), for every bundle in ``bundles/``.

Each bundle is packed with weights of its own ``network_def`` (fixed seed): smoke-test sized for the
inference run, full sized for ``monai.bundle download``/``load`` and the zoo's ``ci/verify_bundle.py`` (full
MMRAN is ~181 MB, so it goes through ``large_files.yml``, served from a ``file://`` URL). The package is then
used where this repository cannot be imported: an interpreter without the editable install of ``common``.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import nibabel as nib
import pytest
import torch
from monai.bundle import ConfigParser

from scripts.zoo_packaging import PackError
from scripts.zoo_packaging.closure import closure, module_files
from scripts.zoo_packaging.metadata import package_metadata, repo_distribution
from scripts.zoo_packaging.package import RUN_OUTPUTS, build_package, pack, parse_weights, write_package
from scripts.zoo_packaging.rewrite import config_leftovers, python_leftovers, rewrite_config, rewrite_python
from scripts.zoo_packaging.zoo_verify import isolated_python, verify_packages

from ..bundles.conftest import BUNDLES, REPO

#: a model-zoo checkout or (bare) git clone; CI without one skips the verify_bundle.py test
ZOO = Path(os.environ.get("MODEL_ZOO", "/work/.mirror/Project-MONAI+model-zoo/repo"))
SCHEMA = REPO.parent / "shared" / "zoo" / "meta_schema_20240725.json"
ZOO_LIMIT = 25e6  # bytes a file in a zoo zip may have


def make_weights(bundle: str, path: Path, smoke: bool) -> Path:
    """The state dict of ``network_def`` in the bundle's inference.json (+ smoke_test.json), seed 0."""
    folder = REPO / "bundles" / bundle / "configs"
    parser = ConfigParser()
    parser.read_config(
        [str(folder / "inference.json")] + ([str(folder / "smoke_test.json")] if smoke else [])
    )
    parser.read_meta(str(folder / "metadata.json"))
    parser["bundle_root"] = str(path.parent)
    torch.manual_seed(0)
    torch.save(parser.get_parsed_content("network_def").state_dict(), path)
    return path


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    """``get(bundle, size)`` -> (zip, weights file); size "smoke" or "full"; each packed once per module."""
    made: dict[tuple[str, str], tuple[Path, Path]] = {}

    def get(bundle: str, size: str) -> tuple[Path, Path]:
        if (bundle, size) not in made:
            root = tmp_path_factory.mktemp(f"{size}_{bundle[:20]}")
            weights = make_weights(bundle, root / "model.pt", smoke=size == "smoke")
            dist = root / "dist"
            [zip_path] = pack(dist, [bundle], {bundle: weights}, large_files_url=dist.as_uri())
            made[bundle, size] = zip_path, weights
        return made[bundle, size]

    return get


def run_clean(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python ARGS`` in an interpreter that cannot import ``common``; fails the test on an error."""
    command, env = isolated_python()
    result = subprocess.run(
        [*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


def unzip(zip_path: Path, dest: Path) -> Path:
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(dest)
    return dest / zip_path.name.rpartition("_v")[0]


# ----------------------------------------------------------------------------------------------------------
# the rules of the vendoring, on small synthetic inputs


def test_rewrite_python_renames_imports_names_module_strings_and_docs():
    source = '''"""Uses :mod:`common.data` and ``import common``."""
import common.data.brats
import numpy as np
from common.heads import HeadSpec  # see common.heads
from . import sibling

REGISTRY = {"brats": "common.data.brats", "writer": "common.data.phantoms.brats:make"}
common_words = "common sense"


def f():
    from common.labels import BRATS

    return common.data.brats.ADAPTER, np, HeadSpec, BRATS
'''
    expected = '''"""Uses :mod:`scripts.data` and ``import scripts``."""
import scripts.data.brats
import numpy as np
from scripts.heads import HeadSpec  # see scripts.heads
from . import sibling

REGISTRY = {"brats": "scripts.data.brats", "writer": "scripts.data.phantoms.brats:make"}
common_words = "common sense"


def f():
    from scripts.labels import BRATS

    return scripts.data.brats.ADAPTER, np, HeadSpec, BRATS
'''
    rewritten = rewrite_python(source, "x.py")
    assert rewritten == expected
    assert python_leftovers(rewritten, "x.py") == []
    assert python_leftovers(source, "x.py")  # the original is caught
    left = python_leftovers('import importlib\nm = importlib.import_module("common")\n', "y.py")
    assert left and "y.py:2" in left[0]


def test_rewrite_config_renames_expressions_and_targets_only():
    config = {
        "imports": ["$import common", "$import numpy"],
        "heads": {"_target_": "common.heads.HeadSpec"},
        "datalist": "$common.data.prepare_datalist('brats', @dataset_dir)",
        "note": "the common layer",
    }
    rewritten = rewrite_config(config)
    assert rewritten == {
        "imports": ["$import scripts", "$import numpy"],
        "heads": {"_target_": "scripts.heads.HeadSpec"},
        "datalist": "$scripts.data.prepare_datalist('brats', @dataset_dir)",
        "note": "the common layer",
    }
    assert config_leftovers(rewritten) == []
    assert config_leftovers(config) == [
        "imports#0: '$import common'",
        "heads#_target_: 'common.heads.HeadSpec'",
        "datalist: \"$common.data.prepare_datalist('brats', @dataset_dir)\"",
    ]


def test_closure_follows_imports_lazy_packages_and_module_strings(tmp_path):
    """Imports inside functions, a lazy (PEP 562) package's submodule names and "common.x:f" strings are
    edges; unreferenced modules are left out; third-party imports are collected (optional ones apart)."""
    files = {
        "__init__.py": "from . import lazy, reg\n",
        "lazy/__init__.py": (
            "import importlib\n_SUBMODULES = {'a'}\n"
            "def __getattr__(name):\n    return importlib.import_module(f'{__name__}.{name}')\n"
        ),
        "lazy/a.py": "import numpy\n",
        "lazy/b.py": "import not_needed\n",
        "reg.py": (
            "WRITERS = {'p': 'common.plugins.p:write'}\n"
            "def load():\n    from common.util import helper\n    import yaml\n"
            "try:\n    import optional_thing\nexcept ImportError:\n    optional_thing = None\n"
        ),
        "plugins/__init__.py": "",
        "plugins/p.py": "import os\n",
        "util.py": "def helper():\n    pass\n",
        "unused.py": "import torch\n",
    }
    for rel, text in files.items():
        (tmp_path / "common" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "common" / rel).write_text(text)
    modules = module_files(tmp_path / "common")
    needed, imports = closure({"common"}, modules)
    expected = {"common", "common.lazy", "common.lazy.a", "common.reg", "common.plugins", "common.plugins.p"}
    assert needed == expected | {"common.util"}
    assert imports.third_party == {"numpy", "yaml"}
    assert imports.optional == {"optional_thing"}
    with pytest.raises(PackError, match="other.x is not a module of common"):
        closure({"other.x"}, modules)


# ----------------------------------------------------------------------------------------------------------
# the package of each bundle


@pytest.mark.parametrize("bundle", BUNDLES)
def test_package_layout_and_metadata(bundle, packages, tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    zip_path, _ = packages(bundle, "smoke")
    meta = json.loads((REPO / "bundles" / bundle / "configs" / "metadata.json").read_text())
    assert zip_path.name == f"{bundle}_v{meta['version']}.zip"
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
    assert {n.split("/", 1)[0] for n in names} == {bundle}, "one top-level folder, the bundle's name"
    inside = {n.split("/", 1)[1] for n in names}
    for required in ("LICENSE", "configs/metadata.json", "configs/inference.json", "docs/README.md"):
        assert required in inside
    assert "models/model.pt" in inside and "scripts/__init__.py" in inside
    assert not [n for n in inside if n.split("/")[0] in RUN_OUTPUTS - {"models"}]
    assert [n for n in inside if n.startswith("models/")] == ["models/model.pt"]
    assert not [n for n in inside if "__pycache__" in n or n.endswith(".pyc")]

    root = unzip(zip_path, tmp_path)
    for path in (root / "configs").glob("*.json"):
        if path.name != "metadata.json":  # its changelog may mention common.x; it is not evaluated
            assert not re.search(r"(?<![\w.])common\.[A-Za-z_]|import common\b", path.read_text()), path
    for name in ("train.json", "inference.json"):
        assert json.loads((root / "configs" / name).read_text())["bundle_root"] == "."
    for path in (root / "scripts").rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(from|import)\s+common\b", text, re.M), path
        compile(text, str(path), "exec")

    packed = json.loads((root / "configs" / "metadata.json").read_text())
    jsonschema.validate(packed, json.loads(SCHEMA.read_text()))
    own = repo_distribution()
    assert own in meta["required_packages_version"]  # the repository's bundles need it ...
    assert own not in packed["required_packages_version"]  # ... the package has the code inside
    assert {k: v for k, v in packed.items() if k != "required_packages_version"} == {
        k: v for k, v in meta.items() if k != "required_packages_version"
    }
    # the same input gives the same bytes (checksums stay valid)
    weights = packages(bundle, "smoke")[1]
    first, second = (write_package(build_package(bundle, weights=weights), tmp_path / name) for name in "ab")
    assert first.read_bytes() == second.read_bytes()


def test_metadata_must_require_what_the_vendored_code_imports():
    """The package drops this repository's distribution, so what it brought (tqdm, say) must be pinned."""
    bundle = BUNDLES[0]
    metadata_file = REPO / "bundles" / bundle / "configs" / "metadata.json"
    meta = json.loads(metadata_file.read_text())
    _, imports = closure({"common"}, module_files())
    assert "tqdm" in imports.third_party
    packed = package_metadata(meta, metadata_file, imports)
    assert repo_distribution() not in packed["required_packages_version"]
    del meta["required_packages_version"]["tqdm"]
    with pytest.raises(
        PackError, match=r"metadata.json: required_packages_version lacks .*tqdm \(pip: tqdm\)"
    ):
        package_metadata(meta, metadata_file, imports)


def test_missing_or_bad_weights_are_clear_errors(tmp_path):
    bundle = BUNDLES[0]
    missing = tmp_path / "nowhere.pt"
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "pack.py"), bundle, "--output", str(tmp_path / "dist")]
        + ["--weights", f"{bundle}={missing}"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert f"no weights at {missing}: train first or pass --weights {bundle}=PATH" in result.stderr
    assert not (tmp_path / "dist").exists(), "every bundle is checked before anything is written"
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    with pytest.raises(PackError, match=rf"{re.escape(str(bad))}: not a checkpoint"):
        build_package(bundle, weights=bad)
    with pytest.raises(PackError, match="expected NAME=PATH"):
        parse_weights([str(bad)], [bundle])


def test_large_weights_go_to_large_files_yml(packages, tmp_path):
    """Over the limit: out of the zip, listed with URL and SHA-256, written beside the zip; the URL is
    required."""
    bundle = BUNDLES[0]
    weights = packages(bundle, "smoke")[1]
    limit = weights.stat().st_size / 2e6  # MB, so that these weights are "large"
    with pytest.raises(PackError, match="pass --large-files-url BASE"):
        pack(tmp_path / "dist", [bundle], {bundle: weights}, max_zip_file_mb=limit)
    assert not list((tmp_path / "dist").glob("*.zip"))
    [zip_path] = pack(
        tmp_path / "dist", [bundle], {bundle: weights}, "https://example.org/x/", max_zip_file_mb=limit
    )
    with zipfile.ZipFile(zip_path) as zf:
        assert f"{bundle}/models/model.pt" not in zf.namelist()
        listing = zf.read(f"{bundle}/large_files.yml").decode()
    beside = zip_path.with_name(zip_path.stem + "_model.pt")
    assert beside.read_bytes() == weights.read_bytes()
    import yaml

    [entry] = yaml.safe_load(listing)["large_files"]
    assert entry == {
        "path": "models/model.pt",
        "url": f"https://example.org/x/{beside.name}",
        "hash_val": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "hash_type": "sha256",
    }
    assert (tmp_path / "dist" / ".gitignore").read_text().endswith("*\n")


# ----------------------------------------------------------------------------------------------------------
# the package where this repository is not installed


def _input_shape(path: Path) -> tuple[int, ...]:
    """Spatial shape of an inference input: a Figshare .mat slice, an image file or a case folder."""
    if path.is_dir():
        path = next(p for p in sorted(path.glob("*.nii*")) if not p.name.split(".")[0].endswith("_seg"))
    if path.suffix == ".mat" and path.name != "cvind.mat":
        from common.data import read_figshare_mat

        return tuple(read_figshare_mat(path).image.shape)
    return tuple(nib.load(path).shape)


def _inference_inputs(folder: Path) -> dict[str, tuple[int, ...]]:
    """Output name -> spatial shape of each case in a bundle's phantom folder, as its data set's adapter
    finds them (cases may lie deeper than the folder's entries: ISBI 2015's ``training/<patient>/...``)."""
    from common.data.registry import ADAPTERS, get_adapter

    adapters = [get_adapter(name) for name in ADAPTERS if name != "slices"]  # slices reads any image file
    adapter = next(a for a in adapters if a.has_data(folder))
    inputs = {}
    for item in adapter.find_cases(folder).items:
        image = item["image"]
        inputs[adapter.output_name(item)] = _input_shape(
            folder / (image if isinstance(image, str) else image[0])
        )
    return inputs


def test_clean_interpreter_cannot_import_common(tmp_path):
    command, env = isolated_python()
    result = subprocess.run(
        [*command, "-c", "import sys; print(sys.path); import common"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "No module named 'common'" in result.stderr
    assert str(REPO) not in ast.literal_eval(result.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("bundle", BUNDLES)
def test_inference_from_the_unpacked_package(bundle, packages, tmp_path):
    """``python -m monai.bundle run`` from the bundle folder, on the phantoms it generates."""
    zip_path, _ = packages(bundle, "smoke")
    root = unzip(zip_path, tmp_path)
    configs = "['configs/inference.json','configs/smoke_test.json']"
    run_clean(["-m", "monai.bundle", "run", "--config_file", configs], cwd=root)
    post = json.loads((root / "configs" / "metadata.json").read_text())["network_data_format"]
    if not any(o.get("type") == "image" for o in post.get("post_processed_outputs", {}).values()):
        # a classifier writes one table, a row per input image
        [table] = sorted((root / "predictions").glob("*.csv"))
        files = [
            p for p in (root / "phantom_data").rglob("*") if p.suffix.lower() in (".png", ".jpg", ".nii")
        ]
        assert len(list(csv.DictReader(table.open()))) == len(files) > 0
        return
    inputs = _inference_inputs(root / "phantom_data")
    outputs = sorted((root / "predictions").glob("*.nii.gz"))
    assert inputs and outputs
    covered = set()
    for output in outputs:
        stem = output.name.removesuffix(".nii.gz").rpartition("_")[0]  # <input>_seg, <case>_wt, <case>_lesion
        assert stem in inputs, f"{output.name} is not named after an input ({sorted(inputs)})"
        assert nib.load(output).shape == inputs[stem], output.name
        covered.add(stem)
    assert covered == set(inputs), "every input has an output"


@pytest.mark.slow
@pytest.mark.parametrize("bundle", BUNDLES)
def test_download_from_url_and_load(bundle, packages, tmp_path):
    """``python -m monai.bundle download --url file://...``, the large files from their URL, then
    ``monai.bundle.load``: the network of inference.json with the packed weights."""
    zip_path, weights = packages(bundle, "full")
    version = zip_path.stem.rpartition("_v")[2]
    hub = tmp_path / "hub"
    hub.mkdir()
    run_clean(
        ["-m", "monai.bundle", "download", "--name", bundle, "--version", version]
        + ["--url", zip_path.as_uri(), "--bundle_dir", str(hub)],
        cwd=tmp_path,
    )
    bundle_dir = hub / bundle
    assert (bundle_dir / "configs" / "inference.json").is_file()
    large = weights.stat().st_size > ZOO_LIMIT
    assert (bundle_dir / "large_files.yml").is_file() == large
    assert (bundle_dir / "models" / "model.pt").is_file() != large
    code = f"""
import torch, monai.bundle
bundle_dir = {str(bundle_dir)!r}
if {large}:
    monai.bundle.download_large_files(bundle_path=bundle_dir)
net = monai.bundle.load(name={bundle!r}, bundle_dir={str(hub)!r}, workflow_type="inference", device="cpu")
expected = torch.load({str(weights)!r}, map_location="cpu", weights_only=True)
state = net.state_dict()
assert state.keys() == expected.keys(), "keys differ"
assert all(torch.equal(state[k], expected[k]) for k in expected), "values differ"
print("loaded", type(net).__name__, len(state))
"""
    # from the bundle folder, as the zoo runs bundles: its scripts package is importable from there
    result = run_clean(["-c", code], cwd=bundle_dir)
    assert "loaded" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("bundle", BUNDLES)
def test_zoo_verify_bundle_min_and_full(bundle, packages):
    """The model zoo's own ``ci/verify_bundle.py``, unmodified, on the package (large files downloaded
    by it from their file:// URL)."""
    if not any((ZOO / p).exists() for p in ("ci/verify_bundle.py", "HEAD", ".git")):
        pytest.skip(
            f"no model-zoo checkout or clone at {ZOO} (set MODEL_ZOO, or run make zoo-verify ZOO=...)"
        )
    if not SCHEMA.is_file():
        pytest.skip(f"no local copy of the metadata schema at {SCHEMA}")
    zip_path, _ = packages(bundle, "full")
    outputs = verify_packages(ZOO, [zip_path], ("min", "full"), local_large_files=False)
    assert "metadata format is verified correctly." in outputs[bundle, "min"]
    full = outputs[bundle, "full"]
    for step in ("data shape is verified correctly.", "export weights into TorchScript module successfully."):
        assert step in full
