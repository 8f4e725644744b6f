"""The honest protocol: features that never see held-out minutes, and every choice made on training data.

Three pieces, shared by ``train`` (:func:`~lossless_triplet.bundle.fit_fault_model`), ``compare``
and ``demo`` (:func:`~lossless_triplet.experiment.compare_losses`) and the benchmarks:

- :func:`prepare_features`: fit the view and the scaler on the known-class rows, and compute the
  training features with the held-out rows masked out of the history (each run of known rows is
  transformed alone, as if the table started there), so that no held-out minute reaches a
  training row through a delta or a baseline.
- :class:`Representation`: what the fault memory compares. Metric learning on known classes tends
  to drop the directions in which an unseen fault differs (Arsenault's complaint about the hinge,
  one level up), while the view's features keep them but separate known classes less well. The
  representation is the code, the scaled view features, or both side by side with a weight w:
  ``[code, w * sqrt(N / F) * features]``, so that w = 1 gives the features the same share of the
  squared distance as the N code units would have at equal spread.
- :func:`select`: an inner leave-one-known-fault-out one-shot validation on the TRAINING table that
  picks the view and the weight. For each candidate view and each fold (a known fault class
  pretended new), the view, scaler and encoder are fitted without that class (masked from history
  too) on 70 % of the rows (blocks of consecutive rows, seeded), the class gets one example drawn
  from those rows, and every weight is scored on the other 30 % by the mean of one-shot macro-F1
  and held-out accuracy (the two goals of the one-shot promise). The eval table is never read.

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

from .data import Standardizer
from .data.views import FeatureView

__all__ = ["FEATURE_WEIGHTS", "INNER_STEPS", "Prepared", "Representation", "Selection", "candidate_representations",
           "known_runs", "prepare_features", "select", "transform_known"]

log = logging.getLogger("lossless_triplet")

# Weights of the view's features beside the code: 0 is the code alone, inf the features alone.
FEATURE_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, math.inf)
INNER_STEPS = 300  # optimiser steps of each inner fold's encoder (the final model trains the full budget)
MAX_FOLDS = 4  # known fault classes pretended new (the largest ones after the majority class)
VALIDATION_SHARE = 0.3  # rows of each fold scored, in blocks of consecutive rows
BLOCK_ROWS = 30  # rows per block (a fault episode lasts minutes: whole blocks keep it on one side)
VIEW_MIN_SCALE = 0.1  # Standardizer floor for view features (robust units): bounds the encoder input
INNER_DRAWS = 5  # one-shot draws per fold


PARTS = ("features", "excess")


@dataclass
class Representation:
    """What the fault memory compares: ``[code, w * sqrt(N / F) * part(features)]``.

    ``part`` is ``"features"`` (the scaled view features themselves) or ``"excess"``: each feature's
    distance beyond the range it had in the known training rows, ``x - clip(x, low_, high_)``. The
    excess is 0 for every row like those training saw, so the code alone decides among them, and
    it carries exactly what the encoder could not learn: a feature that never moved in training has
    no gradient into the encoder's weights, whatever the loss, so only this part can tell the code
    that a row moved there (a link going admin-down, a router that stops reporting).

    Attributes:
        feature_weight: w >= 0; 0 gives the code alone, ``inf`` the part alone (scaled by
            sqrt(N / F), so distances stay in the code's units).
        part: ``"features"`` or ``"excess"``.
        low_, high_: (F,) float32 per-feature minimum and maximum over the known training rows
            (set by :meth:`fit`; ``excess`` only).

    Raises:
        ValueError: a negative or NaN weight, an unknown part.
    """

    feature_weight: float = 0.0
    part: str = "features"
    low_: np.ndarray | None = None
    high_: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not self.feature_weight >= 0:
            raise ValueError(f"feature_weight={self.feature_weight} must be >= 0 (inf: the view's features alone)")
        if self.part not in PARTS:
            raise ValueError(f"part={self.part!r} must be one of {', '.join(PARTS)}")

    @property
    def uses_features(self) -> bool:
        """Whether :meth:`combine` reads the features."""
        return self.feature_weight > 0

    @property
    def name(self) -> str:
        """``code``, or e.g. ``code+0.5*excess``, ``features``."""
        if not self.uses_features:
            return "code"
        return self.part if math.isinf(self.feature_weight) else f"code+{self.feature_weight:g}*{self.part}"

    @classmethod
    def parse(cls, name: str) -> Representation:
        """An unfitted representation from its :attr:`name`: ``code``, ``features``, ``excess``,
        ``code+W*features`` or ``code+W*excess`` (W a number > 0).

        Raises:
            ValueError: any other text, naming the valid forms."""
        text = str(name).strip()
        if text == "code":
            return cls(0.0)
        if text in PARTS:
            return cls(math.inf, text)
        head, _, rest = text.partition("+")
        weight, _, part = rest.partition("*")
        try:
            if head == "code" and part in PARTS and 0 < float(weight) < math.inf:
                return cls(float(weight), part)
        except ValueError:
            pass
        raise ValueError(f"unknown representation {name!r}: give code, features, excess, code+W*features or "
                         "code+W*excess with a number W > 0 (e.g. code+0.5*excess)")

    def fit(self, features: np.ndarray) -> Representation:
        """Learn the training range of every feature (``excess`` only). Shape: features (n, F). Returns self."""
        if self.part == "excess":
            features = np.asarray(features, dtype=np.float32)
            self.low_, self.high_ = features.min(axis=0), features.max(axis=0)
        return self

    def combine(self, codes: np.ndarray, features: np.ndarray | None) -> np.ndarray:
        """The compared vectors of rows.

        Shape: codes (n, N) float; features (n, F) float32 scaled view features (may be None when
        the weight is 0). Output: float32 (n, N), (n, N + F) or (n, F).

        Raises:
            ValueError: ``excess`` before :meth:`fit`.
        """
        codes = np.asarray(codes, dtype=np.float32)
        if not self.uses_features:
            return codes
        part = np.asarray(features, dtype=np.float32)
        if self.part == "excess":
            if self.low_ is None:
                raise ValueError("Representation(part='excess') needs fit(training_features) before combine")
            part = part - np.clip(part, self.low_, self.high_)
        scale = math.sqrt(codes.shape[1] / part.shape[1])
        if math.isinf(self.feature_weight):
            return (part * np.float32(scale)).astype(np.float32)
        return np.hstack([codes, part * np.float32(self.feature_weight * scale)]).astype(np.float32)

    def to_dict(self) -> dict:
        """JSON-safe (inf as the string ``"inf"``); the ranges as lists."""
        state = {"name": self.name, "feature_weight": "inf" if math.isinf(self.feature_weight) else self.feature_weight,
                 "part": self.part}
        if self.low_ is not None:
            state |= {"low": self.low_.tolist(), "high": self.high_.tolist()}
        return state

    @classmethod
    def from_dict(cls, state) -> Representation:
        """Inverse of :meth:`to_dict`; an absent state is the code alone.

        Raises:
            ValueError: a bad weight or part, an ``excess`` part without its ranges."""
        state = state or {}
        rep = cls(float(state.get("feature_weight", 0.0)), state.get("part", "features"))
        if rep.part == "excess" and rep.uses_features:
            if "low" not in state or "high" not in state:
                raise ValueError("the representation state lacks the feature ranges; the model bundle is incomplete")
            rep.low_ = np.asarray(state["low"], dtype=np.float32)
            rep.high_ = np.asarray(state["high"], dtype=np.float32)
        return rep


def candidate_representations(weights: Sequence[float] = FEATURE_WEIGHTS) -> list[str]:
    """The representation names :func:`select` scores, in order of preference on ties: the code
    alone, code + w * features (the features alone for w = inf), code + w * excess (finite w > 0)."""
    out = [Representation(w, "features").name for w in weights]
    return out + [Representation(w, "excess").name for w in weights if 0 < w < math.inf]


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
    """

    view: FeatureView
    scaler: Standardizer
    x_known: np.ndarray
    x_all: np.ndarray


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
    return Prepared(feature_view, scaler, scaler.transform(x_known), x_all)


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
    """

    view: str
    representation: Representation
    scores: dict = field(default_factory=dict)
    folds: list = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        """JSON-safe record (for ``model.json`` and ``metrics.json``)."""
        rep = self.representation
        return {"view": self.view, "representation": rep.name, "feature_weight": rep.to_dict()["feature_weight"],
                "part": rep.part, "folds": list(self.folds), "inner_steps": INNER_STEPS,
                "validation_share": VALIDATION_SHARE, "block_rows": BLOCK_ROWS,
                "score": "mean of one-shot macro-F1 and held-out accuracy, inner leave-one-known-fault-out",
                "scores": {v: {r: round(s, 4) for r, s in rs.items()} for v, rs in self.scores.items()},
                "seconds": round(self.seconds, 1)}


def _fold_classes(labels: np.ndarray, known_ids: Sequence[int]) -> list[int]:
    """Known classes to pretend new: all but the largest (normal traffic), largest first, at most
    :data:`MAX_FOLDS`; each needs rows in both the fitting and the validation part."""
    counts = {c: int((labels == c).sum()) for c in known_ids}
    ordered = sorted(counts, key=lambda c: (-counts[c], c))
    return ordered[1:1 + MAX_FOLDS]


def _validation_rows(n: int, seed: int) -> np.ndarray:
    """(n,) bool: blocks of :data:`BLOCK_ROWS` consecutive rows drawn (seeded) for validation."""
    blocks = -(-n // BLOCK_ROWS)
    rng = np.random.default_rng([seed, 7])
    chosen = rng.random(blocks) < VALIDATION_SHARE
    return np.repeat(chosen, BLOCK_ROWS)[:n]


def _fold_scores(X, feature_names, labels, known, fold, view, loss_fn, config, representations, seed
                 ) -> dict[str, float]:
    """Score of every candidate representation (by name) for one view and one class pretended new
    (see the module docstring)."""
    from .metrics import one_shot_evaluation
    from .models import encode
    from .training import train_encoder

    validation = _validation_rows(len(labels), seed)
    train_rows = known & (labels != fold)
    fit_rows = train_rows & ~validation
    prepared = prepare_features(X, feature_names, fit_rows, view)
    x_fit = prepared.x_known
    inner = replace(config, epochs=1, steps_per_epoch=INNER_STEPS)
    trained = train_encoder(x_fit, labels[fit_rows], loss_fn, inner, progress=False, description="select")
    examples = (labels == fold) & ~validation  # the new class's one example comes from the fitting part
    scored = (known | (labels == fold)) & validation
    if not examples.any() or not (scored & (labels == fold)).any():
        return {}
    ref_x = np.concatenate([x_fit, prepared.x_all[examples]])
    ref_labels = np.concatenate([labels[fit_rows], labels[examples]])
    ref_codes, val_codes = encode(trained.model, ref_x), encode(trained.model, prepared.x_all[scored])
    out = {}
    for name in representations:
        rep = Representation.parse(name).fit(x_fit)
        result = one_shot_evaluation(rep.combine(ref_codes, ref_x), ref_labels,
                                     rep.combine(val_codes, prepared.x_all[scored]), labels[scored], [fold],
                                     n_draws=INNER_DRAWS, seed=seed)
        out[rep.name] = (result["one_shot_macro_f1"] + result["heldout_accuracy"]) / 2
    return out


def select(X: np.ndarray, feature_names: Sequence[str], labels: np.ndarray, known: np.ndarray, *,
           views: Sequence[str], loss: str, config, representations: Sequence[str] | None = None,
           class_names: Sequence[str] | None = None) -> Selection:
    """Choose the view and the representation on training rows only (see the module docstring).

    Args:
        X: (n, F) raw training rows in table order; labels (n,) int class ids.
        known: (n,) bool, the rows of classes that are not held out (held-out rows are masked).
        views: candidate view names (one is enough to choose only the weight).
        loss: the loss name the final model trains with; config: its TrainConfig (seed, N, P, K).
        representations: candidate representation names (default :func:`candidate_representations`).
        class_names: names for the log and the record (default: the ids).

    Returns:
        The :class:`Selection`. With fewer than 2 known fault classes besides the majority class
        nothing can be pretended new: the first view and the code alone are kept, and the
        record says so (``folds`` empty).
    """
    from .losses import make_loss

    started = time.perf_counter()
    known_ids = sorted(set(labels[known].tolist()))
    folds = _fold_classes(labels, known_ids)
    name = (lambda c: str(class_names[c])) if class_names is not None else str
    if len(known_ids) - 1 < 2 or not folds:
        log.info("selection: too few known classes to pretend one new; keeping %s and %s", views[0],
                 (representations or ["code"])[0])
        first = Representation.parse((representations or ["code"])[0])
        return Selection(views[0], first, seconds=time.perf_counter() - started)
    scores: dict[str, dict[str, float]] = {}
    candidates = list(representations or candidate_representations())
    for view in views:
        per_fold = [_fold_scores(X, feature_names, labels, known, fold, view, make_loss(loss), config, candidates,
                                 config.seed) for fold in folds]
        per_fold = [s for s in per_fold if s]
        scores[view] = {r: float(np.mean([s[r] for s in per_fold])) if per_fold else float("nan") for r in candidates}
        log.info("selection: %s: %s", view, {r: round(v, 3) for r, v in scores[view].items()})
    # the first best in candidate order: earlier views and the code alone win ties
    best_view, best = max(((v, r) for v in scores for r in candidates),
                          key=lambda vr: np.nan_to_num(scores[vr[0]][vr[1]], nan=-1.0))
    log.info("selection: chose %s with %s (score %.3f, folds %s)", best_view, best, scores[best_view][best],
             ", ".join(name(c) for c in folds))
    return Selection(best_view, Representation.parse(best), scores, [name(c) for c in folds],
                     time.perf_counter() - started)
