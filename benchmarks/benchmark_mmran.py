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
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FULL_FEATURES = (64, 128, 256, 512, 1024)
DEFAULTS = {  # per device: inference warm-up / repeats, training batch / warm-up steps / timed steps
    "cpu": {"warmup": 1, "repeats": 3, "batch_size": 2, "warmup_steps": 1, "steps": 1},
    "cuda": {"warmup": 10, "repeats": 50, "batch_size": 10, "warmup_steps": 3, "steps": 20},
}
POST_REPEATS = 20  # post-processing is cheap: always this many timed runs (after 2 warm-up runs)


def log(msg: str) -> None:
    print(f"[mmran-bench] {msg}", file=sys.stderr, flush=True)


def rss_gib() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / (1024**3 if sys.platform == "darwin" else 1024**2)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def summarize(times_s: list[float], cpu_s: list[float] | None = None) -> dict:
    """Median / min / mean wall time; with the process CPU times, the average number of busy cores
    (close to the torch thread count when nothing else competes for the CPU)."""
    out = {
        "median_s": statistics.median(times_s),
        "min_s": min(times_s),
        "mean_s": statistics.fmean(times_s),
        "times_s": times_s,
    }
    if cpu_s:
        out["cpu_cores_used"] = sum(cpu_s) / sum(times_s)
    return out


# ----------------------------------------------------------------------------------------------------
# child side: one phase in this process
# ----------------------------------------------------------------------------------------------------


def _setup(args):
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.cuda.init()
    return torch, device


def _build_model(args, device):
    import torch

    from common.networks import MMRAN

    torch.manual_seed(args.seed)
    return MMRAN(features=args.features_tuple).to(device)


def _sync(torch, device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(torch, device) -> None:
    if device.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gpu_gib(torch, device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 1024**3


def _guarded(fn, torch, device) -> dict:
    """Run one row; an error (e.g. CUDA out of memory) is recorded instead of ending the phase."""
    try:
        return fn()
    except Exception as err:  # any failure of one row is reported in its row
        log(f"  failed: {type(err).__name__}: {err}")
        if device.type == "cuda":
            gc.collect()
            torch.cuda.empty_cache()
        return {"error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"}


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
        _reset_peak(torch, device)
        times, cpu = [], []
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            for i in range(args.warmup + args.repeats):
                _sync(torch, device)
                t0, c0 = time.perf_counter(), time.process_time()
                model(x)
                _sync(torch, device)
                dt, dc = time.perf_counter() - t0, time.process_time() - c0
                kind = "warm-up" if i < args.warmup else "timed"
                log(f"  forward {'amp' if amp else 'fp32'} {kind} {i + 1}: {dt * 1e3:.1f} ms")
                if i >= args.warmup:
                    times.append(dt)
                    cpu.append(dc)
        return {**summarize(times, cpu), "peak_gpu_gib": _peak_gpu_gib(torch, device)}

    log(f"inference on {device}: {args.warmup} warm-up + {args.repeats} timed forward passes")
    rows["forward_fp32"] = _guarded(lambda: forward_row(False), torch, device)
    if device.type == "cuda" and not args.no_amp:
        rows["forward_amp"] = _guarded(lambda: forward_row(True), torch, device)

    post_seg = mt.Compose(
        [mt.Activations(sigmoid=True), mt.AsDiscrete(threshold=0.5), mt.FillHoles(connectivity=1)]
    )
    post_cls = mt.Activations(softmax=True)

    def post_row(seg_logits, cls_logits) -> dict:
        times, fg = [], 0.0
        with torch.inference_mode():
            for i in range(2 + POST_REPEATS):
                _sync(torch, device)
                t0 = time.perf_counter()
                mask = post_seg(seg_logits)
                probs = post_cls(cls_logits)
                _sync(torch, device)
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
        rows["post_network"] = _guarded(lambda: post_row(seg, cls), torch, device)
        lesion = _synthetic_lesion_logits(torch, size, device)
        rows["post_lesion"] = _guarded(lambda: post_row(lesion, cls), torch, device)

    _guarded(post_rows, torch, device)
    return {
        "rows": rows,
        "n_params": n_params,
        "rss_after_setup_gib": base_rss,
        "peak_rss_gib": rss_gib(),
        "torch_threads": torch.get_num_threads(),
    }


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
        scaler = torch.amp.GradScaler("cuda", enabled=amp)
        if base_rss is None:
            base_rss = rss_gib()
        _reset_peak(torch, device)
        times, cpu, losses = [], [], []
        for i in range(args.warmup_steps + args.steps):
            _sync(torch, device)
            t0, c0 = time.perf_counter(), time.process_time()
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
                loss = loss_fn(model(x), target)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            _sync(torch, device)
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            losses.append(float(loss.detach()))
            kind = "warm-up" if i < args.warmup_steps else "timed"
            log(f"  train step {'amp' if amp else 'fp32'} {kind} {i + 1}: {dt:.2f} s, loss {losses[-1]:.4f}")
            times.append(dt)
            cpu.append(dc)
        timed = times[args.warmup_steps :]
        return {
            **summarize(timed, cpu[args.warmup_steps :]),
            "first_step_s": times[0],
            "samples_per_s": bsz / statistics.median(timed),
            "losses": losses,
            "peak_gpu_gib": _peak_gpu_gib(torch, device),
        }

    log(f"training on {device}: batch {bsz}, {args.warmup_steps} warm-up + {args.steps} timed steps")
    rows["train_fp32"] = _guarded(lambda: train_row(False), torch, device)
    if device.type == "cuda" and not args.no_amp:
        rows["train_amp"] = _guarded(lambda: train_row(True), torch, device)
    return {
        "rows": rows,
        "n_params": n_params,
        "rss_after_setup_gib": base_rss,
        "peak_rss_gib": rss_gib(),
        "torch_threads": torch.get_num_threads(),
    }


# ----------------------------------------------------------------------------------------------------
# parent side: run each phase in a child process, print the table
# ----------------------------------------------------------------------------------------------------


def run_phase_in_child(args, phase: str) -> dict:
    """Re-invoke this script for one phase so that its peak RSS is its own."""
    with tempfile.TemporaryDirectory() as tmp:
        result_file = Path(tmp) / f"{phase}.json"
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--phase",
            phase,
            "--child-result",
            str(result_file),
            "--device",
            args.device,
            "--image-size",
            str(args.image_size),
            "--features",
            ",".join(map(str, args.features_tuple)),
            "--seed",
            str(args.seed),
            "--warmup",
            str(args.warmup),
            "--repeats",
            str(args.repeats),
            "--batch-size",
            str(args.batch_size),
            "--warmup-steps",
            str(args.warmup_steps),
            "--steps",
            str(args.steps),
            "--threads",
            str(args.threads or 0),
        ]
        cmd += ["--no-amp"] if args.no_amp else []
        cmd += ["--cudnn-benchmark"] if args.cudnn_benchmark else []
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, check=False)
        wall = time.perf_counter() - t0
        if result_file.exists():
            result = json.loads(result_file.read_text())
        else:
            result = {"error": f"child process for {phase!r} exited with code {proc.returncode}", "rows": {}}
        result["wall_s"] = wall
        return result


def _fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{unit}"


def render(report: dict) -> str:
    m, cfg, phases = report["machine"], report["config"], report["phases"]
    inf, tr = phases.get("inference", {}), phases.get("train", {})
    n_params = inf.get("n_params", tr.get("n_params"))
    threads = inf.get("torch_threads", tr.get("torch_threads"))
    dev = m["device_name"] + (
        f" ({m['cpu_count']} logical CPUs, {threads} torch threads)" if cfg["device"] == "cpu" else ""
    )
    lines = [
        f"### MMRAN benchmark — {cfg['device'].upper()}",
        "",
        f"- device: {dev}",
        f"- host CPU: {m['cpu_model']}, {m['cpu_count']} logical CPUs",
        f"- torch {m['torch']}, monai {m['monai']}, Python {m['python']}, {m['platform']}",
        f"- model: MMRAN(features={list(cfg['features'])}), "
        + (f"{n_params / 1e6:.2f} M parameters" if n_params else "parameter count not measured")
        + f"; input {cfg['image_size']}x{cfg['image_size']}x1; seed {cfg['seed']}",
        f"- load average (1, 5, 15 min) before: {m['loadavg_before']}, after: {m['loadavg_after']}; "
        f"total wall time {report['total_wall_s']:.0f} s",
        "",
        "| Measurement | Precision | Batch | Runs (warm-up + timed) | Median | Min | Throughput "
        "| Peak GPU mem (this row) | Peak RSS (this phase) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    gpu = cfg["device"] == "cuda"

    def rss_cell(phase: dict) -> str:
        if "peak_rss_gib" not in phase:
            return "—"
        base = phase.get("rss_after_setup_gib")
        return f"{phase['peak_rss_gib']:.2f} GiB" + (f" (after setup {base:.2f})" if base else "")

    def row(name, prec, batch, runs, r, unit_scale, unit, thr, phase, gpu_mem=True):
        if r is None:
            return
        if "error" in r:
            lines.append(f"| {name} | {prec} | {batch} | {runs} | failed: {r['error']} | | | | |")
            return
        digits = 1 if unit == "ms" else 2
        mem = _fmt(r.get("peak_gpu_gib"), ".2f", " GiB") if gpu and gpu_mem else "—"
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
    if not gpu:
        used = [
            f"{label} {r['cpu_cores_used']:.2f}"
            for label, r in (
                ("inference", rows.get("forward_fp32")),
                ("training", tr.get("rows", {}).get("train_fp32")),
            )
            if r and "cpu_cores_used" in r
        ]
        if used:
            notes.append(
                f"average cores busy in the benchmark process during the timed runs: {', '.join(used)} "
                f"(of {threads} torch threads; fewer means the CPU was shared)"
            )
        notes.append("peak RSS is the child process's ru_maxrss for the whole phase; no AMP rows on CPU")
    before = m["loadavg_before"]
    if before and before[0] >= 0.5:
        notes.append(
            f"load average before the run was {before[0]}: another process was probably using the CPU, "
            "so times may be inflated"
        )
    if notes:
        lines += ["", "Notes: " + "; ".join(notes) + "."]
    return "\n".join(lines)


def machine_info(device: str) -> dict:
    import monai
    import torch

    name = torch.cuda.get_device_name() if device == "cuda" else cpu_model()
    return {
        "device_name": name,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if device == "cuda" else None,
        "monai": monai.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


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
    if args.device == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    for key, value in DEFAULTS[args.device].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if min(args.repeats, args.steps, args.batch_size) < 1 or min(args.warmup, args.warmup_steps) < 0:
        p.error("--repeats, --steps and --batch-size must be >= 1, warm-up counts >= 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child_result is not None:  # child: one phase in this process
        try:
            result = run_inference(args) if args.phase == "inference" else run_train(args)
        except Exception as err:  # reported in the parent's table
            import traceback

            traceback.print_exc()
            result = {"error": f"{type(err).__name__}: {err}", "rows": {}}
        args.child_result.write_text(json.dumps(result))
        return 0

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
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
        print(f"\nresults written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
