"""MONAI Deploy consumer: each app of ``apps/deploy`` run in-process on phantoms, NIfTI and DICOM inputs.

Runs only in the Deploy environment (``make deploy-env``; ``make test-deploy``): the marker ``deploy`` is
deselected by default, and the SDK is imported inside the fixtures so that the main suite can collect this
file without it.

Every bundle is exported as ``ckpt_export`` does (seeded weights, the smoke-test sizes, configs embedded) and
assigned to the apps by its model card (:func:`app_kinds`), so a later bundle of a kind is tested without a
new test. What is checked:

* NIfTI in: the mask has the input's shape and affine, and equals what the bundle's own ``inference.json``
  writes for the same input and weights (class probabilities too);
* DICOM in (a series this file writes from the phantom with pydicom: patient/study/series/frame-of-reference
  UIDs, position, orientation, spacing and thickness from the NIfTI affine, rows != columns): the NIfTI mask
  equals the NIfTI-input one, on the same affine; the DICOM SEG is readable by highdicom, has one frame per
  slice and segment, the series' rows and columns, references the source series and holds the mask;
* classification: the JSON's probabilities sum to 1 per image or slice; DICOM input adds a text SR in the
  source study; a bundle whose ``pred`` is class logits (the kind to come) drops in;
* bad input stops the run with one error naming it; each app folder has what ``monai-deploy package`` reads.
"""

from __future__ import annotations

import csv
import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest

pytestmark = pytest.mark.deploy

REPO = Path(__file__).resolve().parents[2]
BUNDLES = sorted(p.name for p in (REPO / "bundles").iterdir() if (p / "configs" / "metadata.json").is_file())
BRATS_CHANNELS = ["FLAIR", "T1", "T1ce", "T2"]
MS_CHANNELS = ["FLAIR", "MPRAGE", "PD", "T2"]  # the images; the bundle adds tissue masks itself
SLICE_SPACING = (0.9, 1.1, 4.0)  # anisotropic, so that a spacing mix-up shows in the affine


def model_card(bundle: str) -> dict[str, Any]:
    return json.loads((REPO / "bundles" / bundle / "configs" / "metadata.json").read_text())


def app_kinds(card: dict[str, Any]) -> set[str]:
    """The Deploy apps that serve a bundle, read from its ``network_data_format``."""
    fmt = card["network_data_format"]
    image = fmt["inputs"]["image"]
    outputs = {**fmt.get("outputs", {}), **fmt.get("post_processed_outputs", {})}
    masks = any(o.get("format") in ("segmentation", "labels") for o in outputs.values())
    classes = any(o.get("type") == "probabilities" or o.get("spatial_shape") == [] for o in outputs.values())
    kinds = set()
    channel_names = list(image.get("channel_def", {}).values())
    if channel_names == BRATS_CHANNELS and masks:
        kinds.add("volume_segmentation")
    if channel_names[: len(MS_CHANNELS)] == MS_CHANNELS and masks:
        kinds.add("ms_lesion_segmentation")
    if image.get("num_channels") == 1 and masks and classes:
        kinds.add("slice_segmentation_classification")
    if image.get("num_channels") == 1 and classes:
        kinds.add("image_classification")
    if image.get("num_channels") == 1 and masks and not classes:
        kinds.add("lesion_segmentation")
    return kinds


def bundles_of(kind: str) -> list[str]:
    return [b for b in BUNDLES if kind in app_kinds(model_card(b))]


def config_names(bundle: str) -> tuple[str, ...]:
    smoke = (REPO / "bundles" / bundle / "configs" / "smoke_test.json").is_file()
    return ("inference", "smoke_test") if smoke else ("inference",)


def config_files(bundle: str) -> list[str]:
    return [str(REPO / "bundles" / bundle / "configs" / f"{name}.json") for name in config_names(bundle)]


# ------------------------------------------------------------------------------------------------------------
# fixtures: the SDK, exported models
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sdk():
    """The Deploy modules (skips outside the Deploy environment)."""
    pytest.importorskip("monai.deploy.core", reason="needs the MONAI Deploy environment: make deploy-env")
    pytest.importorskip("highdicom")
    from apps.deploy.image_classification.app import ImageClassificationApp
    from apps.deploy.lesion_segmentation.app import LesionSegmentationApp
    from apps.deploy.ms_lesion_segmentation.app import MSLesionSegmentationApp
    from apps.deploy.slice_segmentation_classification.app import SliceSegmentationClassificationApp
    from apps.deploy.volume_segmentation.app import VolumeSegmentationApp

    return {
        "slice_segmentation_classification": SliceSegmentationClassificationApp,
        "volume_segmentation": VolumeSegmentationApp,
        "image_classification": ImageClassificationApp,
        "ms_lesion_segmentation": MSLesionSegmentationApp,
        "lesion_segmentation": LesionSegmentationApp,
    }


# Seeded weights give nearly constant logits, so masks would be all or nothing and hide a flipped axis. The
# bias of each mask head (module -> channel of pred, quantile) is shifted so that this quantile of its logits
# on a phantom is 0: the masks then depend on the image. A bundle not listed keeps its seeded weights.
MASK_HEADS = {
    "mmran_brain_tumor_segmentation_classification": {"seg_head": (0, 0.6)},
    "attention_r2unet_brats_segmentation": {
        "wt_head": (0, 0.6),
        "aux_heads.et": (1, 0.5),
        "aux_heads.ncr": (2, 0.5),
    },
    "multitask_unet3d_ms_lesion_segmentation": {"lesion_head": (0, 0.9)},
    "unetpp_edge_stroke_lesion_segmentation": {"unetpp.final_conv_0_4": (0, 0.9)},
}


def calibration_batch(bundle: str, folder: Path):
    """2D network inputs from the phantoms the tests use, min-max scaled per channel."""
    import torch

    if "ms_lesion_segmentation" in app_kinds(model_card(bundle)):
        return ms_calibration_batch(folder, bundle)
    if "lesion_segmentation" in app_kinds(model_card(bundle)):
        return stroke_calibration_batch(folder, bundle)
    if "volume_segmentation" in app_kinds(model_card(bundle)):
        case = brats_case(folder, bundle)
        from common.data.brats import BRATS_MODALITIES

        volume = np.stack([np.asarray(nib.load(modality_file(case, m)).dataobj) for m in BRATS_MODALITIES])
        z = volume.shape[-1]
        batch = np.moveaxis(volume[..., z // 3 : 2 * z // 3], -1, 0)  # (slices, 4, X, Y)
        lo, hi = volume.min(axis=(1, 2, 3)), volume.max(axis=(1, 2, 3))
        batch = (batch - lo[None, :, None, None]) / (hi - lo)[None, :, None, None]
    else:
        batch = figshare_slices(folder, 1)[0][None, None].astype(np.float32)
        batch = (batch - batch.min()) / (batch.max() - batch.min())
    return torch.as_tensor(batch, dtype=torch.float32)


@pytest.fixture(scope="session")
def exported(sdk, tmp_path_factory):
    """``bundle -> (model.pt, model.ts)``: seeded weights at smoke size (mask heads calibrated, see
    ``MASK_HEADS``), exported as ``ckpt_export`` does."""
    import torch
    from monai.bundle import ConfigParser, ckpt_export

    cache: dict[str, tuple[Path, Path]] = {}

    def export(bundle: str) -> tuple[Path, Path]:
        if bundle not in cache:
            folder = tmp_path_factory.mktemp(f"model_{bundle}")
            parser = ConfigParser()
            parser.read_config(config_files(bundle))
            torch.manual_seed(0)
            network = parser.get_parsed_content("network_def").eval()
            heads = MASK_HEADS.get(bundle, {})
            if heads:
                with torch.no_grad():
                    pred = network(calibration_batch(bundle, folder / "calibration"))
                    for module, (channel, q) in heads.items():
                        network.get_submodule(module).bias -= torch.quantile(pred[:, channel].flatten(), q)
            torch.save(network.state_dict(), folder / "model.pt")
            ckpt_export(
                net_id="network_def",
                filepath=str(folder / "model.ts"),
                ckpt_file=str(folder / "model.pt"),
                meta_file=str(REPO / "bundles" / bundle / "configs" / "metadata.json"),
                config_file=config_files(bundle),
            )
            cache[bundle] = (folder / "model.pt", folder / "model.ts")
        return cache[bundle]

    return export


def run_app(sdk, kind: str, bundle_ts: Path, bundle: str, input_path: Path, output: Path, **kwargs) -> Path:
    """Run one app in this process, as ``python -m apps.deploy.<kind> -i ... -o ... -m ...`` would."""
    argv = [sys.executable, kind, "-i", str(input_path), "-o", str(output), "-m", str(bundle_ts)]
    sdk[kind](argv, config_names=config_names(bundle), **kwargs).run()
    return output


@pytest.fixture
def fast_paths(monkeypatch) -> list[Any]:
    """Every ``FastInferenceNetwork`` that chooses its runtime while the test runs (the app's own)."""
    from common.engines.fast_inference import FastInferenceNetwork

    seen: list[Any] = []
    choose = FastInferenceNetwork._choose

    def spy(self, device):
        seen.append(self)
        return choose(self, device)

    monkeypatch.setattr(FastInferenceNetwork, "_choose", spy)
    return seen


def assert_on_the_fast_path(fast_paths: list[Any], bundle: str) -> None:
    """The app ran the bundle's eager network on the path its ``runtime``/``precision`` choose on this CPU."""
    import torch
    from monai.bundle import ConfigParser

    from common.engines import choose_runtime

    parser = ConfigParser()
    parser.read_config(config_files(bundle))
    assert fast_paths, "the app did not run FastInferenceNetwork"
    fast = fast_paths[0]
    assert fast.chosen == choose_runtime(parser["runtime"], parser["precision"], "cpu")
    assert not isinstance(fast.network, torch.jit.ScriptModule)  # rebuilt from network_def: exportable


def run_bundle_inference(
    bundle: str, model_pt: Path, dataset_dir: Path, output_dir: Path, **overrides: Any
) -> Path:
    """The bundle's own ``inference.json`` (+ smoke test) on ``dataset_dir``: the reference outputs."""
    from monai.bundle import ConfigWorkflow

    folder = REPO / "bundles" / bundle / "configs"
    workflow = ConfigWorkflow(
        config_file=config_files(bundle),
        meta_file=str(folder / "metadata.json"),
        logging_file=str(folder / "logging.conf"),
        workflow_type="infer",
        ckpt_path=str(model_pt),
        dataset_dir=str(dataset_dir),
        output_dir=str(output_dir),
        **overrides,
    )
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    return output_dir


# ------------------------------------------------------------------------------------------------------------
# phantom inputs: NIfTI and DICOM written from them
# ------------------------------------------------------------------------------------------------------------


def save_nifti(array: np.ndarray, affine: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image(array, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, path)
    return path


def figshare_slices(folder: Path, n: int, size: int = 64) -> list[np.ndarray]:
    """``n`` int16 phantom slices (X, Y) of one Figshare phantom patient."""
    from common.data import make_figshare_phantoms, read_figshare_mat

    files = make_figshare_phantoms(folder, n_patients=1, slices_per_patient=n, size=size, seed=0)
    return [read_figshare_mat(f, fields=("image",)).image.astype(np.int16) for f in files]


def write_dicom_series(
    volume: np.ndarray,
    affine: np.ndarray,
    folder: Path,
    *,
    description: str,
    series_number: int,
    study: dict[str, str],
    modality: str = "MR",
    intercept: int = 0,
) -> str:
    """Write ``volume`` (X, Y, Z; int16) as an MR (or CT) series; returns its SeriesInstanceUID.

    ``intercept``: the stored pixels are ``volume - intercept`` with that RescaleIntercept (a CT stored as
    unsigned values with intercept -1024, as scanners write it), so a reader must apply the rescale.

    Geometry from the RAS ``affine``: DICOM's patient space is LPS; index X runs along a row (columns), Y down
    a column (rows), so a slice's pixel array (rows, columns) is ``volume[:, :, k].T``.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, MRImageStorage, generate_uid

    storage = CTImageStorage if modality == "CT" else MRImageStorage

    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(affine, dtype=float)
    step_x, step_y, step_z = lps[:3, 0], lps[:3, 1], lps[:3, 2]
    spacing_x, spacing_y = float(np.linalg.norm(step_x)), float(np.linalg.norm(step_y))
    row_cosine, column_cosine = step_x / spacing_x, step_y / spacing_y
    normal = np.cross(row_cosine, column_cosine)
    series_uid = generate_uid()
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(volume.shape[2]):
        position = (lps @ np.array([0.0, 0.0, k, 1.0]))[:3]
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = storage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"  # explicit VR little endian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = storage, meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Phantom^Deploy", "PH001", "", "O"
        ds.StudyInstanceUID, ds.FrameOfReferenceUID = study["study"], study["frame"]
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20260101", "120000", "1", "A1"
        ds.ReferringPhysicianName, ds.StudyDescription = "", "deploy test"
        ds.SeriesInstanceUID, ds.SeriesNumber, ds.SeriesDescription = series_uid, series_number, description
        ds.Modality, ds.Manufacturer, ds.PatientPosition = modality, "phantom", "HFS"
        ds.InstanceNumber = k + 1
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*row_cosine, *column_cosine)]
        ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
        ds.PixelSpacing = [f"{spacing_y:.6f}", f"{spacing_x:.6f}"]  # between rows, between columns
        ds.SliceThickness = f"{float(np.linalg.norm(step_z)):.6f}"
        ds.SliceLocation = f"{float(normal @ position):.6f}"
        stored = volume[:, :, k].T.astype(np.int32) - intercept
        unsigned = intercept < 0
        pixels = np.ascontiguousarray(stored.astype(np.uint16 if unsigned else np.int16))
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 0 if unsigned else 1
        ds.RescaleIntercept, ds.RescaleSlope = str(intercept), "1"
        ds.PixelData = pixels.tobytes()
        ds.save_as(folder / f"{series_number:02d}_{k:03d}.dcm", enforce_file_format=True)
    return series_uid


def new_study() -> dict[str, str]:
    from pydicom.uid import generate_uid

    return {"study": generate_uid(), "frame": generate_uid()}


def read_seg(folder: Path):
    """The one DICOM SEG in ``folder`` (read by highdicom)."""
    import highdicom as hd
    from pydicom import dcmread

    segs = [p for p in folder.glob("*.dcm") if dcmread(p, stop_before_pixels=True).Modality == "SEG"]
    assert len(segs) == 1, sorted(p.name for p in folder.iterdir())
    return hd.seg.segread(segs[0])


def check_seg(seg, mask_xyz: np.ndarray, source_dir: Path, series_uid: str, labels: list[str]) -> None:
    """SEG frames/rows/columns, references and content against the mask ``(X, Y, Z)`` of the source series."""
    from pydicom import dcmread

    source = [dcmread(p) for p in sorted(source_dir.glob("*.dcm"))]
    source = [ds for ds in source if ds.SeriesInstanceUID == series_uid]
    n_slices = len(source)
    assert mask_xyz.shape[2] == n_slices
    assert int(seg.NumberOfFrames) == n_slices * len(labels)  # empty frames are kept
    assert (int(seg.Rows), int(seg.Columns)) == (int(source[0].Rows), int(source[0].Columns))
    assert seg.StudyInstanceUID == source[0].StudyInstanceUID
    assert seg.FrameOfReferenceUID == source[0].FrameOfReferenceUID
    referenced = {s.SeriesInstanceUID for s in seg.ReferencedSeriesSequence}
    assert referenced == {series_uid}
    assert [s.SegmentLabel for s in seg.SegmentSequence] == [label[:64] for label in labels]
    # content: the labelmap of the SEG, ordered as the source instances, is the mask
    normal = np.cross(*np.reshape(np.asarray(source[0].ImageOrientationPatient, dtype=float), (2, 3)))
    ordered = sorted(source, key=lambda ds: float(normal @ np.asarray(ds.ImagePositionPatient, dtype=float)))
    labelmap = seg.get_pixels_by_source_instance(
        [ds.SOPInstanceUID for ds in ordered], combine_segments=True, relabel=True
    )
    np.testing.assert_array_equal(labelmap, mask_xyz.transpose(2, 1, 0))


# ------------------------------------------------------------------------------------------------------------
# packaging
# ------------------------------------------------------------------------------------------------------------


def _names(requirements: list[str]) -> set[str]:
    return {
        re.split(r"[\[<>=!~ ;]", r.strip(), maxsplit=1)[0].lower().replace("_", "-") for r in requirements
    }


@pytest.mark.parametrize(
    "kind",
    [
        "slice_segmentation_classification",
        "volume_segmentation",
        "image_classification",
        "ms_lesion_segmentation",
        "lesion_segmentation",
    ],
)
def test_app_folder_packages(kind):
    """What ``monai-deploy package`` reads: app.yaml with a title and resources, a requirements.txt that holds
    the project's dependencies (the container installs no pyproject), the entry point ``__main__.py``."""
    import yaml

    folder = REPO / "apps" / "deploy" / kind
    config = yaml.safe_load((folder / "app.yaml").read_text())
    assert config["application"]["title"] and config["resources"]
    lines = [
        ln for ln in (folder / "requirements.txt").read_text().splitlines() if ln and not ln.startswith("#")
    ]
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert _names(project["dependencies"]) <= _names(lines)
    assert _names(project["optional-dependencies"]["fast"]) <= _names(lines)  # the CPU fast path
    assert {"pydicom", "highdicom", "torch"} <= _names(lines)
    assert f"apps.deploy.{kind}.app import main" in (folder / "__main__.py").read_text()


# ------------------------------------------------------------------------------------------------------------
# 2D segmentation + classification (MMRAN)
# ------------------------------------------------------------------------------------------------------------


def slice_affine() -> np.ndarray:
    affine = np.diag([*SLICE_SPACING, 1.0])
    affine[:3, 3] = (-30.0, 20.0, 5.0)
    return affine


def probabilities(report: dict[str, Any]) -> np.ndarray:
    return np.array([[entry["probabilities"][c] for c in report["classes"]] for entry in report["results"]])


def check_report(report: dict[str, Any], bundle: str, n: int, per_slice: bool) -> np.ndarray:
    """The classification JSON: ``n`` results, probabilities summing to 1, argmax named; returns them."""
    assert report["bundle"]["version"] == model_card(bundle)["version"]
    assert len(report["results"]) == n
    probs = probabilities(report)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs >= 0).all()
    for k, entry in enumerate(report["results"]):
        assert entry["slice"] == (k if per_slice else None)
        assert entry["predicted_class"] == report["classes"][int(np.argmax(probs[k]))]
    return probs


@pytest.mark.parametrize("bundle", bundles_of("slice_segmentation_classification"))
def test_slice_app_on_nifti_matches_the_bundle(sdk, exported, tmp_path, bundle):
    """2D and X x Y x 1 NIfTI slices: masks on the input's grid and affine, equal to the bundle's own
    inference, and its class probabilities."""
    model_pt, model_ts = exported(bundle)
    slices = figshare_slices(tmp_path / "mat", 2)
    inputs = tmp_path / "in"
    save_nifti(slices[0], slice_affine(), inputs / "slice_a.nii.gz")
    save_nifti(slices[1][:, :48, None], slice_affine(), inputs / "slice_b.nii.gz")  # rows != columns
    out = run_app(sdk, "slice_segmentation_classification", model_ts, bundle, inputs, tmp_path / "out")
    ref = run_bundle_inference(bundle, model_pt, inputs, tmp_path / "ref")
    rows = {Path(r["file"]).name: r for r in csv.DictReader((ref / "class_probabilities.csv").open())}
    for name in ("slice_a", "slice_b"):
        source, mask = nib.load(inputs / f"{name}.nii.gz"), nib.load(out / f"{name}_seg.nii.gz")
        assert mask.shape == source.shape
        np.testing.assert_allclose(mask.affine, source.affine, atol=1e-6)
        data = np.asarray(mask.dataobj)
        assert data.dtype == np.uint8 and set(np.unique(data)) == {0, 1}  # calibrated heads: not trivial
        reference = np.asarray(nib.load(ref / f"{name}_seg.nii.gz").dataobj)
        np.testing.assert_array_equal(data.squeeze(), reference.squeeze())
        report = json.loads((out / f"{name}_classification.json").read_text())
        probs = check_report(report, bundle, n=1, per_slice=source.ndim == 3)  # X x Y x 1: slice 0
        expected = [float(rows[f"{name}.nii.gz"][f"p_{c}"]) for c in report["classes"]]
        np.testing.assert_allclose(probs[0], expected, atol=1e-5)


@pytest.mark.parametrize("bundle", bundles_of("slice_segmentation_classification"))
def test_slice_app_on_a_dicom_series(sdk, exported, tmp_path, bundle):
    """Each slice of a DICOM series (rows != columns, anisotropic): the NIfTI mask equals the one of the same
    volume given as NIfTI, on the same affine; the SEG has a frame per slice and references the series."""
    _, model_ts = exported(bundle)
    volume = np.stack([s[:, :48] for s in figshare_slices(tmp_path / "mat", 3)], axis=-1)  # (64, 48, 3)
    save_nifti(volume, slice_affine(), tmp_path / "nifti" / "stack.nii.gz")
    uid = write_dicom_series(
        volume, slice_affine(), tmp_path / "dicom", description="T1 CE", series_number=3, study=new_study()
    )
    kind = "slice_segmentation_classification"
    from_nifti = run_app(sdk, kind, model_ts, bundle, tmp_path / "nifti", tmp_path / "out_nifti")
    from_dicom = run_app(sdk, kind, model_ts, bundle, tmp_path / "dicom", tmp_path / "out_dicom")

    reference = nib.load(from_nifti / "stack_seg.nii.gz")
    assert reference.shape == volume.shape
    (mask_file,) = from_dicom.glob("*_seg.nii.gz")
    mask = nib.load(mask_file)
    assert mask.shape == volume.shape
    np.testing.assert_allclose(mask.affine, slice_affine(), atol=1e-4)
    data = np.asarray(mask.dataobj)
    np.testing.assert_array_equal(data, np.asarray(reference.dataobj))
    assert set(np.unique(data)) == {0, 1}

    (report_file,) = from_dicom.glob("*_classification.json")
    probs = check_report(json.loads(report_file.read_text()), bundle, n=3, per_slice=True)
    nifti_report = json.loads((from_nifti / "stack_classification.json").read_text())
    np.testing.assert_allclose(probs, check_report(nifti_report, bundle, n=3, per_slice=True), atol=1e-5)

    check_seg(read_seg(from_dicom), data, tmp_path / "dicom", uid, ["tumour"])


@pytest.mark.parametrize("bundle", bundles_of("slice_segmentation_classification"))
def test_slice_app_on_a_single_dicom_image(sdk, exported, tmp_path, bundle):
    """A one-image series (no second position to take the slice step from): the SDK gives it no affine; the
    app takes the normal and SliceThickness, so the mask lands on the image's geometry."""
    _, model_ts = exported(bundle)
    image = figshare_slices(tmp_path / "mat", 1)[0][:, :48, None]
    uid = write_dicom_series(
        image, slice_affine(), tmp_path / "dicom", description="T1 CE", series_number=1, study=new_study()
    )
    out = run_app(
        sdk, "slice_segmentation_classification", model_ts, bundle, tmp_path / "dicom", tmp_path / "o"
    )
    (mask_file,) = out.glob("*_seg.nii.gz")
    mask = nib.load(mask_file)
    assert mask.shape == image.shape
    np.testing.assert_allclose(mask.affine, slice_affine(), atol=1e-4)
    check_seg(read_seg(out), np.asarray(mask.dataobj), tmp_path / "dicom", uid, ["tumour"])


# ------------------------------------------------------------------------------------------------------------
# 3D segmentation (BraTS)
# ------------------------------------------------------------------------------------------------------------


def brats_shape(bundle: str) -> tuple[int, int, int]:
    smoke = REPO / "bundles" / bundle / "configs" / "smoke_test.json"
    phantom = json.loads(smoke.read_text()).get("phantom", {}) if smoke.is_file() else {}
    return tuple(phantom.get("shape", (48, 56, 24)))


def brats_case(folder: Path, bundle: str) -> Path:
    from common.data import make_brats_phantoms

    (case,) = make_brats_phantoms(folder, n_cases=1, shape=brats_shape(bundle), seed=0, layout="brats2020")
    return case


def modality_file(case: Path, modality: str) -> Path:
    return case / f"{case.name}_{modality}.nii.gz"


def canonical_labels() -> list[str]:
    from common.labels import BRATS

    return [BRATS.descriptions[n] for n, v in sorted(BRATS.labels.items(), key=lambda kv: kv[1]) if v > 0]


@pytest.mark.parametrize("bundle", bundles_of("volume_segmentation"))
def test_volume_app_on_nifti_matches_the_bundle(sdk, exported, tmp_path, bundle, fast_paths):
    """A BraTS case folder (4 files) and the same case as one 4D file: label map and whole-tumour mask on the
    input's grid and affine, equal to the bundle's own inference (whose codes are the input layout's), on the
    bundle's fast path."""
    from common.data.brats import ADAPTER

    model_pt, model_ts = exported(bundle)
    case = brats_case(tmp_path / "data", bundle)
    source = nib.load(modality_file(case, "flair"))
    out = run_app(sdk, "volume_segmentation", model_ts, bundle, case, tmp_path / "out")
    assert_on_the_fast_path(fast_paths, bundle)
    ref = run_bundle_inference(bundle, model_pt, tmp_path / "data", tmp_path / "ref")
    labels = {}
    for postfix, ref_postfix in (("seg", "seg"), ("wt_mask", "wt")):
        mask = nib.load(out / f"{case.name}_{postfix}.nii.gz")
        assert mask.shape == source.shape
        np.testing.assert_allclose(mask.affine, source.affine, atol=1e-6)
        labels[postfix] = np.asarray(mask.dataobj)
        reference = np.asarray(nib.load(ref / f"{case.name}_{ref_postfix}.nii.gz").dataobj)
        if postfix == "seg":
            reference = ADAPTER.to_canonical(reference, "brats2020")  # the app writes canonical codes
        np.testing.assert_array_equal(labels[postfix], reference)
    assert set(np.unique(labels["seg"])) == {0, 1, 2, 3}  # calibrated heads: every label occurs
    np.testing.assert_array_equal(labels["wt_mask"], labels["seg"] > 0)

    # the same case as one 4D file, channels last in the bundle's order
    from common.data.brats import BRATS_MODALITIES

    stacked = np.stack([np.asarray(nib.load(modality_file(case, m)).dataobj) for m in BRATS_MODALITIES], -1)
    four_d = save_nifti(stacked, source.affine, tmp_path / "4d" / "case4d.nii.gz")
    out_4d = run_app(sdk, "volume_segmentation", model_ts, bundle, four_d, tmp_path / "out_4d")
    mask = nib.load(out_4d / "case4d_seg.nii.gz")
    assert mask.shape == source.shape
    np.testing.assert_allclose(mask.affine, source.affine, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(mask.dataobj), labels["seg"])


@pytest.mark.parametrize("bundle", bundles_of("volume_segmentation"))
def test_onnx_exported_ahead_is_what_the_app_uses(sdk, exported, tmp_path, bundle, capsys):
    """``python -m apps.deploy.export_onnx`` writes the file the app then finds beside the model and reuses,
    in a MAP's layout (``models/<name>/``, which the SDK no longer resolves once it holds two files): the app
    writes no second file."""
    import shutil

    from apps.deploy.export_onnx import main

    _, model_ts = exported(bundle)
    folder = tmp_path / "models" / "brats"
    folder.mkdir(parents=True)
    shutil.copy(model_ts, folder / "model.ts")
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(config_files(bundle))
    channels = model_card(bundle)["network_data_format"]["inputs"]["image"]["num_channels"]
    shape = [str(s) for s in (channels, *parser["slice_size"])]  # the smoke configs' slices, not the card's
    argv = [str(folder / "model.ts"), "--config-names", *config_names(bundle), "--input-shape", *shape]
    assert main(argv) == 0
    (onnx,) = folder.glob("*.onnx")
    assert capsys.readouterr().out.strip() == str(onnx)
    stamp = onnx.stat().st_mtime_ns
    case = brats_case(tmp_path / "data", bundle)
    out = run_app(sdk, "volume_segmentation", tmp_path / "models", bundle, case, tmp_path / "out")
    assert (out / f"{case.name}_seg.nii.gz").is_file()
    assert list(folder.glob("*.onnx")) == [onnx] and onnx.stat().st_mtime_ns == stamp


@pytest.mark.parametrize("bundle", bundles_of("volume_segmentation"))
def test_volume_app_on_four_dicom_series(sdk, exported, tmp_path, bundle):
    """Four MR series of one study, written out of channel order and told apart by Series Description: the
    label map equals the NIfTI run's on the same affine; the SEG has 3 segments x slices frames and
    references the FLAIR series."""
    _, model_ts = exported(bundle)
    case = brats_case(tmp_path / "data", bundle)
    source = nib.load(modality_file(case, "flair"))
    study, uids = new_study(), {}
    for number, (modality, description) in enumerate(
        [("t2", "T2"), ("t1ce", "T1ce"), ("flair", "FLAIR"), ("t1", "T1")], start=1
    ):
        image = nib.load(modality_file(case, modality))
        uids[modality] = write_dicom_series(
            np.asarray(image.dataobj),
            image.affine,
            tmp_path / "dicom",
            description=description,
            series_number=number,
            study=study,
        )
    from_nifti = run_app(sdk, "volume_segmentation", model_ts, bundle, case, tmp_path / "out_nifti")
    from_dicom = run_app(
        sdk, "volume_segmentation", model_ts, bundle, tmp_path / "dicom", tmp_path / "out_dicom"
    )
    reference = np.asarray(nib.load(from_nifti / f"{case.name}_seg.nii.gz").dataobj)
    (mask_file,) = from_dicom.glob("*_seg.nii.gz")
    mask = nib.load(mask_file)
    assert mask.shape == source.shape
    np.testing.assert_allclose(mask.affine, source.affine, atol=1e-4)
    labels = np.asarray(mask.dataobj)
    np.testing.assert_array_equal(labels, reference)
    assert (from_dicom / mask_file.name.replace("_seg", "_wt_mask")).is_file()
    check_seg(read_seg(from_dicom), labels, tmp_path / "dicom", uids["flair"], canonical_labels())


@pytest.mark.parametrize("bundle", bundles_of("volume_segmentation"))
def test_volume_app_reports_bad_inputs(sdk, exported, tmp_path, bundle):
    """One error naming the input and the problem: a 3D file where four channels are needed; a DICOM study
    without a T1ce series."""
    _, model_ts = exported(bundle)
    case = brats_case(tmp_path / "data", bundle)
    flair = modality_file(case, "flair")
    with pytest.raises(ValueError, match=rf"{re.escape(str(flair))}: expected a 4D image with 4 channels"):
        run_app(sdk, "volume_segmentation", model_ts, bundle, flair, tmp_path / "out")
    study = new_study()
    for number, modality in enumerate(["flair", "t1", "t2"], start=1):
        image = nib.load(modality_file(case, modality))
        write_dicom_series(
            np.asarray(image.dataobj),
            image.affine,
            tmp_path / "dicom",
            description=modality.upper(),
            series_number=number,
            study=study,
        )
    with pytest.raises(ValueError, match=r"dicom: no series for \['t1ce'\].*'FLAIR', 'T1', 'T2'"):
        run_app(sdk, "volume_segmentation", model_ts, bundle, tmp_path / "dicom", tmp_path / "out_dicom")


# ------------------------------------------------------------------------------------------------------------
# 3D MS lesion segmentation (multi-input 3D U-Net): four images in, tissue masks made by the bundle
# ------------------------------------------------------------------------------------------------------------


def ms_phantom(folder: Path, bundle: str) -> Path:
    """One ISBI 2015 phantom time point at smoke size, without its tissue maps (so that the app and the
    bundle both compute them); returns the data set root. Intensities are rounded to int16 values, as the
    DICOM series written from them hold."""
    import shutil

    from common.data import make_isbi2015_phantoms

    smoke = json.loads((REPO / "bundles" / bundle / "configs" / "smoke_test.json").read_text())["phantom"]
    make_isbi2015_phantoms(folder, **{**smoke, "n_patients": 1, "timepoints": 1})
    for tissues in folder.rglob("tissues"):
        shutil.rmtree(tissues)
    for path in folder.rglob("*_pp.nii"):
        image = nib.load(path)
        save_nifti(np.round(np.asarray(image.dataobj)).astype(np.int16), image.affine, path)
    return folder


def ms_images(root: Path) -> dict[str, Path]:
    """Modality -> file of the one phantom time point under ``root``."""
    from common.data.isbi2015 import ISBI2015_MODALITIES

    return {m: next(root.rglob(f"*_{m}_pp.nii")) for m in ISBI2015_MODALITIES}


def assert_masks_agree(mask: np.ndarray, reference: np.ndarray) -> None:
    """Two runs that each compute tissue masks agree up to ITK's multithreading: N4 sums in an order that
    depends on the threads' scheduling, and a float-rounding change can move a borderline tissue voxel, so a
    few lesion voxels (0.1 % of a smoke-size volume at most, seen under load) may differ between runs."""
    assert mask.shape == reference.shape
    differing = float(np.mean(mask != reference))
    dice = 2 * np.sum((mask > 0) & (reference > 0)) / max(np.sum(mask > 0) + np.sum(reference > 0), 1)
    assert differing < 0.005 and dice > 0.95, (differing, dice)


def ms_calibration_batch(folder: Path, bundle: str):
    """The multi-input network's input on a phantom: z-scored images inside the brain and the phantom's own
    CSF, GM and WM masks, ``(1, 7, X, Y, Z)``."""
    import torch

    from common.data import make_isbi2015_phantoms

    smoke = json.loads((REPO / "bundles" / bundle / "configs" / "smoke_test.json").read_text())["phantom"]
    make_isbi2015_phantoms(folder, **{**smoke, "n_patients": 1, "timepoints": 1})
    images = ms_images(folder)
    volume = np.stack([np.asarray(nib.load(p).dataobj, dtype=np.float32) for p in images.values()])
    brain = volume[0] != 0
    volume[:, brain] = (volume[:, brain] - volume[:, brain].mean(1, keepdims=True)) / volume[:, brain].std(
        1, keepdims=True
    )
    tissue = np.asarray(nib.load(next(folder.rglob("*_tissues.nii.gz"))).dataobj)
    masks = np.stack([tissue == k for k in (1, 2, 3)]).astype(np.float32)
    channels = model_card(bundle)["network_data_format"]["inputs"]["image"]["num_channels"]
    batch = np.concatenate([volume, masks])[:channels]
    return torch.as_tensor(batch[None])


@pytest.mark.parametrize("bundle", bundles_of("ms_lesion_segmentation"))
def test_ms_app_on_nifti_matches_the_bundle(sdk, exported, tmp_path, bundle):
    """An ISBI 2015 folder (four files per time point) and the same time point as one 4D file: the lesion
    mask on the input's grid and affine, equal to the bundle's own inference (tissue masks computed by both;
    up to ITK's threading, :func:`assert_masks_agree`)."""
    model_pt, model_ts = exported(bundle)
    root = ms_phantom(tmp_path / "data", bundle)
    images = ms_images(root)
    source = nib.load(images["flair"])
    case = images["flair"].name.split("_flair")[0]
    out = run_app(sdk, "ms_lesion_segmentation", model_ts, bundle, root, tmp_path / "out")
    ref = run_bundle_inference(
        bundle, model_pt, root, tmp_path / "ref", tissue_cache_dir=str(tmp_path / "cache")
    )
    mask = nib.load(out / f"{case}_lesion.nii.gz")
    assert mask.shape == source.shape
    np.testing.assert_allclose(mask.affine, source.affine, atol=1e-6)
    lesion = np.asarray(mask.dataobj)
    assert set(np.unique(lesion)) == {0, 1}  # calibrated head: not trivial
    assert_masks_agree(lesion, np.asarray(nib.load(ref / f"{case}_lesion.nii.gz").dataobj))

    stacked = np.stack([np.asarray(nib.load(p).dataobj) for p in images.values()], -1)
    four_d = save_nifti(stacked, source.affine, tmp_path / "4d" / "tp4d.nii.gz")
    out_4d = run_app(sdk, "ms_lesion_segmentation", model_ts, bundle, four_d, tmp_path / "out_4d")
    mask_4d = nib.load(out_4d / "tp4d_lesion.nii.gz")
    np.testing.assert_allclose(mask_4d.affine, source.affine, atol=1e-6)
    assert_masks_agree(np.asarray(mask_4d.dataobj), lesion)


@pytest.mark.parametrize("bundle", bundles_of("ms_lesion_segmentation"))
def test_ms_app_on_four_dicom_series(sdk, exported, tmp_path, bundle):
    """Four MR series of one study, out of channel order, told apart by Series Description: the mask equals
    the NIfTI run's on the same affine (:func:`assert_masks_agree`); the SEG has one segment per slice and
    references the FLAIR series; a study without a PD series is one error naming what is missing."""
    _, model_ts = exported(bundle)
    root = ms_phantom(tmp_path / "data", bundle)
    images = ms_images(root)
    source = nib.load(images["flair"])
    study, uids = new_study(), {}
    order = [("t2", "T2"), ("pd", "PD"), ("flair", "FLAIR"), ("mprage", "MPRAGE")]
    for number, (modality, description) in enumerate(order, start=1):
        image = nib.load(images[modality])
        uids[modality] = write_dicom_series(
            np.asarray(image.dataobj), image.affine, tmp_path / "dicom", description=description,
            series_number=number, study=study,
        )  # fmt: skip
    from_nifti = run_app(sdk, "ms_lesion_segmentation", model_ts, bundle, root, tmp_path / "out_nifti")
    from_dicom = run_app(
        sdk, "ms_lesion_segmentation", model_ts, bundle, tmp_path / "dicom", tmp_path / "out_dicom"
    )
    (reference_file,) = from_nifti.glob("*_lesion.nii.gz")
    (mask_file,) = from_dicom.glob("*_lesion.nii.gz")
    mask = nib.load(mask_file)
    assert mask.shape == source.shape
    np.testing.assert_allclose(mask.affine, source.affine, atol=1e-4)
    lesion = np.asarray(mask.dataobj)
    assert_masks_agree(lesion, np.asarray(nib.load(reference_file).dataobj))
    check_seg(read_seg(from_dicom), lesion, tmp_path / "dicom", uids["flair"], ["MS lesion"])

    for path in (tmp_path / "dicom").glob(f"{2:02d}_*.dcm"):  # series 2 is PD
        path.unlink()
    with pytest.raises(ValueError, match=r"dicom: no series for \['pd'\].*'FLAIR', 'MPRAGE', 'T2'"):
        run_app(sdk, "ms_lesion_segmentation", model_ts, bundle, tmp_path / "dicom", tmp_path / "out_bad")


@pytest.mark.parametrize("bundle", bundles_of("ms_lesion_segmentation"))
def test_ms_app_reports_bad_inputs(sdk, exported, tmp_path, bundle):
    """One error naming the input and the problem: a 3D file where four images are needed; an ISBI 2015
    time point without its PD image."""
    _, model_ts = exported(bundle)
    root = ms_phantom(tmp_path / "data", bundle)
    images = ms_images(root)
    with pytest.raises(
        ValueError, match=rf"{re.escape(str(images['flair']))}: expected a 4D image with 4 channels"
    ):
        run_app(sdk, "ms_lesion_segmentation", model_ts, bundle, images["flair"], tmp_path / "out")
    images["pd"].unlink()
    with pytest.raises(ValueError, match=r"pd"):
        run_app(sdk, "ms_lesion_segmentation", model_ts, bundle, root, tmp_path / "out_missing")


# ------------------------------------------------------------------------------------------------------------
# one-channel 3D lesion segmentation (the stroke bundle): MRI or CT volumes, slice-wise inside the bundle
# ------------------------------------------------------------------------------------------------------------


def stroke_phantoms(folder: Path, bundle: str, adapter: str) -> Path:
    """Smoke-size phantoms of ``adapter`` (``"atlas"`` T1w MRI or ``"ncct"`` CT) in its own layout."""
    from common.data import write_phantoms

    smoke = json.loads((REPO / "bundles" / bundle / "configs" / "smoke_test.json").read_text())
    write_phantoms(
        adapter,
        folder,
        **{**smoke["phantoms"][adapter], **({"n_subjects": 2} if adapter == "atlas" else {"n_cases": 2})},
    )
    return folder


def stroke_calibration_batch(folder: Path, bundle: str):
    """Axial slices of an ATLAS phantom scaled as the bundle scales MRI (0.5-99.5th percentiles to [0, 1])."""
    import torch

    root = stroke_phantoms(folder, bundle, "atlas")
    volume = np.asarray(nib.load(next(root.rglob("*_T1w.nii.gz"))).dataobj, dtype=np.float32)
    lo, hi = np.percentile(volume, [0.5, 99.5])
    volume = np.clip((volume - lo) / (hi - lo), 0, 1)
    z = volume.shape[-1]
    batch = np.moveaxis(volume[..., z // 4 : 3 * z // 4], -1, 0)[:, None]
    return torch.as_tensor(batch, dtype=torch.float32)


@pytest.mark.parametrize("bundle", bundles_of("lesion_segmentation"))
@pytest.mark.parametrize("adapter", ["atlas", "ncct"])
def test_lesion_app_on_nifti_matches_the_bundle(sdk, exported, tmp_path, bundle, adapter, fast_paths):
    """An ATLAS (MRI) or NCCT (CT) folder: one mask per scan (the masks beside the images are not cases), on
    the scan's grid and affine, equal to the bundle's own inference with the same data set's scaling."""
    from common.data import get_adapter

    model_pt, model_ts = exported(bundle)
    root = stroke_phantoms(tmp_path / "data", bundle, adapter)
    out = run_app(sdk, "lesion_segmentation", model_ts, bundle, root, tmp_path / "out")
    assert_on_the_fast_path(fast_paths, bundle)
    assert fast_paths[0].dynamic_shape  # the stroke bundle's inference_network#dynamic_shape
    ref = run_bundle_inference(bundle, model_pt, root, tmp_path / "ref", adapter=adapter)
    # scans cropped to their heads differ in size; one export with free sizes serves them all
    exports = [p.name for p in model_ts.parent.glob("*.onnx")]
    assert all(name.endswith(".1xdynamic.onnx") for name in exports), exports
    items = get_adapter(adapter).find_cases(root).items
    assert sorted(p.name for p in out.glob("*.nii.gz")) == sorted(f"{i['case']}_lesion.nii.gz" for i in items)
    for item in items:
        source = nib.load(root / item["image"])
        mask = nib.load(out / f"{item['case']}_lesion.nii.gz")
        assert mask.shape == source.shape
        np.testing.assert_allclose(mask.affine, source.affine, atol=1e-6)
        reference = np.asarray(nib.load(ref / f"{item['case']}_lesion.nii.gz").dataobj)
        np.testing.assert_array_equal(np.asarray(mask.dataobj), reference)
    if adapter == "atlas":  # the calibrated head (on MRI) makes a non-trivial mask
        assert set(np.unique(np.asarray(mask.dataobj))) == {0, 1}


@pytest.mark.parametrize("bundle", bundles_of("lesion_segmentation"))
def test_lesion_app_on_a_ct_dicom_series(sdk, exported, tmp_path, bundle):
    """A CT series stored as scanners store it (unsigned pixels, RescaleIntercept -1024): read as Hounsfield
    units and windowed as CT, so the mask equals the NIfTI run's on the same affine; the SEG references it.
    The same values without the intercept are not Hounsfield units: one error naming the series."""
    _, model_ts = exported(bundle)
    root = stroke_phantoms(tmp_path / "data", bundle, "ncct")
    image_file = sorted((root / "images").glob("*.nii.gz"))[0]
    image = nib.load(image_file)
    volume = np.asarray(image.dataobj).astype(np.int16)
    nifti_dir = tmp_path / "nifti" / "images"
    save_nifti(volume, image.affine, nifti_dir / image_file.name)
    uid = write_dicom_series(
        volume, image.affine, tmp_path / "dicom", description="Head NCCT", series_number=2,
        study=new_study(), modality="CT", intercept=-1024,
    )  # fmt: skip
    from_nifti = run_app(sdk, "lesion_segmentation", model_ts, bundle, nifti_dir.parent, tmp_path / "out_n")
    from_dicom = run_app(sdk, "lesion_segmentation", model_ts, bundle, tmp_path / "dicom", tmp_path / "out_d")
    reference = np.asarray(nib.load(next(from_nifti.glob("*_lesion.nii.gz"))).dataobj)
    (mask_file,) = from_dicom.glob("*_lesion.nii.gz")
    mask = nib.load(mask_file)
    assert mask.shape == volume.shape
    np.testing.assert_allclose(mask.affine, image.affine, atol=1e-4)
    lesion = np.asarray(mask.dataobj)
    np.testing.assert_array_equal(lesion, reference)
    check_seg(read_seg(from_dicom), lesion, tmp_path / "dicom", uid, ["stroke lesion"])

    write_dicom_series(
        volume + 1024, image.affine, tmp_path / "raw", description="Head NCCT", series_number=2,
        study=new_study(), modality="CT",
    )  # fmt: skip
    with pytest.raises(ValueError, match="Hounsfield"):
        run_app(sdk, "lesion_segmentation", model_ts, bundle, tmp_path / "raw", tmp_path / "out_raw")


@pytest.mark.parametrize("bundle", bundles_of("lesion_segmentation"))
def test_lesion_app_reports_bad_inputs(sdk, exported, tmp_path, bundle):
    """One error naming the input and the problem: a 4D file where one 3D volume is needed; a CT folder
    whose values were rescaled to [0, 1]."""
    _, model_ts = exported(bundle)
    four_d = save_nifti(np.zeros((8, 8, 8, 2), np.float32), np.eye(4), tmp_path / "bad" / "four_d.nii.gz")
    with pytest.raises(ValueError, match=rf"{re.escape(str(four_d))}: expected a 2D or 3D image"):
        run_app(sdk, "lesion_segmentation", model_ts, bundle, four_d, tmp_path / "out")
    root = stroke_phantoms(tmp_path / "data", bundle, "ncct")
    first = sorted((root / "images").glob("*.nii.gz"))[0]
    image = nib.load(first)
    data = np.asarray(image.dataobj, dtype=np.float32)
    save_nifti((data - data.min()) / (data.max() - data.min()), image.affine, first)
    with pytest.raises(ValueError, match=rf"{re.escape(first.name.split('.nii')[0])}.*Hounsfield"):
        run_app(sdk, "lesion_segmentation", model_ts, bundle, root, tmp_path / "out_ct")


# ------------------------------------------------------------------------------------------------------------
# classification
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bundle", bundles_of("image_classification"))
def test_classification_app(sdk, exported, tmp_path, bundle):
    """A NIfTI image and the same image as a DICOM instance: equal probabilities in the JSON, summing to 1;
    DICOM input also gives a text SR in the source study."""
    from pydicom import dcmread

    _, model_ts = exported(bundle)
    image = figshare_slices(tmp_path / "mat", 1)[0][:, :48]
    save_nifti(image, slice_affine(), tmp_path / "nifti" / "image.nii.gz")
    study = new_study()
    write_dicom_series(
        image[..., None],
        slice_affine(),
        tmp_path / "dicom",
        description="T1 CE",
        series_number=1,
        study=study,
    )
    from_nifti = run_app(
        sdk, "image_classification", model_ts, bundle, tmp_path / "nifti", tmp_path / "out_nifti"
    )
    from_dicom = run_app(
        sdk, "image_classification", model_ts, bundle, tmp_path / "dicom", tmp_path / "out_dicom"
    )

    report = json.loads((from_nifti / "image_classification.json").read_text())
    fmt = model_card(bundle)["network_data_format"]
    post = fmt.get("post_processed_outputs", {})
    class_outputs = {k: o for k, o in post.items() if o.get("type") == "probabilities"} or {
        "pred": fmt["outputs"]["pred"]
    }
    (main, scores), *others = class_outputs.items()
    assert report["classes"] == [scores["channel_def"][str(i)] for i in range(len(scores["channel_def"]))]
    probs = check_report(report, bundle, n=1, per_slice=False)
    for key, other in others:  # a second class output (the two-stage classifier's source) is reported too
        section = {**report, **report["other_outputs"][key]}
        assert section["classes"] == [other["channel_def"][str(i)] for i in range(len(other["channel_def"]))]
        # chained: reported only where the output it is given predicts its class (the source of a tumour)
        ((given_key, given_class),) = other.get("given", {None: None}).items()
        given_result = report if given_key in (None, main) else report["other_outputs"][given_key]
        if given_key is None or given_result["results"][0]["predicted_class"] == given_class:
            check_report(section, bundle, n=1, per_slice=False)
        else:
            assert section["results"][0] == {"slice": None, "probabilities": None, "predicted_class": None}
    assert not list(from_nifti.glob("*.nii.gz"))  # classification only

    (dicom_report,) = from_dicom.glob("*_classification.json")
    np.testing.assert_allclose(
        check_report(json.loads(dicom_report.read_text()), bundle, 1, True), probs, atol=1e-5
    )
    (sr_file,) = [p for p in from_dicom.glob("*.dcm") if dcmread(p).Modality == "SR"]
    sr = dcmread(sr_file)
    assert sr.StudyInstanceUID == study["study"] and sr.PatientID == "PH001"
    text = " ".join(str(item.get("TextValue", "")) for item in sr.ContentSequence)
    assert report["results"][0]["predicted_class"] in text


def class_logit_bundle(folder: Path) -> tuple[Path, list[str]]:
    """A minimal classification bundle of the kind to come (pred = class logits, no post-processing),
    exported as the bundles are: returns the model.ts and its class names."""
    import torch
    from monai.bundle import ConfigParser, ckpt_export

    classes = ["meningioma", "glioma", "pituitary"]
    inference = {
        "imports": ["$import torch"],
        "network_def": {
            "_target_": "monai.networks.nets.Classifier",
            "in_shape": [1, 32, 32],
            "classes": len(classes),
            "channels": [4, 8],
            "strides": [2, 2],
        },
        "preprocessing": {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "LoadImaged", "keys": "image", "image_only": True},
                {"_target_": "EnsureChannelFirstd", "keys": "image"},
                {"_target_": "Resized", "keys": "image", "spatial_size": [32, 32]},
                {"_target_": "ScaleIntensityd", "keys": "image"},
            ],
        },
        "inferer": {"_target_": "SimpleInferer"},
    }
    card = {
        "name": "class logit test bundle",
        "version": "0.0.1",
        "network_data_format": {
            "inputs": {"image": {"type": "image", "num_channels": 1, "spatial_shape": [32, 32]}},
            "outputs": {
                "pred": {
                    "type": "probabilities",
                    "format": "logits",
                    "num_channels": len(classes),
                    "spatial_shape": [],
                    "channel_def": {str(i): c for i, c in enumerate(classes)},
                }
            },
        },
    }
    configs = folder / "configs"
    configs.mkdir(parents=True)
    (configs / "inference.json").write_text(json.dumps(inference))
    (configs / "metadata.json").write_text(json.dumps(card))
    parser = ConfigParser()
    parser.read_config(str(configs / "inference.json"))
    torch.manual_seed(0)
    torch.save(parser.get_parsed_content("network_def").state_dict(), folder / "model.pt")
    ckpt_export(
        net_id="network_def",
        filepath=str(folder / "model.ts"),
        ckpt_file=str(folder / "model.pt"),
        meta_file=str(configs / "metadata.json"),
        config_file=str(configs / "inference.json"),
    )
    assert app_kinds(card) == {"image_classification"}
    return folder / "model.ts", classes


def test_classification_app_takes_a_class_logit_bundle(sdk, tmp_path):
    """A bundle whose pred is class logits and which has no post-processing drops in: the JSON holds the
    softmax of the TorchScript model's logits on the pre-processed image, named by the model card. Its
    config names no ``runtime``: it has passed no accuracy gate, so it runs in PyTorch fp32."""
    import torch
    from monai.transforms import Resize, ScaleIntensity

    model_ts, classes = class_logit_bundle(tmp_path / "bundle")
    image = figshare_slices(tmp_path / "mat", 1)[0][:, :48]
    save_nifti(image, slice_affine(), tmp_path / "nifti" / "image.nii.gz")
    argv = [
        sys.executable,
        "app",
        "-i",
        str(tmp_path / "nifti"),
        "-o",
        str(tmp_path / "out"),
        "-m",
        str(model_ts),
    ]
    sdk["image_classification"](argv).run()

    report = json.loads((tmp_path / "out" / "image_classification.json").read_text())
    assert report["classes"] == classes and report["bundle"]["version"] == "0.0.1"
    x = ScaleIntensity()(Resize([32, 32])(torch.as_tensor(image, dtype=torch.float32)[None]))
    with torch.no_grad():
        expected = torch.softmax(torch.jit.load(str(model_ts))(x[None].float())[0], dim=0).numpy()
    np.testing.assert_allclose(probabilities(report)[0], expected, atol=1e-5)
    assert report["results"][0]["predicted_class"] == classes[int(np.argmax(expected))]


@pytest.mark.parametrize("bundle", bundles_of("volume_segmentation"))
def test_volume_app_runs_as_packaged(exported, tmp_path, bundle):
    """``python -m apps.deploy.volume_segmentation`` with the package's environment: input, output and model
    from ``HOLOSCAN_*`` variables, the model in a folder of its own (``models/<name>/model.ts``), a data-set
    folder as input, ``inference`` alone as embedded config."""
    import os
    import shutil
    import subprocess

    _, model_ts = exported(bundle)
    (tmp_path / "models" / "brats").mkdir(parents=True)
    shutil.copy(model_ts, tmp_path / "models" / "brats" / "model.ts")
    case = brats_case(tmp_path / "input", bundle)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HOLOSCAN_INPUT_PATH": str(tmp_path / "input"),
        "HOLOSCAN_OUTPUT_PATH": str(tmp_path / "output"),
        "HOLOSCAN_MODEL_PATH": str(tmp_path / "models"),
    }
    command = [sys.executable, "-m", "apps.deploy.volume_segmentation"]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    source = nib.load(modality_file(case, "flair"))
    for postfix in ("seg", "wt_mask"):
        mask = nib.load(tmp_path / "output" / f"{case.name}_{postfix}.nii.gz")
        assert mask.shape == source.shape
        np.testing.assert_allclose(mask.affine, source.affine, atol=1e-6)


def test_chained_class_output_is_null_where_its_condition_fails(sdk, tmp_path):
    """The two-stage classifier's source is reported only for slices where presence says "present"."""
    from types import SimpleNamespace

    from apps.deploy.operators.writers import ClassificationWriterOperator

    card = model_card("resnesat_brain_tumor_classification")
    formats = card["network_data_format"]["post_processed_outputs"]
    presence = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]])  # absent, present, present
    source = np.array([[0.3, 0.7], [0.6, 0.4], [0.1, 0.9]])
    result = {
        "case": "stack", "meta": {"filename_or_obj": "stack.nii.gz"}, "slice_wise": True,
        "bundle": {"name": card["name"], "version": card["version"]}, "formats": formats,
        "outputs": {"pred_presence": presence, "pred_source": source},
    }  # fmt: skip
    writer = SimpleNamespace(key=None, output_folder=tmp_path, written=[])
    report = ClassificationWriterOperator.write(writer, result)
    assert [r["predicted_class"] for r in report["results"]] == ["absent", "present", "present"]
    chained = report["other_outputs"]["pred_source"]
    assert chained["given"] == {"pred_presence": "present"}
    assert [r["predicted_class"] for r in chained["results"]] == [None, "primary", "secondary"]
    assert chained["results"][0]["probabilities"] is None
    assert chained["results"][2]["probabilities"] == pytest.approx({"primary": 0.1, "secondary": 0.9})
    assert json.loads((tmp_path / "stack_classification.json").read_text()) == report
    text = ClassificationWriterOperator.summary(report).splitlines()
    assert text[1].startswith("slice 0: absent") and "primary" not in text[1]
    assert (
        text[3].startswith("slice 2: present") and "; secondary (primary 0.100, secondary 0.900)" in text[3]
    )
