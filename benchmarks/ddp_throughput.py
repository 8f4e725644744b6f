"""Training throughput with 1, 2, ... torchrun processes (DistributedDataParallel, gloo on CPU).

Each process count is one ``torchrun --standalone --nproc_per_node=K`` launch of this
script in worker mode: every rank builds the same features (view + scaler, as
``lossless-triplet train`` does), trains ``--steps`` optimiser steps on the global
P x K batch, and rank 0 reports the optimisation time (no start-up, no data loading).

    lossless-triplet export-kddi --split train --out /tmp/k.csv
    OMP_NUM_THREADS=1 python benchmarks/ddp_throughput.py --data /tmp/k.csv --label-column status \\
        --steps 200 --procs 1,2

Prints a Markdown table: processes, steps/s, rows/s (global batch rows per second), speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path


def worker(args: argparse.Namespace) -> None:
    from lossless_triplet import distributed
    from lossless_triplet.data import Standardizer, load_table
    from lossless_triplet.data.views import FeatureView, resolve_view
    from lossless_triplet.losses import make_loss
    from lossless_triplet.training import TrainConfig, train_encoder

    with distributed.process_group():
        data = load_table(args.data, args.label_column)
        view = FeatureView(resolve_view("auto", data.feature_names)).fit(data.features, data.feature_names)
        x = view.transform(data.features)
        x = Standardizer().fit(x).transform(x)
        config = TrainConfig(embedding_dim=16, epochs=1, steps_per_epoch=args.steps, seed=0)
        result = train_encoder(x, data.labels, make_loss(args.loss), config, progress=False)
        if distributed.is_main_process():
            batch = min(config.classes_per_batch, len(data.class_names)) * config.samples_per_class
            print("RESULT " + json.dumps({"processes": distributed.world_size(), "steps": args.steps,
                                          "batch_rows": batch, "seconds": result.train_seconds,
                                          "final_loss": result.history["train_loss"][-1]}), flush=True)


def driver(args: argparse.Namespace) -> None:
    torchrun = Path(sys.executable).parent / "torchrun"
    rows = []
    for k in [int(p) for p in args.procs.split(",")]:
        command = [str(torchrun), "--standalone", f"--nproc_per_node={k}", __file__, "--worker",
                   "--data", str(args.data), "--label-column", args.label_column, "--steps", str(args.steps),
                   "--loss", args.loss]
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
        rows.append(json.loads(line[len("RESULT "):]))
    base = rows[0]["steps"] / rows[0]["seconds"]
    print(f"{args.steps} steps, loss {args.loss}, global batch {rows[0]['batch_rows']} rows, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '1')} per process, {os.cpu_count()} CPUs\n")
    print("| processes | steps/s | rows/s | speed-up | final train loss |")
    print("|---:|---:|---:|---:|---:|")
    for row in rows:
        rate = row["steps"] / row["seconds"]
        print(f"| {row['processes']} | {rate:.1f} | {rate * row['batch_rows']:.0f} | {rate / base:.2f}x | "
              f"{row['final_loss']:.4f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="labelled table (CSV)")
    parser.add_argument("--label-column", required=True)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--loss", default="lossless")
    parser.add_argument("--procs", default="1,2", help="comma-separated process counts")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    worker(args) if args.worker else driver(args)


if __name__ == "__main__":
    main()
