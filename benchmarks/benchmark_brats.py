"""Whole-case speed of the BraTS bundle (``bundles/attention_r2unet_brats_segmentation``) against MONAI's
SegResNet as the model zoo's ``brats_mri_segmentation`` bundle configures it, on the same phantom case.

What it measures (on CUDA when available, else on the CPU; ``--device`` forces one). A phantom case in the
BraTS 2020 layout is written first (``common.data.make_brats_phantoms(n_cases=1, shape=--shape,
seed=0)``: four modality NIfTI files + a segmentation), then each pipeline runs in its own child process
(the script re-invokes itself with ``--phase``), so the peak RSS (``ru_maxrss``) reported for a pipeline
is its own:

1. OURS, end to end: the bundle's own ``configs/inference.json`` read with ``monai.bundle.ConfigParser``
   (``dataset_dir`` overridden to the folder holding just the phantom case, ``output_dir`` to a temporary
   folder, ``ckpt_path`` to a checkpoint of a randomly initialised ``AttentionR2UNet`` written first:
   weights do not change the timing). One ``evaluator.run()`` is one whole case: load the 4 NIfTI files,
   crop/pad to 144x176 in-plane, channel-wise min-max scaling, ``SliceInferer`` (2D, 64 slices a batch),
   sigmoid, ``AssembleBraTSLabelsd`` (3D component filter + label assembly), ``Invertd``,
   ``FromCanonicalBraTSLabelsd`` and the two ``SaveImaged`` (label map + whole-tumour mask), as well as
   the bundle's ``CheckpointLoader``. ``--warmup`` untimed runs, then ``--repeats`` timed runs: median and
   minimum seconds per case.
   The model-only time is the time of the evaluator's inferer call (``SliceInferer`` on the preprocessed
   tensor, network included) inside those same runs: the evaluator's inferer is wrapped in a timer, so
   "whole case - model" is what loading, preprocessing, post-processing and writing cost.
   Building the evaluator (parsing the config, checking the input case, building the network) happens
   once and is reported apart as "setup".
2. SEGRESNET, with the same scope: ``SegResNet(blocks_down=[1, 2, 2, 4], blocks_up=[1, 1, 1],
   init_filters=16, in_channels=4, out_channels=3, dropout_prob=0.2)`` with random weights, run by a
   ``SupervisedEvaluator`` (``CheckpointLoader`` included) with the zoo's preprocessing (``LoadImaged`` of
   the 4 files, ``EnsureChannelFirstd``, ``Orientationd`` RAS, ``Spacingd`` 1 mm, ``NormalizeIntensityd
   (nonzero=True, channel_wise=True)``), ``SlidingWindowInferer(roi_size=[240, 240, 160], sw_batch_size=1,
   overlap=0.5)`` and post-processing (sigmoid, threshold 0.5, ``SaveImaged`` of the 3-channel result
   as uint8, the zoo's output dtype). Same runs and the same inferer timer.
3. OUR training throughput in slices/s: the bundle's ``train.json`` network, loss (``MultiTaskLoss`` of
   four ``DiceCELoss(sigmoid=True)`` heads) and optimiser (Adam, lr 1e-4), built with ``ConfigParser``,
   one step = zero_grad + forward + loss + backward + Adam step on a batch of the config's 32 slices of
   4x144x176 with binary targets per head; ``--warmup-steps`` untimed steps, then ``--steps`` timed ones.
4. On CUDA every row is bracketed by ``torch.cuda.synchronize()``, a second row of each measurement runs
   with AMP (the evaluators' ``amp=True``; autocast float16 + ``GradScaler`` for training), and
   ``torch.cuda.max_memory_allocated()`` is reported per row.
5. The machine (CPU model, cores, torch threads or GPU name), torch / monai versions, load average before
   and after, and per phase the average number of cores the benchmark process kept busy (process CPU
   time / wall time; fewer than the torch threads means another process was using the CPU).

It prints a markdown table (pipeline, whole-case median and min, model-only median, peak RSS of that
pipeline, parameters), the ratio ours / SegResNet and whether the goal "our whole-case time at most
half of SegResNet's" is met on this machine, and the training table.

Run from the repository root, on a CPU or a GPU machine alike::

    python benchmarks/benchmark_brats.py
    python benchmarks/benchmark_brats.py --json /tmp/brats_bench.json     # also write the results
    python benchmarks/benchmark_brats.py --device cpu --phase ours --keep  # one pipeline, keep the files

Defaults differ by device: on the CPU 1 warm-up + 3 timed whole-case runs per pipeline and 1 + 3 training
steps of 32 slices; on CUDA 1 + 5 runs and 3 + 20 training steps. ``--repeats``, ``--warmup``, ``--steps``
and ``--warmup-steps`` override them. On a 2-core Xeon one whole case took about 22 s with either
network and a training step about 13 s, and the default CPU run about 4-5 minutes; when another process
shares the CPU, times (and the run) can double. The seed is fixed (``--seed``, default 0).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench_common import (
    fmt,
    guarded,
    header_lines,
    loadavg,
    machine_info,
    machine_notes,
    make_log,
    peak_gpu_gib,
    phase_result,
    reset_peak,
    resolve_device,
    rss_cell,
    rss_gib,
    run_in_child,
    run_phase_here,
    save_json,
    setup_torch,
    summarize,
    sync,
    time_train_steps,
)

REPO = Path(__file__).resolve().parent.parent
BUNDLE = REPO / "bundles" / "attention_r2unet_brats_segmentation"
PHASES = ("ours", "segresnet", "train")
DEFAULTS = {  # per device: whole-case warm-up / timed runs, training warm-up / timed steps
    "cpu": {"warmup": 1, "repeats": 3, "warmup_steps": 1, "steps": 3},
    "cuda": {"warmup": 1, "repeats": 5, "warmup_steps": 3, "steps": 20},
}
SEGRESNET_KWARGS = {  # the model zoo's brats_mri_segmentation network_def
    "blocks_down": [1, 2, 2, 4],
    "blocks_up": [1, 1, 1],
    "init_filters": 16,
    "in_channels": 4,
    "out_channels": 3,
    "dropout_prob": 0.2,
}
SEGRESNET_INFERER = {"roi_size": [240, 240, 160], "sw_batch_size": 1, "overlap": 0.5}
GOAL_RATIO = 0.5  # goal: our whole-case time at most half of SegResNet's


log = make_log("brats-bench")


# ----------------------------------------------------------------------------------------------------
# child side: one phase in this process
# ----------------------------------------------------------------------------------------------------


def _precisions(args, device) -> list[tuple[str, bool]]:
    """(row name, amp) pairs: fp32 always, AMP on CUDA unless ``--no-amp``."""
    rows = [("fp32", False)]
    if device.type == "cuda" and not args.no_amp:
        rows.append(("amp", True))
    return rows


def _print_traceback(err: Exception) -> None:
    traceback.print_exc()


class TimedInferer:
    """Wraps an evaluator's inferer and records the wall time of each call (synchronised on CUDA)."""

    def __init__(self, inferer, sync):
        self.inferer, self.sync = inferer, sync
        self.times: list[float] = []
        self.input_shape: list[int] | None = None

    def __call__(self, inputs, network, *args, **kwargs):
        self.sync()
        t0 = time.perf_counter()
        out = self.inferer(inputs, network, *args, **kwargs)
        self.sync()
        self.times.append(time.perf_counter() - t0)
        self.input_shape = list(inputs.shape)
        return out


def _time_evaluator(args, torch, device, evaluator, name: str, out_dir: Path) -> dict:
    """``--warmup`` + ``--repeats`` runs of ``evaluator`` (one case each); whole-case and inferer times."""
    timer = TimedInferer(evaluator.inferer, lambda: sync(torch, device))
    evaluator.inferer = timer
    reset_peak(torch, device)
    times, cpu, model, warmup = [], [], [], []
    for i in range(args.warmup + args.repeats):
        n_calls = len(timer.times)
        sync(torch, device)
        t0, c0 = time.perf_counter(), time.process_time()
        evaluator.run()
        sync(torch, device)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        dm = sum(timer.times[n_calls:])
        kind = "warm-up" if i < args.warmup else "timed"
        log(f"  {name} {kind} {i + 1}: whole case {dt:.2f} s, of which inferer {dm:.2f} s")
        if i < args.warmup:
            warmup.append(dt)
        else:
            times.append(dt)
            cpu.append(dc)
            model.append(dm)
    outputs = sorted(out_dir.glob("*.nii*"))
    if not outputs:
        raise RuntimeError(f"{name}: no output written to {out_dir}")
    return {
        **summarize(times, cpu),
        "model_only": summarize(model),
        "rest_median_s": statistics.median(t - m for t, m in zip(times, model)),
        "warmup_times_s": warmup,
        "input_shape": timer.input_shape,
        "outputs": {p.name: p.stat().st_size for p in outputs},
        "peak_gpu_gib": peak_gpu_gib(torch, device),
    }


def run_ours(args) -> dict:
    """The bundle's inference.json, parsed with ConfigParser, on the phantom case."""
    torch, device = setup_torch(args)
    from monai.bundle import ConfigParser

    work = Path(args.workdir) / "ours"
    work.mkdir(parents=True, exist_ok=True)
    config_file = BUNDLE / "configs" / "inference.json"
    ckpt = work / "model.pt"

    def parser_for(amp: bool, out_dir: Path) -> ConfigParser:
        parser = ConfigParser()
        parser.read_config(str(config_file))
        parser.update(
            {
                "dataset_dir": str(Path(args.workdir) / "data"),
                "output_dir": str(out_dir),
                "ckpt_path": str(ckpt),
                "device": f"$torch.device('{device}')",
                "use_amp": amp,
            }
        )
        return parser

    torch.manual_seed(args.seed)
    network = parser_for(False, work / "unused").get_parsed_content("network_def")
    torch.save(network.state_dict(), ckpt)  # random weights: the timing does not depend on them
    n_params = sum(p.numel() for p in network.parameters())
    del network
    rows: dict[str, dict] = {}
    base_rss = None

    def row(prec: str, amp: bool) -> dict:
        nonlocal base_rss
        out_dir = work / f"predictions_{prec}"
        t0 = time.perf_counter()
        parser = parser_for(amp, out_dir)
        parser.get_parsed_content("initialize")  # set_determinism(seed=0), as the bundle run does
        evaluator = parser.get_parsed_content("evaluator")
        setup_s = time.perf_counter() - t0
        base_rss = base_rss or rss_gib()
        log(f"ours {prec}: evaluator built from {config_file.name} in {setup_s:.2f} s")
        result = _time_evaluator(args, torch, device, evaluator, f"ours {prec}", out_dir)
        return {**result, "setup_s": setup_s}

    for prec, amp in _precisions(args, device):
        rows[prec] = guarded(lambda prec=prec, amp=amp: row(prec, amp), torch, device, _print_traceback)
    return phase_result(rows, n_params, base_rss, torch)


def run_segresnet(args) -> dict:
    """SegResNet with the model zoo's brats_mri_segmentation pre/post-processing, same scope as ours."""
    torch, device = setup_torch(args)
    import monai.transforms as mt
    import numpy as np
    from monai.data import DataLoader, Dataset
    from monai.engines import SupervisedEvaluator
    from monai.handlers import CheckpointLoader
    from monai.inferers import SlidingWindowInferer
    from monai.networks.nets import SegResNet

    from common.data import prepare_brats_inputs

    work = Path(args.workdir) / "segresnet"
    work.mkdir(parents=True, exist_ok=True)
    ckpt = work / "model.pt"
    torch.manual_seed(args.seed)
    network = SegResNet(**SEGRESNET_KWARGS).to(device)
    torch.save(network.state_dict(), ckpt)
    n_params = sum(p.numel() for p in network.parameters())
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as the zoo bundle's "evaluating" sets it
    rows: dict[str, dict] = {}
    base_rss = None

    def row(prec: str, amp: bool) -> dict:
        nonlocal base_rss
        out_dir = work / f"predictions_{prec}"
        t0 = time.perf_counter()
        items = prepare_brats_inputs(Path(args.workdir) / "data", out_dir)
        datalist = [{"image": item["image"]} for item in items]  # flair, t1, t1ce, t2
        preprocessing = mt.Compose(
            [
                mt.LoadImaged(keys="image"),
                mt.EnsureChannelFirstd(keys="image"),
                mt.Orientationd(keys="image", axcodes="RAS"),
                mt.Spacingd(keys="image", pixdim=(1.0, 1.0, 1.0), mode="bilinear"),
                mt.NormalizeIntensityd(keys="image", nonzero=True, channel_wise=True),
            ]
        )
        postprocessing = mt.Compose(
            [
                mt.Activationsd(keys="pred", sigmoid=True),
                mt.AsDiscreted(keys="pred", threshold=0.5),
                mt.SaveImaged(
                    keys="pred",
                    output_dir=str(out_dir),
                    output_postfix="seg",
                    output_dtype=np.uint8,
                    resample=False,
                    separate_folder=False,
                ),
            ]
        )
        evaluator = SupervisedEvaluator(
            device=device,
            val_data_loader=DataLoader(Dataset(datalist, preprocessing), batch_size=1, num_workers=0),
            network=network,
            inferer=SlidingWindowInferer(**SEGRESNET_INFERER),
            postprocessing=postprocessing,
            val_handlers=[
                CheckpointLoader(load_path=str(ckpt), load_dict={"model": network}, map_location=device)
            ],
            amp=amp,
        )
        setup_s = time.perf_counter() - t0
        base_rss = base_rss or rss_gib()
        name = f"segresnet {prec}"
        return {**_time_evaluator(args, torch, device, evaluator, name, out_dir), "setup_s": setup_s}

    for prec, amp in _precisions(args, device):
        rows[prec] = guarded(lambda prec=prec, amp=amp: row(prec, amp), torch, device, _print_traceback)
    return phase_result(rows, n_params, base_rss, torch)


def run_train(args) -> dict:
    """Training steps with the network, loss and optimiser of the bundle's train.json."""
    torch, device = setup_torch(args)
    from monai.bundle import ConfigParser

    config_file = BUNDLE / "configs" / "train.json"

    def build():
        parser = ConfigParser()
        parser.read_config(str(config_file))
        parser.update({"device": f"$torch.device('{device}')"})
        torch.manual_seed(args.seed)
        network = parser.get_parsed_content("network").train()
        return parser, network, parser.get_parsed_content("loss"), parser.get_parsed_content("optimizer")

    parser, _, loss_fn, _ = build()
    bsz = args.batch_size or int(parser["batch_size"])
    height, width = (int(s) for s in parser["slice_size"])
    heads = list(loss_fn.losses)
    in_channels = int(parser["network_def"]["in_channels"])
    lr = float(parser["learning_rate"])
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn(bsz, in_channels, height, width, generator=gen).to(device)
    target = {h: (torch.rand(bsz, 1, height, width, generator=gen) > 0.7).float().to(device) for h in heads}
    rows: dict[str, dict] = {}
    info: dict = {"batch_size": bsz, "slice": [in_channels, height, width], "heads": heads, "lr": lr}
    base_rss, n_params = None, None

    def train_row(amp: bool) -> dict:
        nonlocal base_rss, n_params
        _, model, loss_fn, optimizer = build()
        n_params = sum(p.numel() for p in model.parameters())
        base_rss = base_rss or rss_gib()
        return time_train_steps(
            args, torch, device, model, loss_fn, optimizer, x, target, amp, log, "slices_per_s"
        )

    log(f"training on {device}: batch {bsz}, {args.warmup_steps} warm-up + {args.steps} timed steps")
    for prec, amp in _precisions(args, device):
        rows[prec] = guarded(lambda amp=amp: train_row(amp), torch, device, _print_traceback)
    return {**phase_result(rows, n_params, base_rss, torch), **info}


# ----------------------------------------------------------------------------------------------------
# parent side: write the phantom, run each phase in a child process, print the tables
# ----------------------------------------------------------------------------------------------------


def run_phase_in_child(args, phase: str) -> dict:
    """Re-invoke this script for one phase so that its peak RSS is its own."""
    result_file = Path(args.workdir) / f"{phase}_result.json"
    options = ["--device", args.device, "--workdir", str(args.workdir), "--seed", str(args.seed)]
    options += ["--warmup", str(args.warmup), "--repeats", str(args.repeats), "--threads", str(args.threads)]
    options += ["--warmup-steps", str(args.warmup_steps), "--steps", str(args.steps)]
    options += ["--batch-size", str(args.batch_size)] if args.batch_size else []
    options += ["--no-amp"] if args.no_amp else []
    # stdout=sys.stderr: stdout keeps just the tables
    return run_in_child(Path(__file__).resolve(), phase, result_file, options, stdout=sys.stderr)


def _ratios(phases: dict) -> dict:
    """ours / SegResNet whole-case and model-only median ratios, per precision measured for both."""
    ours, seg = phases.get("ours", {}).get("rows", {}), phases.get("segresnet", {}).get("rows", {})
    out = {}
    for prec in ("fp32", "amp"):
        a, b = ours.get(prec, {}), seg.get(prec, {})
        if "median_s" in a and "median_s" in b:
            out[prec] = {
                "whole_case": a["median_s"] / b["median_s"],
                "whole_case_min": a["min_s"] / b["min_s"],
                "model_only": a["model_only"]["median_s"] / b["model_only"]["median_s"],
                "goal_met": a["median_s"] <= GOAL_RATIO * b["median_s"],
            }
    return out


def render(report: dict) -> str:
    m, cfg, phases = report["machine"], report["config"], report["phases"]
    gpu = cfg["device"] == "cuda"
    threads = next((p["torch_threads"] for p in phases.values() if "torch_threads" in p), None)
    shape = "x".join(map(str, cfg["shape"]))
    case = (
        f"- case: one BraTS-2020-layout phantom, {shape} voxels, 4 modalities (written in "
        f"{report['phantom_s']:.1f} s); seed {cfg['seed']}; random weights"
    )
    lines = [
        *header_lines("BraTS whole-case benchmark", report, threads, case),
        "",
        "| Pipeline | Precision | Runs (warm-up + timed) | Whole case median | Whole case min "
        "| Model-only median (inferer) | Rest (load, pre/post, write) | Peak RSS (this pipeline) "
        "| Peak GPU mem | Parameters |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    runs = f"{cfg['warmup']} + {cfg['repeats']}"
    names = {
        "ours": "Ours: AttentionR2UNet bundle (inference.json)",
        "segresnet": "MONAI zoo SegResNet (brats_mri_segmentation)",
    }
    for key, name in names.items():
        phase = phases.get(key)
        if phase is None:
            continue
        n_params = phase.get("n_params")
        params = f"{n_params / 1e6:.3f} M" if n_params else "—"
        if "error" in phase:
            lines.append(f"| {name} | | {runs} | failed: {phase['error']} | | | | | | {params} |")
        for prec, r in phase.get("rows", {}).items():
            label = "fp32" if prec == "fp32" else "AMP fp16"
            if "error" in r:
                lines.append(f"| {name} | {label} | {runs} | failed: {r['error']} | | | | | | {params} |")
                continue
            mem = fmt(r.get("peak_gpu_gib"), ".2f", " GiB") if gpu else "—"
            lines.append(
                f"| {name} | {label} | {runs} | {r['median_s']:.2f} s | {r['min_s']:.2f} s "
                f"| {r['model_only']['median_s']:.2f} s | {r['rest_median_s']:.2f} s | {rss_cell(phase)} "
                f"| {mem} | {params} |"
            )
    ratios = report.get("ratios", {})
    if ratios:
        lines.append("")
        for prec, q in ratios.items():
            verdict = "MET" if q["goal_met"] else "NOT met"
            lines.append(
                f"- ratio ours / SegResNet ({'fp32' if prec == 'fp32' else 'AMP'}): whole case "
                f"{q['whole_case']:.2f} (min/min {q['whole_case_min']:.2f}), "
                f"model only {q['model_only']:.2f}. "
                f'Goal "our whole-case time at most {GOAL_RATIO:g} x SegResNet\'s": **{verdict}** on this '
                "machine."
            )
    tr = phases.get("train")
    if tr is not None:
        bsz = tr.get("batch_size", cfg.get("batch_size"))
        sl = "x".join(map(str, tr.get("slice", [])))
        lines += [
            "",
            "| Training step (fwd + loss + bwd + Adam) | Precision | Batch | Steps (warm-up + timed) "
            "| Median | Min | Throughput | Peak RSS (this phase) | Peak GPU mem |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        steps = f"{cfg['warmup_steps']} + {cfg['steps']}"
        what = f"AttentionR2UNet, {sl} slices, MultiTaskLoss of 4 DiceCE, Adam {tr.get('lr', '')}"
        if "error" in tr:
            lines.append(f"| {what} | | {bsz} | {steps} | failed: {tr['error']} | | | | |")
        for prec, r in tr.get("rows", {}).items():
            label = "fp32" if prec == "fp32" else "AMP fp16 + GradScaler"
            if "error" in r:
                lines.append(f"| {what} | {label} | {bsz} | {steps} | failed: {r['error']} | | | | |")
                continue
            mem = fmt(r.get("peak_gpu_gib"), ".2f", " GiB") if gpu else "—"
            lines.append(
                f"| {what} | {label} | {bsz} | {steps} | {r['median_s']:.2f} s | {r['min_s']:.2f} s "
                f"| {r['slices_per_s']:.2f} slices/s | {rss_cell(tr)} | {mem} |"
            )
    notes = []
    for key in ("ours", "segresnet"):
        for prec, r in phases.get(key, {}).get("rows", {}).items():
            if "setup_s" in r:
                shape_in = "x".join(map(str, r.get("input_shape") or []))
                warm = ", ".join(f"{t:.2f}" for t in r.get("warmup_times_s", []))
                notes.append(
                    f"{key} {prec}: one-off setup {r['setup_s']:.2f} s (not in the times), warm-up run(s) "
                    f"{warm or '—'} s, network input {shape_in}, outputs {', '.join(r.get('outputs', {}))}"
                )
    for prec, r in (tr or {}).get("rows", {}).items():
        if "first_step_s" in r:
            notes.append(f"first training step ({prec}): {r['first_step_s']:.2f} s")
    used = []
    for key in PHASES:
        r = phases.get(key, {}).get("rows", {}).get("fp32", {})
        if "cpu_cores_used" in r:
            used.append(f"{key} {r['cpu_cores_used']:.2f}")
    notes += machine_notes(m, gpu, threads, used)
    if notes:
        lines += ["", "Notes:", *[f"- {n}" for n in notes]]
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: cuda if available"
    )
    p.add_argument("--repeats", type=int, help="timed whole-case runs per pipeline (default 3 CPU, 5 CUDA)")
    p.add_argument("--warmup", type=int, help="untimed whole-case runs first (default 1)")
    p.add_argument("--steps", type=int, help="timed training steps (default 3 on CPU, 20 on CUDA)")
    p.add_argument("--warmup-steps", type=int, help="untimed training steps (default 1 CPU, 3 CUDA)")
    p.add_argument("--batch-size", type=int, default=0, help="training batch (0: train.json's, 32)")
    p.add_argument("--shape", default="240,240,155", help="phantom volume shape X,Y,Z")
    p.add_argument("--phase", choices=("all", *PHASES), default="all")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    p.add_argument("--no-amp", action="store_true", help="skip the AMP rows on CUDA")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (phantom, outputs)")
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    p.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)  # internal: the parent's temp folder
    p.add_argument("--child-result", type=Path, help=argparse.SUPPRESS)  # internal: run one phase here
    args = p.parse_args(argv)

    try:
        args.shape_tuple = tuple(int(s) for s in args.shape.split(","))
    except ValueError:
        p.error(f"--shape must be three integers X,Y,Z, got {args.shape!r}")
    if len(args.shape_tuple) != 3 or min(args.shape_tuple) < 24:
        p.error("--shape must be three integers of at least 24")
    resolve_device(args, DEFAULTS)
    if min(args.repeats, args.steps) < 1 or min(args.warmup, args.warmup_steps, args.batch_size) < 0:
        p.error("--repeats and --steps must be >= 1, warm-up counts and --batch-size >= 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child_result is not None:  # child: one phase in this process
        runner = {"ours": run_ours, "segresnet": run_segresnet, "train": run_train}[args.phase]
        return run_phase_here(runner, args)

    t0 = time.perf_counter()
    load_before = loadavg()
    machine = machine_info(args.device)
    args.workdir = Path(tempfile.mkdtemp(prefix="brats_bench_"))
    phases: dict[str, dict] = {}
    try:
        from common.data import make_brats_phantoms

        t_ph = time.perf_counter()
        log(f"writing a {args.shape} phantom case to {args.workdir / 'data'}")
        make_brats_phantoms(args.workdir / "data", n_cases=1, shape=args.shape_tuple, seed=0)
        phantom_s = time.perf_counter() - t_ph
        for phase in PHASES:
            if args.phase in ("all", phase):
                log(f"phase {phase} (child process)")
                phases[phase] = run_phase_in_child(args, phase)
    finally:
        if args.keep:
            log(f"kept {args.workdir}")
        else:
            shutil.rmtree(args.workdir, ignore_errors=True)
    machine["loadavg_before"], machine["loadavg_after"] = load_before, loadavg()
    keys = ("device", "seed", "warmup", "repeats", "warmup_steps", "steps")
    config = {key: getattr(args, key) for key in keys}
    config |= {
        "shape": list(args.shape_tuple),
        "batch_size": args.batch_size or None,
        "threads": args.threads or None,
        "amp": args.device == "cuda" and not args.no_amp,
        "segresnet": {"network": SEGRESNET_KWARGS, "inferer": SEGRESNET_INFERER},
        "workdir": str(args.workdir) if args.keep else None,
    }
    report = {
        "machine": machine,
        "config": config,
        "phantom_s": phantom_s,
        "phases": phases,
        "ratios": _ratios(phases),
        "goal": f"ours whole-case median <= {GOAL_RATIO} x SegResNet whole-case median",
        "total_wall_s": time.perf_counter() - t0,
    }
    print(render(report))
    save_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
