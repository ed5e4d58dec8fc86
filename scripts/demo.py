"""`make demo`: short training, inference and evaluation of every bundle on phantoms, and a report.

Each bundle runs through ``python -m monai.bundle run`` exactly as a user would run it, with overrides
that shrink the network and the budget so that the whole demo takes a few minutes on 2 CPU cores. The
report (``<output>/report.md``) holds the evaluation metrics and overlay figures of image, ground truth
and prediction.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common.data import read_figshare_mat  # noqa: E402


@dataclass
class DemoSpec:
    name: str
    overrides: dict[str, object] = field(default_factory=dict)
    run: str = ""  # name of the function below that runs this bundle's demo


MMRAN = DemoSpec(
    name="mmran_brain_tumor_segmentation_classification",
    overrides={
        "image_size": 96,
        "features": [16, 32, 64, 128, 256],
        "epochs": 25,
        "batch_size": 8,
        "num_workers": 1,
        "phantom": {"n_patients": 30, "slices_per_patient": 4, "size": 256, "seed": 0},
        # the paper's rotation and elastic deformation are left out: on 2 CPU cores they cost more than the
        # network itself at this size
        "train#random_transforms": [
            {"_target_": "RandFlipd", "keys": ["image", "label"], "prob": 0.5, "spatial_axis": 0},
            {"_target_": "RandFlipd", "keys": ["image", "label"], "prob": 0.5, "spatial_axis": 1},
            {"_target_": "RandGaussianNoised", "keys": "image", "prob": 0.5, "std": 0.03},
        ],
    },
)
BRATS = DemoSpec(
    name="attention_r2unet_brats_segmentation",
    overrides={
        "slice_size": [64, 80],
        "features": [16, 32, 64, 128],
        "epochs": 30,
        "batch_size": 32,
        "slices_per_case": 16,
        "learning_rate": 0.003,
        "sw_batch_size": 32,
        "num_workers": 1,
        "phantom": {"n_cases": 12, "shape": [64, 80, 40], "seed": 0},
    },
    run="demo_brats",
)
MMRAN.run = "demo_mmran"
BUNDLES = [MMRAN, BRATS]


def bundle_cmd(spec: DemoSpec, config: str, overrides: dict[str, object]) -> list[str]:
    configs = REPO / "bundles" / spec.name / "configs"
    files = (
        [str(configs / "train.json"), str(configs / config)]
        if config == "evaluate.json"
        else [str(configs / config)]
    )
    cmd = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        json.dumps(files) if len(files) > 1 else files[0],
    ]
    cmd += ["--meta_file", str(configs / "metadata.json"), "--logging_file", str(configs / "logging.conf")]
    for key, value in overrides.items():
        cmd += [f"--{key}", json.dumps(value) if not isinstance(value, str) else value]
    return cmd


def run(cmd: list[str], log: Path) -> float:
    start = time.perf_counter()
    with open(log, "w") as out:
        result = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    if result.returncode:
        print(f"command failed ({result.returncode}), see {log}:\n  {' '.join(cmd)}")
        print("".join(log.read_text().splitlines(keepends=True)[-30:]))
        sys.exit(result.returncode)
    return time.perf_counter() - start


def overlay(image: np.ndarray, truth: np.ndarray, pred: np.ndarray, title: str, path: Path) -> None:
    """Image | ground truth | prediction, shown the way MATLAB shows the slice (rows down)."""
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.3))
    for ax, mask, name, colour in zip(
        axes, (None, truth, pred), ("image", "ground truth", "prediction"), (None, "lime", "red")
    ):
        ax.imshow(image.T, cmap="gray")
        if mask is not None:
            ax.contour(mask.T, levels=[0.5], colors=colour, linewidths=1.2)
        ax.set_title(name)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def demo_mmran(spec: DemoSpec, out: Path) -> list[str]:
    work = out / spec.name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    timings = train_and_evaluate(spec, work)

    # inference on the held-out slices, in three formats: the original .mat, a PNG and a NIfTI copy
    datalist = json.loads((work / "runs" / "datalist.json").read_text())
    test_items = datalist["testing"]
    inputs = work / "inference_inputs"
    inputs.mkdir()
    for item in test_items:
        shutil.copy(work / "phantom_data" / item["image"], inputs / Path(item["image"]).name)
    first = read_figshare_mat(work / "phantom_data" / test_items[0]["image"])
    scaled = (first.image - first.image.min()) / max(float(np.ptp(first.image)), 1.0)
    plt.imsave(
        inputs / "example_png_slice.png", (255 * scaled.T).astype(np.uint8), cmap="gray", vmin=0, vmax=255
    )
    nib.save(
        nib.Nifti1Image(first.image.astype(np.float32), np.diag([0.49, 0.49, 1, 1])),
        inputs / "example_nifti_slice.nii.gz",
    )
    infer_overrides = {
        "image_size": spec.overrides["image_size"],
        "features": spec.overrides["features"],
        "dataset_dir": str(inputs),
        "output_dir": str(work / "predictions"),
        "ckpt_path": str(work / "models" / "model.pt"),
    }
    timings["inference"] = run(bundle_cmd(spec, "inference.json", infer_overrides), work / "inference.log")

    probabilities = {
        Path(r["file"]).name: r
        for r in csv.DictReader(open(work / "predictions" / "class_probabilities.csv"))
    }
    names = ["meningioma", "glioma", "pituitary"]
    size = spec.overrides["image_size"]
    lines = [
        f"## MMRAN (`{spec.name}`)",
        "",
        f"Phantom data: {len(datalist['training'])} training, {len(datalist['validation'])} validation and "
        f"{len(test_items)} test slices (split by patient). Reduced network {spec.overrides['features']}, "
        f"{size}x{size} input, {spec.overrides['epochs']} epochs.",
        f"Wall time: training {timings['train']:.0f} s, evaluation {timings['evaluate']:.0f} s, inference "
        f"{timings['inference']:.0f} s ({len(test_items) + 2} inputs).",
        "",
        *metrics_table(work / "eval" / "metrics.csv"),
        "",
        "![confusion matrix](" + f"{spec.name}/eval/confusion_matrix.png)",
        "",
    ]
    figures = work / "figures"
    figures.mkdir()
    one_per_patient = list({item["patient"]: item for item in reversed(test_items)}.values())[::-1]
    for item in one_per_patient[:4]:
        sample = read_figshare_mat(work / "phantom_data" / item["image"])
        stem = Path(item["image"]).stem
        pred = np.asarray(nib.load(work / "predictions" / f"{stem}_seg.nii.gz").dataobj).squeeze()
        row = probabilities[f"{stem}.mat"]
        title = f"{stem}.mat: true {names[item['class']]}, predicted {row['predicted_class']}"
        overlay(sample.image, sample.mask, pred, title, figures / f"{stem}.png")
        lines.append(f"![{stem}]({spec.name}/figures/{stem}.png)")
    return lines


def train_and_evaluate(spec: DemoSpec, work: Path) -> dict[str, float]:
    """Train, then evaluate on the test split; returns the timings."""
    paths = {
        "phantom_dir": str(work / "phantom_data"),
        "output_dir": str(work / "runs"),
        "ckpt_dir": str(work / "models"),
    }
    timings = {"train": run(bundle_cmd(spec, "train.json", {**spec.overrides, **paths}), work / "train.log")}
    eval_overrides = {
        **spec.overrides,
        **paths,
        "output_dir": str(work / "eval"),
        "datalist_file": str(work / "runs" / "datalist.json"),
    }
    timings["evaluate"] = run(bundle_cmd(spec, "evaluate.json", eval_overrides), work / "evaluate.log")
    return timings


def metrics_table(csv_path: Path) -> list[str]:
    rows = [row for row in csv.reader(open(csv_path)) if len(row) > 1]
    return [
        "| metric (test split) | value |",
        "| --- | --- |",
        *(f"| {k} | {float(v):.4f} |" for k, v in rows),
    ]


def demo_brats(spec: DemoSpec, out: Path) -> list[str]:
    work = out / spec.name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    timings = train_and_evaluate(spec, work)
    datalist = json.loads((work / "runs" / "datalist.json").read_text())
    test_cases = datalist["testing"]
    inputs = work / "inference_inputs"
    for item in test_cases:
        shutil.copytree(work / "phantom_data" / item["case"], inputs / item["case"])
    infer_overrides = {key: spec.overrides[key] for key in ("slice_size", "features", "sw_batch_size")} | {
        "dataset_dir": str(inputs),
        "output_dir": str(work / "predictions"),
        "ckpt_path": str(work / "models" / "model.pt"),
    }
    timings["inference"] = run(bundle_cmd(spec, "inference.json", infer_overrides), work / "inference.log")
    phantom = spec.overrides["phantom"]
    shape, slices = ("x".join(map(str, v)) for v in (phantom["shape"], spec.overrides["slice_size"]))
    lines = [
        f"## Attention R2U-Net, BraTS (`{spec.name}`)",
        "",
        f"Phantom data: {phantom['n_cases']} BraTS-2020-layout cases of {shape} ({len(datalist['training'])} "
        f"training, {len(datalist['validation'])} validation, {len(test_cases)} test). Reduced network "
        f"{spec.overrides['features']}, {slices} slices, {spec.overrides['epochs']} epochs of "
        f"{spec.overrides['slices_per_case']} slices per case.",
        f"Wall time: training {timings['train']:.0f} s, evaluation {timings['evaluate']:.0f} s, whole-case "
        f"inference {timings['inference']:.0f} s ({len(test_cases)} case{'s' * (len(test_cases) != 1)}).",
        "",
        *metrics_table(work / "eval" / "metrics.csv"),
        "",
    ]
    figures = work / "figures"
    figures.mkdir()
    for item in test_cases:
        case = item["case"]
        flair = np.asarray(nib.load(next((inputs / case).glob("*_flair.nii.gz"))).dataobj, dtype=np.float32)
        truth = np.asarray(nib.load(next((inputs / case).glob("*_seg.nii.gz"))).dataobj)
        pred = np.asarray(nib.load(work / "predictions" / f"{case}_seg.nii.gz").dataobj)
        z = int(np.argmax((truth > 0).sum(axis=(0, 1))))
        overlay(
            flair[..., z],
            truth[..., z] > 0,
            pred[..., z] > 0,
            f"{case}, slice {z}: whole tumour",
            figures / f"{case}.png",
        )
        lines.append(f"![{case}]({spec.name}/figures/{case}.png)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=REPO / "demo_output")
    parser.add_argument("--only", choices=[spec.name for spec in BUNDLES], help="run one bundle's demo")
    args = parser.parse_args()
    out = args.output.resolve()
    out.mkdir(parents=True, exist_ok=True)
    report = [
        "# Demo report",
        "",
        "Every bundle trained briefly on generated phantoms, then evaluated and run.",
        "",
    ]
    for spec in BUNDLES:
        if args.only and spec.name != args.only:
            continue
        print(f"[demo] {spec.name}: train, evaluate, infer ...", flush=True)
        report += globals()[spec.run](spec, out) + [""]
    (out / "report.md").write_text("\n".join(report) + "\n")
    print(f"[demo] report: {out / 'report.md'}")


if __name__ == "__main__":
    main()
