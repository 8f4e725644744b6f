"""How fast `detect` streams a table at the KDDI width (121 features), end to end and by stage.

Run by hand (not a test):  python benchmarks/detect_speed.py [--rows 100000] [--threads 2]

It builds a CSV (and a Parquet file) of the bundled KDDI eval rows repeated to --rows rows,
trains a small model (the fault memory pipeline, the default view, N = 16) and measures, in one
run, best of --repeats each:

- the whole `detect_file` (read + identify + write), from CSV and from Parquet;
- Arrow alone parsing the CSV (`pyarrow.csv.read_csv` of the whole file, the fleet-scale issue's
  yardstick) and the project's reader (`iter_feature_table`: Arrow plus the row checks and the
  float32 matrix), on the same cores;
- each stage alone, the way `detect` runs it: over blocks of `BLOCK_ROWS` rows, on one thread;
  and all stages together on one worker per core.

Results go to the `detect_speed` section of benchmarks/results.md. Goals: >= 100k rows/s end to
end on 2 cores (fault-memory issue); end to end from CSV within 1.3x of Arrow's parse (fleet-scale
issue).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import torch
from threadpoolctl import threadpool_limits

from lossless_triplet.data import iter_feature_table, load_kddi_nfv
from lossless_triplet.models import encode
from lossless_triplet.pipeline import fit_fault_model
from lossless_triplet.pipeline.detect import BLOCK_ROWS, detect_file, identified_chunks, worker_count
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
    parser.add_argument("--rows", type=int, default=100_000)
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
        # (block, the rows before it), as detect cuts a chunk
        blocks = [(raw[i:i + BLOCK_ROWS], model.recent_rows(raw[:i])) for i in range(0, n, BLOCK_ROWS)]
        features = [model.features(block, previous) for block, previous in blocks]
        codes = [encode(model.encoder, x) for x in features]
        vectors = [model.representation.combine(c, x) for c, x in zip(codes, features)]

        def each(fn, *columns):
            return lambda: [fn(*values) for values in zip(*columns)]

        with threadpool_limits(1, user_api="blas"):  # as detect runs its workers
            stages = {
                "detect, CSV input (end to end)": best_of(args.repeats, lambda: detect_file(
                    model, csv_path, out, progress=False)),
                "detect, Parquet input (end to end)": best_of(args.repeats, lambda: detect_file(
                    model, parquet_path, out, progress=False)),
                "Arrow alone parsing the CSV": best_of(args.repeats, lambda: pcsv.read_csv(csv_path)),
                "read CSV (project reader: Arrow + checks + float32 matrix)": best_of(
                    args.repeats, lambda: [None for _ in iter_feature_table(csv_path, model.feature_names)]),
                "read Parquet only": best_of(args.repeats, lambda: [None for _ in iter_feature_table(
                    parquet_path, model.feature_names)]),
                "view + scaler (one block at a time)": best_of(args.repeats, each(model.features, *zip(*blocks))),
                "encoder (one block at a time)": best_of(args.repeats, each(lambda x: encode(model.encoder, x), features)),
                "code + representation (one block at a time)": best_of(args.repeats, each(
                    model.representation.combine, codes, features)),
                "memory lookup (one block at a time)": best_of(args.repeats, each(model.memory.identify, vectors)),
                "evidence (explain, one block at a time)": best_of(args.repeats, each(model.explain, *zip(*blocks))),
            }
            chunks = [raw[i:i + 65_536] for i in range(0, n, 65_536)]
            with ThreadPoolExecutor(worker_count()) as pool:
                stages[f"all stages, {worker_count()} workers"] = best_of(
                    args.repeats, lambda: list(identified_chunks(model, chunks, pool=pool)))
    parse = stages["Arrow alone parsing the CSV"]
    ratio = stages["detect, CSV input (end to end)"] / parse
    one_thread = sum(v for k, v in stages.items() if k.endswith("at a time)"))
    size_mb = n * len(evaluation.feature_names) * 4 / 1e6
    lines = [
        "## detect speed (rows/s, higher is better)",
        "",
        f"{n:,} rows x {len(evaluation.feature_names)} features (KDDI eval rows repeated; {size_mb:.0f} MB as "
        f"float32), {model.view.name} view, memory over {model.representation.name}, N = 16, torch threads "
        f"{args.threads}, {worker_count()} workers, blocks of {BLOCK_ROWS:,} rows, best of {args.repeats}; "
        f"{os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}, torch {torch.__version__}, "
        f"{datetime.date.today()}. Command: `python benchmarks/{Path(sys.argv[0]).name} "
        f"--rows {n} --threads {args.threads} --repeats {args.repeats} --view {args.view}`.",
        "",
        "| stage | seconds | rows/s |",
        "|---|---:|---:|",
        *[f"| {name} | {seconds:.2f} | {n / seconds:,.0f} |" for name, seconds in stages.items()],
        "",
        f"End to end from CSV / Arrow alone parsing it: **{ratio:.2f}x** (fleet-scale issue's goal: <= 1.3x; "
        f"against the project's reader: {stages['detect, CSV input (end to end)'] / stages[next(k for k in stages if k.startswith('read CSV'))]:.2f}x). "
        f"The stages one block at a time add up to {one_thread:.2f} s, {one_thread / parse:.1f}x the parse; "
        f"on {worker_count()} workers they take {stages[f'all stages, {worker_count()} workers']:.2f} s, "
        f"{stages[f'all stages, {worker_count()} workers'] / parse:.1f}x the parse.",
        "",
        "Goal (fault-memory issue): >= 100,000 rows/s end to end on 2 cores.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()
