"""Compare losses under one protocol: same data, encoder, seed and budget for each.

This is what ``lossless-triplet compare`` and ``demo`` run. Held-out classes
are removed from training (view, scaler, encoder, history); the one-shot protocol then
represents each of them by a single training example (DESIGN.md, "Metric
definitions"); view and representation are chosen on the training table
(:mod:`lossless_triplet.pipeline.selection`), as ``train`` chooses them.
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import f1_score, roc_auc_score

from ..data import Dataset
from ..defaults import LOSS_NAMES
from ..explain import Explainer
from ..io import json_safe
from ..losses import make_loss
from ..memory import FaultMemory
from ..metrics import compactness, one_shot_evaluation, retrieval_metrics
from ..models import encode
from ..training import TrainConfig, train_encoder
from .selection import choose, prepare_features, resolve_holdout

__all__ = ["DEFAULT_LOSSES", "LossResult", "baselines", "check_compatible", "compare_losses", "unknown_auroc"]

log = logging.getLogger("lossless_triplet")

DEFAULT_LOSSES = LOSS_NAMES  # demo and compare train every loss


@dataclass
class LossResult:
    """What one loss produced: metrics, history and the codes of every row.

    Attributes:
        metrics: the per-loss entry of metrics.json.
        history: per-epoch ``epoch``, ``train_loss``, ``test_loss`` lists.
        train_codes, test_codes: (n, N) float32 codes of all train / test rows.
    """

    metrics: dict
    history: dict
    train_codes: np.ndarray
    test_codes: np.ndarray


def check_compatible(train: Dataset, test: Dataset) -> None:
    """Refuse a train/test pair whose feature columns or class names differ.

    Raises:
        ValueError: naming the columns missing from one side, or the class lists.
    """
    if train.feature_names != test.feature_names:
        missing = sorted(set(train.feature_names) - set(test.feature_names))
        extra = sorted(set(test.feature_names) - set(train.feature_names))
        raise ValueError(
            "train and test tables must have the same feature columns in the same order; "
            f"missing from test: {missing[:10]}, only in test: {extra[:10]}"
        )
    if train.class_names != test.class_names:
        raise ValueError(
            f"train and test use different class lists {train.class_names} vs {test.class_names}; "
            "load the test table with class_names=train.class_names"
        )


def unknown_auroc(train_codes, train_labels, test_codes, test_labels, heldout) -> float:
    """AUROC of telling held-out-class test rows from known-class ones, before the new types are added.

    A :class:`~lossless_triplet.memory.FaultMemory` is fitted on the known-class
    training codes; each test row is scored by its ``unknown_score`` (distance
    to the nearest signature over that signature's radius). NaN without
    held-out rows or without known rows in the test set.
    """

    known = ~np.isin(train_labels, heldout)
    is_new = np.isin(test_labels, heldout)
    if is_new.all() or not is_new.any():
        return float("nan")
    class_ids = np.unique(train_labels[known])
    memory = FaultMemory().fit(train_codes[known], np.searchsorted(class_ids, train_labels[known]),
                               [str(c) for c in class_ids])
    return float(roc_auc_score(is_new, memory.identify(test_codes)["unknown_score"]))


def _code_metrics(train_vectors, train_labels, test_vectors, test_labels, heldout, n_draws, seed, retrieval=True,
                  test_codes=None) -> dict:
    """One-shot measures and unknown AUROC of what the memory compares (``*_vectors``); retrieval
    measures and compactness of ``test_codes`` (the encoder's codes: what the loss shaped), or of
    the test vectors when there is no encoder."""
    geometry = test_vectors if test_codes is None else test_codes
    one_shot = one_shot_evaluation(
        train_vectors, train_labels, test_vectors, test_labels, heldout, n_draws=n_draws, seed=seed
    )
    return {
        "unknown_auroc": unknown_auroc(train_vectors, train_labels, test_vectors, test_labels, heldout),
        **(retrieval_metrics(geometry, test_labels) if retrieval else {}),
        "one_shot_macro_f1": one_shot["one_shot_macro_f1"],
        "one_shot_macro_f1_std": one_shot["one_shot_macro_f1_std"],
        "heldout_accuracy": one_shot["heldout_accuracy"],
        "heldout_accuracy_std": one_shot["heldout_accuracy_std"],
        "one_shot_confusion": one_shot["confusion"],
        "compactness": compactness(geometry, test_labels),
    }


def compare_losses(
    train: Dataset,
    test: Dataset,
    *,
    losses: Sequence[str] = DEFAULT_LOSSES,
    holdout: Sequence[str] = (),
    view: str = "auto",
    representation: str | None = None,
    time_ordered: bool | None = None,
    config=None,
    n_draws: int = 10,
    dataset_name: str = "table",
    progress: bool = True,
    on_epoch_factory=None,
    retrieval: bool = True,
) -> tuple[dict, dict[str, LossResult]]:
    """Train one encoder per loss under the same honest protocol and measure each.

    The protocol (DESIGN.md, "Honest protocol"; :mod:`lossless_triplet.pipeline.selection`): held-out
    classes are masked out of everything training sees, history included; the view (``"auto"``)
    and the representation (None) are chosen on the training table alone, exactly as ``train``
    chooses them; the test table is read once, for the reported numbers. The one-shot
    example of a held-out class is one of its training rows with its full history (what
    ``add-fault`` sees).

    Args:
        train, test: tables with the same feature columns and class names.
        losses: names from :data:`lossless_triplet.losses.LOSSES`.
        holdout: class names removed from training, then represented by one example.
        view: feature view name (:mod:`lossless_triplet.viewspec`), or ``"auto"`` (chosen with the
            first loss and kept for the others).
        representation: what the memory compares (``code``, ``code+16*sorted_excess``, ...; see
            :meth:`~lossless_triplet.representation.Representation.parse`), or None (chosen per loss).
        time_ordered: whether the rows are one network's minutes in order (None: from the
            training table's timestamps, :attr:`Dataset.is_time_ordered`).
        config: a :class:`~lossless_triplet.training.TrainConfig` (default: its defaults).
        n_draws: one-shot draws to average over (>= 10 recommended).
        dataset_name: the ``dataset`` field of the result.
        progress: show progress bars.
        on_epoch_factory: optional callback factory, called once per loss (before it
            trains) as ``f(loss_name, test_features) -> on_epoch``; ``test_features``
            is the (n_test, F') float32 array of the test rows after the view and the
            scaler, in table order: what the encoder takes, so the callback can encode
            any test rows with :func:`~lossless_triplet.models.encode` (e.g. for
            :class:`~lossless_triplet.animation.CodeRecorder`). The returned callback
            goes to :func:`~lossless_triplet.training.train_encoder`.
        retrieval: also compute P@1, R-precision and MAP@R (the slowest part on large test sets).

    Returns:
        ``(metrics, results)``: the metrics.json document (DESIGN.md schema; each loss's one-shot
        measures and unknown AUROC are those of its representation, its P@1, R-precision, MAP@R
        and compactness those of its codes; plus ``baselines``: nearest
        signature on standardised raw columns and on the view's features, and a random forest
        given all training labels, the supervised ceiling) and per-loss :class:`LossResult`
        (whose codes are the encoder's, for the pictures).

    Raises:
        ValueError: incompatible tables, unknown loss or held-out class, a held-out
            class without training rows, or an empty split.
    """

    config = config or TrainConfig()
    check_compatible(train, test)
    if len(train) == 0 or len(test) == 0:
        raise ValueError(f"empty split: {len(train)} train rows, {len(test)} test rows")
    loss_modules = {name: make_loss(name, embedding_dim=config.embedding_dim) for name in losses}
    if not loss_modules:
        raise ValueError("no loss to train; pass at least one name in losses")
    heldout = resolve_holdout(train.class_names, holdout)
    known = ~np.isin(train.labels, heldout)
    time_ordered = train.is_time_ordered if time_ordered is None else bool(time_ordered)

    prepared_views: dict = {}  # view name -> (Prepared, reference rows, test rows)
    results: dict[str, LossResult] = {}
    selections: dict[str, dict] = {}
    for name, loss_fn in loss_modules.items():
        # The view is chosen with the first loss and kept for the others (each still chooses its
        # representation): one view search instead of one per loss keeps the demo within its time.
        selection = choose(train, known, view=next(iter(prepared_views), view), representation=representation,
                           time_ordered=time_ordered, loss=name, config=config)
        selections[name] = selection.to_dict()
        if selection.view not in prepared_views:
            prepared = prepare_features(train.features, train.feature_names, known, selection.view)
            prepared_views[selection.view] = (prepared, prepared.reference(), prepared.transform(test.features))
        prepared, x_ref, x_test = prepared_views[selection.view]
        trained = train_encoder(
            prepared.x_known,
            train.labels[known],
            loss_fn,
            config,
            test_features=x_test,
            test_labels=test.labels,
            progress=progress,
            description=name,
            on_epoch=on_epoch_factory(name, x_test) if on_epoch_factory else None,
        )
        train_codes, test_codes = encode(trained.model, x_ref), encode(trained.model, x_test)
        rep = selection.representation.fit(prepared.x_known, prepared.view.invariant_features_)
        metrics = _code_metrics(rep.combine(train_codes, x_ref), train.labels[prepared.reference_order],
                                rep.combine(test_codes, x_test), test.labels, heldout, n_draws, config.seed,
                                retrieval, test_codes=test_codes)
        metrics |= {"view": selection.view, "representation": rep.name,
                    "final_train_loss": trained.history["train_loss"][-1], "train_seconds": trained.train_seconds,
                    "collapsed": bool(trained.health.collapsed),
                    "distinct_codes": trained.health.distinct_codes,
                    "saturated_share": trained.health.saturated_share}
        results[name] = LossResult(metrics, trained.history, train_codes, test_codes)
        log.info("%s: %s", name, {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)})

    first_view = next(iter(prepared_views))
    base = baselines(train, test, heldout, prepared_views[first_view][0], n_draws, config.seed, retrieval)
    for metrics in [*(r.metrics for r in results.values()), *base.values()]:
        if "one_shot_confusion" in metrics:  # class ids -> names
            confusion = metrics["one_shot_confusion"]
            metrics["one_shot_confusion"] = {"true": [train.class_names[c] for c in confusion["true"]],
                                             "predicted": [train.class_names[c] for c in confusion["predicted"]],
                                             "counts": confusion["counts"]}
    document = {
        "dataset": dataset_name,
        "classes": list(train.class_names),
        "holdout": list(holdout),
        "losses": {name: r.metrics for name, r in results.items()},
        "baselines": base,
        "evidence_by_status": evidence_by_status(train, test, time_ordered),
        "config": {
            "train": config.to_dict(),
            "n_draws": n_draws,
            "n_train_rows": int(known.sum()),
            "n_test_rows": len(test),
            "n_features": train.n_features,
            "view": first_view,
            "time_ordered": time_ordered,
            "selection": selections,
            "n_view_features": x_test.shape[1],
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
        },
    }
    return json_safe(document), results


def evidence_by_status(train: Dataset, test: Dataset, time_ordered: bool, top: int = 5) -> dict[str, list[dict]]:
    """Per true status of the test rows, the columns that appear most often in the rows' top-3
    evidence (:class:`~lossless_triplet.explain.Explainer` fitted on the training rows of the normal
    status) and the share of the status's rows where each does: what an operator would read."""

    columns = Explainer.for_table(train, time_ordered=time_ordered).explain(test.features)["evidence_columns"]
    out = {}
    for c, name in enumerate(test.class_names):
        rows = columns[test.labels == c]
        if len(rows):
            counts = np.bincount(rows.ravel(), minlength=train.n_features)
            best = np.argsort(-counts, kind="stable")[:top]
            out[name] = [{"column": train.feature_names[j], "share": float(counts[j] / len(rows))}
                         for j in best if counts[j]]
    return out


def baselines(train: Dataset, test: Dataset, heldout: Sequence[int], prepared, n_draws: int, seed: int,
              retrieval: bool = True) -> dict[str, dict]:
    """The three reference rows of every table: nearest signature with no training on standardised
    raw columns (``raw_columns``) and on the view's features (``<view>_features``), and a random
    forest given every training label, held-out classes included (``random_forest_ceiling``: not
    one-shot, an upper reference; its ``one_shot_macro_f1`` is its macro-F1 over all classes).

    Args:
        prepared: the view's :class:`~lossless_triplet.pipeline.selection.Prepared` on ``train`` (its
            ``known`` rows are the classes not held out).
    """

    ref_labels = train.labels[prepared.reference_order]
    x_ref, x_test = prepared.reference(), prepared.transform(test.features)
    forest = RandomForestClassifier(n_estimators=200, random_state=seed, n_jobs=1).fit(x_ref, ref_labels)
    predicted = forest.predict(x_test)
    is_heldout = np.isin(test.labels, heldout)
    ceiling = {"one_shot_macro_f1": float(f1_score(test.labels, predicted, labels=np.unique(ref_labels),
                                                   average="macro", zero_division=0)),
               "heldout_accuracy": float(np.mean(predicted[is_heldout] == test.labels[is_heldout]))
               if is_heldout.any() else float("nan")}

    def measure(reference: np.ndarray, tested: np.ndarray) -> dict:
        return _code_metrics(reference, ref_labels, tested, test.labels, heldout, n_draws, seed, retrieval)

    raw = prepare_features(train.features, train.feature_names, prepared.known, "raw")
    return {"raw_columns": measure(raw.reference(), raw.transform(test.features)),
            f"{prepared.view.name}_features": measure(x_ref, x_test), "random_forest_ceiling": ceiling}
