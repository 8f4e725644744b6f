"""The generalisation issue's last check: the command line, with its defaults, on a table with no name structure.

Run by hand from the repository root (not part of the test suite; about 10 minutes for 5 seeds
on the 2-core machine)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/unseen_table.py --seeds 0,1,2,3,4 [--out-json /tmp/unseen.json]

A new user's path, through the installed ``lossless-triplet`` command and nothing else:

1. The KDDI train and eval tables are written as CSV with every column renamed ``kpi_000``... in
   one shuffled order (``benchmarks/generalisation.py``'s anonymous protocol): nothing in a name
   says which router, link or KPI a column belongs to. The rows are one network's minutes in order.
2. ``train --data train.csv --label-column status --holdout node-down,interface-down
   --time-ordered --seed S --out model/``: every default, the view and the representation chosen
   by ``train`` itself on the training table.
3. For each held-out fault, ONE labelled row drawn (seeded) from the training table, given with the
   minutes before it as context (``add-fault --label-column status``: the context rows are
   labelled ``context``, so only the example is added).
4. ``detect --data eval.csv``: one prediction per eval row; the ``nearest`` column (nearest
   signature, as the protocol's one-shot measure) and ``status`` (with ``unknown``) are scored.

Beside it, the baseline the issue names: nearest signature on standardised raw columns (the
centroid of each known status over the training rows, and the SAME one example per new fault),
with no training. Macro-F1 over the seven statuses and accuracy on the rows of the two new faults;
mean +- std over seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import generalisation  # noqa: E402  (benchmarks/generalisation.py: the protocols' tables)

HOLDOUT = ("node-down", "interface-down")
CONTEXT_ROWS = 20  # minutes before the example given as context (the baseline view looks back 10)
CLI = [sys.executable, "-m", "lossless_triplet"]


def _frame(data, with_labels: bool):
    import pandas as pd

    frame = pd.DataFrame(data.features, columns=list(data.feature_names))
    if with_labels:
        frame["status"] = np.asarray(data.class_names, dtype=object)[data.labels]
    return frame


def _run(*args: str) -> None:
    done = subprocess.run([*CLI, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=os.environ)
    if done.returncode:
        raise SystemExit(f"lossless-triplet {args[0]} failed ({done.returncode}): {done.stderr.strip()}")


def _scores(truth: np.ndarray, predicted: np.ndarray, labels) -> dict[str, float]:
    from sklearn.metrics import f1_score

    new = np.isin(truth, HOLDOUT)
    return {"macro_f1": float(f1_score(truth, predicted, labels=list(labels), average="macro", zero_division=0)),
            "heldout_accuracy": float(np.mean(predicted[new] == truth[new]))}


def _raw_baseline(train, test, example_rows: dict[str, int]) -> np.ndarray:
    """Nearest signature on standardised raw columns: known centroids, one example per new fault."""
    from lossless_triplet.data import Standardizer

    names = np.asarray(train.class_names, dtype=object)
    known = ~np.isin(names[train.labels], HOLDOUT)
    scaler = Standardizer().fit(train.features[known])
    x_train, x_test = scaler.transform(train.features), scaler.transform(test.features)
    statuses = [c for c in train.class_names if c not in HOLDOUT]
    reps = [x_train[known & (names[train.labels] == c)].mean(axis=0) for c in statuses]
    reps += [x_train[row] for row in example_rows.values()]
    reps = np.stack(reps)
    nearest = ((x_test[:, None, :] - reps[None]) ** 2).sum(axis=2).argmin(axis=1)
    return np.asarray([*statuses, *example_rows], dtype=object)[nearest]


def run_seed(seed: int, train, test, work: Path) -> dict:
    """One seed's CLI path and raw baseline (see the module docstring)."""
    import pandas as pd

    train_csv, eval_csv, model = work / "train.csv", work / "eval.csv", work / "model"
    _frame(train, True).to_csv(train_csv, index=False)
    _frame(test, False).to_csv(eval_csv, index=False)
    started = time.perf_counter()
    _run("train", "--data", str(train_csv), "--label-column", "status", "--holdout", ",".join(HOLDOUT),
         "--time-ordered", "--seed", str(seed), "--no-progress", "--out", str(model))
    train_seconds = time.perf_counter() - started
    names = np.asarray(train.class_names, dtype=object)[train.labels]
    rng = np.random.default_rng([seed, 11])
    examples = {}
    for fault in HOLDOUT:
        rows = np.flatnonzero(names == fault)
        row = int(rows[rng.integers(len(rows))])
        examples[fault] = row
        context = _frame(train, True).iloc[max(0, row - CONTEXT_ROWS):row + 1].copy()
        context["status"] = ["context"] * (len(context) - 1) + [fault]  # the minutes before: read, not added
        path = work / f"example-{fault}.csv"
        context.to_csv(path, index=False)
        _run("add-fault", "--model", str(model), "--data", str(path), "--name", fault, "--label-column", "status")
    predictions = work / "predictions.csv"
    _run("detect", "--model", str(model), "--data", str(eval_csv), "--out", str(predictions), "--no-progress")
    out = pd.read_csv(predictions, keep_default_na=False)
    truth = np.asarray(test.class_names, dtype=object)[test.labels]
    chosen = json.loads((model / "model.json").read_text()).get("selection", {})
    return {"seed": seed, "examples": examples, "train_seconds": round(train_seconds, 1),
            "view": chosen.get("view"), "representation": chosen.get("representation"),
            "cli_nearest": _scores(truth, out["nearest"].to_numpy(dtype=object), train.class_names),
            "cli_status": _scores(truth, out["status"].to_numpy(dtype=object), train.class_names),
            "raw_columns": _scores(truth, _raw_baseline(train, test, examples), train.class_names)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds (>= 5 for a reported number)")
    p.add_argument("--out-json", type=Path, default=Path("/tmp/unseen_table.json"), help="raw records")
    args = p.parse_args(argv)
    train, test, _ = generalisation._tables("kddi-anonymous", None)
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in (int(s) for s in args.seeds.split(",")):
            work = Path(tmp) / f"seed{seed}"
            work.mkdir()
            records.append(run_seed(seed, train, test, work))
            print(json.dumps(records[-1]), file=sys.stderr, flush=True)
            args.out_json.write_text(json.dumps(records, indent=1) + "\n")
    print("| method | macro-F1 | held-out accuracy |\n|---|---|---|")
    for key, title in (("cli_nearest", "`train` + `add-fault` (one row) + `detect`, nearest signature"),
                       ("cli_status", "the same, `status` (unknown counts as wrong)"),
                       ("raw_columns", "raw columns, standardised, no training")):
        f1 = np.array([r[key]["macro_f1"] for r in records])
        acc = np.array([r[key]["heldout_accuracy"] for r in records])
        print(f"| {title} | {f1.mean():.3f} ± {f1.std():.3f} | {acc.mean():.3f} ± {acc.std():.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
