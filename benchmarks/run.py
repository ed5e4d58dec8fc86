"""Speed and peak memory of any bundle in ``bundles/``, measured through the bundle's own configs.

    python benchmarks/run.py --bundle NAME [--repeats N] [--train-steps N] [--device cpu|cuda]
                             [--output FILE.md] [--override KEY=JSON ...]

Each phase runs in its own child process (this script re-invoked with ``--child``), so that the peak
memory of each is its own: ``ru_maxrss`` of the process, and ``torch.cuda.max_memory_allocated`` on CUDA.

- **inference**: ``configs/inference.json`` through ``monai.bundle.ConfigWorkflow``, as ``python -m
  monai.bundle run`` runs it, on full-size phantoms that the config writes itself: ``dataset_dir``,
  ``phantom_dir``, ``output_dir`` and ``ckpt_path`` point into a temporary folder, and the checkpoint is
  a randomly initialised ``network_def`` (timing does not depend on the weights). ``--warmup`` untimed
  runs, then ``--repeats`` timed ``workflow.run()`` calls; per case: whole case (load, preprocess,
  network, postprocess, write) and the network alone (the evaluator's inferer call, timed by a wrapper).
- **train**: ``configs/train.json`` the same way; ``train#trainer#epoch_length`` is raised so that no
  epoch ends (no validation runs), and the trainer is stopped after ``--warmup-steps`` +
  ``--train-steps`` iterations. A step is one whole trainer iteration: batch fetch, random transforms,
  forward, loss, backward, optimiser and the iteration handlers. Samples per step are the batch size of
  the network input the trainer reports.
- **runtimes** (``--runtimes``): the inference phase once per runtime variant, each in its own child:
  ``plain`` is the network as the bundle ran it before the fast path (eager PyTorch fp32, no crop to
  the head: ``evaluator#network`` is ``@network``); ``auto`` is the bundle's default
  (``common.engines.FastInferenceNetwork`` chooses); ``RUNTIME:PRECISION`` (e.g. ``openvino:bf16``,
  ``torch:fp32``) forces one. Ratios are against the first variant.
- **sizes** (``--sizes``): ``full`` (the settings' ``inference`` overrides) and any size the settings
  declare under ``"sizes"`` (e.g. ``"half"``: a phantom of half the edge length), to show how time grows.
- **reference**: pipelines declared by the bundle (below), timed exactly as its inference.

Precision and device are the config's (the bundles use AMP on CUDA); ``--device`` and ``--override
use_amp=false`` change them. What a bundle declares for the benchmark lives in ONE file,
``benchmarks/settings/<bundle>.json`` (a bundle without one runs with its configs unchanged)::

    {"inference": {overrides},   e.g. {"phantom#n_cases": 1}: fewer phantom cases, full-size images
     "train": {overrides},       enough phantom cases for the split to give full training batches
     "train_cpu": {overrides},   on the CPU only, to keep the run short, e.g. {"batch_size": 2}
     "sizes": {"half": {overrides}},   other input sizes for --sizes, merged over "inference"
     "references": {"name": {"label": "...", "overrides": {overrides of inference.json}},
                    "other": {"label": "...", "base": "name", "overrides": {more overrides}}}}

Overrides are ``ConfigWorkflow`` overrides (``#`` reaches into nested keys). ``--override`` pairs apply
on top of them, in every phase. Logs of the children go to stderr; stdout holds the table only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SETTINGS = Path(__file__).resolve().parent / "settings"


# ----------------------------------------------------------------------------------------------------
# child side: one phase in this process
# ----------------------------------------------------------------------------------------------------


def _rss_gib() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (
        1024**3 if sys.platform == "darwin" else 1024**2
    )


class _Clock:
    """Wall and process CPU time, synchronised with CUDA so that queued kernels are counted."""

    def __init__(self, torch, cuda: bool):
        self.torch, self.cuda = torch, cuda

    def __call__(self) -> tuple[float, float]:
        if self.cuda:
            self.torch.cuda.synchronize()
        return time.perf_counter(), time.process_time()


class _TimedInferer:
    """Wraps an evaluator's inferer and records the wall time and input shape of each call."""

    def __init__(self, inferer, clock: _Clock):
        self.inferer, self.clock, self.times, self.shape = inferer, clock, [], None

    def __call__(self, inputs, network, *args, **kwargs):
        t0 = self.clock()[0]
        out = self.inferer(inputs, network, *args, **kwargs)
        self.times.append(self.clock()[0] - t0)
        self.shape = list(inputs.shape)
        return out


def _workflow(spec: dict, config: str):
    from monai.bundle import ConfigWorkflow

    folder = REPO / "bundles" / spec["bundle"] / "configs"
    kind = "train" if config == "train.json" else "infer"
    meta = folder / "metadata.json"
    return ConfigWorkflow(
        config_file=str(folder / config),
        meta_file=str(meta) if meta.exists() else None,
        workflow_type=kind,
        **spec["overrides"],
    )


def _summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values)}


def _inference(spec: dict, torch, clock: _Clock) -> dict:
    t0 = clock()[0]
    wf = _workflow(spec, "inference.json")
    wf.initialize()
    network = wf.parser.get_parsed_content("network_def")  # the instance the config's `network` moves
    ckpt = Path(spec["overrides"]["ckpt_path"])
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    torch.save(network.state_dict(), ckpt)  # random weights: timing does not depend on them
    evaluator = wf.evaluator
    timer = evaluator.inferer = _TimedInferer(evaluator.inferer, clock)
    n_cases = len(evaluator.data_loader.dataset)  # building it wrote the phantoms
    setup_s, rss_setup = clock()[0] - t0, _rss_gib()
    whole, network_s, cpu = [], [], []
    for i in range(spec["warmup"] + spec["repeats"]):
        n_calls = len(timer.times)
        (t, c), _ = clock(), wf.run()
        t1, c1 = clock()
        if i >= spec["warmup"]:
            whole.append((t1 - t) / n_cases)
            network_s.append(sum(timer.times[n_calls:]) / n_cases)
            cpu.append((c1 - c) / (t1 - t))
    wf.finalize()
    return {
        "whole": _summary(whole),
        "network": _summary(network_s),
        "cores": statistics.fmean(cpu),
        "n_cases": n_cases,
        "shape": timer.shape,
        "amp": bool(getattr(evaluator, "amp", False)),
        # the fast path's choice (common.engines.FastInferenceNetwork), None for a plain network
        "runtime": list(getattr(evaluator.network, "chosen", None) or []) or None,
        "params": sum(p.numel() for p in network.parameters()),
        "setup_s": setup_s,
        "rss_setup_gib": rss_setup,
    }


def _train(spec: dict, torch, clock: _Clock) -> dict:
    from ignite.engine import Events

    n_steps = spec["warmup_steps"] + spec["train_steps"]
    t0 = clock()[0]
    # one epoch longer than the run: no epoch ends, so no validation or epoch handlers run
    spec["overrides"]["train#trainer#epoch_length"] = n_steps + 1
    wf = _workflow(spec, "train.json")
    wf.initialize()
    trainer = wf.trainer
    n_items = len(trainer.data_loader.dataset)
    setup_s, rss_setup = clock()[0] - t0, _rss_gib()
    stamps, samples, data_wait, shape = [], [], [], []

    @trainer.on(Events.EPOCH_STARTED)
    def _start(engine):
        stamps.append(clock())

    @trainer.on(Events.GET_BATCH_STARTED)
    def _fetch(engine):
        data_wait.append(-time.perf_counter())

    @trainer.on(Events.GET_BATCH_COMPLETED)
    def _fetched(engine):
        data_wait[-1] += time.perf_counter()

    @trainer.on(Events.ITERATION_COMPLETED)
    def _step(engine):
        stamps.append(clock())
        out = engine.state.output  # SupervisedTrainer: a dict with the network input, or a decollated list
        image = out.get("image") if isinstance(out, dict) else None
        samples.append(len(image) if image is not None else len(out))
        shape[:] = list(image.shape[1:]) if image is not None else []
        if engine.state.iteration >= n_steps:
            engine.terminate(skip_completed=True)  # no COMPLETED: no end-of-training handlers

    wf.run()
    wf.finalize()
    if len(samples) < n_steps:
        raise RuntimeError(f"the trainer stopped after {len(samples)} of {n_steps} iterations")
    w = spec["warmup_steps"]
    steps = [b[0] - a[0] for a, b in zip(stamps[w:], stamps[w + 1 :])]
    cores = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(stamps[w:], stamps[w + 1 :])]
    batch = statistics.fmean(samples[w:])
    return {
        "step": _summary(steps),
        "samples_per_s": batch / statistics.median(steps),
        "batch": batch,
        "n_items": n_items,
        "data_wait": statistics.median(data_wait[w:n_steps]),
        "first_step_s": stamps[1][0] - stamps[0][0],
        "cores": statistics.fmean(cores),
        "shape": shape,
        "amp": bool(getattr(trainer, "amp", False)),
        "params": sum(p.numel() for p in trainer.network.parameters()),
        "setup_s": setup_s,
        "rss_setup_gib": rss_setup,
    }


def run_child(spec_file: Path) -> int:
    """Run the phase that ``spec_file`` describes and write its result (or its error) next to it."""
    spec = json.loads(spec_file.read_text())
    try:
        import torch

        cuda = spec["device"] == "cuda"
        clock = _Clock(torch, cuda)
        result = (_train if spec["phase"] == "train" else _inference)(spec, torch, clock)
        result["rss_gib"] = _rss_gib()
        result["gpu_gib"] = torch.cuda.max_memory_allocated() / 1024**3 if cuda else None
        result["threads"] = torch.get_num_threads()
    except Exception as err:  # reported in the parent's table
        import traceback

        traceback.print_exc()
        result = {"error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"}
    spec_file.with_suffix(".result.json").write_text(json.dumps(result))
    return 0


# ----------------------------------------------------------------------------------------------------
# parent side: one child per phase, then the table
# ----------------------------------------------------------------------------------------------------


def _phases(args, settings: dict, work: Path) -> list[tuple[str, str, dict]]:
    """(phase, row label, overrides) for each child to run, in order."""
    data = {"dataset_dir": str(work / "data"), "phantom_dir": str(work / "data")}
    infer = {**data, **settings.get("inference", {}), **args.override}
    out = []
    if "inference" in args.phases:
        for size in args.sizes:
            if size != "full" and size not in settings.get("sizes", {}):
                raise SystemExit(
                    f"--sizes {size}: benchmarks/settings/{args.bundle}.json declares no such size"
                )
            sized = {**infer, **settings.get("sizes", {}).get(size, {}), **args.override}
            sized |= {"dataset_dir": str(work / f"data_{size}"), "phantom_dir": str(work / f"data_{size}")}
            for variant in args.runtimes:
                tag = f"{variant}_{size}".replace(":", "_")
                paths = {"output_dir": str(work / tag / "out"), "ckpt_path": str(work / tag / "model.pt")}
                where = "" if args.sizes == ["full"] else f", {size} size"
                label = f"`{args.bundle}` (inference.json, {variant}{where})"
                out.append(("inference", label, {**sized, **_runtime_overrides(variant), **paths}))
    if "train" in args.phases:
        data = {"dataset_dir": str(work / "train_data"), "phantom_dir": str(work / "train_data")}
        over = {**data, **settings.get("train", {})}
        over |= settings.get("train_cpu", {}) if args.device == "cpu" else {}
        over |= {"output_dir": str(work / "runs"), "ckpt_dir": str(work / "ckpt"), **args.override}
        out.append(("train", f"`{args.bundle}` (train.json)", over))
    if "reference" in args.phases:
        references = settings.get("references", {})
        for name, ref in references.items():
            paths = {"output_dir": str(work / name / "out"), "ckpt_path": str(work / name / "model.pt")}
            # "base": another reference whose overrides this one extends (the same model, another runtime)
            base = references[ref["base"]]["overrides"] if "base" in ref else {}
            overrides = {**infer, **base, **ref.get("overrides", {}), **paths}
            out.append(("reference", f"reference: {ref.get('label', name)}", overrides))
    return out


def _runtime_overrides(variant: str) -> dict:
    """Config overrides of a ``--runtimes`` variant: ``plain``, ``auto`` or ``RUNTIME:PRECISION``."""
    if variant == "plain":  # the bundle's network straight in the evaluator, as before the fast path
        return {"evaluator#network": "@network", "crop_to_head": False}
    if variant == "auto":
        return {}
    runtime, _, precision = variant.partition(":")
    return {"runtime": runtime, "precision": precision or "auto"}


def _spawn(args, phase: str, overrides: dict, spec_file: Path) -> dict:
    device = {"device": f"$torch.device('{'cuda:0' if args.device == 'cuda' else 'cpu'}')"}
    spec = {
        "bundle": args.bundle,
        "phase": phase,
        "device": args.device,
        "overrides": {**device, **overrides},
    }
    spec |= {key: getattr(args, key) for key in ("warmup", "repeats", "warmup_steps", "train_steps")}
    spec_file.write_text(json.dumps(spec))
    print(f"[run.py] {phase}: {overrides}", file=sys.stderr, flush=True)
    # the children's logs go to stderr: stdout keeps just the table
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(spec_file)], stdout=sys.stderr, check=False
    )
    result_file = spec_file.with_suffix(".result.json")
    if not result_file.exists():
        return {"error": f"child process exited with code {proc.returncode}"}
    return json.loads(result_file.read_text())


def _s(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1e3:.3g} ms"


def _memory(r: dict) -> tuple[str, str]:
    """(value, details) of a peak-memory row: GPU memory on CUDA, else RSS."""
    rss, setup = f"{r['rss_gib']:.2f} GiB RSS", f"{r['rss_setup_gib']:.2f} GiB RSS after setup"
    if r["gpu_gib"] is not None:
        return f"{r['gpu_gib']:.2f} GiB GPU", f"torch.cuda.max_memory_allocated; peak {rss}, {setup}"
    return rss, f"ru_maxrss of the process; {setup}"


def _rows(label: str, phase: str, r: dict, args, base: dict | None = None) -> list[str]:
    """The table rows of one phase's result; ``base``: the bundle's inference result, for a reference."""
    if "error" in r:
        return [f"| {label} | {phase} | failed: {r['error']} | | | |"]
    prec = " ".join(r["runtime"]) if r.get("runtime") else ("AMP" if r["amp"] else "fp32")
    cpu = f", {r['cores']:.1f} cores busy" if args.device == "cpu" else ""
    common = f"{r['params'] / 1e6:.2f} M parameters, setup {r['setup_s']:.0f} s{cpu}"
    mem, mem_note = _memory(r)
    if phase == "train":
        shape = "x".join(map(str, r["shape"]))
        runs = f"{args.warmup_steps} warm-up + {args.train_steps} steps (first {_s(r['first_step_s'])})"
        note = (
            f"batch {r['batch']:g} of {shape} from {r['n_items']} training items, {prec}; {runs}; "
            f"waiting for the batch {_s(r['data_wait'])}; {common}"
        )
        step = r["step"]
        return [
            f"| {label} | training step | {_s(step['median'])} | {_s(step['min'])} "
            f"| {r['samples_per_s']:.3g} samples/s | {note} |",
            f"| {label} | peak memory, training | {mem} | | | {mem_note} |",
        ]
    shape = "x".join(map(str, (r["shape"] or [])[1:]))
    runs = f"{args.warmup} warm-up + {args.repeats} timed runs over {r['n_cases']} case(s)"
    whole, net = r["whole"], r["network"]
    if base and "error" not in base:  # how the first inference run compares with this one
        ratio = base["whole"]["median"] / whole["median"], base["network"]["median"] / net["median"]
        runs += f"; first row / this: whole case {ratio[0]:.2f}, network {ratio[1]:.2f}"
    return [
        f"| {label} | inference, whole case | {_s(whole['median'])} | {_s(whole['min'])} "
        f"| {1 / whole['median']:.3g} cases/s | network input {shape}, {prec}; {runs}; {common} |",
        f"| {label} | inference, network only | {_s(net['median'])} | {_s(net['min'])} | "
        f"| the evaluator's inferer call; the rest ({_s(whole['median'] - net['median'])}) is loading, "
        "pre/post-processing and writing |",
        f"| {label} | peak memory, inference | {mem} | | | {mem_note} |",
    ]


def _machine(args, load_before: list[float], threads: int | None) -> str:
    """One line on the command, the machine, the versions and the load."""
    import monai
    import torch

    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    names = [line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")]
    cpu = f"{names[0] if names else platform.processor() or 'unknown CPU'}, {os.cpu_count()} logical CPUs"
    dev = f"GPU {torch.cuda.get_device_name()}, host CPU {cpu}" if args.device == "cuda" else f"CPU {cpu}"
    dev += f", {threads} torch threads" if threads else ""
    load = [round(v, 2) for v in os.getloadavg()]
    return (
        f"`{shlex.join(['python', 'benchmarks/run.py', *args.argv])}` on {date.today()}: {dev}; "
        f"torch {torch.__version__}, monai {monai.__version__}; "
        f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}; "
        "load average (1, 5, 15 min) before "
        f"{load_before}, after {load}."
    )


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", help="folder name in bundles/")
    p.add_argument("--repeats", type=int, default=3, help="timed inference runs (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed inference runs first (default 1)")
    p.add_argument("--train-steps", type=int, help="timed training steps (default 3 on CPU, 20 on CUDA)")
    p.add_argument("--warmup-steps", type=int, help="untimed training steps first (default 1 CPU, 3 CUDA)")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")
    p.add_argument("--output", type=Path, help="also write the report to this markdown file")
    p.add_argument("--override", action="append", default=[], metavar="KEY=JSON", help="config override")
    p.add_argument(
        "--phases",
        nargs="+",
        choices=("inference", "train", "reference"),
        default=["inference", "train", "reference"],
    )
    p.add_argument(
        "--runtimes",
        nargs="+",
        default=["plain", "auto"],
        metavar="VARIANT",
        help="inference variants: plain, auto, or RUNTIME:PRECISION (default: plain auto)",
    )
    p.add_argument("--sizes", nargs="+", default=["full"], help="input sizes: full and the settings' sizes")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (phantoms, outputs)")
    p.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # internal: run one phase here
    args = p.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    if args.child:
        return args
    if not args.bundle or not (REPO / "bundles" / args.bundle / "configs").is_dir():
        names = sorted(d.name for d in (REPO / "bundles").iterdir() if (d / "configs").is_dir())
        p.error(f"--bundle must be one of {names}")
    overrides = {}
    for pair in args.override:
        key, sep, value = pair.partition("=")
        if not sep:
            p.error(f"--override needs KEY=JSON, got {pair!r}")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value  # a bare string, e.g. an expression "$..."
    args.override = overrides
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    gpu = args.device == "cuda"
    args.train_steps = args.train_steps or (20 if gpu else 3)
    args.warmup_steps = args.warmup_steps if args.warmup_steps is not None else (3 if gpu else 1)
    if min(args.repeats, args.train_steps) < 1 or min(args.warmup, args.warmup_steps) < 0:
        p.error("--repeats and --train-steps must be >= 1, warm-up counts >= 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        return run_child(args.child)
    settings_file = SETTINGS / f"{args.bundle}.json"
    settings = json.loads(settings_file.read_text()) if settings_file.exists() else {}
    load_before = [round(v, 2) for v in os.getloadavg()]
    work = Path(tempfile.mkdtemp(prefix="bench_"))
    lines = [
        "| pipeline | measurement | median | min | rate | details |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    failed, threads, base = False, None, None
    try:
        for i, (phase, label, overrides) in enumerate(_phases(args, settings, work)):
            result = _spawn(args, phase, overrides, work / f"phase{i}.json")
            failed |= "error" in result
            threads = threads or result.get("threads")
            kind = "train" if phase == "train" else "inference"
            lines += _rows(label, kind, result, args, base if kind == "inference" else None)
            base = result if phase == "inference" and base is None else base
    finally:
        if args.keep:
            print(f"[run.py] kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    report = "\n".join([_machine(args, load_before, threads), "", *lines])
    print(report)
    if args.output:
        args.output.write_text(report + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
