"""``demo`` and ``compare``: train every requested loss under one protocol and compare them."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..budget import EMBEDDING_DIM, TRAIN_STEPS, epochs_and_steps
from ._common import (
    AUTO_VIEW,
    LOSS_NAMES,
    REPRESENTATION_HELP,
    VIEW_HELP,
    csv_list,
    loss_list,
    representation_name,
    require_positive,
    view_name,
)

DEMO_HOLDOUT = ("node-down", "interface-down")
# Nothing here is tuned on an eval split: the view and the representation are chosen on the
# training table (lossless_triplet.selection), and the budget and N are train's defaults.
DEFAULT_DIM = EMBEDDING_DIM
_EPOCHS, _STEPS = epochs_and_steps(TRAIN_STEPS)
BUDGET = {"epochs": _EPOCHS, "steps_per_epoch": _STEPS}  # demo's and compare's: train's
QUICK_BUDGET = {"epochs": 6, "steps_per_epoch": 15}


def _add_training_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--losses", type=loss_list, default=list(LOSS_NAMES),
                        help=f"comma-separated losses to compare (default: {','.join(LOSS_NAMES)}); options after a "
                        "colon, several joined by ';', e.g. triplet,lossless,lossless:beta=4N")
    parser.add_argument("--dim", type=int, default=DEFAULT_DIM,
                        help=f"code width N (default {DEFAULT_DIM}; 3 plots the code itself, as in the seed; "
                        "wider codes are drawn as a PCA projection)")
    parser.add_argument("--view", type=view_name, default=AUTO_VIEW, help=f"feature view: {VIEW_HELP}")
    parser.add_argument("--representation", type=representation_name, help=REPRESENTATION_HELP)
    parser.add_argument("--time-ordered", action=argparse.BooleanOptionalAction, default=None,
                        help="the rows are one network's minutes in order, so baseline views are candidates "
                        "(default: when a timestamp column strictly increases)")
    parser.add_argument("--quick", action="store_true", help="a short training budget (smoke run, < 1 min)")
    parser.add_argument("--epochs", type=int,
                        help=f"number of epochs (default {BUDGET['epochs']}, --quick {QUICK_BUDGET['epochs']})")
    parser.add_argument("--steps-per-epoch", type=int,
                        help=f"optimiser steps per epoch (default {BUDGET['steps_per_epoch']}, "
                        f"--quick {QUICK_BUDGET['steps_per_epoch']})")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights, batches and one-shot draws (default 0)")
    parser.add_argument("--draws", type=int, default=10, help="one-shot draws to average over (default 10)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("--animate", action="store_true",
                        help="also record codes during training: writes training.gif and report.html")


def _train_config(args: argparse.Namespace):
    from ..training import TrainConfig

    require_positive(args, "dim", "epochs", "steps_per_epoch", "draws")
    budget = dict(QUICK_BUDGET if args.quick else BUDGET)
    for key in ("epochs", "steps_per_epoch"):
        if getattr(args, key) is not None:
            budget[key] = getattr(args, key)
    return TrainConfig(embedding_dim=args.dim, seed=args.seed, **budget)


def format_table(document: dict) -> str:
    """The comparison as a fixed-width text table, one row per loss (and baseline)."""
    columns = [("precision_at_1", "P@1"), ("r_precision", "R-prec"), ("map_at_r", "MAP@R"),
               ("one_shot_macro_f1", "1-shot F1"), ("heldout_accuracy", "held-out acc"),
               ("unknown_auroc", "unknown AUROC"), ("compactness", "compact"), ("final_train_loss", "final loss"),
               ("train_seconds", "seconds")]
    rows = [(name, m) for name, m in document["losses"].items()]
    rows += [(f"({name}{'' if name.endswith('ceiling') else ', no training'})", m)
             for name, m in document.get("baselines", {}).items()]
    width = max(len(name) for name, _ in rows) + 2
    lines = ["".ljust(width) + "".join(f"{title:>14}" for _, title in columns)]
    for name, metrics in rows:
        cells = []
        for key, _ in columns:
            value = metrics.get(key)
            cells.append(f"{'-' if value is None else f'{value:.3f}':>14}")
        lines.append(name.ljust(width) + "".join(cells))
    return "\n".join(lines)


def run_comparison(train, test, args: argparse.Namespace, dataset_name: str) -> dict:
    """Train and measure every requested loss; save the run and its figures into ``args.out``.

    Writes metrics.json, codes.npz, history.json, embeddings_<loss>.png and
    loss_curves.png; with ``args.animate`` also animation.npz, training.gif and
    report.html (see :mod:`lossless_triplet.runs`).
    """
    from ..animation import CodeRecorder
    from ..experiment import compare_losses
    from ..runs import Run, render_run, save_run

    config = _train_config(args)
    recorder = None
    if args.animate:
        recorder = CodeRecorder(test.labels, test.class_names, epochs=config.epochs, seed=args.seed)
    document, results = compare_losses(
        train, test, losses=args.losses, holdout=args.holdout, view=args.view, config=config,
        representation=args.representation, time_ordered=args.time_ordered,
        n_draws=args.draws, dataset_name=dataset_name, progress=not args.no_progress,
        on_epoch_factory=recorder.factory if recorder else None,
    )
    run = Run(document, tuple(test.class_names), test.labels, {n: r.test_codes for n, r in results.items()},
              {n: r.history for n, r in results.items()}, recorder.recording() if recorder else None)
    written = save_run(run, args.out) + render_run(run, args.out, report=args.animate)
    print(format_table(document))
    print("\nchosen on the training table (view, representation): " + "; ".join(
        f"{name}: {m['view']}, {m['representation']}" for name, m in document["losses"].items()))
    for name, m in document["losses"].items():
        if m.get("collapsed"):
            print(f"WARNING: {name}'s code collapsed ({m['distinct_codes']} distinct training codes, "
                  f"{m['saturated_share']:.0%} of units saturated): its scores measure nothing learned")
    print("\nwrote " + ", ".join(str(p) for p in written))
    if not args.animate:
        print(f"(`lossless-triplet report {args.out}` builds report.html from these files)")
    return document


def _cmd_demo(args: argparse.Namespace) -> int:
    from ..data import load_kddi_nfv

    args.holdout = list(DEMO_HOLDOUT)
    run_comparison(load_kddi_nfv("train"), load_kddi_nfv("eval"), args, "kddi-nfv")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from ..data import load_table

    train = load_table(args.train, args.label_column)
    test = load_table(args.test, args.label_column, class_names=train.class_names)
    run_comparison(train, test, args, args.train.stem)
    return 0


def register(sub) -> None:
    """Add the ``demo`` and ``compare`` sub-commands."""
    demo = sub.add_parser("demo", help="compare the losses on the bundled KDDI NFV fault data",
                          description="Compare the losses on the bundled KDDI NFV data (train split vs eval "
                          "split), holding out node-down and interface-down for the one-shot test.")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="output directory (default runs/demo)")
    _add_training_options(demo)
    demo.set_defaults(handler=_cmd_demo)

    compare = sub.add_parser("compare", help="compare the losses on your own train/test tables",
                             description="Compare the losses on a train and a test table (CSV, TSV or Parquet).")
    compare.add_argument("--train", type=Path, required=True, help="training table")
    compare.add_argument("--test", type=Path, required=True, help="test table (same columns)")
    compare.add_argument("--label-column", required=True, help="column holding the class (string or integer)")
    compare.add_argument("--holdout", type=csv_list, default=[],
                         help="comma-separated classes removed from training, then given one example each")
    compare.add_argument("--out", type=Path, default=Path("runs/compare"),
                         help="output directory (default runs/compare)")
    _add_training_options(compare)
    compare.set_defaults(handler=_cmd_compare)
