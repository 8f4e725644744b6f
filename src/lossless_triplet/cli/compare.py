"""``demo`` and ``compare``: train every requested loss under one protocol and compare them."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..defaults import AUTO_VIEW, EMBEDDING_DIM, LOSS_NAMES, QUICK_BUDGET, TRAIN_STEPS, epochs_and_steps
from ._common import (
    REPRESENTATION_HELP,
    VIEW_HELP,
    csv_list,
    loss_list,
    representation_name,
    require_positive,
    view_name,
)

# the library's defaults: train's budget and N (nothing tuned on an eval split)
_EPOCHS, _STEPS = epochs_and_steps(TRAIN_STEPS)
BUDGET = {"epochs": _EPOCHS, "steps_per_epoch": _STEPS}


def _add_training_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--losses", type=loss_list, default=list(LOSS_NAMES),
                        help=f"comma-separated losses to compare (default: {','.join(LOSS_NAMES)}); options after a "
                        "colon, several joined by ';', e.g. triplet,lossless,lossless:beta=4N")
    parser.add_argument("--dim", type=int, default=EMBEDDING_DIM,
                        help=f"code width N (default {EMBEDDING_DIM}; 3 plots the code itself, as in the seed; "
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
    require_positive(args, "dim", "epochs", "steps_per_epoch", "draws")
    from ..training import TrainConfig

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


def _report(document: dict, written: list, args: argparse.Namespace) -> None:
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


def _options(args: argparse.Namespace) -> dict:
    """The keyword arguments of :func:`lossless_triplet.pipeline.run_comparison` from the parsed options."""
    return {"out": args.out, "losses": args.losses, "view": args.view, "representation": args.representation,
            "time_ordered": args.time_ordered, "config": _train_config(args), "n_draws": args.draws,
            "progress": not args.no_progress, "animate": args.animate}


def _cmd_demo(args: argparse.Namespace) -> int:
    from ..pipeline.demo import run_demo

    _report(*run_demo(**_options(args)), args)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from ..data import load_table
    from ..pipeline.demo import run_comparison

    options = _options(args)  # checks the numbers before the tables are read
    train = load_table(args.train, args.label_column)
    test = load_table(args.test, args.label_column, class_names=train.class_names)
    _report(*run_comparison(train, test, holdout=args.holdout, dataset_name=args.train.stem, **options), args)
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
