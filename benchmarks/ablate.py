"""Rerun a paper's ablation tables with a bundle: every row trained and tested on the same split.

    python benchmarks/ablate.py --bundle NAME [--dataset_dir DIR] [--budget small|paper] [--only ROW ...]
                                [--output DIR] [--override KEY=JSON ...]

A bundle lists its paper's experiments in ``configs/ablation.json``::

    {"metrics": {"dice": "Dice", "accuracy": "Acc"},     metrics.csv key -> column title
     "paper_scale": 100,                                 the paper's numbers are per cent
     "decimals": 2,                                      digits in the tables (default 2)
     "budgets": {"small": {overrides}, "paper": {}},     shared by every row
     "tables": {"Table 1: ...": {"row name": {"note": "...", "overrides": {...},
                                               "paper": {"dice": 77.51, "accuracy": 85.29}}}}}

A row that is the same experiment as another (a table's baseline repeated in the next table) says
``"same_as": "<row>"`` instead of ``overrides`` and reuses that row's result. A paper number the source
does not give is left out of ``paper`` and shows as an empty cell.

Each row is the bundle's own ``train.json`` (then ``train.json`` + ``evaluate.json`` on the test split) run
through ``python -m monai.bundle run`` with the budget's and the row's overrides merged after it, as one
more config file. Every row uses the same data folder, seed and ratios, hence the same split (the datalist
is deterministic); phantoms are written once into ``<output>/data`` unless ``--dataset_dir`` is given.

Resumable: a finished row leaves ``<output>/<row>/result.json`` and is skipped next time; a killed row
resumes its training from its ``last.pt``. After every row ``<output>/ablation.csv`` and
``<output>/ablation.md`` (our numbers beside the paper's) are rewritten.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def load_ablation(bundle: str) -> dict:
    path = REPO / "bundles" / bundle / "configs" / "ablation.json"
    if not path.is_file():
        raise SystemExit(f"{path}: no ablation file; a bundle lists its paper's experiments there")
    return json.loads(path.read_text())


def rows_of(ablation: dict) -> dict[str, tuple[str, dict]]:
    """Row name -> (table title, row); row names are unique across tables."""
    rows: dict[str, tuple[str, dict]] = {}
    for table, table_rows in ablation["tables"].items():
        for name, row in table_rows.items():
            if name in rows:
                raise SystemExit(f"row {name!r} appears in {rows[name][0]!r} and {table!r}")
            rows[name] = (table, row)
    for name, (_, row) in rows.items():
        same = row.get("same_as")
        if same is not None and (same not in rows or "same_as" in rows[same][1] or "overrides" in row):
            raise SystemExit(f"row {name!r}: same_as must name a row with its own overrides, got {same!r}")
    return rows


def run_config(bundle: str, configs: list[str], overrides_file: Path, log: Path) -> None:
    """``python -m monai.bundle run`` of ``configs`` with ``overrides_file`` merged last; log to ``log``."""
    folder = REPO / "bundles" / bundle / "configs"
    files = [str(folder / name) for name in configs] + [str(overrides_file)]
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", json.dumps(files)]
    cmd += ["--meta_file", str(folder / "metadata.json"), "--logging_file", str(folder / "logging.conf")]
    with open(log, "a") as out:
        result = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    if result.returncode:
        raise SystemExit(f"{' '.join(configs)} failed (exit {result.returncode}); see {log}")


def run_row(bundle: str, name: str, overrides: dict, out: Path) -> dict[str, float]:
    """Train and test one row; returns its test metrics (``metrics.csv`` of the evaluation)."""
    row_dir = out / name
    result_file = row_dir / "result.json"
    if result_file.is_file():
        return json.loads(result_file.read_text())
    row_dir.mkdir(parents=True, exist_ok=True)
    train = {**overrides, "output_dir": str(row_dir / "runs"), "ckpt_dir": str(row_dir / "models")}
    (row_dir / "train_overrides.json").write_text(json.dumps(train, indent=2))
    run_config(bundle, ["train.json"], row_dir / "train_overrides.json", row_dir / "log.txt")
    evaluate = {
        **train,
        "output_dir": str(row_dir / "eval"),
        "datalist_file": str(row_dir / "runs" / "datalist.json"),
    }
    (row_dir / "evaluate_overrides.json").write_text(json.dumps(evaluate, indent=2))
    run_config(
        bundle, ["train.json", "evaluate.json"], row_dir / "evaluate_overrides.json", row_dir / "log.txt"
    )
    with open(row_dir / "eval" / "metrics.csv") as f:
        metrics = {key: float(value) for key, value in csv.reader(f)}
    result_file.write_text(json.dumps(metrics, indent=2))
    return metrics


def tables(ablation: dict, results: dict[str, dict[str, float]]) -> tuple[str, str]:
    """The CSV and the markdown of every finished row: ours beside the paper's, in the paper's unit."""
    metrics: dict[str, str] = ablation["metrics"]
    scale = float(ablation.get("paper_scale", 1))
    decimals = int(ablation.get("decimals", 2))
    csv_out = io.StringIO()
    writer = csv.writer(csv_out)
    writer.writerow(["table", "row", *(f"{m}_ours" for m in metrics), *(f"{m}_paper" for m in metrics)])
    md = []
    for table, table_rows in ablation["tables"].items():
        md += [
            f"### {table}",
            "",
            "| row | " + " | ".join(f"{t} ours | {t} paper" for t in metrics.values()) + " |",
        ]
        md.append("| --- |" + " --- | --- |" * len(metrics))
        for name, row in table_rows.items():
            if name not in results:
                continue
            ours = [_cell(results[name].get(m), scale, decimals) for m in metrics]
            paper = [_cell(row.get("paper", {}).get(m), 1.0, decimals) for m in metrics]
            writer.writerow([table, name, *ours, *paper])
            cells = " | ".join(f"{o} | {p or '—'}" for o, p in zip(ours, paper))
            md.append(f"| {name} | {cells} |")
        md.append("")
    return csv_out.getvalue(), "\n".join(md)


def _cell(value: float | None, scale: float = 1.0, decimals: int = 2) -> str:
    return "" if value is None else f"{value * scale:.{decimals}f}"


def parse_overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        out[key] = json.loads(value)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--dataset_dir", help="real data; phantoms in <output>/data by default")
    parser.add_argument("--budget", default="small", help="a budget of the ablation file (small, paper)")
    parser.add_argument("--only", nargs="+", help="run only these rows")
    parser.add_argument("--output", type=Path, help="default: ablation_output/<bundle>")
    parser.add_argument("--override", action="append", default=[], help="KEY=JSON applied to every row")
    args = parser.parse_args(argv)

    ablation = load_ablation(args.bundle)
    rows = rows_of(ablation)
    unknown = sorted(set(args.only or []) - set(rows))
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; rows are {list(rows)}")
    if args.budget not in ablation["budgets"]:
        raise SystemExit(f"unknown budget {args.budget!r}; budgets are {list(ablation['budgets'])}")
    out = (args.output or REPO / "ablation_output" / args.bundle).resolve()
    # one data folder for every row: the same cases, so the same deterministic split
    data = {"dataset_dir": args.dataset_dir} if args.dataset_dir else {"phantom_dir": str(out / "data")}
    shared = {**ablation["budgets"][args.budget], **data, **parse_overrides(args.override)}

    # rows finished by an earlier run (or left out by --only) still appear in the tables
    results = {
        n: json.loads((out / n / "result.json").read_text())
        for n in rows
        if (out / n / "result.json").is_file()
    }
    results.update({n: results[r["same_as"]] for n, (_, r) in rows.items() if r.get("same_as") in results})
    for name, (table, row) in rows.items():
        if args.only and name not in args.only:
            continue
        source = row.get("same_as")
        if source is None:
            print(f"[ablation] {table} / {name} ...", flush=True)
            results[name] = run_row(args.bundle, name, {**shared, **row.get("overrides", {})}, out)
        elif source in results:
            results[name] = results[source]
        else:
            continue  # its source row comes later or was left out by --only
        csv_text, md_text = tables(ablation, results)
        (out / "ablation.csv").write_text(csv_text)
        (out / "ablation.md").write_text(md_text + "\n")
    print(tables(ablation, results)[1])


if __name__ == "__main__":
    main()
