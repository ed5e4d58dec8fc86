"""MONAI Label serves our bundles: real servers, driven over HTTP (``make test-label``, docs/monai_label.md).

Runs in the label environment (``make label-env``: monailabel 0.8.5 beside this repository); elsewhere the
module is skipped. Each test copies a bundle into a temporary app's ``model/`` folder with a seeded
``models/model.pt`` and the bundle's ``smoke_test.json`` sizes merged into its configs, writes phantom
studies, starts ``monailabel start_server`` on a free loopback port, and checks over HTTP:

* ``POST /infer/<bundle>?image=<id>``: the returned label volume has the input's spatial shape and only
  the codes the server announces; class probabilities (where the bundle has them) are named, sum to 1 and
  agree with the predicted class;
* ``PUT /datastore/label`` of the phantoms' labels (with the class in the label's info where a head needs
  it), then ``POST /train/<bundle>`` (one epoch): ``models/model.pt`` is rewritten and the server infers
  with the new weights.

The stock ``monaibundle`` app (copied from the installed wheel with ``monailabel apps --download``) serves
every bundle whose model card has a label map and no class output; this repository's app
(``apps/monailabel``) serves every bundle. Bundles are found from their ``metadata.json``, so a new bundle
is covered without a new test; its data set needs a phantom studies writer in ``STUDIES`` below.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.label

pytest.importorskip("monailabel", reason="needs the MONAI Label environment: make label-env")
requests = pytest.importorskip("requests")
nib = pytest.importorskip("nibabel")

REPO = Path(__file__).resolve().parents[2]
BUNDLES = REPO / "bundles"
OUR_APP = REPO / "apps" / "monailabel"
START_TIMEOUT_S = 300
HTTP_TIMEOUT_S = 600
SKIP_COPY = ("runs", "eval", "predictions", "phantom_data", "tissue_cache", "__pycache__", "*.pt", "*.ts")


# ------------------------------------------------------------------------------------------- bundles


def _metadata(bundle: str) -> dict[str, Any]:
    return json.loads((BUNDLES / bundle / "configs" / "metadata.json").read_text())


def _post_outputs(bundle: str) -> dict[str, dict[str, Any]]:
    return _metadata(bundle)["network_data_format"].get("post_processed_outputs", {})


def has_label_map(bundle: str) -> bool:
    return any(
        o.get("type") == "image" and o.get("format") in ("segmentation", "labels")
        for o in _post_outputs(bundle).values()
    )


def class_outputs(bundle: str) -> dict[str, list[str]]:
    """Post-processed class outputs -> class names in order (MMRAN: ``pred_cls``)."""
    out = {}
    for key, o in _post_outputs(bundle).items():
        if o.get("type") == "probabilities" or o.get("format") == "classes":
            channels = o.get("channel_def", {})
            out[key] = [channels[k] for k in sorted(channels, key=int)]
    return out


ALL_BUNDLES = sorted(p.name for p in BUNDLES.iterdir() if (p / "configs" / "metadata.json").is_file())
# the stock app returns one label map per image and nothing else
SEGMENTATION_BUNDLES = [b for b in ALL_BUNDLES if has_label_map(b) and not class_outputs(b)]


def _config(bundle: str, name: str) -> dict[str, Any]:
    return json.loads((BUNDLES / bundle / "configs" / name).read_text())


def dataset_of(bundle: str) -> str:
    """The data set adapter that ``train.json``'s datalist reads: ``prepare_datalist('<name>', ...)``, or
    ``prepare_datalist(@adapter, ...)`` with ``adapter`` a name or an adapter object (``ISBI2015Adapter``)."""
    from monai.bundle import ConfigParser

    config = _config(bundle, "train.json")
    match = re.search(r"prepare_datalist\(\s*(?:'(\w+)'|@(\w+))", str(config.get("datalist", "")))
    assert match, f"{bundle}: train.json's datalist names no data set adapter"
    if match.group(1):
        return match.group(1)
    adapter = ConfigParser(config).get_parsed_content(match.group(2))
    return adapter if isinstance(adapter, str) else adapter.name


def install_bundle(bundle: str, model_dir: Path) -> Path:
    """Copy ``bundle`` to ``model_dir``, merge its smoke-test sizes into its configs, write seeded weights."""
    from monai.bundle import ConfigParser

    target = model_dir / bundle
    shutil.copytree(BUNDLES / bundle, target, ignore=shutil.ignore_patterns(*SKIP_COPY))
    smoke = json.loads((target / "configs" / "smoke_test.json").read_text())
    for name in ("inference.json", "train.json"):
        path = target / "configs" / name
        config = json.loads(path.read_text())
        config.update({k: v for k, v in smoke.items() if k in config})
        path.write_text(json.dumps(config, indent=4) + "\n")
    parser = ConfigParser()
    parser.read_config(str(target / "configs" / "inference.json"))
    parser["bundle_root"] = str(target)
    import torch

    torch.manual_seed(0)
    network = parser.get_parsed_content("network_def", instantiate=True)
    (target / "models").mkdir(exist_ok=True)
    torch.save(network.state_dict(), target / "models" / "model.pt")
    return target


# ------------------------------------------------------------------------------------ phantom studies


@dataclass
class Studies:
    """Images in ``folder`` (ids = file names without extension) and the labels a user would submit."""

    folder: Path
    images: dict[str, Path] = field(default_factory=dict)
    labels: dict[str, Path] = field(default_factory=dict)
    label_info: dict[str, dict[str, Any]] = field(default_factory=dict)


def _id(path: Path) -> str:
    return re.sub(r"\.nii(\.gz)?$", "", path.name)


def brats_studies(bundle: str, work: Path, n_cases: int = 4) -> Studies:
    """4-channel 3D NIfTI volumes (MSD layout), labels in the codes of the bundle's ``default_layout``."""
    from common.data import get_adapter, make_brats_phantoms

    smoke = _config(bundle, "smoke_test.json")
    layout = _config(bundle, "train.json").get("default_layout", "msd")
    make_brats_phantoms(
        work / "phantoms", n_cases=n_cases, shape=smoke["phantom"]["shape"], seed=0, layout="msd"
    )
    adapter = get_adapter("brats")
    studies = Studies(work / "studies")
    (work / "labels").mkdir(parents=True)
    studies.folder.mkdir(parents=True)
    for image in sorted((work / "phantoms").rglob("imagesTr/*.nii.gz")):
        shutil.copy(image, studies.folder / image.name)
        seg = nib.load(image.parent.parent / "labelsTr" / image.name)
        codes = adapter.from_canonical(adapter.to_canonical(np.asarray(seg.dataobj), "msd"), layout)
        label = work / "labels" / image.name
        nib.save(nib.Nifti1Image(np.asarray(codes, np.uint8), seg.affine), label)
        studies.images[_id(image)] = studies.folder / image.name
        studies.labels[_id(image)] = label
    return studies


def figshare_studies(bundle: str, work: Path, n_slices: int = 6) -> Studies:
    """2D NIfTI slices of Figshare phantoms, their masks (X x Y x 1) and tumour types (in the label info)."""
    from common.data import FIGSHARE_CLASSES, make_figshare_phantoms, read_figshare_mat

    smoke = _config(bundle, "smoke_test.json")
    files = make_figshare_phantoms(work / "phantoms", n_patients=n_slices, slices_per_patient=1,
                                   size=smoke["phantom"]["size"], seed=0)  # fmt: skip
    studies = Studies(work / "studies")
    (work / "labels").mkdir(parents=True)
    studies.folder.mkdir(parents=True)
    for i, path in enumerate(files):
        s = read_figshare_mat(path)
        name = f"slice_{i + 1:03d}.nii.gz"
        nib.save(nib.Nifti1Image(s.image.astype(np.float32), np.eye(4)), studies.folder / name)
        # a client such as 3D Slicer saves the label of a 2D image as an X x Y x 1 volume
        nib.save(nib.Nifti1Image(s.mask.astype(np.uint8)[..., None], np.eye(4)), work / "labels" / name)
        studies.images[_id(Path(name))] = studies.folder / name
        studies.labels[_id(Path(name))] = work / "labels" / name
        studies.label_info[_id(Path(name))] = {"class": FIGSHARE_CLASSES[s.label - 1]}
    return studies


def isbi2015_studies(bundle: str, work: Path) -> Studies:
    """ISBI 2015 phantoms as a viewer holds them: one 4D NIfTI per time point (FLAIR, MPRAGE, PD, T2 last,
    the bundle's channel order), the lesion label the raters' union (the bundle's default ``rater``)."""
    from common.data import ISBI2015_MODALITIES, ISBI2015Adapter, make_isbi2015_phantoms

    smoke = _config(bundle, "smoke_test.json")
    make_isbi2015_phantoms(work / "phantoms", **{**smoke["phantom"], "n_patients": 2})
    channels = list(_metadata(bundle)["network_data_format"]["inputs"]["image"]["channel_def"].values())
    assert [c.lower() for c in channels[:4]] == list(ISBI2015_MODALITIES), channels
    studies = Studies(work / "studies")
    (work / "labels").mkdir(parents=True)
    studies.folder.mkdir(parents=True)
    for item in ISBI2015Adapter(rater="union").find_cases(work / "phantoms").items:
        first = nib.load(work / "phantoms" / item["image"][0])
        volume = np.stack([np.asarray(nib.load(work / "phantoms" / p).dataobj) for p in item["image"]], -1)
        union = np.any([np.asarray(nib.load(work / "phantoms" / p).dataobj) > 0 for p in item["label"]], 0)
        name = f"{item['case']}.nii.gz"
        nib.save(nib.Nifti1Image(volume.astype(np.float32), first.affine), studies.folder / name)
        nib.save(nib.Nifti1Image(union.astype(np.uint8), first.affine), work / "labels" / name)
        studies.images[str(item["case"])] = studies.folder / name
        studies.labels[str(item["case"])] = work / "labels" / name
    return studies


def stroke_studies(bundle: str, work: Path) -> Studies:
    """One 3D NIfTI per scan, as the data set's adapter finds them (ATLAS T1w or CT), its lesion mask the
    label (the union of an ATLAS R1.2 scan's masks)."""
    from common.data import get_adapter, write_phantoms

    smoke = _config(bundle, "smoke_test.json")
    adapter = get_adapter(dataset_of(bundle))
    write_phantoms(adapter, work / "phantoms", **smoke["phantoms"][adapter.name])
    studies = Studies(work / "studies")
    (work / "labels").mkdir(parents=True)
    studies.folder.mkdir(parents=True)
    for item in adapter.find_cases(work / "phantoms").items[:4]:
        image = nib.load(work / "phantoms" / item["image"])
        masks = item["label"] if isinstance(item["label"], list) else [item["label"]]
        union = np.any([np.asarray(nib.load(work / "phantoms" / m).dataobj) > 0 for m in masks], 0)
        name = f"{item['case']}.nii.gz"
        shutil.copy(work / "phantoms" / item["image"], studies.folder / name)
        nib.save(nib.Nifti1Image(union.astype(np.uint8), image.affine), work / "labels" / name)
        studies.images[str(item["case"])] = studies.folder / name
        studies.labels[str(item["case"])] = work / "labels" / name
    return studies


def image_class_studies(bundle: str, work: Path) -> Studies:
    """2D NIfTI slices of the classification phantoms; each label is the image's class for the task that
    ``train.json`` trains by default (presence: ``absent`` / ``present``), in the label's info under the
    head's datalist key (``label``), and the label file an empty mask (a client submits one with the info)."""
    from PIL import Image

    from common.data import TASK_CLASSES, ImageClassesAdapter, make_tumour_image_phantoms

    smoke = _config(bundle, "smoke_test.json")
    make_tumour_image_phantoms(
        work / "phantoms", **{**smoke["phantom"], "n_patients": 4, "slices_per_patient": 1}
    )
    task = _config(bundle, "train.json").get("task", "presence")
    studies = Studies(work / "studies")
    (work / "labels").mkdir(parents=True)
    studies.folder.mkdir(parents=True)
    for item in ImageClassesAdapter(task=task).find_cases(work / "phantoms").items:
        pixels = np.asarray(Image.open(work / "phantoms" / item["image"]).convert("L"), dtype=np.float32).T
        name = str(item["case"]).replace("/", "_") + ".nii.gz"
        nib.save(nib.Nifti1Image(pixels, np.eye(4)), studies.folder / name)
        nib.save(nib.Nifti1Image(np.zeros((*pixels.shape, 1), np.uint8), np.eye(4)), work / "labels" / name)
        studies.images[_id(Path(name))] = studies.folder / name
        studies.labels[_id(Path(name))] = work / "labels" / name
        studies.label_info[_id(Path(name))] = {"label": TASK_CLASSES[task][item["label"]]}
    return studies


# data set adapter -> phantom studies writer; a bundle on a new data set adds one here
STUDIES: dict[str, Callable[[str, Path], Studies]] = {
    "brats": brats_studies,
    "figshare": figshare_studies,
    "isbi2015": isbi2015_studies,
    "atlas": stroke_studies,
    "ncct": stroke_studies,
    "image_classes": image_class_studies,
}


# -------------------------------------------------------------------------------------------- server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        response = requests.request(method, self.url + path, timeout=HTTP_TIMEOUT_S, **kwargs)
        assert response.ok, f"{method} {path}: {response.status_code} {response.text[:2000]}\n{self.tail()}"
        return response


def stop(process: subprocess.Popen) -> None:
    """End the server and everything it started (it leads its own process group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    try:  # children that outlived the server (background training)
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@contextlib.contextmanager
def start_server(app: Path, studies: Path, bundle: str, log: Path) -> Iterator[Server]:
    port = _free_port()
    cmd = [
        sys.executable, "-m", "monailabel.main", "start_server",
        "--app", str(app), "--studies", str(studies),
        "--conf", "models", bundle,
        "--conf", "zoo_source", "github",  # the default zoo source looks the bundle up online
        "--conf", "sam2", "false",
        "--conf", "preload", "false",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    env = {
        **os.environ,
        "BUNDLE_DOWNLOAD_SRC": "github",
        "MONAI_LABEL_DATASTORE_AUTO_RELOAD": "false",
        "HF_HUB_OFFLINE": "1",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    with open(log, "wb") as out:
        process = subprocess.Popen(
            cmd, cwd=app.parent, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"MONAI Label exited with {process.returncode}:\n{server.tail()}")
            try:
                if requests.get(server.url + "/info/", timeout=5).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"MONAI Label did not answer in {START_TIMEOUT_S} s:\n{server.tail()}")
            time.sleep(1)
        yield server
    finally:
        stop(process)


def stock_app(work: Path) -> Path:
    """The installed wheel's ``monaibundle`` sample app, copied as ``monailabel apps --download`` does."""
    subprocess.run(
        [sys.executable, "-m", "monailabel.main", "apps", "--download", "--name", "monaibundle",
         "--output", str(work / "apps")],
        check=True, capture_output=True,
    )  # fmt: skip
    return work / "apps" / "monaibundle"


def our_app(work: Path) -> Path:
    target = work / "apps" / "monailabel"
    shutil.copytree(OUR_APP, target, ignore=shutil.ignore_patterns("model", "logs", "bin", "__pycache__"))
    return target


@dataclass
class Served:
    bundle: str
    bundle_dir: Path
    studies: Studies
    server: Server
    work: Path


def serve(bundle: str, tmp_path: Path, make_app: Callable[[Path], Path]) -> Iterator[Served]:
    dataset = dataset_of(bundle)
    assert dataset in STUDIES, f"{bundle}: no phantom studies writer for data set {dataset!r} in STUDIES"
    app = make_app(tmp_path)
    bundle_dir = install_bundle(bundle, app / "model")
    studies = STUDIES[dataset](bundle, tmp_path)
    with start_server(app, studies.folder, bundle, tmp_path / "server.log") as server:
        yield Served(bundle, bundle_dir, studies, server, tmp_path)


@pytest.fixture(params=SEGMENTATION_BUNDLES)
def stock_served(request, tmp_path) -> Iterator[Served]:
    yield from serve(request.param, tmp_path, stock_app)


@pytest.fixture(params=ALL_BUNDLES)
def our_served(request, tmp_path) -> Iterator[Served]:
    yield from serve(request.param, tmp_path, our_app)


# ------------------------------------------------------------------------------------------ requests


def infer(served: Served, image_id: str) -> tuple[np.ndarray | None, dict[str, Any]]:
    """``POST /infer``: the label volume (None when the model returns only JSON) and the result params."""
    from requests_toolbelt.multipart.decoder import MultipartDecoder

    response = served.server.call("POST", f"/infer/{served.bundle}", params={"image": image_id})
    if response.headers.get("content-type", "").startswith("application/json"):
        return None, response.json()
    label, params = None, None
    for part in MultipartDecoder.from_response(response).parts:
        disposition = part.headers.get(b"Content-Disposition", b"").decode()
        if 'name="params"' in disposition:
            params = json.loads(part.content)
        else:
            path = served.work / f"result_{image_id}.nii.gz"
            path.write_bytes(part.content)
            label = np.asarray(nib.load(path).dataobj)
    assert params is not None, "infer response without params"
    return label, params


def submit_labels(served: Served) -> None:
    """``PUT /datastore/label`` of every phantom label, as a client's "Submit label" does."""
    for image_id, label in served.studies.labels.items():
        with open(label, "rb") as f:
            served.server.call(
                "PUT",
                "/datastore/label",
                params={"image": image_id, "tag": "final"},
                files={"label": (label.name, f, "application/octet-stream")},
                data={"params": json.dumps(served.studies.label_info.get(image_id, {}))},
            )


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train_one_epoch(served: Served) -> None:
    """``POST /train`` (one epoch, half of the labelled images for validation) and wait for it."""
    model = served.bundle_dir / "models" / "model.pt"
    before, mtime = digest(model), model.stat().st_mtime_ns
    request = {"max_epochs": 1, "val_split": 0.5, "multi_gpu": False, "device": "cpu"}
    served.server.call("POST", f"/train/{served.bundle}", params={"run_sync": "true"}, json=request)
    assert model.stat().st_mtime_ns != mtime and digest(model) != before, (
        f"training did not rewrite {model}\n{served.server.tail()}"
    )


def input_shape(path: Path, bundle: str) -> tuple[int, ...]:
    """Spatial shape of a study image: a multi-channel volume's channels are its last axis."""
    shape = nib.load(path).shape
    channels = _metadata(bundle)["network_data_format"]["inputs"]["image"]["num_channels"]
    return tuple(shape[:-1]) if channels > 1 and len(shape) == 4 else tuple(shape)


def check_label(
    label: np.ndarray, params: dict[str, Any], served: Served, image_id: str, stock: bool = False
) -> None:
    """The label has the input's spatial shape and only the codes announced (by our app: the label map's
    own names and codes). The stock app names label values after the network output's channel indices
    (docs/monai_label.md, its limits), which are not codes: there the check is that the values are within
    1..channels, e.g. 0/1 for a one-channel sigmoid lesion output, which it announces as ``{"ms lesion": 0}``.
    """
    expected = input_shape(served.studies.images[image_id], served.bundle)
    assert tuple(np.squeeze(label).shape) == tuple(d for d in expected if d != 1), (label.shape, expected)
    if stock:
        channels = _metadata(served.bundle)["network_data_format"]["outputs"]["pred"]["num_channels"]
        codes = set(range(channels + 1))
    else:
        codes = {0, *params["label_names"].values()}
    assert set(np.unique(label).astype(int).tolist()) <= codes, (np.unique(label), params["label_names"])


def check_classes(params: dict[str, Any], bundle: str) -> None:
    names = next(iter(class_outputs(bundle).values()))
    probabilities = params["class_probabilities"]
    assert list(probabilities) == names
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    assert all(0.0 <= p <= 1.0 for p in probabilities.values())
    assert params["predicted_class"] == max(probabilities, key=probabilities.get)


def check_fast_path(served: Served, exports: int) -> str:
    """The server ran the bundle's network on the path its ``runtime``/``precision`` choose on this CPU, with
    ``exports`` ONNX files beside the checkpoint when that path is an ONNX runtime; returns the runtime."""
    from monai.bundle import ConfigParser

    from common.engines import choose_runtime

    parser = ConfigParser()
    parser.read_config(str(served.bundle_dir / "configs" / "inference.json"))
    runtime, precision = choose_runtime(parser["runtime"], parser["precision"], "cpu")
    log = served.server.log.read_text(errors="replace")
    assert f"inference runtime {runtime}, precision {precision}" in log, served.server.tail()
    if runtime != "torch":
        files = sorted((served.bundle_dir / "models").glob("*.onnx"))
        assert len(files) == exports, files
    return runtime


# ------------------------------------------------------------------------------------------------ tests


def test_stock_app_serves_segmentation_bundle(stock_served: Served):
    served = stock_served
    info = served.server.call("GET", "/info/").json()
    assert served.bundle in info["models"] and served.bundle in info["trainers"]

    image_id = sorted(served.studies.images)[0]
    label, params = infer(served, image_id)
    assert label is not None
    check_label(label, params, served, image_id, stock=True)

    submit_labels(served)
    train_one_epoch(served)
    label, params = infer(served, image_id)  # the server reloads the rewritten model.pt
    check_label(label, params, served, image_id, stock=True)


def test_our_app_serves_masks_and_class_probabilities(our_served: Served):
    served = our_served
    bundle = served.bundle
    info = served.server.call("GET", "/info/").json()
    assert bundle in info["models"] and bundle in info["trainers"]
    classes = class_outputs(bundle)

    image_id = sorted(served.studies.images)[0]
    label, params = infer(served, image_id)
    if has_label_map(bundle):
        assert label is not None
        check_label(label, params, served, image_id)
    else:
        assert label is None
    if classes:
        check_classes(params, bundle)
    runtime = check_fast_path(served, exports=1)

    submit_labels(served)
    train_one_epoch(served)
    label, params = infer(served, image_id)
    if has_label_map(bundle):
        check_label(label, params, served, image_id)
    if classes:
        check_classes(params, bundle)
    if runtime != "torch":  # the new checkpoint got its own export
        check_fast_path(served, exports=2)


def test_class_index_reads_names_and_indices():
    sys.path.insert(0, str(OUR_APP))
    try:
        from lib.trainers.bundle import class_index
    finally:
        sys.path.remove(str(OUR_APP))
    names = ["meningioma", "glioma", "pituitary"]
    assert class_index("Glioma", names) == 1
    assert class_index(2, names) == 2
    assert class_index("0", names) == 0
    assert class_index("astrocytoma", names) is None
    assert class_index(3, names) is None
    assert class_index(None, names) is None


def test_bundles_are_selected_from_their_model_cards():
    assert "attention_r2unet_brats_segmentation" in SEGMENTATION_BUNDLES
    assert "mmran_brain_tumor_segmentation_classification" not in SEGMENTATION_BUNDLES
    assert class_outputs("mmran_brain_tumor_segmentation_classification") == {
        "pred_cls": ["meningioma", "glioma", "pituitary"]
    }
    assert set(ALL_BUNDLES) >= set(SEGMENTATION_BUNDLES)
    # every bundle can be given phantom studies
    assert {dataset_of(b) for b in ALL_BUNDLES} <= set(STUDIES)


def test_torchvision_imports_beside_this_torch_build():
    """monailabel imports torchvision's pure-Python helpers (make label-env's import hook, where needed)."""
    import torch
    from torchvision.utils import make_grid

    assert make_grid(torch.zeros(2, 1, 4, 4), nrow=2, padding=0).shape == (3, 4, 8)
