"""Why does the lossless loss trail the triplet loss? Measured, then the seed's own knob tried.

Run by hand from the repository root (not part of the test suite); 2 cores, two halves at once::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lossless_beta.py curve --datasets kddi,openstack \\
        --out-json /tmp/beta1.json &
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lossless_beta.py curve --datasets nsl --out-json /tmp/beta2.json
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lossless_beta.py diagnose --out-json benchmarks/lossless_diagnostics.json
    .venv/bin/python benchmarks/lossless_beta.py render /tmp/beta1.json /tmp/beta2.json \\
        --diagnostics benchmarks/lossless_diagnostics.json   # -> results.md section, docs/lossless_beta.png

``diagnose`` (KDDI train split, seed 0): trains the triplet loss and the lossless loss at beta = N
and beta = 4N with ``train``'s budget and records, after every epoch, on one fixed P x K batch of
training rows:

- the share of the gradient (with respect to the codes) that comes through d(a,p), the rest
  coming through d(a,n): sum over triplets of the loss with d(a,n) held fixed, and vice versa;
- the share of triplets whose gradient is not 0 (the hinge's active set; 1 for the lossless loss);
- how close codes sit to the cube's corners: the share of code units within 0.01 of 0 or 1 (the
  sigmoid is saturated there and passes almost no gradient back), over all training rows;
- the quantiles of d(a,p)/N and d(a,n)/N over the batch's triplets.

``curve`` (KDDI fixed split; OpenStack and NSL-KDD with their largest fault class held out, a rule
fixed before any run), seeds 0-4: for the triplet loss and the lossless loss at beta = N, 2N, 4N,
8N (N = 16) and at beta = N with N = 8 and 32, each run gives

- the inner score: the leave-one-known-fault-out one-shot validation of ``train``'s selection on
  the TRAINING table only (:func:`lossless_triplet.pipeline.selection.select`), and
- the eval score: one-shot macro-F1 and held-out accuracy on the test table, read once.

Every run compares codes alone (representation ``code``: what the loss shapes) on the view the
selection chooses for the triplet loss on the training table (seed 0), the same for every loss.
The beta reported as "chosen" is the one with the best inner score per data set and seed: a choice
made on training data only.
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

import datasets as bench_data  # noqa: E402  (benchmarks/datasets.py)
from generalisation import write_section  # noqa: E402  (benchmarks/generalisation.py)

START, END = "<!-- lossless-beta:start -->", "<!-- lossless-beta:end -->"
DATASETS = ("kddi", "openstack", "nsl")
BETAS = (1, 2, 4, 8)  # beta = k N at N = 16
WIDTHS = (8, 32)  # N tried at beta = N
DIAGNOSED = ("triplet", "lossless", "lossless:beta=4N")
PLOT = HERE.parent / "docs" / "lossless_beta.png"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _tables(dataset: str, root: Path):
    """``(train, test, holdout names)``: KDDI's fixed split; elsewhere the largest fault class held out."""
    from lossless_triplet.data import load_kddi_nfv

    if dataset == "kddi":
        return load_kddi_nfv("train"), load_kddi_nfv("eval"), ["node-down", "interface-down"]
    if dataset == "openstack":
        train, test = bench_data.load_openstack_depl(root, log1p=False, seed=0)
        normal = bench_data.OPENSTACK_NORMAL
    elif dataset == "nsl":
        data = bench_data.load_nsl_kdd(root, max_train=8000, max_test=4000, seed=0, log1p=False)
        train, test, normal = data.train, data.test, "normal"
    else:
        raise ValueError(f"unknown data set {dataset!r}; choose from {', '.join(DATASETS)}")
    counts = train.class_counts()
    largest = max((c for c in train.class_names if c != normal and test.class_counts()[c]), key=counts.get)
    return train, test, [largest]


def candidates() -> list[tuple[str, int]]:
    """(loss name, N) of every curve point."""
    return ([("triplet", 16)] + [(f"lossless:beta={k}N", 16) for k in BETAS]
            + [("lossless", n) for n in WIDTHS])


def _config(n: int, seed: int):
    from lossless_triplet.defaults import TRAIN_STEPS, epochs_and_steps
    from lossless_triplet.training import TrainConfig

    epochs, per_epoch = epochs_and_steps(TRAIN_STEPS)
    return TrainConfig(embedding_dim=n, epochs=epochs, steps_per_epoch=per_epoch, seed=seed)


def curve(datasets, seeds, root: Path, out_json: Path) -> list[dict]:
    """Inner (training-only) and eval scores of every candidate, data set and seed."""
    from lossless_triplet.pipeline import compare_losses, resolve_holdout
    from lossless_triplet.pipeline.selection import choose, select

    records = []
    for dataset in datasets:
        train, test, holdout = _tables(dataset, root)
        known = ~np.isin(train.labels, resolve_holdout(train.class_names, holdout))
        view = choose(train, known, view="auto", representation="code", time_ordered=train.is_time_ordered,
                      loss="triplet", config=_config(16, 0)).view
        _log(f"[{dataset}] view {view}, held out {holdout}")
        for seed in seeds:
            for loss, n in candidates():
                started = time.perf_counter()
                config = _config(n, seed)
                inner = select(train.features, train.feature_names, train.labels, known, views=[view], loss=loss,
                               config=config, representations=["code"], class_names=train.class_names)
                document, _ = compare_losses(train, test, losses=[loss], holdout=holdout, view=view,
                                             representation="code", config=config, dataset_name=dataset,
                                             progress=False, retrieval=False)
                metrics = document["losses"][loss]
                records.append({"dataset": dataset, "seed": seed, "loss": loss, "n": n, "view": view,
                                "holdout": holdout, "inner": inner.scores[view]["code"],
                                "one_shot_macro_f1": metrics["one_shot_macro_f1"],
                                "heldout_accuracy": metrics["heldout_accuracy"],
                                "compactness": metrics.get("compactness"),
                                "seconds": time.perf_counter() - started})
                _log(f"[{dataset} seed {seed}] {loss} N={n}: inner {records[-1]['inner']:.3f}, eval "
                     f"{metrics['one_shot_macro_f1']:.3f}/{metrics['heldout_accuracy']:.3f} "
                     f"({records[-1]['seconds']:.0f}s)")
                out_json.write_text(json.dumps({"records": records}, indent=1) + "\n")
    return records


def _gradient_shares(loss_name: str, codes, labels, n: int) -> dict:
    """Gradient of the batch-all loss w.r.t. the codes through d(a,p) alone and d(a,n) alone."""
    import torch

    from lossless_triplet.losses import make_loss
    from lossless_triplet.mining import all_triplets

    module = make_loss(loss_name, embedding_dim=n, reduction="none")
    a, p, neg = all_triplets(labels)
    out = {}
    for side in ("positive", "negative"):
        x = codes.detach().clone().requires_grad_(True)
        fixed = x.detach()
        # The loss sees x on one side of each triplet and the fixed copy on the other.
        anchors, positives, negatives = (x[a], x[p], fixed[neg]) if side == "positive" else (x[a], fixed[p], x[neg])
        triplet_codes = torch.cat([anchors, positives, negatives])
        rows = torch.arange(len(a))
        # Explicit triplets (a, p, n) in the stacked batch: a_i, T + i, 2T + i.
        module(triplet_codes, torch.cat([labels[a], labels[a], labels[neg]]),
               (rows, rows + len(a), rows + 2 * len(a))).sum().backward()
        out[side] = float(x.grad.norm())
    return out


def diagnose(root: Path, out_json: Path, seed: int = 0) -> dict:
    """Per epoch, for each diagnosed loss: gradient shares, active share, saturation, d/N quantiles."""
    import torch

    from lossless_triplet.distances import pairwise_squared_distances
    from lossless_triplet.models import encode
    from lossless_triplet.pipeline import resolve_holdout
    from lossless_triplet.pipeline.selection import choose, prepare_features
    from lossless_triplet.training import BalancedBatchSampler, train_encoder

    train, _, holdout = _tables("kddi", root)
    known = ~np.isin(train.labels, resolve_holdout(train.class_names, holdout))
    config = _config(16, seed)
    view = choose(train, known, view="auto", representation="code", time_ordered=train.is_time_ordered,
                  loss="triplet", config=config).view
    prepared = prepare_features(train.features, train.feature_names, known, view)
    x, y = prepared.x_known, train.labels[known]
    batch = BalancedBatchSampler(y, config.classes_per_batch, config.samples_per_class, seed=seed + 1).sample()
    bx, by = torch.from_numpy(x[batch]), torch.from_numpy(y[batch])
    same = by.unsqueeze(0) == by.unsqueeze(1)
    positive = same & ~torch.eye(len(by), dtype=torch.bool)
    result = {"view": view, "seed": seed, "n": config.embedding_dim, "losses": {}}
    for loss in DIAGNOSED:
        epochs = []

        def on_epoch(epoch, model, record, loss=loss, epochs=epochs):
            with torch.no_grad():
                codes = model(bx)
                all_codes = torch.from_numpy(encode(model, x))
            shares = _gradient_shares(loss, codes, by, config.embedding_dim)
            d = pairwise_squared_distances(codes.double()) / config.embedding_dim
            d_ap, d_an = d[positive], d[~same]
            if loss == "triplet":
                # Active: some negative inside d(a,p) + margin (its hinge passes a gradient).
                gap = d.unsqueeze(2) * config.embedding_dim - d.unsqueeze(1) * config.embedding_dim + 0.2
                valid = positive.unsqueeze(2) & ~same.unsqueeze(1)
                active = float((gap[valid] > 0).double().mean())
            else:
                active = 1.0
            epochs.append({"epoch": epoch, "train_loss": record["train_loss"],
                           "positive_share": shares["positive"] / (shares["positive"] + shares["negative"]),
                           "active_share": active,
                           "saturated_share": float(((all_codes < 0.01) | (all_codes > 0.99)).double().mean()),
                           "d_ap_over_n": [float(q) for q in torch.quantile(d_ap, torch.tensor([.1, .5, .9],
                                                                                              dtype=d.dtype))],
                           "d_an_over_n": [float(q) for q in torch.quantile(d_an, torch.tensor([.1, .5, .9],
                                                                                              dtype=d.dtype))]})

        from lossless_triplet.losses import make_loss

        train_encoder(x, y, make_loss(loss, embedding_dim=config.embedding_dim), config, progress=False,
                      on_epoch=on_epoch)
        result["losses"][loss] = epochs
        last = epochs[-1]
        _log(f"[diagnose] {loss}: positive share {last['positive_share']:.2f}, active {last['active_share']:.2f}, "
             f"saturated {last['saturated_share']:.2f}, d_ap/N {last['d_ap_over_n'][1]:.3f}, "
             f"d_an/N {last['d_an_over_n'][1]:.3f}")
    out_json.write_text(json.dumps(result, indent=1) + "\n")
    return result


def summarise(records: list[dict]) -> dict:
    """Per data set: per candidate mean +- std (over seeds) of inner and eval scores, and the
    candidate chosen per seed by the inner score among the lossless betas."""
    out = {}
    for dataset in dict.fromkeys(r["dataset"] for r in records):
        rows = [r for r in records if r["dataset"] == dataset]
        seeds = sorted({r["seed"] for r in rows})
        table = {"seeds": seeds, "view": rows[0]["view"], "holdout": rows[0]["holdout"], "candidates": {}}
        for loss, n in candidates():
            mine = [r for r in rows if r["loss"] == loss and r["n"] == n]
            if mine:
                table["candidates"][f"{loss} N={n}"] = {
                    k: (float(np.mean([r[k] for r in mine])), float(np.std([r[k] for r in mine])))
                    for k in ("inner", "one_shot_macro_f1", "heldout_accuracy")}
        chosen = []
        for seed in seeds:
            betas = [r for r in rows if r["seed"] == seed and r["loss"].startswith("lossless:beta")]
            if betas:
                chosen.append(max(betas, key=lambda r: r["inner"]))
        if chosen:
            table["chosen"] = {"betas": [r["loss"].split("=")[1] for r in chosen],
                               **{k: (float(np.mean([r[k] for r in chosen])), float(np.std([r[k] for r in chosen])))
                                  for k in ("one_shot_macro_f1", "heldout_accuracy")}}
        out[dataset] = table
    return out


def _cell(pair) -> str:
    return f"{pair[0]:.3f} ± {pair[1]:.3f}"


def render(summary: dict, diagnostics: dict | None) -> str:
    """The markdown section for benchmarks/results.md."""
    lines = [START, "## Why the lossless loss trails, and beta (`benchmarks/lossless_beta.py`)", ""]
    if diagnostics:
        lines += [f"Diagnostics (KDDI train split, view `{diagnostics['view']}`, N = {diagnostics['n']}, seed "
                  f"{diagnostics['seed']}; one fixed P x K batch; first, middle and last epoch):", "",
                  "| loss | epoch | share of gradient via d(a,p) | triplets with a gradient | code units "
                  "saturated (<0.01 or >0.99) | d(a,p)/N q10/50/90 | d(a,n)/N q10/50/90 |",
                  "|---|---|---|---|---|---|---|"]
        for loss, epochs in diagnostics["losses"].items():
            for e in (epochs[0], epochs[len(epochs) // 2], epochs[-1]):
                lines.append(f"| {loss} | {e['epoch']} | {e['positive_share']:.2f} | {e['active_share']:.2f} | "
                             f"{e['saturated_share']:.2f} | " + "/".join(f"{q:.3f}" for q in e["d_ap_over_n"])
                             + " | " + "/".join(f"{q:.3f}" for q in e["d_an_over_n"]) + " |")
        lines.append("")
    for dataset, table in summary.items():
        lines += [f"### {dataset}", "", f"View `{table['view']}` (chosen for the triplet loss on the training "
                  f"table), held out {', '.join(table['holdout'])}, codes alone, seeds "
                  f"{', '.join(map(str, table['seeds']))}.", "",
                  "| loss | inner score (training only) | one-shot macro-F1 (eval) | held-out accuracy (eval) |",
                  "|---|---|---|---|"]
        for name, cells in table["candidates"].items():
            lines.append(f"| `{name}` | {_cell(cells['inner'])} | {_cell(cells['one_shot_macro_f1'])} | "
                         f"{_cell(cells['heldout_accuracy'])} |")
        if "chosen" in table:
            chosen = table["chosen"]
            lines.append(f"| lossless, beta chosen by the inner score ({', '.join(chosen['betas'])}) | — | "
                         f"{_cell(chosen['one_shot_macro_f1'])} | {_cell(chosen['heldout_accuracy'])} |")
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def plot(summary: dict, path: Path) -> None:
    """Eval one-shot macro-F1 against beta / N per data set, the triplet loss as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(summary), figsize=(4.2 * len(summary), 3.4), squeeze=False)
    for ax, (dataset, table) in zip(axes[0], summary.items()):
        for key, style, label in (("one_shot_macro_f1", "o-", "eval macro-F1"), ("inner", "s--", "inner score")):
            points = [(k, table["candidates"][f"lossless:beta={k}N N=16"][key]) for k in BETAS
                      if f"lossless:beta={k}N N=16" in table["candidates"]]
            ax.errorbar([k for k, _ in points], [m for _, (m, _) in points], yerr=[s for _, (_, s) in points],
                        fmt=style, capsize=3, label=f"lossless, {label}")
            triplet = table["candidates"].get("triplet N=16")
            if triplet:
                ax.axhline(triplet[key][0], color="C3" if key == "one_shot_macro_f1" else "C2",
                           linestyle=":" if key == "inner" else "-", label=f"triplet, {label}")
        ax.set_xscale("log", base=2)
        ax.set_xticks(BETAS, [f"{k}N" for k in BETAS])
        ax.set_xlabel("beta")
        ax.set_title(dataset)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("score (mean ± std over seeds)")
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("curve", help="inner and eval scores of every beta / N and the triplet loss")
    c.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated subset of " + ", ".join(DATASETS))
    c.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds (>= 5 for a reported number)")
    c.add_argument("--out-json", type=Path, default=HERE / "lossless_beta.json", help="raw records")
    d = sub.add_parser("diagnose", help="gradient shares, saturation and distances over training (KDDI)")
    d.add_argument("--out-json", type=Path, default=HERE / "lossless_diagnostics.json")
    r = sub.add_parser("render", help="write the results.md section and the README plot from curve records")
    r.add_argument("records", type=Path, nargs="+", help="curve JSON files")
    r.add_argument("--diagnostics", type=Path, help="diagnose JSON file")
    r.add_argument("--out-md", type=Path, default=HERE / "results.md")
    for q in (c, d):
        q.add_argument("--data-root", type=Path, default=bench_data.DEFAULT_DATA_ROOT)
        q.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (1: two runs share 2 cores)")
    args = p.parse_args(argv)
    if args.command == "render":
        records = [rec for path in args.records for rec in json.loads(path.read_text())["records"]]
        (HERE / "lossless_beta.json").write_text(json.dumps({"records": records}, indent=1) + "\n")
        diagnostics = json.loads(args.diagnostics.read_text()) if args.diagnostics else None
        summary = summarise(records)
        body = render(summary, diagnostics)
        write_section(args.out_md, body, START, END)
        plot(summary, PLOT)
        print(body)
        return 0
    import torch

    torch.set_num_threads(args.threads)
    if args.command == "diagnose":
        diagnose(args.data_root, args.out_json)
        return 0
    datasets = [x.strip() for x in args.datasets.split(",") if x.strip()]
    if unknown := [x for x in datasets if x not in DATASETS]:
        p.error(f"unknown data set(s) {unknown}; choose from {', '.join(DATASETS)}")
    curve(datasets, [int(s) for s in args.seeds.split(",")], args.data_root, args.out_json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
