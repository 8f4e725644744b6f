"""The fault-memory commands: ``train``, ``add-fault``, ``faults``, ``detect``, ``evaluate``, ``export-kddi``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..defaults import AUTO_VIEW, EMBEDDING_DIM, QUICK_STEPS, TRAIN_STEPS, epochs_and_steps
from ..io import atomic_write_text
from ._common import (
    LOSS_HELP,
    REPRESENTATION_HELP,
    VIEW_HELP,
    csv_list,
    loss_name,
    representation_name,
    require_positive,
    view_name,
)


def _steps_config(args: argparse.Namespace):
    """A TrainConfig doing exactly ``steps`` optimiser steps (epochs x steps_per_epoch); the numbers are
    checked before torch is imported."""
    require_positive(args, "dim")
    steps = args.steps if args.steps is not None else (QUICK_STEPS if args.quick else TRAIN_STEPS)
    epochs, per_epoch = epochs_and_steps(steps)
    if not args.lr > 0:
        raise ValueError(f"--lr {args.lr} must be > 0")
    from ..training import TrainConfig

    return TrainConfig(embedding_dim=args.dim, seed=args.seed, epochs=epochs, steps_per_epoch=per_epoch,
                       learning_rate=args.lr)


def _cmd_train(args: argparse.Namespace) -> int:
    require_positive(args, "checkpoint_every")
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file; give a directory for the model bundle")
    config = _steps_config(args)
    from .. import distributed
    from ..checkpoint import CHECKPOINT_DIR, latest_checkpoint
    from ..data import load_table
    from ..pipeline.fit import fit_fault_model

    checkpoints = args.out / CHECKPOINT_DIR
    # Under torchrun: every rank trains its shard of each batch; rank 0 alone writes and prints.
    with distributed.process_group():
        main, processes = distributed.is_main_process(), distributed.world_size()
        if main and args.resume:
            found = latest_checkpoint(checkpoints)
            print(f"resuming from {found}" if found else f"no checkpoint in {checkpoints} yet: starting at step 0")
        data = load_table(args.data, args.label_column)
        model = fit_fault_model(data, loss=args.loss, holdout=args.holdout, view=args.view, config=config,
                                representation=args.representation, time_ordered=args.time_ordered,
                                progress=not args.no_progress, checkpoint_dir=checkpoints,
                                checkpoint_every=args.checkpoint_every, resume=args.resume)
        if not main:
            return 0
        model.info["label_column"] = args.label_column  # add-fault recognises a labelled table by it
        model.save(args.out)
    chosen = model.info["selection"]
    took = f", {chosen['seconds']} s" if chosen.get("folds") else ""
    print(f"view {chosen['view']}, representation {chosen['representation']} ({chosen['note']}{took}; "
          "model.json 'selection' keeps the scores)")
    print(f"trained {args.loss} on {model.info['n_train_rows']} rows ({chosen['view']} view, N = {args.dim}"
          f"{f', {processes} processes' if processes > 1 else ''}); signatures: {', '.join(model.memory.names)}")
    print(f"wrote {args.out}")
    return 0


def _cmd_add_fault(args: argparse.Namespace) -> int:
    from ..bundle import FaultModel
    from ..data import read_feature_table

    model = FaultModel.load(args.model)
    args.name = args.name.strip()  # as the memory stores it
    column = args.label_column or _trained_label_column(model, args.data)
    if column is None:
        rows, examples = read_feature_table(args.data, model.feature_names), None
    else:
        rows, examples = _labelled_examples(model, args.data, column, args.name, chosen=args.label_column is not None)
    existed = args.name in model.memory.names
    model.add_fault(args.name, rows, examples=examples)
    model.save_signatures(args.model)
    entry = model.memory.entry(args.name)
    n_examples = len(rows) if examples is None else int(examples.sum())
    context = f" labelled {args.name!r} in {column!r} (the other {len(rows) - n_examples} gave context)" \
        if n_examples < len(rows) else ""
    print(f"{'extended' if existed else 'added'} fault {args.name!r} from {n_examples} row(s){context} "
          f"({entry['count']} in all, radius {entry['radius']:.4g}); saved to {args.model}")
    return 0


def _trained_label_column(model, path: Path) -> str | None:
    """The label column ``train`` recorded in the bundle, when the table ``path`` has it too."""
    from ..data import table_columns

    column = model.info.get("label_column")
    return column if column is not None and column in table_columns(path) else None


def _labelled_examples(model, path: Path, column: str, name: str, *, chosen: bool):
    """Raw rows of ``path`` and the mask of those labelled ``name`` in ``column``.

    Raises:
        ValueError: no row labelled ``name``; or (``chosen`` False: the column was found, not
            passed) rows with other labels, which would otherwise all go into the signature.
    """
    from ..data import load_table

    data = load_table(path, column, feature_columns=model.feature_names)
    examples = data.label_names == name
    found = ", ".join(data.class_names[:10]) + (" ..." if data.n_classes > 10 else "")  # the labels present
    if not chosen and not examples.all():
        raise ValueError(
            f"{path} has the label column {column!r} the model was trained with, and its rows are labelled "
            f"{found}: pass --label-column {column} to add only the rows labelled {name!r} (the others then "
            f"give the views their previous minutes), or give a table of that fault's rows only"
        )
    if not examples.any():
        raise ValueError(f"no row of {path} has {column} = {name!r} (its labels: {found}); "
                         "pass the fault's label as --name")
    return data.features, examples


def _cmd_faults(args: argparse.Namespace) -> int:
    from ..bundle import FaultModel

    model = FaultModel.load(args.model)
    if args.remove:
        model.memory.remove(args.remove)
        model.save_signatures(args.model)
        print(f"removed fault {args.remove!r}")
    for row in model.memory.describe():
        print(f"{row['name']:<24} {row['count']:>8} rows  radius {row['radius']:.4g}"
              f"{'' if row['learned_radius'] else '  (default radius: few examples)'}")
    return 0


def _cmd_detect(args: argparse.Namespace) -> int:
    from ..bundle import FaultModel
    from ..pipeline.detect import detect_file

    require_positive(args, "chunk_rows")
    if args.engine == "spark":
        if not (args.source_column and args.time_column):
            raise ValueError("--engine spark needs --source-column and --time-column: rows are identified per "
                             "source in time order")
        from ..spark import detect_parquet, spark_session

        n = detect_parquet(args.model, args.data, args.out, source_column=args.source_column,
                           time_column=args.time_column, spark=spark_session(args.master),
                           chunk_rows=args.chunk_rows)
        print(f"identified {n} rows; wrote {args.out}")
        return 0
    model = FaultModel.load(args.model)
    n = detect_file(model, args.data, args.out, chunk_rows=args.chunk_rows, progress=not args.no_progress)
    print(f"wrote {n} predictions to {args.out}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from ..bundle import FaultModel
    from ..pipeline.detect import evaluate_file

    model = FaultModel.load(args.model)
    if args.truth_column and not args.explain:
        raise ValueError("--truth-column scores the explanations: pass --explain with it")
    document = evaluate_file(model, args.data, args.label_column, progress=not args.no_progress,
                             truth_column=args.truth_column if args.explain else None)
    text = json.dumps(document, indent=2)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out / "evaluation.json", text + "\n")
    return 0


def _cmd_export_kddi(args: argparse.Namespace) -> int:
    from ..data import export_kddi_csv

    print(f"wrote {export_kddi_csv(args.split, args.out)}")
    return 0


def register(sub) -> None:
    """Add the fault-memory sub-commands."""

    train = sub.add_parser("train", help="train an encoder and a fault memory into a model directory",
                           description="Train the encoder on a labelled table and save the model bundle "
                           "(weights, scaler, view, signatures) into --out. Runs unchanged under "
                           "`torchrun --nproc_per_node=K` (DistributedDataParallel, gloo on CPU, nccl on GPU): "
                           "the P x K batch is split over the processes and mined as a whole.")
    train.add_argument("--data", type=Path, required=True, help="labelled training table (CSV, TSV, Parquet)")
    train.add_argument("--label-column", required=True, help="column holding the status")
    train.add_argument("--loss", type=loss_name, default="triplet",
                       help=f"{LOSS_HELP} (default triplet: the best one-shot macro-F1 on KDDI, README Results)")
    train.add_argument("--holdout", type=csv_list, default=[], help="comma-separated statuses left out")
    train.add_argument("--view", type=view_name, default=AUTO_VIEW, help=f"feature view: {VIEW_HELP}")
    train.add_argument("--representation", type=representation_name, help=REPRESENTATION_HELP)
    train.add_argument("--time-ordered", action=argparse.BooleanOptionalAction, default=None,
                       help="the rows are one network's minutes in order, so baseline views are candidates "
                       "(default: when a timestamp column strictly increases)")
    train.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    train.add_argument("--dim", type=int, default=EMBEDDING_DIM, help=f"code width N (default {EMBEDDING_DIM})")
    train.add_argument("--steps", type=int, help=f"optimiser steps (default {TRAIN_STEPS}, --quick {QUICK_STEPS})")
    train.add_argument("--quick", action="store_true", help="a short training budget")
    train.add_argument("--seed", type=int, default=0, help="seed for weights and batches (default 0)")
    train.add_argument("--checkpoint-every", type=int, metavar="K",
                       help="write a resumable checkpoint every K steps into OUT/checkpoints (rank 0 only)")
    train.add_argument("--resume", action="store_true",
                       help="continue from the latest checkpoint in OUT/checkpoints (from step 0 if none yet); "
                       "the settings must match the interrupted run, except --steps")
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    train.add_argument("--out", type=Path, required=True, help="model directory to write")
    train.set_defaults(handler=_cmd_train)

    add = sub.add_parser("add-fault", help="add (or extend) a fault signature from example rows",
                         description="Encode the rows of --data and add them to the signature --name "
                         "(created if new). One row is enough. With --label-column, only the rows labelled "
                         "--name are added.")
    add.add_argument("--model", type=Path, required=True, help="model directory")
    add.add_argument("--data", type=Path, required=True, help="table with the example row(s)")
    add.add_argument("--name", required=True, help="fault name")
    add.add_argument("--label-column", metavar="COL",
                     help="add only the rows whose COL is --name; the other rows are read as the minutes "
                     "around them (what delta and baseline views look back at) and not added. A table "
                     "holding the label column the model was trained with needs this option")
    add.set_defaults(handler=_cmd_add_fault)

    faults = sub.add_parser("faults", help="list (or remove) the signatures of a model",
                            description="List the fault signatures of a model (name, rows, radius); "
                            "--remove NAME deletes one first.")
    faults.add_argument("--model", type=Path, required=True, help="model directory")
    faults.add_argument("--remove", metavar="NAME", help="remove this signature first")
    faults.set_defaults(handler=_cmd_faults)

    detect = sub.add_parser("detect", help="identify the status of every row of a table",
                            description="Write one prediction per input row, in order: row, status (a "
                            "known status or unknown), nearest, distance, unknown, unknown_score, element (the "
                            "network element most implicated) and evidence (the most deviant columns, "
                            "column:+9.1;column:missing).")
    detect.add_argument("--model", type=Path, required=True, help="model directory")
    detect.add_argument("--data", type=Path, required=True, help="table with the model's feature columns")
    detect.add_argument("--out", type=Path, required=True,
                        help="prediction CSV to write (--engine spark: a new Parquet directory)")
    detect.add_argument("--engine", choices=("local", "spark"), default="local",
                        help="local (default: this process) or spark (--data is a Parquet directory; rows are "
                        "identified per --source-column in --time-column order on Apache Spark; needs the spark "
                        "extra and Java 17)")
    detect.add_argument("--source-column", help="--engine spark: the column naming each row's network / element")
    detect.add_argument("--time-column", help="--engine spark: the column ordering each source's rows")
    detect.add_argument("--master", help="--engine spark: Spark master URL (default: spark-submit's, else local[*])")
    detect.add_argument("--chunk-rows", type=int, default=65_536,
                        help="rows read at a time (default 65536, at least 1024: smaller chunks only add "
                        "per-chunk cost; bounds memory)")
    detect.add_argument("--no-progress", action="store_true", help="hide the row counter")
    detect.set_defaults(handler=_cmd_detect)

    evaluate = sub.add_parser("evaluate", help="measure a model on a labelled table",
                              description="Accuracy, macro-F1, unknown rate and AUROC, retrieval metrics (exact, or a stated "
                              "estimate with its standard error on large tables); the table is streamed in chunks.")
    evaluate.add_argument("--model", type=Path, required=True, help="model directory")
    evaluate.add_argument("--data", type=Path, required=True, help="labelled table")
    evaluate.add_argument("--label-column", required=True, help="column holding the status")
    evaluate.add_argument("--out", type=Path, help="also write evaluation.json into this directory "
                          "(default: print only)")
    evaluate.add_argument("--explain", action="store_true",
                          help="also score the element / evidence of each row against --truth-column")
    evaluate.add_argument("--truth-column", help="with --explain: the column naming the target element (node, "
                          "link, pod) of each fault row, empty elsewhere; a row is a hit when the element or one "
                          "of its evidence columns names it")
    evaluate.add_argument("--no-progress", action="store_true", help="hide the row counter")
    evaluate.set_defaults(handler=_cmd_evaluate)

    export = sub.add_parser("export-kddi", help="write a split of the bundled KDDI data as CSV",
                            description="Write the bundled KDDI NFV split as CSV with a 'status' column "
                            "(class names), e.g. to try train/detect on real data.")
    export.add_argument("--split", choices=("train", "eval"), default="train", help="split (default train)")
    export.add_argument("--out", type=Path, required=True, help="CSV file to write")
    export.set_defaults(handler=_cmd_export_kddi)
