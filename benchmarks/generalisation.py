"""Does one-shot identification beat doing nothing on a network the model never saw? The honest protocol.

Run by hand from the repository root (not part of the test suite); 2 cores: run two halves at once::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/generalisation.py --protocols kddi-fixed,kddi-anonymous,openstack-lofo \\
        --out-json /tmp/g1.json &
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/generalisation.py --protocols kddi-lofo,nsl-lofo --out-json /tmp/g2.json
    .venv/bin/python benchmarks/generalisation.py --render /tmp/g1.json /tmp/g2.json   # -> benchmarks/results.md

Every run is ``compare_losses(..., losses=[--loss])`` with ``train``'s defaults (N = 16, its step
budget, ``view="auto"``, ``representation=None``): the view and the representation are chosen on
the training table by the inner leave-one-known-fault-out validation of
:mod:`lossless_triplet.pipeline.selection`, held-out classes are masked out of everything training sees,
history included, and the test table is read once. Beside it, the three baselines of every table:
nearest signature with no training on standardised raw columns and on the chosen view's features,
and a random forest given every training label (a supervised ceiling, not one-shot).

Protocols:

- ``kddi-fixed``: KDDI NFV train -> eval, node-down and interface-down held out.
- ``kddi-anonymous``: the same with every column renamed ``kpi_000``... in a shuffled order, as a
  table whose names carry no structure (the view can only be ``columns``-based).
- ``kddi-lofo``: KDDI train -> eval, each of the 6 fault types held out alone.
- ``openstack-lofo``: OpenStack DEPL event counts (raw counts), stratified 50/50 split (seed 0),
  each failure type held out alone.
- ``nsl-lofo``: NSL-KDD attack categories (8,000 / 4,000 rows, stratified subsample, raw numbers),
  each attack category held out alone.

Each protocol runs for every ``--seeds`` value (weights, batches, inner split, one-shot draws);
leave-one-out tables first average over the folds of a seed, then report mean +- std over seeds.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import datasets as bench_data  # noqa: E402  (benchmarks/datasets.py)

START, END = "<!-- generalisation:start -->", "<!-- generalisation:end -->"
PROTOCOLS = ("kddi-fixed", "kddi-anonymous", "kddi-lofo", "openstack-lofo", "nsl-lofo")
KDDI_HOLDOUT = ("node-down", "interface-down")
METHODS = ("default", "raw_columns", "view_features", "random_forest_ceiling")
METHOD_TITLES = {"default": "**`train` defaults** (view and representation chosen on training data)",
                 "raw_columns": "raw columns, standardised, no training",
                 "view_features": "the chosen view's features, no training",
                 "random_forest_ceiling": "random forest, all labels (ceiling, not one-shot)"}
KEYS = ("one_shot_macro_f1", "heldout_accuracy", "unknown_auroc")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _anonymous(train, test, seed: int = 0):
    """Both tables with columns renamed kpi_000... in one shuffled order (no name structure left)."""
    from lossless_triplet.data import Dataset

    order = np.random.default_rng(seed).permutation(train.n_features)
    names = tuple(f"kpi_{i:03d}" for i in range(train.n_features))

    def rename(d):
        return Dataset(d.features[:, order], d.labels, names, d.class_names, d.timestamps)

    return rename(train), rename(test)


def _tables(protocol: str, root):
    """``(train, test, folds)``: folds is a list of held-out class lists."""
    from lossless_triplet.data import KDDI_CLASSES, load_kddi_nfv

    if protocol.startswith("kddi"):
        train, test = load_kddi_nfv("train"), load_kddi_nfv("eval")
        if protocol == "kddi-anonymous":
            train, test = _anonymous(train, test)
        if protocol == "kddi-lofo":
            return train, test, [[c] for c in KDDI_CLASSES if c != "normal"]
        return train, test, [list(KDDI_HOLDOUT)]
    if protocol == "openstack-lofo":
        train, test = bench_data.load_openstack_depl(root, log1p=False, seed=0)
        counts_train, counts_test = train.class_counts(), test.class_counts()
        folds = [[c] for c in train.class_names if c != bench_data.OPENSTACK_NORMAL
                 and counts_train[c] >= 1 and counts_test[c] >= 1]
        return train, test, folds
    if protocol == "nsl-lofo":
        data = bench_data.load_nsl_kdd(root, max_train=8000, max_test=4000, seed=0, log1p=False)
        return data.train, data.test, [[c] for c in bench_data.NSL_KDD_CATEGORIES if c != "normal"]
    raise ValueError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")


def run(protocols, seeds, loss: str, root, out_json: Path, representation: str | None = None) -> dict:
    """Run every (protocol, fold, seed) and write the raw records to ``out_json`` after each one.

    ``representation`` fixes what the memory compares (an ablation; default: chosen per run)."""
    from lossless_triplet.defaults import EMBEDDING_DIM, TRAIN_STEPS, epochs_and_steps
    from lossless_triplet.pipeline.compare import compare_losses
    from lossless_triplet.training import TrainConfig

    epochs, per_epoch = epochs_and_steps(TRAIN_STEPS)
    records = []
    for protocol in protocols:
        train, test, folds = _tables(protocol, root)
        for seed in seeds:
            for holdout in folds:
                started = time.perf_counter()
                config = TrainConfig(embedding_dim=EMBEDDING_DIM, epochs=epochs, steps_per_epoch=per_epoch, seed=seed)
                document, _ = compare_losses(train, test, losses=[loss], holdout=holdout, config=config,
                                             representation=representation, dataset_name=protocol,
                                             progress=False, retrieval=False)
                metrics = document["losses"][loss]
                base = document["baselines"]
                record = {"protocol": protocol, "seed": seed, "holdout": holdout,
                          "view": metrics["view"], "representation": metrics["representation"],
                          "default": {k: metrics.get(k) for k in KEYS},
                          "raw_columns": {k: base["raw_columns"].get(k) for k in KEYS},
                          "view_features": {k: base[f"{metrics['view']}_features"].get(k) for k in KEYS},
                          "random_forest_ceiling": {k: base["random_forest_ceiling"].get(k) for k in KEYS},
                          "selection": document["config"]["selection"][loss],
                          "seconds": time.perf_counter() - started}
                records.append(record)
                _log(f"[{protocol} seed {seed} {'+'.join(holdout)}] {record['seconds']:.0f}s {record['view']} "
                     f"{record['representation']}: " + ", ".join(
                         f"{m} {_f(record[m]['one_shot_macro_f1']):.3f}/{_f(record[m]['heldout_accuracy']):.3f}"
                         for m in METHODS))
                out_json.write_text(json.dumps({"loss": loss, "representation": representation,
                                                "records": records}, indent=1) + "\n")
    return {"loss": loss, "representation": representation, "records": records}


def _f(value) -> float:
    return float("nan") if value is None else float(value)


def summarise(records: list[dict]) -> dict:
    """Per protocol and method: mean and std over seeds of the per-seed fold means."""
    out = {}
    for protocol in dict.fromkeys(r["protocol"] for r in records):
        rows = [r for r in records if r["protocol"] == protocol]
        seeds = sorted({r["seed"] for r in rows})
        table = {"seeds": seeds, "folds": sorted({"+".join(r["holdout"]) for r in rows}),
                 "choices": {}, "seconds": float(np.mean([r["seconds"] for r in rows]))}
        for r in rows:
            key = f"{r['view']} / {r['representation']}"
            table["choices"][key] = table["choices"].get(key, 0) + 1
        for method in METHODS:
            table[method] = {}
            for key in KEYS:
                per_seed = [np.nanmean([_f(r[method][key]) for r in rows if r["seed"] == s]) for s in seeds]
                per_seed = [v for v in per_seed if math.isfinite(v)]
                table[method][key] = (float(np.mean(per_seed)), float(np.std(per_seed))) if per_seed else None
        out[protocol] = table
    return out


def _cell(pair) -> str:
    return "—" if pair is None else f"{pair[0]:.3f} ± {pair[1]:.3f}"


def render(summary: dict, loss: str) -> str:
    """The markdown section for benchmarks/results.md."""
    lines = [START, "## Generalisation: the honest protocol (`benchmarks/generalisation.py`)", "",
             f"Loss `{loss}`, `train`'s defaults; mean ± std over seeds {', '.join(map(str, next(iter(summary.values()))['seeds']))} "
             "(leave-one-out: the mean over the folds of each seed). Every choice was made on the training "
             "table (inner leave-one-known-fault-out validation); the test table was read once per run.", ""]
    for protocol, table in summary.items():
        lines += [f"### {protocol}", "", f"Held out: {'; '.join(table['folds'])}. Chosen (view / representation: "
                  "runs): " + ", ".join(f"`{k}`: {v}" for k, v in table["choices"].items())
                  + f". Mean wall time per run {table['seconds']:.0f} s.", "",
                  "| method | one-shot macro-F1 | held-out accuracy | unknown AUROC |", "|---|---|---|---|"]
        for method in METHODS:
            cells = [_cell(table[method][k]) for k in KEYS]
            if method == "random_forest_ceiling":
                cells[2] = "—"
            lines.append(f"| {METHOD_TITLES[method]} | " + " | ".join(cells) + " |")
        best = max(("raw_columns", "view_features"), key=lambda m: table[m]["one_shot_macro_f1"][0])
        d_f1 = table["default"]["one_shot_macro_f1"][0] - table[best]["one_shot_macro_f1"][0]
        best_acc = max(table[m]["heldout_accuracy"][0] for m in ("raw_columns", "view_features"))
        d_acc = table["default"]["heldout_accuracy"][0] - best_acc
        lines += ["", f"Default minus the best no-training baseline: macro-F1 {d_f1:+.3f} (goal +0.05), "
                  f"held-out accuracy {d_acc:+.3f} (goal +0.10).", ""]
    lines.append(END)
    return "\n".join(lines)


def write_section(path: Path, body: str, start: str = START, end: str = END) -> None:
    """Replace the section between the markers ``start`` and ``end`` of ``path`` (``body`` holds them),
    or append it."""
    text = path.read_text() if path.exists() else ""
    if start in text and end in text:
        text = text[:text.index(start)] + body + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + body + "\n"
    path.write_text(text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--protocols", default=",".join(PROTOCOLS), help="comma-separated subset of " + ", ".join(PROTOCOLS))
    p.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds (>= 5 for a reported number)")
    p.add_argument("--loss", default="triplet", help="the loss trained (train's default: triplet)")
    p.add_argument("--representation", default=None,
                   help="fix what the memory compares, e.g. code (an ablation; default: chosen per run)")
    p.add_argument("--data-root", type=Path, default=bench_data.DEFAULT_DATA_ROOT, help="folder holding the data sets")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (1: two runs share 2 cores)")
    p.add_argument("--out-json", type=Path, default=HERE / "generalisation_results.json", help="raw records")
    p.add_argument("--render", type=Path, nargs="+", help="only render these JSON files into --out-md")
    p.add_argument("--out-md", type=Path, default=HERE / "results.md", help="results file whose section is rewritten")
    args = p.parse_args(argv)
    if args.render:
        documents = [json.loads(path.read_text()) for path in args.render]
        if any(d.get("representation") for d in documents):
            p.error("--render writes the defaults' section; ablation runs (--representation) are printed, not rendered")
        records = [r for d in documents for r in d["records"]]
        (HERE / "generalisation_results.json").write_text(
            json.dumps({"loss": documents[0]["loss"], "records": records}, indent=1) + "\n")
        body = render(summarise(records), documents[0]["loss"])
        write_section(args.out_md, body)
        print(body)
        return 0
    import torch

    torch.set_num_threads(args.threads)
    protocols = [x.strip() for x in args.protocols.split(",") if x.strip()]
    unknown = [x for x in protocols if x not in PROTOCOLS]
    if unknown:
        p.error(f"unknown protocol(s) {unknown}; choose from {', '.join(PROTOCOLS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    result = run(protocols, seeds, args.loss, args.data_root, args.out_json, args.representation)
    print(render(summarise(result["records"]), args.loss))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
