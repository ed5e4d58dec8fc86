"""Helpers shared by the benchmark scripts in this folder (``benchmark_mmran.py``, ``benchmark_brats.py``).

What it holds:

- the machine and the process: ``cpu_model``, ``loadavg``, ``machine_info``, ``rss_gib`` (peak RSS);
- timing and memory on the child side: ``setup_torch``, ``sync``, ``reset_peak``, ``peak_gpu_gib``,
  ``summarize``, ``guarded`` (one row whose error is recorded, not raised), ``time_train_steps`` (the
  timed training loop) and ``phase_result`` (what a phase hands back);
- one phase per child process, so that its peak RSS is its own: ``run_in_child`` (parent side) and
  ``run_phase_here`` (child side);
- the printed report: ``header_lines``, ``machine_notes``, ``rss_cell``, ``fmt``, and ``save_json``;
- ``make_log`` (a logger to stderr with the script's tag) and ``resolve_device`` (``--device auto`` and
  the per-device defaults of the run counts).

The scripts import it as ``bench_common``: they are run as ``python benchmarks/<script>.py``, so this folder
is ``sys.path[0]``, also in the child processes (which re-run the script by its path). Only the standard
library is imported at module level; torch and monai are imported where they are used.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

# ----------------------------------------------------------------------------------------------------
# the machine and the process
# ----------------------------------------------------------------------------------------------------


def make_log(tag: str) -> Callable[[str], None]:
    """A ``log(msg)`` that prints ``[tag] msg`` to stderr (stdout keeps just the tables)."""

    def log(msg: str) -> None:
        print(f"[{tag}] {msg}", file=sys.stderr, flush=True)

    return log


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


def resolve_device(args, defaults: dict[str, dict]) -> None:
    """Turn ``--device auto`` into cuda or cpu, then fill the options left at None from ``defaults``."""
    if args.device == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    for key, value in defaults[args.device].items():
        if getattr(args, key) is None:
            setattr(args, key, value)


# ----------------------------------------------------------------------------------------------------
# child side: timing and memory of one phase
# ----------------------------------------------------------------------------------------------------


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


def setup_torch(args):
    """Import torch, apply ``--threads`` and return ``(torch, device)`` for ``--device``."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.cuda.init()
    return torch, device


def sync(torch, device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(torch, device) -> None:
    """Before a row: collect garbage and, on CUDA, free the cache and reset the peak-memory counter."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gpu_gib(torch, device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 1024**3


def guarded(fn, torch, device, on_error: Callable[[Exception], None]) -> dict:
    """Run one row; an error (e.g. CUDA out of memory) is passed to ``on_error`` (called inside the
    ``except``, so ``traceback.print_exc()`` works there) and recorded instead of ending the phase."""
    try:
        return fn()
    except Exception as err:  # any failure of one row is reported in its row
        on_error(err)
        if device.type == "cuda":
            gc.collect()
            torch.cuda.empty_cache()
        return {"error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"}


def time_train_steps(
    args, torch, device, model, loss_fn, optimizer, x, target, amp: bool, log, throughput_key: str
) -> dict:
    """``--warmup-steps`` + ``--steps`` training steps (zero_grad, forward + loss under autocast when
    ``amp``, backward and optimiser step through a ``GradScaler``) on the batch ``x``; the timed steps'
    summary, the first step's time, ``throughput_key`` (batch / median step time) and the losses."""
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    reset_peak(torch, device)
    times, cpu, losses = [], [], []
    for i in range(args.warmup_steps + args.steps):
        sync(torch, device)
        t0, c0 = time.perf_counter(), time.process_time()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            loss = loss_fn(model(x), target)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        sync(torch, device)
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
        throughput_key: len(x) / statistics.median(timed),
        "losses": losses,
        "peak_gpu_gib": peak_gpu_gib(torch, device),
    }


def phase_result(rows: dict, n_params: int | None, base_rss: float | None, torch) -> dict:
    """What a phase hands back to the parent: its rows, parameter count, RSS after setup and peak RSS."""
    return {
        "rows": rows,
        "n_params": n_params,
        "rss_after_setup_gib": base_rss,
        "peak_rss_gib": rss_gib(),
        "torch_threads": torch.get_num_threads(),
    }


# ----------------------------------------------------------------------------------------------------
# one phase per child process
# ----------------------------------------------------------------------------------------------------


def run_in_child(script: Path, phase: str, result_file: Path, options: list[str], stdout=None) -> dict:
    """Re-invoke ``script`` (the benchmark's own file) for one phase so that its peak RSS is its own;
    the phase's result, read from ``result_file``, with its wall time."""
    cmd = [sys.executable, str(script), "--phase", phase, "--child-result", str(result_file), *options]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, check=False, stdout=stdout)
    wall = time.perf_counter() - t0
    if result_file.exists():
        result = json.loads(result_file.read_text())
    else:
        result = {"error": f"child process for {phase!r} exited with code {proc.returncode}", "rows": {}}
    result["wall_s"] = wall
    return result


def run_phase_here(runner, args) -> int:
    """Child side: run ``runner(args)`` and write its result (or its error) to ``--child-result``."""
    try:
        result = runner(args)
    except Exception as err:  # reported in the parent's table
        traceback.print_exc()
        result = {"error": f"{type(err).__name__}: {err}", "rows": {}}
    args.child_result.write_text(json.dumps(result))
    return 0


# ----------------------------------------------------------------------------------------------------
# the printed report
# ----------------------------------------------------------------------------------------------------


def fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{unit}"


def rss_cell(phase: dict) -> str:
    if "peak_rss_gib" not in phase:
        return "—"
    base = phase.get("rss_after_setup_gib")
    return f"{phase['peak_rss_gib']:.2f} GiB" + (f" (after setup {base:.2f})" if base else "")


def header_lines(title: str, report: dict, threads: int | None, what: str) -> list[str]:
    """The title and the bullet list above the tables: device, host CPU, versions, ``what`` (the model
    or case line), load average and total wall time."""
    m, device = report["machine"], report["config"]["device"]
    dev = m["device_name"] + (
        f" ({m['cpu_count']} logical CPUs, {threads} torch threads)" if device == "cpu" else ""
    )
    return [
        f"### {title} — {device.upper()}",
        "",
        f"- device: {dev}",
        f"- host CPU: {m['cpu_model']}, {m['cpu_count']} logical CPUs",
        f"- torch {m['torch']}, monai {m['monai']}, Python {m['python']}, {m['platform']}",
        what,
        f"- load average (1, 5, 15 min) before: {m['loadavg_before']}, after: {m['loadavg_after']}; "
        f"total wall time {report['total_wall_s']:.0f} s",
    ]


def machine_notes(machine: dict, gpu: bool, threads: int | None, used: list[str]) -> list[str]:
    """The notes on the machine: on the CPU the busy cores (``used``: "phase cores" items) and what peak
    RSS means; a high load average before the run."""
    notes = []
    if not gpu:
        if used:
            notes.append(
                f"average cores busy in the benchmark process during the timed runs: {', '.join(used)} "
                f"(of {threads} torch threads; fewer means the CPU was shared)"
            )
        notes.append("peak RSS is the child process's ru_maxrss for the whole phase; no AMP rows on CPU")
    before = machine["loadavg_before"]
    if before and before[0] >= 0.5:
        notes.append(
            f"load average before the run was {before[0]}: another process was probably using the CPU, "
            "so times may be inflated"
        )
    return notes


def save_json(path: Path | None, report: dict) -> None:
    """With ``--json``: write the report there and say so."""
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2))
        print(f"\nresults written to {path}")
