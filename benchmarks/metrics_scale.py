"""Metrics that scale: time in metrics for an imbalanced compare, and evaluate on a million rows.

Run by hand from the repository root (not part of the test suite)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/metrics_scale.py            # both parts
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/metrics_scale.py --rows 1000000 --part evaluate

``compare``: a synthetic telemetry table shaped like the one that exposed the problem (11,700
training and 23,400 test rows, 33 columns, 94 % of the rows one class, 5 fault classes, 2 held
out), ``compare_losses`` with ``--quick``'s budget and every loss. Reported: the wall time of the
whole run and the time spent in metrics (every call of the per-table measures, summed), and,
side by side on the same 23,400 codes, the previous exact method (scikit-learn ``kneighbors``
with k = R per class, as before this round) against :func:`lossless_triplet.metrics.retrieval_metrics`
(its estimate, standard errors, and the ratio of times). Goal: <= 20 s in metrics.

``evaluate``: ``lossless-triplet evaluate`` in a child process on a ``--rows``-row CSV of the
same shape (a small model trained on the training table first); reported: wall time and the
child's peak resident memory (``ru_maxrss``). Goal: 1M rows within 2 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N_COLUMNS, CLASSES = 33, ("normal", "f1", "f2", "f3", "f4", "f5")
SHARES = (0.94, 0.02, 0.015, 0.01, 0.01, 0.005)


def synthetic(rows: int, seed: int):
    """A telemetry-like table: 33 KPI columns in 11 groups, one class per row, 94 % normal."""
    from lossless_triplet.data import Dataset

    rng = np.random.default_rng(seed)
    labels = rng.choice(len(CLASSES), size=rows, p=SHARES)
    shifts = np.random.default_rng(7).normal(0, 2.0, size=(len(CLASSES), N_COLUMNS))
    shifts[0] = 0
    x = rng.normal(size=(rows, N_COLUMNS)) + shifts[labels]
    names = tuple(f"kpi{j % 3}/node-{j // 3:02d}" for j in range(N_COLUMNS))
    return Dataset(x.astype(np.float32), labels, names, CLASSES)


def kneighbors_retrieval(codes: np.ndarray, labels: np.ndarray) -> dict:
    """The previous exact method: per class, the k = R nearest neighbours of every query."""
    from sklearn.neighbors import NearestNeighbors

    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    index = NearestNeighbors().fit(codes)
    p1, rp, mapr = [], [], []
    for c, r in enumerate(counts - 1):
        if r == 0:
            continue
        queries = np.flatnonzero(inverse == c)
        block = max(1, 2**21 // (r + 1))
        for start in range(0, queries.size, block):
            q = queries[start:start + block]
            found = index.kneighbors(codes[q], n_neighbors=r + 1, return_distance=False)
            keep = found != q[:, None]
            keep[keep.all(axis=1), -1] = False
            rel = inverse[found[keep].reshape(q.size, r)] == c
            hits = np.cumsum(rel, axis=1)
            p1.append(rel[:, 0])
            rp.append(hits[:, -1] / r)
            mapr.append((hits / np.arange(1, r + 1) * rel).sum(axis=1) / r)
    return {"precision_at_1": float(np.concatenate(p1).mean()), "r_precision": float(np.concatenate(rp).mean()),
            "map_at_r": float(np.concatenate(mapr).mean())}


def compare_part() -> dict:
    from lossless_triplet import experiment
    from lossless_triplet.metrics import retrieval_metrics
    from lossless_triplet.pipeline.compare import compare_losses
    from lossless_triplet.training import TrainConfig

    train, test = synthetic(11_700, 0), synthetic(23_400, 1)
    spent = []
    measure = experiment._code_metrics

    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return measure(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - started)

    experiment._code_metrics = timed
    started = time.perf_counter()
    document, results = compare_losses(train, test, holdout=["f2", "f4"], view="columns", representation="code",
                                       config=TrainConfig(embedding_dim=16, epochs=6, steps_per_epoch=15),
                                       progress=False)
    total = time.perf_counter() - started
    experiment._code_metrics = measure
    codes = results["triplet"].test_codes
    t0 = time.perf_counter()
    old = kneighbors_retrieval(codes, test.labels)
    t_old = time.perf_counter() - t0
    t0 = time.perf_counter()
    new = retrieval_metrics(codes, test.labels)
    t_new = time.perf_counter() - t0
    return {"test_rows": len(test), "majority_share": float(np.mean(test.labels == 0)), "losses": len(results),
            "compare_seconds": total, "metrics_seconds": float(sum(spent)), "metrics_calls": len(spent),
            "kneighbors_seconds": t_old, "retrieval_seconds": t_new, "speedup": t_old / t_new,
            "kneighbors": old, "retrieval": new}


def evaluate_part(rows: int) -> dict:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    from lossless_triplet.pipeline import fit_fault_model
    from lossless_triplet.training import TrainConfig

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = fit_fault_model(synthetic(11_700, 0), view="columns", representation="code",
                                config=TrainConfig(embedding_dim=16, epochs=6, steps_per_epoch=15), progress=False)
        model.save(tmp / "model")
        table = tmp / "big.csv"
        with pcsv.CSVWriter(table, pa.schema([(n, pa.float32()) for n in model.feature_names]
                                             + [("status", pa.string())])) as writer:
            for start in range(0, rows, 200_000):
                part = synthetic(min(200_000, rows - start), 100 + start)
                columns = {n: part.features[:, j] for j, n in enumerate(part.feature_names)}
                writer.write_table(pa.table(columns | {"status": np.asarray(CLASSES)[part.labels]}))
        size = table.stat().st_size
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "lossless_triplet", "evaluate", "--model", str(tmp / "model"),
                               "--data", str(table), "--label-column", "status", "--no-progress"],
                              capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode:
            raise RuntimeError(done.stderr)
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        result = json.loads(done.stdout)
    return {"rows": rows, "csv_mib": size / 2**20, "seconds": seconds, "peak_rss_mib": peak_mib,
            "retrieval_method": result.get("retrieval_method"), "retrieval_queries": result.get("retrieval_queries"),
            "map_at_r": result.get("map_at_r"), "map_at_r_se": result.get("map_at_r_se"),
            "accuracy": result["accuracy"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=("compare", "evaluate", "both"), default="both")
    p.add_argument("--rows", type=int, default=1_000_000, help="rows of the evaluated CSV")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    out = {}
    if args.part in ("compare", "both"):
        out["compare"] = compare_part()
        print(json.dumps(out["compare"], indent=1), flush=True)
    if args.part in ("evaluate", "both"):
        out["evaluate"] = evaluate_part(args.rows)
        print(json.dumps(out["evaluate"], indent=1), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
