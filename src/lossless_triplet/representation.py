"""What the fault memory compares: the code, the view's features and their excess beyond training.

Metric learning on known classes tends to drop the directions in which an unseen fault differs
(Arsenault's complaint about the hinge, one level up), while the view's features keep them but
separate known classes less well. :class:`Representation` puts side by side the code, the scaled
view features (weight a), their *excess* beyond the range seen in training (weight b) and that
excess *sorted* by size (weight c), which does not care which column moved; which weights a model
uses is chosen on its training table (:mod:`lossless_triplet.pipeline.selection`).

Sources: prototypes as class means in a learned space (Snell, Swersky, Zemel, "Prototypical
Networks for Few-shot Learning", NeurIPS 2017), here over a space widened by the input's features;
order statistics of per-column deviations as a summary that is the same whichever element a fault
strikes (the generalisation issue's first hint).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .io import json_safe
from .validation import check_is_fitted, check_state, state_header

__all__ = ["Representation"]


@dataclass
class Representation:
    """What the fault memory compares: ``[code, a * s * features, b * s * excess, c * t * sorted_excess]``,
    s = sqrt(N / F'), t = sqrt(N / F).

    - ``code``: the encoder's code (N units in [0, 1]); left out when ``use_code`` is False.
    - ``features``: the scaled view features, weight a (0: left out).
    - ``excess``: each feature's distance beyond the range it had in the known training rows,
      ``x - clip(x, low_, high_)``, weight b (0: left out). It is 0 for every training row, so it
      adds the same amount to a row's distance to every known signature and changes no decision
      among them; it decides only where a signature's members left that range, i.e. for a new
      fault whose example moved what training never saw move. That is exactly what the encoder
      cannot learn: a feature that never moved in training sends no gradient to the encoder's
      weights, whatever the loss (a link going admin-down, a router that stops reporting).

    - ``sorted_excess``: the absolute excess of ALL F view features, sorted from largest to
      smallest, weight c (0: left out). A fault that moves column 28 by 8 in one episode and column
      30 by 7 in the next reads nearly the same here, while the per-column excess of the two
      episodes is as far apart as it can be (for disjoint columns ``|e1 - e2|^2 = |e1|^2 + |e2|^2``:
      a new fault's rows then sit nearer every known signature, whose excess is 0, than its one
      example). Sorting keeps the norm (``|sort|e|| = |e|``), so the weights of both excess terms
      are in the same units, and it is 0 on every training row, so it too changes no decision
      among known signatures.

    s and t put the F' used features (and the F features) in the code's units: with a = 1,
    features spread like the code add about as much squared distance as the N code units.

    Attributes:
        use_code: whether the code is part of the vector.
        feature_weight: a >= 0; excess_weight: b >= 0; sorted_excess_weight: c >= 0.
        low_, high_: (F,) float32 minimum and maximum of every view feature over the known
            training rows (set by :meth:`fit`; needed when b > 0 or c > 0).
        columns_: int indices of the view features the features and excess terms use (set by
            :meth:`fit`; default all): the view's pooled statistics
            (``FeatureView.invariant_features_``), so that a fault striking column 28 in one
            episode and column 30 in the next reads the same. The sorted excess uses every feature.
        n_features_in_: F, the width :meth:`fit` saw (None for states saved before it was kept):
            :meth:`combine` refuses features of another width.

    Raises:
        ValueError: a negative, infinite or NaN weight; neither the code nor the features.
    """

    use_code: bool = True
    feature_weight: float = 0.0
    excess_weight: float = 0.0
    sorted_excess_weight: float = 0.0
    low_: np.ndarray | None = None
    high_: np.ndarray | None = None
    columns_: np.ndarray | None = None
    n_features_in_: int | None = None

    def __post_init__(self) -> None:
        for name in ("feature_weight", "excess_weight", "sorted_excess_weight"):
            if not 0 <= getattr(self, name) < math.inf:
                raise ValueError(f"{name}={getattr(self, name)} must be a finite number >= 0")
        if not (self.use_code or self.feature_weight):
            raise ValueError("a representation needs the code or the features: the excess is 0 on every "
                             "training row, so alone it cannot tell known statuses apart (e.g. code+16*sorted_excess)")

    @property
    def uses_features(self) -> bool:
        """Whether :meth:`combine` reads the features."""
        return bool(self.feature_weight or self.beyond_weight)

    @property
    def beyond_weight(self) -> float:
        """b + c: the weight of what lies beyond the training range (0 without an excess term)."""
        return self.excess_weight + self.sorted_excess_weight

    @property
    def name(self) -> str:
        """``code``, ``features``, ``code+0.5*features``, ``code+4*excess``, ``code+16*sorted_excess``, ..."""
        terms = ["code"] if self.use_code else []
        if self.feature_weight:
            terms.append("features" if not self.use_code and self.feature_weight == 1 else
                         f"{self.feature_weight:g}*features")
        for weight, term in ((self.excess_weight, "excess"), (self.sorted_excess_weight, "sorted_excess")):
            if weight:
                terms.append(f"{weight:g}*{term}")
        return "+".join(terms)

    @classmethod
    def parse(cls, name: str) -> Representation:
        """An unfitted representation from its :attr:`name`: terms joined by ``+``, each ``code``,
        ``features``, ``W*features``, ``W*excess`` or ``W*sorted_excess`` (W a number > 0;
        ``features`` alone is 1).

        Raises:
            ValueError: any other text, naming the valid forms."""
        weights = {"features": 0.0, "excess": 0.0, "sorted_excess": 0.0}
        use_code = False
        try:
            for term in str(name).strip().split("+"):
                weight, star, part = term.rpartition("*")
                if term == "code" and not use_code:
                    use_code = True
                elif part in weights and not weights[part] and (star or part == "features"):
                    weights[part] = float(weight) if star else 1.0
                    if not 0 < weights[part] < math.inf:
                        raise ValueError
                else:
                    raise ValueError
        except ValueError:
            raise ValueError(f"unknown representation {name!r}: terms joined by +, each once, without spaces: code, "
                             "features, W*features, W*excess or W*sorted_excess with a number W > 0 (e.g. code, "
                             "features, code+0.5*features+16*sorted_excess)") from None
        return cls(use_code, weights["features"], weights["excess"], weights["sorted_excess"])  # its own errors

    def fit(self, features: np.ndarray, columns: np.ndarray | None = None) -> Representation:
        """Learn the training range of every feature.

        Shape: features (n, F) scaled known training rows; columns: int indices into F of the
        features the features and excess terms use (default all). Returns self.

        Raises:
            ValueError: features not 2-D, empty or not finite (scale and impute them first: the
                view's scaler does); columns empty or out of range."""
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or not features.size or not np.isfinite(features).all():
            raise ValueError(f"fit needs a non-empty 2-D array of finite features, got shape {features.shape}"
                             f"{'' if features.ndim != 2 or not features.size else ' with NaN or inf'}: pass the "
                             "scaled view features (the scaler imputes missing cells)")
        columns = np.arange(features.shape[1]) if columns is None else np.asarray(columns, dtype=np.int64)
        if not columns.size or columns.min() < 0 or columns.max() >= features.shape[1]:
            raise ValueError(f"columns must be a non-empty list of indices into the {features.shape[1]} features")
        self.columns_ = columns
        self.low_, self.high_ = features.min(axis=0), features.max(axis=0)
        self.n_features_in_ = features.shape[1]
        return self

    def combine(self, codes: np.ndarray, features: np.ndarray | None) -> np.ndarray:
        """The compared vectors of rows.

        Shape: codes (n, N) float; features (n, F) float32 scaled view features (may be None when
        :attr:`uses_features` is False). Output: float32 (n, width), width = N (with the code)
        + F' (with the features) + F' (with the excess) + F (with the sorted excess),
        F' = len(columns_).

        Raises:
            ValueError: features None where a term needs them, or of another width than at fit.
            NotFittedError: an excess term before :meth:`fit`.
        """
        codes = np.asarray(codes, dtype=np.float32)
        if not self.uses_features:
            return codes
        if features is None:
            raise ValueError(f"the representation {self.name} needs the view features beside the codes")
        features = np.asarray(features, dtype=np.float32)
        if self.beyond_weight:
            check_is_fitted(self, "low_", "fit(training_features) (it has an excess term)")
        if self.n_features_in_ is not None:  # fitted, or saved with its width
            width, wrong = self.n_features_in_, features.shape[1] != self.n_features_in_
        elif self.columns_ is not None:  # a version-1 state knows only how far its columns reach
            width = int(self.columns_.max()) + 1
            wrong = features.shape[1] < width
        else:
            wrong = False
        if wrong:
            raise ValueError(f"the features have {features.shape[1]} columns but the representation was fitted "
                             f"on {width}; both must come from the same view")
        columns = self.columns_ if self.columns_ is not None else np.arange(features.shape[1])
        n_code, n_used, n_all = codes.shape[1], columns.size, features.shape[1]
        used = features if np.array_equal(columns, np.arange(n_all)) else features[:, columns]
        scale = math.sqrt(n_code / n_used)
        # every term is written into its columns of one output (no temporaries joined afterwards)
        widths = [n_code * self.use_code, n_used * bool(self.feature_weight), n_used * bool(self.excess_weight),
                  n_all * bool(self.sorted_excess_weight)]
        out = np.empty((len(features), sum(widths)), dtype=np.float32)
        code, weighted, excess, ranked = np.split(out, np.cumsum(widths)[:-1], axis=1)  # views, in that order
        if self.use_code:
            code[:] = codes
        if self.feature_weight:
            np.multiply(used, np.float32(self.feature_weight * scale), out=weighted)
        if self.excess_weight:
            np.subtract(used, np.clip(used, self.low_[columns], self.high_[columns]), out=excess)
            excess *= np.float32(self.excess_weight * scale)
        if self.sorted_excess_weight:
            _sorted_excess(features, self.low_, self.high_, out=ranked)
            ranked *= np.float32(self.sorted_excess_weight * math.sqrt(n_code / n_all))
        return out

    def to_dict(self) -> dict:
        """JSON-safe: the name, the used feature indices, and the ranges when an excess term needs them."""
        state = {**state_header("Representation", 2), "name": self.name}
        if self.uses_features and self.columns_ is not None:
            state |= {"columns": self.columns_.tolist()}
        if self.beyond_weight and self.low_ is not None:  # NaN (unused columns of a version-1 state): null
            state |= {"low": json_safe(self.low_), "high": json_safe(self.high_)}
        if self.n_features_in_:
            state |= {"n_features": int(self.n_features_in_)}
        return state

    @classmethod
    def from_dict(cls, state) -> Representation:
        """Inverse of :meth:`to_dict`; an absent state is the code alone.

        Version 1 (and bundles before versioned states) kept the ranges of the used columns only;
        they are placed at those columns (the others, never read by a version-1 term, are NaN).

        Raises:
            ValueError: a bad name, an excess term without its ranges."""
        state = state or {}
        version = check_state(state, "Representation", (1, 2), unversioned=1)  # bundles before versioned states: 1
        rep = cls.parse(state.get("name", "code"))
        if "columns" in state:
            rep.columns_ = np.asarray(state["columns"], dtype=np.int64)
        if rep.beyond_weight:
            if "low" not in state or "high" not in state:
                raise ValueError("the representation state lacks the feature ranges; the model bundle is incomplete")
            rep.low_, rep.high_ = (np.asarray(state[k], dtype=np.float32) for k in ("low", "high"))
            if version == 1 and rep.columns_ is not None:
                if rep.low_.size != rep.columns_.size:
                    raise ValueError(f"the representation state has {rep.low_.size} ranges for "
                                     f"{rep.columns_.size} columns; the model bundle is damaged")
                rep.low_, rep.high_ = (_at_columns(r, rep.columns_) for r in (rep.low_, rep.high_))
        rep.n_features_in_ = state.get("n_features")
        return rep


def _sorted_excess(features: np.ndarray, low: np.ndarray, high: np.ndarray, *, out: np.ndarray) -> None:
    """Write each row's ``|x - clip(x, low, high)|``, sorted from largest to smallest, to ``out``
    ((n, F) float32, may be a view of a wider array).

    Only the rows beyond the range somewhere are sorted (the others are all 0): on known traffic
    that is few of them, and the sort is most of the cost of the term."""
    np.clip(features, low, high, out=out)
    np.subtract(features, out, out=out)
    np.abs(out, out=out)
    beyond = np.flatnonzero(out.any(axis=1))
    if beyond.size:
        ranked = out[beyond]
        ranked.sort(axis=1)  # in place, ascending (10x faster here than sorting a negated copy)
        out[beyond] = ranked[:, ::-1]


def _at_columns(values: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """A (max(columns) + 1,) float32 array with ``values`` at ``columns`` and NaN elsewhere."""
    full = np.full(int(columns.max()) + 1 if columns.size else 0, np.nan, dtype=np.float32)
    full[columns] = values
    return full
