"""Several prototypes per known status instead of one centroid: does the nearest member win?

Run by hand from the repository root (not part of the test suite); 2 cores: two protocols at once::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/prototypes.py --protocol kddi-fixed --out-json /tmp/p1.json &
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/prototypes.py --protocol kddi-anonymous --out-json /tmp/p2.json
    .venv/bin/python benchmarks/prototypes.py --render /tmp/p1.json /tmp/p2.json   # prints the Markdown table

The generalisation issue lifted DESIGN.md's one-centroid rule: a known status may keep several
prototypes. This measures, under the honest protocol of ``benchmarks/generalisation.py`` (every
run is ``compare_losses`` with ``train``'s defaults: view and representation chosen on the
training table, held-out classes masked out of everything training sees, the eval table read
once), three decision rules for the known statuses, each on three vector spaces:

- ``centroid``: the mean of the status's training rows (DESIGN.md; what the memory does);
- ``members``: the nearest of the rows a bounded memory keeps per status (all of them up to
  ``MAX_SAMPLE`` = 2048, then a seeded uniform sample, as ``FaultMemory`` keeps them);
- ``all rows``: the nearest of every training row (1-NN; unbounded, a reference only).

Vector spaces: standardised raw columns and the chosen view's features (no training), and what the
trained model's memory compares (its chosen representation). A held-out status is always its one
example (10 seeded draws per run, the same draws for every rule). Seeds 0-4; mean +- std over seeds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import generalisation  # noqa: E402  (benchmarks/generalisation.py: the protocols' tables)

RULES = ("centroid", "members", "all rows")
SPACES = ("raw columns", "view features", "train defaults")
CHUNK = 2048  # test rows per distance block


def _nearest(test: np.ndarray, reference: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(n_test,) label of each test row's nearest reference row (Euclidean), in row blocks."""
    from lossless_triplet.metrics import _squared_distances

    out = np.empty(len(test), dtype=labels.dtype)
    for start in range(0, len(test), CHUNK):
        out[start:start + CHUNK] = labels[_squared_distances(test[start:start + CHUNK], reference).argmin(axis=1)]
    return out


def _prototypes(vectors: np.ndarray, labels: np.ndarray, rule: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(prototypes, their labels) of every class in ``labels`` under ``rule``."""
    from lossless_triplet.memory import MAX_SAMPLE

    rows, names = [], []
    for c in np.unique(labels):
        members = vectors[labels == c]
        if rule == "centroid":
            members = members.mean(axis=0, keepdims=True)
        elif rule == "members" and len(members) > MAX_SAMPLE:  # the memory's rule: seed, count
            rng = np.random.default_rng([seed, len(members)])
            members = members[np.sort(rng.choice(len(members), MAX_SAMPLE, replace=False))]
        rows.append(members)
        names.append(np.full(len(members), c))
    return np.vstack(rows), np.concatenate(names)


def one_shot(train_x, train_y, test_x, test_y, heldout, seed: int, n_draws: int = 10) -> dict[str, dict]:
    """Macro-F1 and held-out accuracy of every rule (see the module docstring), same draws."""
    from lossless_triplet.metrics import _macro_f1, draw_heldout_examples

    train_x, test_x = np.asarray(train_x, np.float64), np.asarray(test_x, np.float64)
    classes, draws = draw_heldout_examples(train_y, heldout, n_draws=n_draws, seed=seed)
    known = ~np.isin(train_y, classes)
    is_new = np.isin(test_y, classes)
    out = {}
    for rule in RULES:
        protos, proto_y = _prototypes(train_x[known], train_y[known], rule, seed)
        f1s, accuracies = [], []
        for draw in draws:
            reference = np.vstack([protos, train_x[draw]])
            reference_y = np.concatenate([proto_y, train_y[draw]])
            predicted = _nearest(test_x, reference, reference_y)
            f1s.append(_macro_f1(test_y, predicted, np.unique(reference_y)))
            accuracies.append(float(np.mean(predicted[is_new] == test_y[is_new])))
        out[rule] = {"one_shot_macro_f1": float(np.mean(f1s)), "heldout_accuracy": float(np.mean(accuracies))}
    return out


def run(protocol: str, seeds, out_json: Path) -> list[dict]:
    """One record per seed: every (space, rule) pair's one-shot measures."""
    from lossless_triplet.defaults import EMBEDDING_DIM, TRAIN_STEPS, epochs_and_steps
    from lossless_triplet.pipeline import compare_losses, resolve_holdout
    from lossless_triplet.pipeline.selection import prepare_features
    from lossless_triplet.representation import Representation
    from lossless_triplet.training import TrainConfig

    train, test, folds = generalisation._tables(protocol, None)
    epochs, per_epoch = epochs_and_steps(TRAIN_STEPS)
    records = []
    for seed in seeds:
        started = time.perf_counter()
        config = TrainConfig(embedding_dim=EMBEDDING_DIM, epochs=epochs, steps_per_epoch=per_epoch, seed=seed)
        document, results = compare_losses(train, test, losses=["triplet"], holdout=folds[0], config=config,
                                           dataset_name=protocol, progress=False, retrieval=False)
        metrics = document["losses"]["triplet"]
        heldout = resolve_holdout(train.class_names, folds[0])
        known = ~np.isin(train.labels, heldout)
        spaces = {}
        for space, view in (("raw columns", "raw"), ("view features", metrics["view"]),
                            ("train defaults", metrics["view"])):
            prepared = prepare_features(train.features, train.feature_names, known, view)
            x_ref, x_test = prepared.reference(), prepared.transform(test.features)
            if space == "train defaults":
                rep = Representation.parse(metrics["representation"]).fit(prepared.x_known,
                                                                           prepared.view.invariant_features_)
                x_ref = rep.combine(results["triplet"].train_codes, x_ref)
                x_test = rep.combine(results["triplet"].test_codes, x_test)
            spaces[space] = one_shot(x_ref, train.labels[prepared.reference_order], x_test, test.labels,
                                     heldout, seed)
        records.append({"protocol": protocol, "seed": seed, "view": metrics["view"],
                        "representation": metrics["representation"], "spaces": spaces,
                        "check": {k: metrics[k] for k in ("one_shot_macro_f1", "heldout_accuracy")},
                        "seconds": time.perf_counter() - started})
        print(json.dumps(records[-1]), file=sys.stderr, flush=True)
        out_json.write_text(json.dumps(records, indent=1) + "\n")
    return records


def render(records: list[dict]) -> str:
    """A Markdown table: one row per (protocol, space), mean +- std over seeds per rule."""
    lines = ["| data | vectors | " + " | ".join(f"{r}: macro-F1 / held-out acc" for r in RULES) + " |",
             "|---|---|" + "---|" * len(RULES)]
    for protocol in dict.fromkeys(r["protocol"] for r in records):
        mine = [r for r in records if r["protocol"] == protocol]
        for space in SPACES:
            cells = []
            for rule in RULES:
                f1 = np.array([r["spaces"][space][rule]["one_shot_macro_f1"] for r in mine])
                acc = np.array([r["spaces"][space][rule]["heldout_accuracy"] for r in mine])
                cells.append(f"{f1.mean():.3f} ± {f1.std():.3f} / {acc.mean():.3f} ± {acc.std():.3f}")
            lines.append(f"| {protocol} ({len(mine)} seeds) | {space} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--protocol", choices=("kddi-fixed", "kddi-anonymous"), default="kddi-fixed")
    p.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds")
    p.add_argument("--out-json", type=Path, default=Path("/tmp/prototypes.json"))
    p.add_argument("--render", nargs="+", type=Path, metavar="JSON", help="print the table of these records")
    args = p.parse_args(argv)
    if args.render:
        print(render([r for path in args.render for r in json.loads(path.read_text())]))
        return
    run(args.protocol, [int(s) for s in args.seeds.split(",")], args.out_json)


if __name__ == "__main__":
    main()
