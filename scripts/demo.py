"""`make demo`: short training, inference and evaluation of every bundle on phantoms, and a report.

Each bundle runs through ``python -m monai.bundle run`` exactly as a user would run it, with overrides
that shrink the network and the budget so that the whole demo takes a few minutes on 2 CPU cores. The
report (``<output>/report.md``) holds the evaluation metrics and overlay figures of image, ground truth
and prediction.

Each command's output goes to ``<output>/<bundle>/{train,evaluate,inference}.log`` (``train_<stage>.log``
and ``evaluate_<stage>.log`` for a bundle trained in stages); meanwhile the demo reads the log as it grows
and shows the stage (k of M), the epoch and the time left, or the cases done: one line redrawn in place on
a terminal, a line every 30 s otherwise.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common.data import read_figshare_mat  # noqa: E402
from common.engines.progress import format_duration, parse_progress  # noqa: E402


@dataclass
class DemoSpec:
    name: str
    overrides: dict[str, object] = field(default_factory=dict)
    run: str = ""  # name of the function below that runs this bundle's demo
    commands: int = 3  # bundle commands the demo runs (train, evaluate, infer), for the [demo k/M] count


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
MS = DemoSpec(
    name="multitask_unet3d_ms_lesion_segmentation",
    overrides={
        "features": [8, 16, 32, 64],
        "patch_size": [32, 32, 32],
        "epochs": 18,
        "val_interval": 2,
        "batch_size": 8,
        "patches_per_case": 4,
        "case_visits": 2,
        "learning_rate": 0.01,
        "sw_batch_size": 4,
        "num_workers": 1,
        "phantom": {"n_patients": 5, "timepoints": 2, "shape": [48, 56, 48], "seed": 0},
    },
    run="demo_ms",
)
STROKE = DemoSpec(
    name="unetpp_edge_stroke_lesion_segmentation",
    overrides={
        "features": [8, 8, 16, 32, 64, 8],
        "epochs": 20,
        "val_interval": 2,
        "batch_size": 8,
        "slices_per_case": 4,
        "case_visits": 6,
        "learning_rate": 0.003,
        "sw_batch_size": 16,
        "num_workers": 1,
        "split_ratios": [6, 1, 1],
        "phantoms": {
            "atlas": {"n_subjects": 8, "shape": [48, 56, 40], "seed": 0},
            "ncct": {"n_cases": 8, "shape": [64, 64, 12], "seed": 0},
        },
    },
    run="demo_stroke",
)
CLASSIFICATION = DemoSpec(
    name="resnesat_brain_tumor_classification",
    overrides={
        # configs/smoke_test.json's network: one bottleneck per stage, narrow, 64 x 64 input
        "image_size": [64, 64],
        "layers": [1, 1, 1, 1],
        "bottleneck_width": 8,
        "stem_width": 8,
        "base_planes": 16,
        "epochs": 30,
        "batch_size": 16,
        "learning_rates": {"presence": 0.01, "source": 0.01},
        "num_workers": 1,
        "split_ratios": [4, 1, 1],
        "phantom": {"n_patients": 36, "slices_per_patient": 4, "size": 64, "seed": 0},
    },
    run="demo_classification",
    commands=5,  # train and evaluate each of the two stages, then the chained inference
)
MMRAN.run = "demo_mmran"
BUNDLES = [MMRAN, BRATS, MS, STROKE, CLASSIFICATION]


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


# Lines of a bundle's log that tell how far it is, besides those of common.engines.progress (parsed by
# parse_progress). These come from ignite and MONAI and are there even in configs without the progress
# handlers: the trainer's epoch count and epoch times, and the bar of CacheDataset.
TRAINER_START = re.compile(
    r"SupervisedTrainer - INFO - Engine run resuming from iteration \d+, epoch (\d+) until (\d+)"
)
TRAINER_EPOCH = re.compile(
    r"SupervisedTrainer - INFO - Epoch\[(\d+)\] Complete\. Time taken: (\d+):(\d+):([\d.]+)"
)
STATS_ITERATION = re.compile(r"Epoch: (\d+)/(\d+), Iter: \d+/\d+")
LOADING = re.compile(r"Loading dataset:\s+(\d+)%")


@dataclass
class StageProgress:
    """What the log of one bundle command says so far, as one status line."""

    label: str  # e.g. "[demo 1/6] train"
    start: float = field(default_factory=time.perf_counter)
    epochs_done: int = 0
    epochs_total: int | None = None
    epoch_times: list[float] = field(default_factory=list)
    seconds_per_epoch: float | None = None
    cases: str = ""  # e.g. "inference 5/14 cases"
    loading: str = ""
    time_left: float | None = None  # as read from the log at left_read_at
    left_read_at: float = 0.0
    from_handler: bool = False  # EpochProgress lines seen: their estimate stands

    def feed(self, line: str, now: float) -> None:
        if parsed := parse_progress(line):
            if parsed.kind == "epoch":
                self.from_handler = True
                self.epochs_done, self.epochs_total = parsed.done, parsed.total
                self.seconds_per_epoch = parsed.seconds_per_epoch
            else:
                total = "?" if parsed.total is None else parsed.total
                self.cases = f"{parsed.desc} {parsed.done}/{total} {parsed.unit}"
                if self.epochs_total:
                    return  # cases of a validation during training: the training's time left stands
            self.time_left, self.left_read_at = parsed.time_left, now
        elif match := TRAINER_START.search(line):
            self.epochs_done, self.epochs_total = int(match[1]), int(match[2])
        elif match := STATS_ITERATION.search(line):
            self.epochs_total = int(match[2])
        elif match := TRAINER_EPOCH.search(line):
            self.epochs_done = int(match[1])
            self.epoch_times.append(3600 * int(match[2]) + 60 * int(match[3]) + float(match[4]))
            if self.epochs_total and not self.from_handler:
                # train#handlers has no EpochProgress: estimate from ignite's epoch times
                self.seconds_per_epoch = sum(self.epoch_times) / len(self.epoch_times)
                self.time_left = self.seconds_per_epoch * (self.epochs_total - self.epochs_done)
                self.left_read_at = now
        elif match := LOADING.search(line):
            # after the data, the run itself: say so rather than leave "100%" standing
            self.loading = "running" if match[1] == "100" else f"loading data {match[1]}%"

    def line(self, now: float) -> str:
        parts = []
        if self.epochs_total:
            parts.append(f"epoch {min(self.epochs_done + 1, self.epochs_total)}/{self.epochs_total}")
            if self.seconds_per_epoch:
                parts.append(f"{self.seconds_per_epoch:.1f} s/epoch")
        if self.cases:
            parts.append(self.cases)
        if not parts:
            parts.append(self.loading or "starting")
        if self.time_left is not None:
            # count down between log lines, so that the estimate does not stand still
            parts.append(f"{format_duration(self.time_left - (now - self.left_read_at))} left")
        return f"{self.label}: {', '.join(parts)} ({format_duration(now - self.start)} elapsed)"


class StatusLine:
    """Shows progress on stdout: one line redrawn in place on a terminal, else a line every ``interval_s``."""

    def __init__(self, stream: TextIO | None = None, interval_s: float = 30.0):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.interval_s = interval_s
        self.last_print = time.perf_counter()
        self.drawn = False

    def begin(self, text: str) -> None:
        """Off a terminal, say what starts (on one, the status line does)."""
        if not self.tty:
            self.done(text)

    def show(self, text: str, now: float) -> None:
        if self.tty:
            # a line that wraps cannot be redrawn with a carriage return: cut it to the terminal's width
            width = shutil.get_terminal_size().columns - 1
            self.stream.write("\r" + text[:width] + "\x1b[K")
            self.drawn = True
        elif now - self.last_print >= self.interval_s:
            self.stream.write(text + "\n")
            self.last_print = now
        self.stream.flush()

    def done(self, text: str) -> None:
        """A line that stays: replaces the status line on a terminal."""
        self.stream.write(("\r\x1b[K" if self.drawn else "") + text + "\n")
        self.stream.flush()
        self.drawn = False
        self.last_print = time.perf_counter()


class Stages:
    """Numbers the bundle commands of the demo: ``[demo k/M]``."""

    def __init__(self, total: int | None = None):
        self.total = total
        self.count = 0

    def next(self, name: str) -> str:
        self.count += 1
        return f"[demo {self.count}/{self.total or '?'}] {name}"


STAGES = Stages()


def follow(log: Path, position: int, partial: str) -> tuple[list[str], int, str]:
    """Lines added to ``log`` since ``position``; ``partial`` is an unfinished last line, kept for later."""
    with open(log, errors="replace") as stream:
        stream.seek(position)
        text = partial + stream.read()
        position = stream.tell()
    # progress bars (tqdm) in the log redraw with carriage returns: each redraw is a line
    *lines, partial = re.split(r"[\r\n]", text)
    return lines, position, partial


def run(cmd: list[str], log: Path, stage: str) -> float:
    """Run one bundle command with its output in ``log``, showing its progress read from the log meanwhile."""
    label = STAGES.next(stage)
    progress, status = StageProgress(label), StatusLine()
    status.begin(f"{label} ...")
    position, partial = 0, ""
    with open(log, "w") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            while True:
                try:
                    process.wait(timeout=0.5)  # returns as soon as the command ends: the timings stay exact
                    break
                except subprocess.TimeoutExpired:
                    pass
                lines, position, partial = follow(log, position, partial)
                now = time.perf_counter()
                for line in lines:
                    progress.feed(line, now)
                status.show(progress.line(now), now)
        except BaseException:  # Ctrl-C included: do not leave the bundle running
            process.kill()
            process.wait()
            raise
    seconds = time.perf_counter() - progress.start
    if process.returncode:
        status.done(f"{label}: failed after {seconds:.0f} s")
        print(f"command failed ({process.returncode}), see {log}:\n  {' '.join(cmd)}")
        print("".join(log.read_text().splitlines(keepends=True)[-30:]))
        sys.exit(process.returncode)
    status.done(f"{label}: done in {seconds:.0f} s")
    return seconds


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
    timings["inference"] = run(
        bundle_cmd(spec, "inference.json", infer_overrides), work / "inference.log", "infer"
    )

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


def train_and_evaluate(
    spec: DemoSpec,
    work: Path,
    stage: str = "",
    overrides: dict[str, object] | None = None,
    datalist: str = "datalist.json",
) -> dict[str, float]:
    """Train, then evaluate on the test split; returns the timings.

    For a bundle trained in several runs: ``stage`` names one (its logs ``train_<stage>.log`` and
    ``evaluate_<stage>.log``, its evaluation folder ``eval/<stage>``), ``overrides`` are its own on top of
    the spec's (e.g. ``{"task": "source"}``) and ``datalist`` is the file of ``runs/`` its training writes.
    """
    suffix, label = (f"_{stage}", f" {stage}") if stage else ("", "")
    paths = {
        "phantom_dir": str(work / "phantom_data"),
        "output_dir": str(work / "runs"),
        "ckpt_dir": str(work / "models"),
    }
    overrides = {**spec.overrides, **(overrides or {}), **paths}
    train_cmd = bundle_cmd(spec, "train.json", overrides)
    timings = {"train": run(train_cmd, work / f"train{suffix}.log", f"train{label}")}
    eval_overrides = {
        **overrides,
        "output_dir": str(work / "eval" / stage),
        "datalist_file": str(work / "runs" / datalist),
    }
    timings["evaluate"] = run(
        bundle_cmd(spec, "evaluate.json", eval_overrides), work / f"evaluate{suffix}.log", f"evaluate{label}"
    )
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
    timings["inference"] = run(
        bundle_cmd(spec, "inference.json", infer_overrides), work / "inference.log", "infer"
    )
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


def demo_ms(spec: DemoSpec, out: Path) -> list[str]:
    work = out / spec.name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    timings = train_and_evaluate(spec, work)
    datalist = json.loads((work / "runs" / "datalist.json").read_text())
    test_cases = datalist["testing"]
    # the held-out patients without their tissue maps: inference makes the masks itself (N4 + Atropos)
    inputs = work / "inference_inputs" / "training"
    for patient in sorted({item["patient"] for item in test_cases}):
        shutil.copytree(
            work / "phantom_data" / "training" / patient,
            inputs / patient,
            ignore=shutil.ignore_patterns("tissues"),
        )
    infer_overrides = {key: spec.overrides[key] for key in ("features", "patch_size", "sw_batch_size")} | {
        "dataset_dir": str(inputs.parent),
        "output_dir": str(work / "predictions"),
        "ckpt_path": str(work / "models" / "model.pt"),
        "tissue_cache_dir": str(work / "tissue_cache"),
    }
    timings["inference"] = run(
        bundle_cmd(spec, "inference.json", infer_overrides), work / "inference.log", "infer"
    )
    phantom = spec.overrides["phantom"]
    shape, patch = ("x".join(map(str, v)) for v in (phantom["shape"], spec.overrides["patch_size"]))
    counts = {s: len(datalist[s]) for s in ("training", "validation", "testing")}
    lines = [
        f"## Multi-task 3D U-Net, MS lesions (`{spec.name}`, multi-input variant)",
        "",
        f"Phantom data: {phantom['n_patients']} ISBI-2015-layout patients with {phantom['timepoints']} time "
        f"points of {shape} ({counts['training']} training, {counts['validation']} validation, "
        f"{counts['testing']} test scans, split by patient). Reduced network {spec.overrides['features']}, "
        f"{patch} patches, {spec.overrides['epochs']} epochs; tissue masks from the phantoms' tissue maps in "
        "training, made by N4 + Atropos at inference. Reference: the union of both raters.",
        f"Wall time: training {timings['train']:.0f} s, evaluation {timings['evaluate']:.0f} s, whole-volume "
        f"inference {timings['inference']:.0f} s ({len(test_cases)} scan{'s' * (len(test_cases) != 1)}).",
        "",
        *metrics_table(work / "eval" / "metrics.csv"),
        "",
    ]
    figures = work / "figures"
    figures.mkdir()
    for item in test_cases:
        case, folder = item["case"], inputs / item["patient"]
        flair = np.asarray(
            nib.load(folder / "preprocessed" / f"{case}_flair_pp.nii").dataobj, dtype=np.float32
        )
        truth = (
            sum(np.asarray(nib.load(folder / "masks" / f"{case}_mask{r}.nii").dataobj) for r in (1, 2)) > 0
        )
        pred = np.asarray(nib.load(work / "predictions" / f"{case}_lesion.nii.gz").dataobj) > 0
        z = int(np.argmax(truth.sum(axis=(0, 1))))
        overlay(
            flair[..., z],
            truth[..., z],
            pred[..., z],
            f"{case}, slice {z}: MS lesions",
            figures / f"{case}.png",
        )
        lines.append(f"![{case}]({spec.name}/figures/{case}.png)")
    return lines


def demo_stroke(spec: DemoSpec, out: Path) -> list[str]:
    work = out / spec.name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    timings = train_and_evaluate(spec, work)
    datalist = json.loads((work / "runs" / "datalist.json").read_text())
    test_cases = datalist["testing"]
    # the held-out subjects, as a user holds them: the ATLAS layout with their masks beside the scans
    inputs = work / "inference_inputs"
    for item in test_cases:
        for key in ("image", "label"):
            target = inputs / Path(item[key])
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(work / "phantom_data" / item[key], target)
    infer_overrides = {key: spec.overrides[key] for key in ("features", "sw_batch_size")} | {
        "dataset_dir": str(inputs),
        "output_dir": str(work / "predictions"),
        "ckpt_path": str(work / "models" / "model.pt"),
    }
    timings["inference"] = run(
        bundle_cmd(spec, "inference.json", infer_overrides), work / "inference.log", "infer"
    )
    phantom = spec.overrides["phantoms"]["atlas"]
    shape = "x".join(map(str, phantom["shape"]))
    counts = {s: len(datalist[s]) for s in ("training", "validation", "testing")}
    lines = [
        f"## UNet++ with edge branch, stroke lesions (`{spec.name}`, LFFGM + consistency loss)",
        "",
        f"Phantom data: {phantom['n_subjects']} ATLAS-R2.0-layout T1w subjects of {shape} "
        f"({counts['training']} training, {counts['validation']} validation, {counts['testing']} test, "
        f"split by subject). Reduced network {spec.overrides['features']}, {spec.overrides['epochs']} "
        f"epochs at learning rate {spec.overrides['learning_rate']}; whole volumes in and out, slice by "
        "slice.",
        f"Wall time: training {timings['train']:.0f} s, evaluation {timings['evaluate']:.0f} s, whole-volume "
        f"inference {timings['inference']:.0f} s ({len(test_cases)} scan{'s' * (len(test_cases) != 1)}).",
        "",
        *metrics_table(work / "eval" / "metrics.csv"),
        "",
    ]
    figures = work / "figures"
    figures.mkdir()
    for item in test_cases:
        case = item["case"]
        t1 = np.asarray(nib.load(work / "phantom_data" / item["image"]).dataobj, dtype=np.float32)
        truth = np.asarray(nib.load(work / "phantom_data" / item["label"]).dataobj) > 0
        pred = np.asarray(nib.load(work / "predictions" / f"{case}_lesion.nii.gz").dataobj) > 0
        z = int(np.argmax(truth.sum(axis=(0, 1))))
        overlay(
            t1[..., z],
            truth[..., z],
            pred[..., z],
            f"{case}, slice {z}: stroke lesion",
            figures / f"{case}.png",
        )
        lines.append(f"![{case}]({spec.name}/figures/{case}.png)")
    return lines


def demo_classification(spec: DemoSpec, out: Path) -> list[str]:
    work = out / spec.name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    # stage 1, then stage 2 into the same model.pt (stage 1 kept); each evaluated on its own test split
    # (bundle_root: whatever else the configs write below it stays in the demo's folder)
    tasks = {"presence": "datalist.json", "source": "datalist_source.json"}
    timings = {
        task: train_and_evaluate(spec, work, task, {"task": task, "bundle_root": str(work)}, datalist)
        for task, datalist in tasks.items()
    }
    datalists = {task: json.loads((work / "runs" / file).read_text()) for task, file in tasks.items()}
    # chained inference on the held-out patients of stage 1 (every class), in their class folders
    test_items = datalists["presence"]["testing"]
    inputs = work / "inference_inputs"
    for item in test_items:
        (inputs / item["image"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(work / "phantom_data" / item["image"], inputs / item["image"])
    network = ("image_size", "layers", "bottleneck_width", "stem_width", "base_planes")
    infer_overrides = {key: spec.overrides[key] for key in network} | {
        "dataset_dir": str(inputs),
        "output_dir": str(work / "predictions"),
        "ckpt_path": str(work / "models" / "model.pt"),
    }
    inference_s = run(bundle_cmd(spec, "inference.json", infer_overrides), work / "inference.log", "infer")

    truth = {item["image"]: item["category"] for item in test_items}  # absent, primary or secondary
    rows = list(csv.DictReader(open(work / "predictions" / "classification.csv")))
    for row in rows:
        row["file"] = Path(row["file"]).relative_to(inputs).as_posix()
        row["said"] = row["source"] if row["tumour"] == "yes" else "absent"
    right = sum(row["said"] == truth[row["file"]] for row in rows)
    one_per_patient = list({Path(row["file"]).parent: row for row in reversed(rows)}.values())[::-1]
    phantom, size = spec.overrides["phantom"], "x".join(map(str, spec.overrides["image_size"]))
    counts = {
        task: "/".join(str(len(d[s])) for s in ("training", "validation", "testing"))
        for task, d in datalists.items()
    }
    lines = [
        f"## ResNeSAt, tumour presence then source (`{spec.name}`)",
        "",
        f"Phantom data: {phantom['n_patients']} patients x {phantom['slices_per_patient']} slices of "
        f"{phantom['size']}², no tumour, glioma, meningioma or metastases (training/validation/test images, "
        f"split by patient: presence {counts['presence']}, source {counts['source']}, the source task "
        f"without the no-tumour patients). Reduced network (layers {spec.overrides['layers']}, "
        f"bottleneck width {spec.overrides['bottleneck_width']}, stem {spec.overrides['stem_width']}, "
        f"base planes {spec.overrides['base_planes']}), {size} input, {spec.overrides['epochs']} epochs "
        "per stage.",
        f"Wall time: training {timings['presence']['train']:.0f} s (presence) + "
        f"{timings['source']['train']:.0f} s (source), evaluation {timings['presence']['evaluate']:.0f} + "
        f"{timings['source']['evaluate']:.0f} s, chained inference {inference_s:.0f} s ({len(rows)} images).",
        "",
    ]
    for number, task in enumerate(tasks, 1):
        # evaluate.json's MetricsSaver table, wherever below the stage's eval folder the config puts it
        metrics = max((work / "eval" / task).rglob("metrics.csv"), key=lambda p: p.stat().st_mtime)
        lines += [
            f"Stage {number} ({task}), `evaluate.json` on its test split:",
            "",
            *metrics_table(metrics),
            "",
        ]
    lines += [
        f"Chained inference (`predictions/classification.csv`) on the {len(rows)} test images of stage "
        f"1: {right} of {len(rows)} given the right class (absent, primary or secondary). One slice per "
        "patient:",
        "",
        "| file | true class | p_present | tumour | p_secondary | source |",
        "| --- | --- | --- | --- | --- | --- |",
        *(
            f"| {r['file']} | {truth[r['file']]} | {r['p_present']} | {r['tumour']} | {r['p_secondary']} "
            f"| {r['source']} |"
            for r in one_per_patient
        ),
    ]
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
    specs = [spec for spec in BUNDLES if not args.only or spec.name == args.only]
    STAGES.total = sum(spec.commands for spec in specs)
    print(
        f"[demo] {STAGES.total} stages, logs in {out}/<bundle>/{{train,evaluate,inference}}*.log", flush=True
    )
    for spec in specs:
        print(f"[demo] {spec.name}: train, evaluate, infer ...", flush=True)
        report += globals()[spec.run](spec, out) + [""]
    (out / "report.md").write_text("\n".join(report) + "\n")
    print(f"[demo] report: {out / 'report.md'}")


if __name__ == "__main__":
    main()
