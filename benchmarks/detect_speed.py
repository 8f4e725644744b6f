"""How fast `detect` streams a table at the KDDI width (121 features), end to end and by stage.

Run by hand (not a test):  python benchmarks/detect_speed.py [--rows 200000] [--threads 2]

It builds a CSV (and a Parquet file) of the bundled KDDI eval rows repeated to --rows rows,
trains a small model (the fault memory pipeline, the default view, N = 16) and measures, in one
run: the whole `detect_file` (read + identify + write) and each stage alone: reading the table,
the feature view + scaler, the encoder, the memory lookup. Results go to the `detect_speed`
section of benchmarks/results.md. Goal from the fault-memory issue: >= 100k rows/s on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from lossless_triplet.data import iter_feature_table, load_kddi_nfv
from lossless_triplet.models import encode
from lossless_triplet.pipeline import fit_fault_model
from lossless_triplet.pipeline.detect import detect_file
from lossless_triplet.training import TrainConfig

RESULTS = Path(__file__).with_name("results.md")
START, END = "<!-- detect_speed:start -->", "<!-- detect_speed:end -->"


def best_of(repeats: int, fn) -> float:
    """Fastest of a few runs, in seconds (the machine is shared and noisy)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def write_section(text: str) -> None:
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    section = f"{START}\n{text}\n{END}"
    if START in old and END in old:
        new = old[: old.index(START)] + section + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(new)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--view", default="auto", help="feature view (default auto: kpi-stats+link on KDDI)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pa.set_cpu_count(args.threads)  # Arrow's CSV parser (it also follows OMP_NUM_THREADS)

    train, evaluation = load_kddi_nfv("train"), load_kddi_nfv("eval")
    model = fit_fault_model(train, view=args.view, progress=False,
                            config=TrainConfig(embedding_dim=16, epochs=2, steps_per_epoch=20))
    reps = -(-args.rows // len(evaluation))
    raw = np.tile(evaluation.features, (reps, 1))[: args.rows]
    with tempfile.TemporaryDirectory() as tmp:
        csv_path, parquet_path = Path(tmp) / "rows.csv", Path(tmp) / "rows.parquet"
        frame = pd.DataFrame(raw, columns=evaluation.feature_names)
        frame.to_csv(csv_path, index=False)
        frame.to_parquet(parquet_path, index=False)
        out = Path(tmp) / "pred.csv"
        n = args.rows
        features = model.features(raw)
        vectors = model.represent_features(features)  # what the memory compares (code and/or features)
        stages = {
            "detect, CSV input (end to end)": best_of(args.repeats, lambda: detect_file(
                model, csv_path, out, progress=False)),
            "detect, Parquet input (end to end)": best_of(args.repeats, lambda: detect_file(
                model, parquet_path, out, progress=False)),
            "read CSV only": best_of(args.repeats, lambda: [None for _ in iter_feature_table(csv_path,
                                                                                          model.feature_names)]),
            "read Parquet only": best_of(args.repeats, lambda: [None for _ in iter_feature_table(
                parquet_path, model.feature_names)]),
            "view + scaler": best_of(args.repeats, lambda: model.features(raw)),
            "encoder": best_of(args.repeats, lambda: encode(model.encoder, features)),
            "code + representation": best_of(args.repeats, lambda: model.represent_features(features)),
            "memory lookup": best_of(args.repeats, lambda: model.memory.identify(vectors)),
            "evidence (explain)": best_of(args.repeats, lambda: model.explain(raw)),
        }
    ratio = stages["detect, CSV input (end to end)"] / stages["read CSV only"]
    compute = sum(stages[k] for k in ("view + scaler", "encoder", "code + representation", "memory lookup",
                                      "evidence (explain)"))
    size_mb = n * len(evaluation.feature_names) * 4 / 1e6
    lines = [
        "## detect speed (rows/s, higher is better)",
        "",
        f"{n:,} rows x {len(evaluation.feature_names)} features (KDDI eval rows repeated; {size_mb:.0f} MB as "
        f"float32), {model.view.name} view, memory over {model.representation.name}, N = 16, torch threads "
        f"{args.threads}, best of {args.repeats}; "
        f"{os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}, torch {torch.__version__}, "
        f"{datetime.date.today()}. Command: `python benchmarks/{Path(sys.argv[0]).name} "
        f"--rows {n} --threads {args.threads} --view {args.view}`.",
        "",
        "| stage | seconds | rows/s |",
        "|---|---:|---:|",
        *[f"| {name} | {seconds:.2f} | {n / seconds:,.0f} |" for name, seconds in stages.items()],
        "",
        f"End to end from CSV / reading the CSV alone: **{ratio:.2f}x** (fleet-scale issue's goal: <= 1.3x). "
        f"The stages after the read add up to {compute:.2f} s, {compute / stages['read CSV only']:.1f}x the read: "
        "the computation, not the parse, bounds `detect` on this machine (parsing the next block on a "
        "worker thread while this one is identified was tried and gained nothing: both cores are busy).",
        "",
        "Goal (fault-memory issue): >= 100,000 rows/s end to end on 2 cores.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()
