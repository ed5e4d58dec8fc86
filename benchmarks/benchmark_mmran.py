"""Speed and memory benchmark of the full-size MMRAN network (``common.networks.MMRAN``).

What it measures (on CUDA when available, else on the CPU; ``--device`` forces one):

1. Inference latency of one single-channel slice (default 512x512, batch 1, ``model.eval()`` under
   ``torch.inference_mode()``): warm-up runs, then ``--repeats`` timed runs; median and minimum in ms.
   On CUDA the timing is bracketed by ``torch.cuda.synchronize()`` and a second row runs under
   ``torch.autocast("cuda", dtype=torch.float16)``.
   Post-processing of one slice, timed on its own: sigmoid + threshold 0.5 + ``FillHoles(connectivity=1)``
   on the (1, H, W) mask and softmax of the class logits, as in the bundle's ``inference.json``. It is
   timed on the network's own output (an untrained network, so the mask is not lesion-like) and on a
   synthetic lesion (a disk with holes), because the cost of ``FillHoles`` depends on the mask.
2. Training throughput in samples/s: batch ``--batch-size``, Adam (lr 1e-3) and the bundle's loss,
   ``MultiTaskLoss({"seg": DiceLoss(sigmoid=True, smooth_nr=1, smooth_dr=1), "cls":
   ClassificationFocalLoss(3, alpha=0.25, gamma=2)}, {"seg": 0.5, "cls": 0.5})``; ``--warmup-steps``
   warm-up steps (not counted in the throughput; the first step's time is reported), then ``--steps``
   timed steps. On CUDA a
   second row trains with AMP (autocast float16 + ``torch.amp.GradScaler``) from a fresh model.
3. Peak memory of each phase. Inference and training run in separate child processes (the script
   re-invokes itself with ``--phase``), so the peak RSS (``ru_maxrss``) of one phase does not hide the
   other's; the RSS after imports and model construction is reported too. On CUDA also
   ``torch.cuda.max_memory_allocated()`` per row, after ``torch.cuda.reset_peak_memory_stats()``.
4. The machine (CPU model, cores, torch threads or GPU name), torch / monai versions, load average
   before and after (another busy process slows the CPU numbers), and the parameter count.

Run from the repository root, on a CPU or a GPU machine alike::

    python benchmarks/benchmark_mmran.py
    python benchmarks/benchmark_mmran.py --json /tmp/mmran_bench.json     # also write the results
    python benchmarks/benchmark_mmran.py --device cpu --phase inference     # one phase only

Defaults differ by device: CPU 1 + 3 inference runs, batch 2 and 1 + 1 training steps (a training step
of the full model at 512x512, batch 2, took 73 s and a forward pass 11-13 s on a 2-core Xeon that another
process was sharing; the whole run took 4 minutes there); CUDA 10 + 50 inference runs, batch 10 (the
paper's) and 3 + 20 training steps. A smaller network: ``--features 16,32,64,128,256``. The seed is
fixed (``--seed``, default 0).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
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

FULL_FEATURES = (64, 128, 256, 512, 1024)
DEFAULTS = {  # per device: inference warm-up / repeats, training batch / warm-up steps / timed steps
    "cpu": {"warmup": 1, "repeats": 3, "batch_size": 2, "warmup_steps": 1, "steps": 1},
    "cuda": {"warmup": 10, "repeats": 50, "batch_size": 10, "warmup_steps": 3, "steps": 20},
}
POST_REPEATS = 20  # post-processing is cheap: always this many timed runs (after 2 warm-up runs)


log = make_log("mmran-bench")


# ----------------------------------------------------------------------------------------------------
# child side: one phase in this process
# ----------------------------------------------------------------------------------------------------


def _setup(args):
    import torch

    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    return setup_torch(args)


def _log_failure(err: Exception) -> None:
    log(f"  failed: {type(err).__name__}: {err}")


def _build_model(args, device):
    import torch

    from common.networks import MMRAN

    torch.manual_seed(args.seed)
    return MMRAN(features=args.features_tuple).to(device)


def _synthetic_lesion_logits(torch, size: int, device):
    """(1, H, W) logits of a disk-shaped lesion with two holes: +8 inside the mask, -8 outside."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    cy, cx, r = size * 0.55, size * 0.45, size / 8

    def disk(y, x, radius):
        return (yy - y) ** 2 + (xx - x) ** 2 <= radius**2

    mask = disk(cy, cx, r) & ~disk(cy - r / 3, cx, r / 6) & ~disk(cy + r / 3, cx + r / 4, r / 8)
    return (mask.float() * 16 - 8).unsqueeze(0).to(device)


def run_inference(args) -> dict:
    torch, device = _setup(args)
    import monai.transforms as mt

    model = _build_model(args, device).eval()
    n_params = sum(p.numel() for p in model.parameters())
    base_rss = rss_gib()
    size = args.image_size
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn(1, 1, size, size, generator=gen).to(device)
    rows: dict[str, dict] = {}

    def forward_row(amp: bool) -> dict:
        reset_peak(torch, device)
        times, cpu = [], []
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            for i in range(args.warmup + args.repeats):
                sync(torch, device)
                t0, c0 = time.perf_counter(), time.process_time()
                model(x)
                sync(torch, device)
                dt, dc = time.perf_counter() - t0, time.process_time() - c0
                kind = "warm-up" if i < args.warmup else "timed"
                log(f"  forward {'amp' if amp else 'fp32'} {kind} {i + 1}: {dt * 1e3:.1f} ms")
                if i >= args.warmup:
                    times.append(dt)
                    cpu.append(dc)
        return {**summarize(times, cpu), "peak_gpu_gib": peak_gpu_gib(torch, device)}

    log(f"inference on {device}: {args.warmup} warm-up + {args.repeats} timed forward passes")
    rows["forward_fp32"] = guarded(lambda: forward_row(False), torch, device, _log_failure)
    if device.type == "cuda" and not args.no_amp:
        rows["forward_amp"] = guarded(lambda: forward_row(True), torch, device, _log_failure)

    post_seg = mt.Compose(
        [mt.Activations(sigmoid=True), mt.AsDiscrete(threshold=0.5), mt.FillHoles(connectivity=1)]
    )
    post_cls = mt.Activations(softmax=True)

    def post_row(seg_logits, cls_logits) -> dict:
        times, fg = [], 0.0
        with torch.inference_mode():
            for i in range(2 + POST_REPEATS):
                sync(torch, device)
                t0 = time.perf_counter()
                mask = post_seg(seg_logits)
                probs = post_cls(cls_logits)
                sync(torch, device)
                if i >= 2:
                    times.append(time.perf_counter() - t0)
            fg = float(mask.float().mean())
            assert abs(float(probs.sum()) - 1.0) < 1e-3
        return {**summarize(times), "foreground_fraction": fg}

    def post_rows() -> None:
        with torch.inference_mode():
            out = model(x)
        seg, cls = out["seg"][0].float(), out["cls"][0].float()  # (1, H, W) and (3,)
        log(f"post-processing: 2 warm-up + {POST_REPEATS} timed runs, network output and synthetic lesion")
        rows["post_network"] = guarded(lambda: post_row(seg, cls), torch, device, _log_failure)
        lesion = _synthetic_lesion_logits(torch, size, device)
        rows["post_lesion"] = guarded(lambda: post_row(lesion, cls), torch, device, _log_failure)

    guarded(post_rows, torch, device, _log_failure)
    return phase_result(rows, n_params, base_rss, torch)


def run_train(args) -> dict:
    torch, device = _setup(args)
    import monai

    from common.losses import ClassificationFocalLoss, MultiTaskLoss

    bsz, size = args.batch_size, args.image_size
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn(bsz, 1, size, size, generator=gen).to(device)
    seg_target = (torch.rand(bsz, 1, size, size, generator=gen) > 0.7).float().to(device)
    cls_target = (torch.arange(bsz) % 3).long().to(device)
    target = {"seg": seg_target, "cls": cls_target}
    loss_fn = MultiTaskLoss(
        {
            "seg": monai.losses.DiceLoss(sigmoid=True, smooth_nr=1.0, smooth_dr=1.0),
            "cls": ClassificationFocalLoss(num_classes=3, alpha=0.25, gamma=2.0),
        },
        {"seg": 0.5, "cls": 0.5},
    ).to(device)
    base_rss, n_params = None, None
    rows: dict[str, dict] = {}

    def train_row(amp: bool) -> dict:
        nonlocal base_rss, n_params
        model = _build_model(args, device).train()
        n_params = sum(p.numel() for p in model.parameters())
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        if base_rss is None:
            base_rss = rss_gib()
        return time_train_steps(
            args, torch, device, model, loss_fn, optimizer, x, target, amp, log, "samples_per_s"
        )

    log(f"training on {device}: batch {bsz}, {args.warmup_steps} warm-up + {args.steps} timed steps")
    rows["train_fp32"] = guarded(lambda: train_row(False), torch, device, _log_failure)
    if device.type == "cuda" and not args.no_amp:
        rows["train_amp"] = guarded(lambda: train_row(True), torch, device, _log_failure)
    return phase_result(rows, n_params, base_rss, torch)


# ----------------------------------------------------------------------------------------------------
# parent side: run each phase in a child process, print the table
# ----------------------------------------------------------------------------------------------------


def run_phase_in_child(args, phase: str) -> dict:
    """Re-invoke this script for one phase so that its peak RSS is its own."""
    options = ["--device", args.device, "--image-size", str(args.image_size)]
    options += ["--features", ",".join(map(str, args.features_tuple)), "--seed", str(args.seed)]
    options += ["--warmup", str(args.warmup), "--repeats", str(args.repeats)]
    options += ["--batch-size", str(args.batch_size)]
    options += ["--warmup-steps", str(args.warmup_steps), "--steps", str(args.steps)]
    options += ["--threads", str(args.threads or 0)]
    options += ["--no-amp"] if args.no_amp else []
    options += ["--cudnn-benchmark"] if args.cudnn_benchmark else []
    with tempfile.TemporaryDirectory() as tmp:
        result_file = Path(tmp) / f"{phase}.json"
        return run_in_child(Path(__file__).resolve(), phase, result_file, options)


def render(report: dict) -> str:
    m, cfg, phases = report["machine"], report["config"], report["phases"]
    inf, tr = phases.get("inference", {}), phases.get("train", {})
    n_params = inf.get("n_params", tr.get("n_params"))
    threads = inf.get("torch_threads", tr.get("torch_threads"))
    model = (
        f"- model: MMRAN(features={list(cfg['features'])}), "
        + (f"{n_params / 1e6:.2f} M parameters" if n_params else "parameter count not measured")
        + f"; input {cfg['image_size']}x{cfg['image_size']}x1; seed {cfg['seed']}"
    )
    lines = [
        *header_lines("MMRAN benchmark", report, threads, model),
        "",
        "| Measurement | Precision | Batch | Runs (warm-up + timed) | Median | Min | Throughput "
        "| Peak GPU mem (this row) | Peak RSS (this phase) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    gpu = cfg["device"] == "cuda"

    def row(name, prec, batch, runs, r, unit_scale, unit, thr, phase, gpu_mem=True):
        if r is None:
            return
        if "error" in r:
            lines.append(f"| {name} | {prec} | {batch} | {runs} | failed: {r['error']} | | | | |")
            return
        digits = 1 if unit == "ms" else 2
        mem = fmt(r.get("peak_gpu_gib"), ".2f", " GiB") if gpu and gpu_mem else "—"
        lines.append(
            f"| {name} | {prec} | {batch} | {runs} | {r['median_s'] * unit_scale:.{digits}f} {unit} "
            f"| {r['min_s'] * unit_scale:.{digits}f} {unit} | {thr} | {mem} | {rss_cell(phase)} |"
        )

    rows = inf.get("rows", {})
    runs = f"{cfg['warmup']} + {cfg['repeats']}"
    for key, prec in (("forward_fp32", "fp32"), ("forward_amp", "AMP fp16")):
        r = rows.get(key)
        thr = f"{1 / r['median_s']:.2f} slices/s" if r and "median_s" in r else ""
        row("Inference forward, 1 slice", prec, 1, runs, r, 1e3, "ms", thr, inf)
    for key, what in (("post_network", "network output"), ("post_lesion", "synthetic lesion")):
        r = rows.get(key)
        fg = f"mask {r['foreground_fraction'] * 100:.1f} % fg" if r and "foreground_fraction" in r else ""
        name = f"Post-processing ms, 1 slice ({what})"
        row(name, "fp32", 1, f"2 + {POST_REPEATS}", r, 1e3, "ms", fg, inf, gpu_mem=False)
    if "error" in inf:
        lines.append(f"| Inference phase | | | | failed: {inf['error']} | | | | |")
    runs = f"{cfg['warmup_steps']} + {cfg['steps']}"
    for key, prec in (("train_fp32", "fp32"), ("train_amp", "AMP fp16 + GradScaler")):
        r = tr.get("rows", {}).get(key)
        thr = f"{r['samples_per_s']:.2f} samples/s" if r and "samples_per_s" in r else ""
        row("Training step (fwd + loss + bwd + Adam)", prec, cfg["batch_size"], runs, r, 1, "s", thr, tr)
    if "error" in tr:
        lines.append(f"| Training phase | | | | failed: {tr['error']} | | | | |")
    notes = []
    for key in ("train_fp32", "train_amp"):
        r = tr.get("rows", {}).get(key)
        if r and "first_step_s" in r:
            notes.append(f"first training step ({key}): {r['first_step_s']:.2f} s")
    used = [
        f"{label} {r['cpu_cores_used']:.2f}"
        for label, r in (
            ("inference", rows.get("forward_fp32")),
            ("training", tr.get("rows", {}).get("train_fp32")),
        )
        if r and "cpu_cores_used" in r
    ]
    notes += machine_notes(m, gpu, threads, used)
    if notes:
        lines += ["", "Notes: " + "; ".join(notes) + "."]
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: cuda if available"
    )
    p.add_argument("--image-size", type=int, default=512)
    p.add_argument("--features", default=",".join(map(str, FULL_FEATURES)), help="comma list of channels")
    p.add_argument("--repeats", type=int, help="timed forward passes (default 3 on CPU, 50 on CUDA)")
    p.add_argument("--warmup", type=int, help="warm-up forward passes (default 1 on CPU, 10 on CUDA)")
    p.add_argument("--batch-size", type=int, help="training batch (default 2 on CPU, 10 on CUDA)")
    p.add_argument("--steps", type=int, help="timed training steps (default 1 on CPU, 20 on CUDA)")
    p.add_argument("--warmup-steps", type=int, help="warm-up training steps (default 1 on CPU, 3 on CUDA)")
    p.add_argument("--phase", choices=("all", "inference", "train"), default="all")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    p.add_argument("--no-amp", action="store_true", help="skip the AMP rows on CUDA")
    p.add_argument("--cudnn-benchmark", action="store_true", help="set torch.backends.cudnn.benchmark")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    p.add_argument("--child-result", type=Path, help=argparse.SUPPRESS)  # internal: run one phase here
    args = p.parse_args(argv)

    args.features_tuple = tuple(int(f) for f in args.features.split(",") if f.strip())
    if len(args.features_tuple) < 2:
        p.error("--features needs at least two levels")
    divisor = 2 ** (len(args.features_tuple) - 1)
    if args.image_size % divisor:
        p.error(f"--image-size must be divisible by {divisor} for {len(args.features_tuple)} levels")
    resolve_device(args, DEFAULTS)
    if min(args.repeats, args.steps, args.batch_size) < 1 or min(args.warmup, args.warmup_steps) < 0:
        p.error("--repeats, --steps and --batch-size must be >= 1, warm-up counts >= 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child_result is not None:  # child: one phase in this process
        return run_phase_here(run_inference if args.phase == "inference" else run_train, args)

    t0 = time.perf_counter()
    load_before = loadavg()
    machine = machine_info(args.device)
    phases = {}
    for phase in ("inference", "train"):
        if args.phase in ("all", phase):
            phases[phase] = run_phase_in_child(args, phase)
    machine["loadavg_before"], machine["loadavg_after"] = load_before, loadavg()
    config = {
        key: getattr(args, key)
        for key in (
            "device",
            "image_size",
            "seed",
            "warmup",
            "repeats",
            "batch_size",
            "warmup_steps",
            "steps",
        )
    }
    config |= {"features": list(args.features_tuple), "threads": args.threads or None}
    config |= {"amp": args.device == "cuda" and not args.no_amp, "cudnn_benchmark": args.cudnn_benchmark}
    report = {
        "machine": machine,
        "config": config,
        "phases": phases,
        "total_wall_s": time.perf_counter() - t0,
    }
    print(render(report))
    save_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
