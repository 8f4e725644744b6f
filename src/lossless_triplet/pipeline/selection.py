"""The honest protocol: features that never see held-out minutes, and every choice made on training data.

Three pieces, shared by ``train`` (:func:`~lossless_triplet.pipeline.fit.fit_fault_model`), ``compare``
and ``demo`` (:func:`~lossless_triplet.pipeline.compare.compare_losses`) and the benchmarks:

- :func:`prepare_features`: fit the view and the scaler on the known-class rows, and compute the
  training features with the held-out rows masked out of the history (each run of known rows is
  transformed alone, as if the table started there), so that no held-out minute reaches a
  training row through a delta or a baseline.
- :class:`Representation`: what the fault memory compares. Metric learning on known classes tends
  to drop the directions in which an unseen fault differs (Arsenault's complaint about the hinge,
  one level up), while the view's features keep them but separate known classes less well. The
  representation puts side by side the code, the scaled view features (weight a) and their
  *excess* beyond the range seen in training, sorted by size so that it does not matter which
  column moved (weight c): see :class:`Representation`.
- :func:`select`: an inner leave-one-known-fault-out one-shot validation on the TRAINING table that
  picks the view and the representation. For each candidate view and each fold (a known fault
  class pretended new), the view, scaler and encoder are fitted without that class (masked from
  history too) on 70 % of the rows (blocks of consecutive rows, seeded), the class gets one example
  drawn from those rows, and every representation is scored on the other 30 % by the mean of
  one-shot macro-F1 and held-out accuracy (the two goals of the one-shot promise), then kept by
  the one-standard-error rule (:func:`one_standard_error_choice`). The eval table is never read.

Sources: prototypes as class means (Snell, Swersky, Zemel, "Prototypical Networks", NeurIPS 2017);
model choice by an inner split of the training data only (Musgrave, Belongie, Lim, "A Metric
Learning Reality Check", ECCV 2020).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ..data import Standardizer
from ..data.views import AUTO, FeatureView, candidate_views, resolve_view
from ..losses import make_loss
from ..metrics import one_shot_evaluation
from ..models import encode
from ..representation import Representation
from ..training import train_encoder

__all__ = ["EXCESS_WEIGHTS", "FEATURE_WEIGHTS", "INNER_STEPS", "Prepared", "Representation", "Selection",
           "candidate_representations", "choose", "known_runs", "one_standard_error_choice", "prepare_features",
           "select",
           "transform_known"]

log = logging.getLogger("lossless_triplet")

# Candidate weights of the view's features and of their sorted excess beside the code (0: left out).
FEATURE_WEIGHTS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
EXCESS_WEIGHTS = (1.0, 4.0, 16.0)
INNER_STEPS = 300  # at most this many optimiser steps per inner fold's encoder: a quarter of train's budget
MAX_FOLDS = 4  # known fault classes pretended new (the largest ones after the majority class)
VALIDATION_SHARE = 0.3  # rows of each fold scored, in blocks of consecutive rows
BLOCK_ROWS = 30  # rows per block (a fault episode lasts minutes: whole blocks keep it on one side)
VIEW_MIN_SCALE = 0.1  # Standardizer floor for view features (robust units): bounds the encoder input
INNER_DRAWS = 20  # one-shot draws per fold (the one example is the largest source of noise in the score)


def candidate_representations(feature_weights: Sequence[float] = FEATURE_WEIGHTS,
                              excess_weights: Sequence[float] = EXCESS_WEIGHTS) -> list[str]:
    """The representation names :func:`select` scores: each base (the code alone, code + a * features
    for every a > 0, the features alone) without and with c * sorted_excess for every c > 0.

    The per-column excess (``W*excess``) is not a candidate: on a new fault that strikes other
    columns than its one example it pulls the fault's rows towards the known signatures (see
    :class:`Representation`); the sorted excess won over it on every table of
    ``benchmarks/generalisation.py`` (docs/results.md). It stays available by name."""
    bases = ["code", *(f"code+{a:g}*features" for a in feature_weights if a), "features"]
    return [base + (f"+{c:g}*sorted_excess" if c else "") for base in bases for c in (0, *excess_weights)]


def resolve_holdout(class_names: Sequence[str], holdout: Sequence[str]) -> list[int]:
    """Class ids of the held-out class names.

    Raises:
        ValueError: an unknown name (listing the known ones), a duplicate, or a
            holdout that would leave fewer than 2 classes to train on.
    """
    ids = []
    for name in holdout:
        if name not in class_names:
            raise ValueError(f"held-out class {name!r} is not a class of the data; known: {', '.join(class_names)}")
        if class_names.index(name) in ids:
            raise ValueError(f"held-out class {name!r} is listed twice")
        ids.append(class_names.index(name))
    if len(class_names) - len(ids) < 2:
        if not ids:
            raise ValueError(f"the table has {len(class_names)} class(es) ({', '.join(map(str, class_names))}): "
                             "training needs at least 2 (triplets need a negative); check the label column, or "
                             "add rows of another status")
        raise ValueError(f"holding out {len(ids)} of {len(class_names)} classes leaves "
                         f"{len(class_names) - len(ids)} to train on; at least 2 must stay (triplets need a "
                         "negative): hold out fewer")
    return ids


def known_runs(keep: np.ndarray) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` of the runs of consecutive True in a (n,) bool mask."""
    edges = np.diff(np.concatenate([[0], keep.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def transform_known(view: FeatureView, X: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """View features of the rows where ``keep`` is True, each run of such rows transformed alone:
    the rows outside ``keep`` (held-out minutes) never reach them as history.

    Shape: X (n, F) raw, keep (n,) bool. Output: float32 (keep.sum(), view features).
    """
    if not view.needs_previous_row:
        return view.transform(X[keep])
    return np.concatenate([view.transform(X[a:b]) for a, b in known_runs(keep)])


@dataclass
class Prepared:
    """Fitted view and scaler, and the scaled features they give.

    Attributes:
        view, scaler: fitted on the known rows only.
        x_known: float32 (n_known, F) features of the known rows, history masked to known rows
            (what the encoder trains on).
        x_all: float32 (n, F) features of every row with its full history (what ``detect`` and
            ``add-fault`` see: the one-shot examples come from here).
        known: (n,) bool, the rows the view and scaler were fitted on.
    """

    view: FeatureView
    scaler: Standardizer
    x_known: np.ndarray
    x_all: np.ndarray
    known: np.ndarray

    @property
    def reference_order(self) -> np.ndarray:
        """Table row indices of :meth:`reference`'s rows: the known rows, then the others."""
        return np.concatenate([np.flatnonzero(self.known), np.flatnonzero(~self.known)])

    def reference(self) -> np.ndarray:
        """The reference rows of the one-shot protocol: the known rows as training saw them, then the
        held-out rows with their full history (one of them becomes the one example); float32 (n, F)."""
        return np.concatenate([self.x_known, self.x_all[~self.known]])

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Scaled view features of other rows (a test table), each with its full history."""
        return self.scaler.transform(self.view.transform(X))


def prepare_features(X: np.ndarray, feature_names: Sequence[str], known: np.ndarray, view: str) -> Prepared:
    """Fit ``view`` and its scaler on the rows ``known`` and transform (see :class:`Prepared`).

    Shape: X (n, F) float raw rows in table order, NaN = missing; known (n,) bool.

    Raises:
        ValueError: as :class:`~lossless_triplet.data.views.FeatureView`.
    """
    feature_view = FeatureView(view).fit(X[known], feature_names)
    raw_view = feature_view.spec.base == "raw"
    x_known = transform_known(feature_view, X, known)
    scaler = Standardizer(min_scale=0.0 if raw_view else VIEW_MIN_SCALE).fit(
        x_known, feature_names=feature_view.feature_names_out_)
    x_all = scaler.transform(feature_view.transform(X))
    return Prepared(feature_view, scaler, scaler.transform(x_known), x_all, known)


@dataclass
class Selection:
    """What :func:`select` chose and why.

    Attributes:
        view: the chosen view name.
        representation: the chosen :class:`Representation`.
        scores: ``{view: {representation name: mean score}}`` over the folds (the mean of one-shot
            macro-F1 and held-out accuracy on the inner validation rows).
        folds: the class names pretended new, in order.
        seconds: wall time of the selection.
        inner_steps: optimiser steps of each inner fold's encoder.
        note: how the choice was made, in words (printed by ``train``).
        per_fold: per-fold scores of the kept candidate and of the best mean (``"kept"``,
            ``"best"``: ``{"view", "representation", "scores"}``), to check the rule.
    """

    view: str
    representation: Representation
    scores: dict = field(default_factory=dict)
    folds: list = field(default_factory=list)
    seconds: float = 0.0
    inner_steps: int = 0
    note: str = "as given"
    per_fold: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-safe record (for ``model.json`` and ``metrics.json``)."""
        rep = self.representation
        return {"view": self.view, "representation": rep.name, "folds": list(self.folds),
                "inner_steps": self.inner_steps,
                "inner_draws": INNER_DRAWS, "validation_share": VALIDATION_SHARE, "block_rows": BLOCK_ROWS,
                "score": "mean of one-shot macro-F1 and held-out accuracy, inner leave-one-known-fault-out",
                "rule": "one standard error of the best, then the largest excess weight, then the best score",
                "note": self.note, "per_fold": self.per_fold,
                "scores": {v: {r: round(s, 4) for r, s in rs.items()} for v, rs in self.scores.items()},
                "seconds": round(self.seconds, 1)}


def inner_steps(config) -> int:
    """Optimiser steps of each inner fold: a quarter of the final budget, at most :data:`INNER_STEPS`."""
    return max(1, min(INNER_STEPS, config.total_steps // 4))


def _fold_classes(labels: np.ndarray, known_ids: Sequence[int]) -> list[int]:
    """Known classes to pretend new: all but the largest (normal traffic), largest first, at most
    :data:`MAX_FOLDS`; each needs rows in both the fitting and the validation part."""
    counts = {c: int((labels == c).sum()) for c in known_ids}
    ordered = sorted(counts, key=lambda c: (-counts[c], c))
    return ordered[1:1 + MAX_FOLDS]


def _validation_rows(n: int, seed: int) -> np.ndarray:
    """(n,) bool: blocks of :data:`BLOCK_ROWS` consecutive rows (fewer on a table of under 600 rows)
    drawn (seeded) for validation."""
    size = max(1, min(BLOCK_ROWS, n // 20))  # at least 20 blocks on a small table
    rng = np.random.default_rng([seed, 7])
    chosen = rng.random(-(-n // size)) < VALIDATION_SHARE
    return np.repeat(chosen, size)[:n]


def _fold_scores(X, feature_names, labels, known, fold, view, loss_fn, config, representations, seed
                 ) -> dict[str, float]:
    """Score of every candidate representation (by name) for one view and one class pretended new
    (see the module docstring)."""

    validation = _validation_rows(len(labels), seed)
    train_rows = known & (labels != fold)
    fit_rows = train_rows & ~validation
    examples = (labels == fold) & ~validation  # the new class's one example comes from the fitting part
    scored = (known | (labels == fold)) & validation
    if len(np.unique(labels[fit_rows])) < 2 or not examples.any() or not (scored & (labels == fold)).any():
        return {}  # this split left nothing to train on or to score: the fold is skipped
    prepared = prepare_features(X, feature_names, fit_rows, view)
    x_fit = prepared.x_known
    inner = replace(config, epochs=1, steps_per_epoch=inner_steps(config))
    trained = train_encoder(x_fit, labels[fit_rows], loss_fn, inner, progress=False, description="select")
    ref_x = np.concatenate([x_fit, prepared.x_all[examples]])
    ref_labels = np.concatenate([labels[fit_rows], labels[examples]])
    ref_codes, val_codes = encode(trained.model, ref_x), encode(trained.model, prepared.x_all[scored])
    out = {}
    for name in representations:
        rep = Representation.parse(name).fit(x_fit, prepared.view.invariant_features_)
        result = one_shot_evaluation(rep.combine(ref_codes, ref_x), ref_labels,
                                     rep.combine(val_codes, prepared.x_all[scored]), labels[scored], [fold],
                                     n_draws=INNER_DRAWS, seed=seed)
        out[rep.name] = (result["one_shot_macro_f1"] + result["heldout_accuracy"]) / 2
    return out


def one_standard_error_choice(per_fold: dict[tuple[str, str], list[float]]) -> tuple[str, str]:
    """The ``(view, representation)`` to keep from per-fold scores (higher is better).

    The one-standard-error rule (Breiman et al., "Classification and Regression Trees", 1984;
    Hastie, Tibshirani, Friedman, "The Elements of Statistical Learning", sec. 7.10): the inner
    folds are few and one example is noisy, so every candidate whose mean score is within one
    standard error of the best (the standard error of its per-fold difference to the best) is as
    good as the best. Among those, the largest excess weight (both excess terms together) wins
    (the excess changes no decision among signatures inside the training range, see
    :class:`Representation`, so it costs nothing where it is not needed), then the best mean
    score, then the earliest candidate.

    Raises:
        ValueError: no candidate with a score.
    """
    scored = {key: np.asarray(values) for key, values in per_fold.items() if len(values)}
    if not scored:
        raise ValueError("no candidate has a score: no inner fold had rows to pretend new")
    means = {key: float(values.mean()) for key, values in scored.items()}
    best = max(means, key=means.get)

    def within(key) -> bool:
        gap = scored[best] - scored[key]
        return gap.mean() <= (gap.std(ddof=1) / math.sqrt(gap.size) if gap.size > 1 else 0.0)

    order = list(scored)
    return max((key for key in scored if within(key)),
               key=lambda key: (Representation.parse(key[1]).beyond_weight, means[key], -order.index(key)))


def select(X: np.ndarray, feature_names: Sequence[str], labels: np.ndarray, known: np.ndarray, *,
           views: Sequence[str], loss: str, config, representations: Sequence[str] | None = None,
           class_names: Sequence[str] | None = None) -> Selection:
    """Choose the view and the representation on training rows only (see the module docstring).

    Args:
        X: (n, F) raw training rows in table order; labels (n,) int class ids.
        known: (n,) bool, the rows of classes that are not held out (held-out rows are masked).
        views: candidate view names (one is enough to choose only the representation).
        loss: the loss name the final model trains with (options allowed, e.g. ``lossless:beta=2N``); config: its TrainConfig (seed, N, P, K).
        representations: candidate representation names (default :func:`candidate_representations`).
        class_names: names for the log and the record (default: the ids).

    Returns:
        The :class:`Selection`. With fewer than 2 known fault classes besides the majority class
        nothing can be pretended new: the first view and the code alone are kept, and the
        record says so (``folds`` empty).
    """

    started = time.perf_counter()
    known_ids = sorted(set(labels[known].tolist()))
    folds = _fold_classes(labels, known_ids)
    name = (lambda c: str(class_names[c])) if class_names is not None else str
    if len(known_ids) - 1 < 2 or not folds:
        first = (representations or ["code"])[0]
        note = (f"defaults: {len(known_ids)} known class(es), too few to pretend one new besides the largest; "
                f"kept the first candidate view {views[0]} and {first}")
        log.warning("selection: %s", note)
        return Selection(views[0], Representation.parse(first), seconds=time.perf_counter() - started, note=note)
    candidates = list(representations or candidate_representations())
    per_fold: dict[tuple[str, str], list[float]] = {}
    loss_fn = make_loss(loss, embedding_dim=config.embedding_dim)
    for view in views:
        folds_scores = [_fold_scores(X, feature_names, labels, known, fold, view, loss_fn, config, candidates,
                                     config.seed) for fold in folds]
        for r in candidates:
            per_fold[view, r] = [f[r] for f in folds_scores if f]
        log.info("selection: %s: %s", view, {r: round(float(np.mean(per_fold[view, r])), 3) for r in candidates
                                              if per_fold[view, r]})
    if not any(per_fold.values()):
        note = (f"defaults: no inner fold had rows to train on and to score; kept the first candidate view "
                f"{views[0]} and {candidates[0]}")
        log.warning("selection: %s", note)
        return Selection(views[0], Representation.parse(candidates[0]), seconds=time.perf_counter() - started,
                         note=note)
    best_view, best = one_standard_error_choice(per_fold)
    top = max((key for key in per_fold if per_fold[key]), key=lambda key: float(np.mean(per_fold[key])))
    scores = {v: {r: float(np.mean(per_fold[v, r])) if per_fold[v, r] else float("nan") for r in candidates}
              for v in views}
    log.info("selection: chose %s with %s (score %.3f, best %.3f; folds %s)", best_view, best,
             scores[best_view][best], max(np.nan_to_num(x, nan=-1.0) for v in scores.values() for x in v.values()),
             ", ".join(name(c) for c in folds))
    what = " and ".join(w for w, n in (("view", len(views)), ("representation", len(candidates))) if n > 1)
    note = f"{what or 'nothing'} chosen on the training table ({len(folds)} inner folds)"
    record = {label: {"view": v, "representation": r, "scores": [round(x, 4) for x in per_fold[v, r]]}
              for label, (v, r) in (("kept", (best_view, best)), ("best", top))}
    return Selection(best_view, Representation.parse(best), scores, [name(c) for c in folds],
                     time.perf_counter() - started, inner_steps(config), note, record)


def choose(data, known: np.ndarray, *, view: str, representation: str | None, time_ordered: bool,
           loss: str, config) -> Selection:
    """The view and representation of a model: given, or chosen by :func:`select` on ``data`` (a
    :class:`~lossless_triplet.data.Dataset`; its rows ``known``) when ``view`` is ``"auto"`` or
    ``representation`` is None. The returned representation is not fitted yet.

    Raises:
        ValueError: an unknown view or representation name.
    """
    views = (candidate_views(data.feature_names, time_ordered=time_ordered) if view == AUTO
             else [resolve_view(view, data.feature_names)])
    given = None if representation is None else Representation.parse(representation)
    if len(views) == 1 and given is not None:
        return Selection(views[0], given)
    return select(data.features, data.feature_names, data.labels, known, views=views, loss=loss, config=config,
                  representations=None if given is None else [given.name], class_names=data.class_names)
