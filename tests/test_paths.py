"""The multi-task key metric and bundle-root discovery."""

import json
import os

import pytest

from common.paths import REPO_BUNDLES, bundle_root


def test_bundle_root_from_repo_and_from_bundle_folder(tmp_path, monkeypatch):
    name = "mmran_brain_tumor_segmentation_classification"
    monkeypatch.chdir(tmp_path)
    assert bundle_root(name) == os.fspath(REPO_BUNDLES / name)
    unpacked = tmp_path / name
    (unpacked / "configs").mkdir(parents=True)
    (unpacked / "configs" / "metadata.json").write_text(json.dumps({"name": "MMRAN something"}))
    monkeypatch.chdir(unpacked)
    assert bundle_root(name) == os.fspath(unpacked)
    with pytest.raises(FileNotFoundError, match="--bundle_root"):
        bundle_root("no_such_bundle")
