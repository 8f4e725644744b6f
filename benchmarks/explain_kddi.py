"""Do ``element`` / ``evidence`` name the failed router? KDDI's label-leak files as ground truth.

Run by hand from the repository root (not part of the test suite)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/explain_kddi.py --out-json benchmarks/explain_results.json

KDDI's ``failure-nodes.tsv`` and ``failure-interfaces.tsv`` (rows in ``label.tsv`` order) name the
failed router or interface of every node-down and interface-down minute. They stay labels: they
become a ``failed`` column (the router; an interface ``TR-01_Gi2`` gives ``TR-01``) used only by
``evaluate --explain --truth-column failed``. A minute is a hit when the failed router is the
``element`` or appears in one of the top-3 evidence columns.

1. ``train`` with its defaults on the KDDI train split, every status known; ``evaluate --explain``
   on the eval split.
2. The same with node-down and interface-down held out, each then added from ONE labelled row of
   the train split (``add-fault``), then ``evaluate --explain``.
3. ``detect`` throughput on 100,000 KDDI-width rows with and without evidence (the model of 1, and
   the same model with its explainer removed), side by side in one run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "kddi-nfv-ps032"


def failed_router(split: str) -> np.ndarray:
    """(n,) str: the failed router of each minute of ``split`` ("" when none), from the leak files."""
    nodes = pd.read_csv(ROOT / split / "failure-nodes.tsv", sep="\t", index_col=0).drop(columns=["timestamp", "status"])
    faces = pd.read_csv(ROOT / split / "failure-interfaces.tsv", sep="\t", index_col=0).drop(
        columns=["timestamp", "status"])
    out = []
    for (_, node_row), (_, face_row) in zip(nodes.iterrows(), faces.iterrows()):
        routers = sorted(set(nodes.columns[node_row.to_numpy() == 1])
                         | {c.split("_")[0] for c in faces.columns[face_row.to_numpy() == 1]})
        out.append(routers[0] if len(routers) == 1 else "")
    return np.array(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out-json", type=Path, default=Path(__file__).resolve().parent / "explain_results.json")
    p.add_argument("--rows", type=int, default=100_000, help="rows for the throughput comparison")
    args = p.parse_args(argv)

    import torch

    from lossless_triplet.bundle import FaultModel
    from lossless_triplet.data import load_kddi_nfv
    from lossless_triplet.pipeline import fit_fault_model
    from lossless_triplet.pipeline.detect import detect_file, evaluate_file

    torch.set_num_threads(2)
    train, evaluation = load_kddi_nfv("train"), load_kddi_nfv("eval")
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        table = evaluation.to_frame("status")
        table["failed"] = failed_router("eval")
        table.to_csv(tmp / "eval.csv", index=False)
        model = fit_fault_model(train, progress=False)
        result["all_known"] = evaluate_file(model, tmp / "eval.csv", "status", truth_column="failed")["explanation"]
        held = fit_fault_model(train, holdout=["node-down", "interface-down"], progress=False)
        for status in ("node-down", "interface-down"):
            row = np.flatnonzero(train.labels == train.class_names.index(status))[0]
            start = max(0, row - held.history_rows)  # the row with the minutes before it as context
            held.add_fault(status, train.features[start:row + 1], examples=np.arange(start, row + 1) == row)
        result["added_from_one_row"] = evaluate_file(held, tmp / "eval.csv", "status",
                                                     truth_column="failed")["explanation"]
        big = pd.DataFrame(evaluation.features[np.arange(args.rows) % len(evaluation)], columns=evaluation.feature_names)
        big.to_csv(tmp / "big.csv", index=False)
        plain = FaultModel(model.view, model.scaler, model.encoder, model.memory, model.info, model.representation)
        seconds = {}
        for name, which in (("without_evidence", plain), ("with_evidence", model)) * 3:  # interleaved, best of 3
            started = time.perf_counter()
            detect_file(which, tmp / "big.csv", tmp / f"{name}.csv", progress=False)
            seconds[name] = min(seconds.get(name, np.inf), time.perf_counter() - started)
        result["detect_rows_per_s"] = {name: args.rows / s for name, s in seconds.items()}
        result["detect_slowdown"] = seconds["with_evidence"] / seconds["without_evidence"]
        result["view"], result["representation"] = model.view.name, model.representation.name
    args.out_json.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
