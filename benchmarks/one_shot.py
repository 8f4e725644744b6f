"""The evaluation-protocol benchmark: one-shot recognition and unknown detection, every loss, three data sets.

Run by hand from the repository root (not part of the test suite)::

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/one_shot.py            # full run, writes the results
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/one_shot.py --quick    # smoke run, prints only

Protocols (DESIGN.md "Metric definitions"; every loss, same TrainConfig within a table, plus
the no-training baseline = the view's standardised features with nearest signature):

- KDDI NFV (bundled), fixed split: train split -> eval split, node-down + interface-down held
  out; views raw, kpi-stats, kpi-stats+delta, kpi-stats+link, kpi-stats+link+baseline at
  N = 16, and the raw view at N = 3 too (the seed project's setting).
- KDDI NFV, leave-one-class-out: each fault type (not normal) held out alone, on the view with
  the best mean one-shot macro-F1 of the trained losses at N = 16 on the fixed split; mean +/- std
  over the held-out types.
- OpenStack failures, DEPL campaign: stratified 50/50 split (seed), leave-one-class-out over
  the failure types (not "No Failure"), view raw, log1p counts (see datasets.py).
- NSL-KDD: classes = attack categories; (a) all categories trained, test rows whose attack
  name never occurs in the train file are "unseen faults": AUROC of unseen vs other test rows
  with the fault memory of the trained codes; (b) leave-one-category-out as above.
  Train and test subsampled (stratified by attack name, seeded) to ``--nsl-max-train`` /
  ``--nsl-max-test`` rows.

Budget: every trained row uses ``TrainConfig(embedding_dim=N, epochs=--epochs,
steps_per_epoch=--steps, seed=--seed)``, other fields at their defaults. Most of the wall time
is evaluation, not training (``retrieval_metrics`` on 5,333 KDDI eval rows takes ~10 s per
representation on a busy core), which is why NSL-KDD's test set is capped at 4,000 rows.
``--threads`` (default 2) is ``torch.set_num_threads``; on a machine whose cores are already
busy, 1 thread trains ~10x faster than 2 (OpenMP workers spin against other processes).

Writes its own section of ``benchmarks/results.md`` (between ``<!-- one_shot:start -->`` and
``<!-- one_shot:end -->``; other sections are left alone) and ``benchmarks/one_shot_results.json``
(every number, including the full ``compare_losses`` documents of every fold).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import datasets as bench_data  # noqa: E402  (benchmarks/datasets.py)

START, END = "<!-- one_shot:start -->", "<!-- one_shot:end -->"
LOSSES = ("triplet", "linear_lossless", "lossless", "contrastive")
BASELINE = "baseline"
KDDI_FIXED_HOLDOUT = ("node-down", "interface-down")
METRIC_KEYS = ("one_shot_macro_f1", "heldout_accuracy", "unknown_auroc", "precision_at_1", "map_at_r")


# --------------------------------------------------------------------------- helpers


def _f(value) -> float:
    """float, with None (JSON null) as NaN."""
    return float("nan") if value is None else float(value)


def _mean_std(values) -> tuple[float, float]:
    values = np.array([_f(v) for v in values], dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    return float(values.mean()), float(values.std())


def _fmt(mean, std=None) -> str:
    if mean is None or not math.isfinite(mean):
        return "—"
    if std is None or not math.isfinite(std):
        return f"{mean:.3f}"
    return f"{mean:.3f} ± {std:.3f}"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def standardised_baseline(train, test, view: str = "raw"):
    """(train_x, test_x): the view's features, standardised on all training rows, as compare_losses does."""
    from lossless_triplet.data import Standardizer
    from lossless_triplet.data.views import FeatureView

    feature_view = FeatureView(view).fit(train.features, train.feature_names)
    x_train, x_test = feature_view.transform(train.features), feature_view.transform(test.features)
    scaler = Standardizer().fit(x_train)
    return scaler.transform(x_train), scaler.transform(x_test)


def view_baseline(document: dict) -> dict:
    """The no-training row of a compare_losses document: nearest signature on the view's features."""
    return document["baselines"][f"{document['config']['view']}_features"]


def unseen_auroc(train_codes, train_labels, test_codes, is_unseen) -> float:
    """AUROC of telling ``is_unseen`` test rows from the other test rows.

    Uses :func:`lossless_triplet.pipeline.compare.unknown_auroc` (a FaultMemory fitted on every
    training code, scored by ``unknown_score``): the unseen rows get the pseudo-class -1, which
    no training row has, and that pseudo-class is the "held-out" one. NaN when all or no test
    rows are unseen.
    """
    from lossless_triplet.pipeline.compare import unknown_auroc

    is_unseen = np.asarray(is_unseen, dtype=bool)
    pseudo = np.where(is_unseen, -1, 0)
    return unknown_auroc(np.asarray(train_codes), np.asarray(train_labels), np.asarray(test_codes), pseudo, [-1])


# --------------------------------------------------------------------------- running


class Runner:
    def __init__(self, args):
        from lossless_triplet.training import TrainConfig

        self.args = args
        self.losses = tuple(args.losses)
        self.TrainConfig = TrainConfig
        self.tables: list[dict] = []

    def config(self, dim: int):
        a = self.args
        return self.TrainConfig(embedding_dim=dim, epochs=a.epochs, steps_per_epoch=a.steps, seed=a.seed)

    def compare(self, train, test, holdout, view, dim, name, tag):
        from lossless_triplet.pipeline.compare import compare_losses

        started = time.perf_counter()
        document, results = compare_losses(
            train, test, losses=self.losses, holdout=list(holdout), view=view, config=self.config(dim),
            n_draws=self.args.draws, dataset_name=name, progress=False,
        )
        seconds = time.perf_counter() - started
        best = max(self.losses, key=lambda k: _f(document["losses"][k]["one_shot_macro_f1"]))
        _log(f"  [{tag}] holdout={list(holdout) or '-'} view={view} N={dim}: {seconds:.0f}s; "
             f"best one-shot F1 {best} {_f(document['losses'][best]['one_shot_macro_f1']):.3f}, "
             f"baseline {_f(view_baseline(document)['one_shot_macro_f1']):.3f}")
        return document, results, seconds

    # ------------------------------------------------------------------ tables
    def fixed_table(self, table_id, title, train, test, holdout, view, dims, notes=()):
        """One split, one view, several code widths: rows = loss per N, then the baseline."""
        started = time.perf_counter()
        rows, folds = [], []
        baseline = None
        for dim in dims:
            document, _, seconds = self.compare(train, test, holdout, view, dim, table_id, table_id)
            folds.append({"holdout": list(holdout), "N": dim, "seconds": seconds, "document": document})
            for loss in self.losses:
                m = document["losses"][loss]
                rows.append({"method": loss, "N": dim, **_single(m)})
            baseline = view_baseline(document)
        rows.append({"method": BASELINE, "N": None, **_single(baseline)})
        table = {"id": table_id, "title": title, "kind": "fixed", "view": view, "holdout": list(holdout),
                 "dims": list(dims), "notes": list(notes), "rows": rows, "folds": folds,
                 "n_train": len(train), "n_test": len(test), "seconds": time.perf_counter() - started}
        self.tables.append(table)
        return table

    def loco_table(self, table_id, title, train, test, classes, view, dim, notes=(), extra_baselines=None):
        """Leave-one-class-out: one fold per class in ``classes``; mean +/- std over folds."""
        started = time.perf_counter()
        folds = []
        for cls in classes:
            document, _, seconds = self.compare(train, test, [cls], view, dim, table_id, table_id)
            entry = {"holdout": [cls], "N": dim, "seconds": seconds, "document": document}
            for key, (tr, te) in (extra_baselines or {}).items():
                entry.setdefault("extra_baselines", {})[key] = _baseline_fold(tr, te, cls, self.args)
            folds.append(entry)
        methods = [*self.losses, BASELINE]
        per_fold = {m: [] for m in methods}
        for fold in folds:
            doc = fold["document"]
            for loss in self.losses:
                per_fold[loss].append(doc["losses"][loss])
            per_fold[BASELINE].append(view_baseline(doc))
        for key in (extra_baselines or {}):
            methods.append(key)
            per_fold[key] = [fold["extra_baselines"][key] for fold in folds]
        rows = [{"method": m, "N": None if m not in self.losses else dim, **_aggregate(per_fold[m]),
                 "per_fold": {cls: {k: per_fold[m][i].get(k) for k in METRIC_KEYS} for i, cls in enumerate(classes)}}
                for m in methods]
        table = {"id": table_id, "title": title, "kind": "loco", "view": view, "dims": [dim],
                 "classes": list(classes), "notes": list(notes), "rows": rows, "folds": folds,
                 "n_train": len(train), "n_test": len(test), "seconds": time.perf_counter() - started}
        self.tables.append(table)
        return table

    # ------------------------------------------------------------------ data sets
    def kddi(self):
        from lossless_triplet.data import KDDI_CLASSES, load_kddi_nfv

        a = self.args
        train, test = load_kddi_nfv("train"), load_kddi_nfv("eval")
        fixed = {}
        for view in a.views:
            fixed[view] = self.fixed_table(
                f"kddi-fixed-{view}", f"KDDI NFV, fixed split (train → eval), held out node-down + interface-down, view `{view}`",
                train, test, KDDI_FIXED_HOLDOUT, view,
                [a.dim] + ([a.seed_dim] if a.seed_dim and a.seed_dim != a.dim and view in a.seed_dim_views else []),
                notes=["± = std over the one-shot draws (one trained encoder per row)."])
        loco_view = a.kddi_loco_view
        reason = "chosen with --kddi-loco-view"
        if loco_view == "auto":
            dim = a.dim
            if fixed:
                scores = {v: float(np.mean([r["one_shot_macro_f1"] for r in t["rows"]
                                            if r["method"] in self.losses and r["N"] == dim])) for v, t in fixed.items()}
                loco_view = max(scores, key=scores.get)
                reason = ("best mean one-shot macro-F1 of the trained losses at N = "
                          f"{dim} on the fixed split ({', '.join(f'{v}: {s:.3f}' for v, s in scores.items())})")
            else:
                loco_view, reason = "kpi-stats+delta", "default (fixed split not run)"
        classes = [c for c in KDDI_CLASSES if c != "normal"][: a.max_folds]
        self.loco_table(
            "kddi-loco", f"KDDI NFV, leave-one-class-out over the fault types (train → eval), view `{loco_view}`",
            train, test, classes, loco_view, a.dim,
            notes=[f"View: {reason}.", "± = std over the held-out fault types (each fold's value is the mean "
                   f"over {a.draws} one-shot draws)."])

    def openstack(self):
        a = self.args
        train, test = bench_data.load_openstack_depl(a.data_root, log1p=not a.no_log1p, seed=a.seed)
        counts_train, counts_test = train.class_counts(), test.class_counts()
        classes, dropped = [], []
        for name in train.class_names:
            if name == bench_data.OPENSTACK_NORMAL:
                continue
            if counts_train[name] + counts_test[name] < 2 or counts_train[name] < 1 or counts_test[name] < 1:
                dropped.append(name)
            else:
                classes.append(name)
        extra = {}
        if not a.no_log1p:  # the same split with raw counts, no training: does log1p matter?
            raw_train, raw_test = bench_data.load_openstack_depl(a.data_root, log1p=False, seed=a.seed)
            extra["baseline (raw counts, no log1p)"] = (raw_train, raw_test)
        notes = [
            f"Stratified 50/50 split, seed {a.seed}: {len(train)} train / {len(test)} test rows; per class "
            "train/test: " + ", ".join(f"{n} {counts_train[n]}/{counts_test[n]}" for n in train.class_names) + ".",
            "Features: log1p of the 104 event counts." if not a.no_log1p else "Features: raw event counts.",
            "Classes dropped from the protocol (< 2 rows or no train/test row): "
            + (", ".join(dropped) if dropped else "none") + ".",
            "± = std over the held-out failure types.",
        ]
        self.loco_table("openstack-depl-loco", "OpenStack failures (DEPL), leave-one-class-out over the failure types, view `raw`",
                        train, test, classes[: a.max_folds], "raw", a.dim, notes=notes, extra_baselines=extra)

    def nsl_kdd(self):
        from lossless_triplet.pipeline.compare import compare_losses

        a = self.args
        data = bench_data.load_nsl_kdd(a.data_root, max_train=a.nsl_max_train, max_test=a.nsl_max_test,
                                       seed=a.seed, log1p=not a.no_log1p)
        train, test = data.train, data.test
        unseen = data.unseen_test
        sample_note = (
            f"Rows: {len(train)} of {data.info['train_file_rows']} train ({bench_data.NSL_KDD_TRAIN_FILE}) and "
            f"{len(test)} of {data.info['test_file_rows']} test rows, subsampled stratified by attack name "
            f"(every name keeps min(count, {data.info['min_per_name']}) rows), seed {a.seed}; "
            f"train per class: {train.class_counts()}, test: {test.class_counts()}. "
            f"Features: 38 numeric columns{' (log1p)' if data.info['log1p'] else ''} + one-hot protocol_type/service/flag "
            f"(levels of the train file; unseen levels all-zero) = {train.n_features}.")
        # (a) unseen attack names
        started = time.perf_counter()
        config = self.config(a.dim)
        document, results = compare_losses(train, test, losses=self.losses, holdout=[], view="raw", config=config,
                                           n_draws=a.draws, dataset_name="nsl-kdd", progress=False)
        rows = []
        for loss in self.losses:
            m = document["losses"][loss]
            auroc = unseen_auroc(results[loss].train_codes, train.labels, results[loss].test_codes, unseen)
            m["unseen_attack_auroc"] = auroc
            rows.append({"method": loss, "N": config.embedding_dim, **_single(m), "unknown_auroc": auroc})
        base_train, base_test = standardised_baseline(train, test, "raw")
        base = view_baseline(document)
        base["unseen_attack_auroc"] = unseen_auroc(base_train, train.labels, base_test, unseen)
        rows.append({"method": BASELINE, "N": None, **_single(base), "unknown_auroc": base["unseen_attack_auroc"]})
        seconds = time.perf_counter() - started
        _log(f"  [nsl-kdd-unseen] {seconds:.0f}s; unseen AUROC "
             + ", ".join(f"{r['method']} {r['unknown_auroc']:.3f}" for r in rows))
        by_name = {n: int(np.sum(data.test_attacks == n)) for n in data.unseen_names}
        self.tables.append({
            "id": "nsl-kdd-unseen", "kind": "unseen", "view": "raw", "dims": [config.embedding_dim],
            "title": "NSL-KDD, all five categories trained; unseen attack names (test only) as unknown faults",
            "notes": [sample_note,
                      f"Unknown AUROC here: {int(unseen.sum())} test rows whose attack name never occurs in the train "
                      f"file ({len(by_name)} names: " + ", ".join(f"{n} {c}" for n, c in by_name.items())
                      + f") against the other {int((~unseen).sum())} test rows, scored by the fault memory of all "
                      "training codes (lossless_triplet.pipeline.compare.unknown_auroc).",
                      "One-shot macro-F1 here is closed-set (no class held out: nearest class centroid over the five "
                      "categories, unseen-name rows scored under their category); held-out accuracy does not apply."],
            "rows": rows, "folds": [{"holdout": [], "N": config.embedding_dim, "seconds": seconds, "document": document}],
            "n_train": len(train), "n_test": len(test), "seconds": seconds, "sampling": data.info,
            "unseen_names": by_name,
        })
        # (b) leave-one-category-out
        classes = [c for c in bench_data.NSL_KDD_CATEGORIES if c != "normal"][: a.max_folds]
        self.loco_table("nsl-kdd-loco", "NSL-KDD, leave-one-category-out over the attack categories, view `raw`",
                        train, test, classes, "raw", a.dim,
                        notes=[sample_note, "± = std over the held-out categories."])


def _single(metrics: dict) -> dict:
    return {
        "one_shot_macro_f1": _f(metrics.get("one_shot_macro_f1")),
        "one_shot_macro_f1_std": _f(metrics.get("one_shot_macro_f1_std")),
        "heldout_accuracy": _f(metrics.get("heldout_accuracy")),
        "heldout_accuracy_std": _f(metrics.get("heldout_accuracy_std")),
        "unknown_auroc": _f(metrics.get("unknown_auroc")),
        "unknown_auroc_std": float("nan"),
        "precision_at_1": _f(metrics.get("precision_at_1")),
        "precision_at_1_std": float("nan"),
        "map_at_r": _f(metrics.get("map_at_r")),
        "map_at_r_std": float("nan"),
        "train_seconds": _f(metrics.get("train_seconds")),
    }


def _aggregate(per_fold: list[dict]) -> dict:
    out = {}
    for key in METRIC_KEYS:
        out[key], out[f"{key}_std"] = _mean_std([m.get(key) for m in per_fold])
    out["train_seconds"] = float(np.nansum([_f(m.get("train_seconds")) for m in per_fold]))
    return out


def _baseline_fold(train, test, cls, args) -> dict:
    """Baseline metrics of one leave-one-class-out fold on another preprocessing of the same split."""
    from lossless_triplet.data import Standardizer
    from lossless_triplet.metrics import one_shot_evaluation, retrieval_metrics
    from lossless_triplet.pipeline.compare import unknown_auroc
    from lossless_triplet.pipeline.selection import resolve_holdout

    held = resolve_holdout(train.class_names, [cls])
    known = ~np.isin(train.labels, held)
    scaler = Standardizer().fit(train.features[known])
    x_train, x_test = scaler.transform(train.features), scaler.transform(test.features)
    shot = one_shot_evaluation(x_train, train.labels, x_test, test.labels, held, n_draws=args.draws, seed=args.seed)
    return {**shot, **retrieval_metrics(x_test, test.labels),
            "unknown_auroc": unknown_auroc(x_train, train.labels, x_test, test.labels, held)}


# --------------------------------------------------------------------------- reporting


def _winners(table: dict, losses) -> list[str]:
    rows = {r["method"]: r for r in table["rows"]}
    lines = []
    for key, label in (("one_shot_macro_f1", "one-shot macro-F1"), ("heldout_accuracy", "held-out accuracy"),
                       ("unknown_auroc", "unknown AUROC"), ("map_at_r", "MAP@R")):
        trained = [(r[key], f"{r['method']}" + (f" (N={r['N']})" if len(table["dims"]) > 1 else ""))
                   for r in table["rows"] if r["method"] in losses and math.isfinite(r[key])]
        base = rows[BASELINE][key]
        if not trained:
            continue
        value, who = max(trained)
        if not math.isfinite(base):
            verdict = "no baseline value"
        elif round(base, 3) > round(value, 3):
            verdict = f"the no-training baseline wins ({base:.3f} vs {value:.3f})"
        elif round(base, 3) == round(value, 3):
            verdict = f"the no-training baseline ties ({base:.3f})"
        else:
            verdict = f"baseline {base:.3f}"
        lines.append(f"{label}: best trained {who} {value:.3f}; {verdict}")
    return lines


def render_table(table: dict, losses) -> str:
    many_dims = len(table["dims"]) > 1
    spread = "over draws" if table["kind"] != "loco" else "over folds"
    out = [f"### {table['title']}", ""]
    header = ["loss"] + (["N"] if many_dims else []) + [
        "macro-F1, closed set (nearest centroid)" if table["kind"] == "unseen"
        else f"one-shot macro-F1 (mean ± std {spread})", f"held-out acc (mean ± std {spread})",
        "unknown AUROC" if table["kind"] != "unseen" else "unseen-attack AUROC", "P@1", "MAP@R"]
    out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in table["rows"]:
        name = r["method"] if r["method"] in losses else f"*{r['method']}*"
        if r["method"] == BASELINE:
            name = "*baseline: standardised features, no training*"
        closed_set = table["kind"] == "unseen"  # nothing held out: every draw is the same, no spread
        cells = [name] + ([str(r["N"]) if r["N"] else "—"] if many_dims else []) + [
            _fmt(r["one_shot_macro_f1"], None if closed_set else r["one_shot_macro_f1_std"]),
            _fmt(r["heldout_accuracy"], r["heldout_accuracy_std"]),
            _fmt(r["unknown_auroc"], r.get("unknown_auroc_std")),
            _fmt(r["precision_at_1"], r.get("precision_at_1_std")),
            _fmt(r["map_at_r"], r.get("map_at_r_std")),
        ]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    if table["kind"] == "loco":
        classes = table["classes"]
        out += ["Per held-out class: held-out accuracy / unknown AUROC.", "",
                "| loss | " + " | ".join(classes) + " |", "|" + "---|" * (len(classes) + 1)]
        for r in table["rows"]:
            cells = [f"{_fmt(_f(r['per_fold'][c]['heldout_accuracy']))} / {_fmt(_f(r['per_fold'][c]['unknown_auroc']))}"
                     for c in classes]
            out.append(f"| {r['method']} | " + " | ".join(cells) + " |")
        out.append("")
    for note in table["notes"]:
        out.append(f"- {note}")
    for line in _winners(table, losses):
        out.append(f"- {line}.")
    out.append(f"- Train/test rows: {table['n_train']}/{table['n_test']}; wall time {table['seconds']:.0f} s.")
    out.append("")
    return "\n".join(out)


def render_section(meta: dict, tables: list[dict], losses) -> str:
    cfg = meta["train_config"]
    lines = [
        "## One-shot protocol: every loss, KDDI NFV, OpenStack (DEPL), NSL-KDD (`benchmarks/one_shot.py`)",
        "",
        f"Command: `{meta['command']}`"
        + (f" (library: git {meta['git']})" if meta.get("git") else "") + "  ",
        f"Date: {meta['date']}; total wall time {meta['total_seconds'] / 60:.1f} min"
        + (" (**partial: run still going or interrupted**)" if meta.get("partial") else "") + ".  ",
        f"Machine: {meta['machine']}; torch {meta['torch']} with {meta['torch_threads']} thread(s); "
        f"load average at start {meta['load_average']} (the cores were shared).  ",
        f"Training (same for every loss in a table): MLP {cfg['hidden']} → sigmoid code, "
        f"{cfg['epochs']} epochs × {cfg['steps_per_epoch']} steps, P×K = {cfg['classes_per_batch']}×{cfg['samples_per_class']} "
        f"balanced batches, Adam lr {cfg['learning_rate']}, seed {cfg['seed']}; code width N = {meta['dims']}; "
        f"{meta['draws']} one-shot draws per fold.  ",
        "Metrics: one-shot macro-F1 and held-out accuracy (held-out class = ONE random training example, "
        "known classes = training centroids, nearest representative); unknown AUROC = held-out-class test rows "
        "against known-class test rows, scored by a fault memory of the known training codes before the new type "
        "is added; P@1 and MAP@R: test set queried against itself (Musgrave et al. 2020). "
        "The baseline row is the view's standardised features with the same nearest-signature rules, no training.",
    ]
    if meta.get("rendered_from"):
        lines.append(f"(Tables rendered again from `{meta['rendered_from']}` without retraining.)  ")
    lines.append("")
    for table in tables:
        lines.append(render_table(table, losses))
    return "\n".join(lines).rstrip() + "\n"


def write_section(path: Path, body: str) -> None:
    """Replace (or add) this script's section of results.md; other sections stay as they are."""
    block = f"{START}\n{body.rstrip()}\n{END}"
    if path.exists():
        text = path.read_text()
        start, end = text.find(START), text.find(END)
        if start != -1 and end > start:
            text = text[:start] + block + text[end + len(END):]
        else:
            text = text.rstrip() + "\n\n" + block + "\n"
    else:
        text = ("# Benchmark results\n\nEach section is written by the script it names; running a script again "
                "replaces only its own section.\n\n" + block + "\n")
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="tiny smoke run (1 epoch x 3 steps, 2 draws, no --seed-dim, 1 fold per protocol, "
                        "NSL-KDD 1500/1500 rows); prints the section instead of writing files unless --out-md/--out-json")
    p.add_argument("--datasets", default="kddi,openstack,nsl-kdd", help="comma-separated subset to run")
    p.add_argument("--losses", default=",".join(LOSSES), help="comma-separated loss names")
    p.add_argument("--epochs", type=int, default=10, help="training budget: epochs")
    p.add_argument("--steps", type=int, default=40, help="training budget: optimiser steps per epoch")
    p.add_argument("--dim", type=int, default=16, help="code width N of every table")
    p.add_argument("--seed-dim", type=int, default=3,
                   help="extra code width trained on the KDDI fixed split (the seed project's N = 3); 0: none")
    p.add_argument("--seed-dim-views", default="raw", help="KDDI fixed-split views that also get --seed-dim")
    p.add_argument("--views", default="raw,kpi-stats,kpi-stats+delta,kpi-stats+link,kpi-stats+link+baseline",
                   help="KDDI fixed-split views")
    p.add_argument("--kddi-loco-view", default="auto", help="view of the KDDI leave-one-class-out table (auto: best fixed-split view)")
    p.add_argument("--draws", type=int, default=10, help="one-shot draws per fold")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-folds", type=int, default=None, help="at most this many held-out classes per leave-one-out table")
    p.add_argument("--nsl-max-train", type=int, default=8000, help="NSL-KDD train rows (stratified subsample)")
    p.add_argument("--nsl-max-test", type=int, default=4000, help="NSL-KDD test rows (stratified subsample)")
    p.add_argument("--no-log1p", action="store_true", help="raw counts for OpenStack and NSL-KDD (default: log1p)")
    p.add_argument("--data-root", type=Path, default=bench_data.DEFAULT_DATA_ROOT,
                   help="folder holding openstack-failures/ and nsl-kdd/")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--out-md", type=Path, default=None, help="results markdown (default benchmarks/results.md)")
    p.add_argument("--out-json", type=Path, default=None, help="raw numbers (default benchmarks/one_shot_results.json)")
    p.add_argument("--from-json", type=Path, default=None,
                   help="train nothing: render the results.md section again from a saved results JSON")
    args = p.parse_args(argv)
    given = set(a.split("=")[0] for a in (argv if argv is not None else sys.argv[1:]))
    if args.quick:
        for flag, attr, value in (("--epochs", "epochs", 1), ("--steps", "steps", 3), ("--draws", "draws", 2),
                                  ("--seed-dim", "seed_dim", 0), ("--max-folds", "max_folds", 1),
                                  ("--nsl-max-train", "nsl_max_train", 1500), ("--nsl-max-test", "nsl_max_test", 1500)):
            if flag not in given:
                setattr(args, attr, value)
    write = not args.quick or args.out_md is not None or args.out_json is not None
    if write:
        args.out_md = args.out_md or HERE / "results.md"
        args.out_json = args.out_json or HERE / "one_shot_results.json"
    args.datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = set(args.datasets) - {"kddi", "openstack", "nsl-kdd"}
    if unknown:
        p.error(f"unknown data set(s) {sorted(unknown)}; choose from kddi, openstack, nsl-kdd")
    args.losses = [s.strip() for s in args.losses.split(",") if s.strip()]
    args.views = [v.strip() for v in args.views.split(",") if v.strip()]
    args.seed_dim_views = [v.strip() for v in args.seed_dim_views.split(",") if v.strip()]
    return args


def _nan(value):
    """JSON null back to NaN (the renderer expects floats)."""
    if isinstance(value, dict):
        return {k: _nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan(v) for v in value]
    return float("nan") if value is None else value


def render_from_json(path: Path, out_md: Path | None) -> int:
    saved = json.loads(Path(path).read_text())
    meta, tables = saved["meta"], []
    for table in saved["tables"]:
        table = dict(table)
        table["rows"] = [_nan(r) for r in table["rows"]]
        tables.append(table)
    meta["rendered_from"] = str(path)
    body = render_section(meta, tables, meta["losses"])
    if out_md is None:
        print(body)
    else:
        write_section(out_md, body)
        _log(f"wrote {out_md}")
    return 0


def _git_state() -> str | None:
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=REPO, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}{' + uncommitted changes in src/' if dirty else ''}" if head else None


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.from_json is not None:
        return render_from_json(args.from_json, args.out_md)

    import torch

    torch.set_num_threads(args.threads)
    runner = Runner(args)
    started = time.perf_counter()
    env = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} " if "OMP_NUM_THREADS" in os.environ else ""
    argv_text = shlex.join(sys.argv[1:] if argv is None else list(argv))
    meta = {
        "command": f"{env}python benchmarks/one_shot.py {argv_text}".rstrip(),
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, os.cpu_count() = {os.cpu_count()}, "
                   f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
        "git": _git_state(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "load_average": ", ".join(f"{x:.1f}" for x in os.getloadavg()),
        "train_config": runner.config(args.dim).to_dict(),
        "dims": f"{args.dim}" + (f" (and {args.seed_dim} on the KDDI fixed split, view(s) {', '.join(args.seed_dim_views)})"
                                 if args.seed_dim and args.seed_dim != args.dim else ""),
        "draws": args.draws,
        "losses": list(runner.losses),
        "data_root": str(args.data_root),
    }

    def emit(partial: bool) -> None:
        meta["total_seconds"] = time.perf_counter() - started
        meta["partial"] = partial
        body = render_section(meta, runner.tables, runner.losses)
        if args.out_md is None:
            if not partial:
                print(body)
            return
        from lossless_triplet.io import json_safe

        args.out_json.write_text(json.dumps(json_safe({"meta": meta, "tables": runner.tables}), indent=1,
                                            allow_nan=False) + "\n")
        write_section(args.out_md, body)

    steps = {"kddi": runner.kddi, "openstack": runner.openstack, "nsl-kdd": runner.nsl_kdd}
    for name in args.datasets:
        _log(f"{name} ({time.perf_counter() - started:.0f}s so far)")
        steps[name]()
        emit(partial=name != args.datasets[-1])
    _log(f"done in {(time.perf_counter() - started) / 60:.1f} min"
         + (f"; wrote {args.out_md} and {args.out_json}" if args.out_md else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
