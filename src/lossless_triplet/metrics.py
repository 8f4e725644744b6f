"""How good a code is: retrieval metrics, cluster compactness and the one-shot protocol.

Everything here works on codes that have already been computed (``np.ndarray``
(n, N) float) and their labels (``np.ndarray`` (n,), int or any sortable label
such as str); it needs numpy and scikit-learn only, never torch, so metrics can
be computed for any representation (raw features, a trained encoder, ...).

Distances are plain Euclidean ``||x - y||`` (not squared) unless a docstring
says otherwise; for ranking and nearest-neighbour assignment the two orders are
identical.

Non-finite results: ``one_shot_evaluation`` returns ``nan`` for
``heldout_accuracy`` when there is nothing to measure, and ``compactness``
returns ``inf`` when all class centroids coincide. Python's ``json`` would write
them as the non-standard ``NaN`` / ``Infinity``: callers that write
``metrics.json`` map non-finite values to ``null``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .validation import check_codes, check_codes_labels

__all__ = [
    "retrieval_metrics",
    "compactness",
    "class_centroids",
    "nearest_representative",
    "draw_heldout_examples",
    "one_shot_evaluation",
]

# Why: retrieval asks for R + 1 neighbours of every query, and R can be most of the
# set (n = 6000 with one large "normal" class). Querying in blocks keeps each
# (rows, R + 1) neighbour array at about 2**21 entries (~32 MB of indices + distances).


RETRIEVAL_KEYS = ("precision_at_1", "r_precision", "map_at_r")
# Distances a retrieval pass may rank (queries x rows): up to it every query is ranked (exact);
# past it a class-stratified sample of queries is, each against every row (an estimate with its
# standard error). 2**25 keeps one metrics call near a second on 2 cores.
RETRIEVAL_WORK = 2**25
MIN_QUERIES_PER_CLASS = 30  # a sampled class keeps at least this many queries (all if it has fewer)
_DISTANCE_BLOCK = 2**22  # distances held at once (32 MB in float64)


def retrieval_metrics(codes, labels, *, work: int = RETRIEVAL_WORK, seed: int = 0) -> dict:
    """Precision@1, R-precision and MAP@R of a set of codes queried against itself.

    Each code is a query against the *rest* of the set (the query itself is excluded
    by its row index, so duplicate points still count as neighbours), ranked by
    Euclidean distance. For a query of class c, R = number of *other* codes of
    class c, and with rel(i) = 1 when the i-th nearest neighbour has class c:

    - precision_at_1 = rel(1)
    - r_precision    = (1/R) * sum_{i=1..R} rel(i)
    - map_at_r       = (1/R) * sum_{i=1..R} P(i) * rel(i), P(i) = (1/i) sum_{j<=i} rel(j)

    Each is averaged over queries (micro average, the default of
    pytorch-metric-learning's ``AccuracyCalculator``). Queries whose class has no
    other member (R = 0) have nothing to retrieve and are excluded from all three.
    A tie in distance between a same-class and an other-class code ranks the other-class one
    first (pessimistic; the reference implementation breaks ties arbitrarily): a collapsed code
    whose classes share identical codes must not score by luck of the tie order (the saturated
    linear lossless code scored P@1 0.94 with ties to the same class, against 0.61 by index order).

    How, in bounded time and memory (never a k = R neighbour list): a query's distances to
    every row are computed a block of queries at a time; its same-class and other-class
    distances are sorted apart, and the rank of its k-th nearest same-class code is k plus
    the number of other-class codes nearer (a binary search), which gives all three measures.
    That costs about n log n per query:

    - ``retrieval_method = "exact"``: every query, when (queries) x n <= ``work``;
    - ``"sampled"`` otherwise: a seeded sample of queries, stratified by class (proportional,
      at least ``MIN_QUERIES_PER_CLASS`` per class, (queries) x n <= ``work`` when that allows),
      each ranked against ALL rows, so each sampled query's measures are exact. The stratified
      estimator sum_c (n_c / n) mean_c is unbiased for the micro average; its standard error,
      with the finite population correction, is ``<key>_se`` (0 when exact).

    Source: Musgrave, Belongie, Lim, "A Metric Learning Reality Check", ECCV 2020;
    stratified sampling: W. G. Cochran, "Sampling Techniques", 3rd ed., 1977, ch. 5.

    Shape:
        codes: (n, N) float (any real dtype; used as float64). labels: (n,) int or
        other sortable labels. Output: dict with ``precision_at_1``, ``r_precision``,
        ``map_at_r`` (float in [0, 1]), their ``*_se`` (float >= 0), ``retrieval_method``
        (str) and ``retrieval_queries`` (int, queries ranked).

    Raises:
        ValueError: codes not 2-D, fewer than 2 rows, non-finite values; labels not
            1-D or of a different length; every class a singleton (no query left);
            ``work`` < 1.
    """
    codes, labels = check_codes_labels(codes, labels)
    if work < 1:
        raise ValueError(f"work={work} must be >= 1")
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if counts.max() < 2:
        raise ValueError(
            f"every class in labels has a single code ({classes.size} classes, "
            f"{labels.size} codes), so no query has anything to retrieve; retrieval "
            "metrics need at least one class with two or more codes."
        )
    n = len(codes)
    eligible = counts >= 2
    population = int(counts[eligible].sum())
    exact = population * n <= work
    rng = np.random.default_rng(seed)
    budget = max(1, work // n)
    square = (codes**2).sum(axis=1)
    means, variances, sizes, taken = [], [], [], 0
    for c in np.flatnonzero(eligible):
        members = np.flatnonzero(inverse == c)
        if exact:
            queries = members
        else:
            share = max(MIN_QUERIES_PER_CLASS, int(round(budget * members.size / population)))
            queries = np.sort(rng.choice(members, size=min(members.size, share), replace=False))
        values = _class_retrieval(codes, square, inverse, c, queries)  # (q, 3)
        taken += queries.size
        means.append(values.mean(axis=0))
        variances.append(values.var(axis=0, ddof=1) if queries.size > 1 else np.zeros(3))
        sizes.append((members.size, queries.size))
    weights = np.array([m for m, _ in sizes], dtype=np.float64) / population
    estimate = weights @ np.array(means)
    if exact:
        se = np.zeros(3)
    else:
        correction = np.array([(1 - q / m) / q for m, q in sizes])
        se = np.sqrt(((weights**2 * correction)[:, None] * np.array(variances)).sum(axis=0))
    out: dict = {key: float(v) for key, v in zip(RETRIEVAL_KEYS, estimate)}
    out |= {f"{key}_se": float(v) for key, v in zip(RETRIEVAL_KEYS, se)}
    return out | {"retrieval_method": "exact" if exact else "sampled", "retrieval_queries": int(taken)}


def _nearer_others(near: np.ndarray, far: np.ndarray) -> np.ndarray:
    """(rows, R) int: per row, how many of ``far`` lie at or below each of ``near`` (both sorted per
    row: a tie ranks the other-class code first). One binary search over all rows at once (row i shifted by i * span keeps the
    flattened rows sorted), in the cheaper direction: the R same-class values among the m
    others when R <= m, else the m others among the R (then counted per position)."""
    rows, r = near.shape
    m = far.shape[1]
    span = float(max(near.max(initial=0.0), far.max(initial=0.0))) + 1.0
    shift = (np.arange(rows) * span)[:, None]
    if r <= m:
        before = np.searchsorted((far + shift).ravel(), (near + shift).ravel(), side="right")
        return before.reshape(rows, r) - (np.arange(rows) * m)[:, None]
    # #near < far_j for each other code, then before_k = #{j: that count < k} = #{j: far_j <= near_k}
    at = np.searchsorted((near + shift).ravel(), (far + shift).ravel(), side="left").reshape(rows, m)
    at -= (np.arange(rows) * r)[:, None]
    counts = np.bincount((at + (np.arange(rows) * (r + 1))[:, None]).ravel(), minlength=rows * (r + 1))
    return np.cumsum(counts.reshape(rows, r + 1), axis=1)[:, :r]


def _class_retrieval(codes: np.ndarray, square: np.ndarray, inverse: np.ndarray, c: int,
                     queries: np.ndarray) -> np.ndarray:
    """(len(queries), 3) P@1, R-precision and AP@R of queries of class ``c`` ranked against every row."""
    n = len(codes)
    same = inverse == c
    r = int(same.sum()) - 1
    out = np.empty((queries.size, 3))
    rows = max(1, _DISTANCE_BLOCK // n)
    ranks = np.arange(1, r + 1)
    for start in range(0, queries.size, rows):
        q = queries[start:start + rows]
        d = square[q, None] + square[None, :] - 2.0 * codes[q] @ codes.T
        np.maximum(d, 0.0, out=d)
        d[np.arange(q.size), q] = np.inf  # the query itself: ranked last, then dropped
        near = np.sort(d[:, same], axis=1)[:, :r]  # (rows, R) same-class distances, self (inf) dropped
        far = np.sort(d[:, ~same], axis=1)  # (rows, m)
        before = _nearer_others(near, far)
        position = ranks + before  # 1-based rank of the k-th nearest same-class code
        inside = position <= r
        out[start:start + q.size, 0] = position[:, 0] == 1
        out[start:start + q.size, 1] = inside.sum(axis=1) / r
        out[start:start + q.size, 2] = np.where(inside, ranks / position, 0.0).sum(axis=1) / r
    return out


def class_centroids(codes, labels) -> tuple[np.ndarray, np.ndarray]:
    """Mean code of each class.

    A class centroid is the prototype of Snell, Swersky, Zemel, "Prototypical
    Networks for Few-shot Learning", NeurIPS 2017.

    Shape:
        codes: (n, N) float; labels: (n,) int or other sortable labels.
        Output: ``(classes, centroids)`` with classes (C,) sorted unique labels and
        centroids (C, N) float64, row k the mean of the codes of classes[k].

    Raises:
        ValueError: codes not 2-D, empty or non-finite; labels not 1-D or of a
            different length.
    """
    codes, labels = check_codes_labels(codes, labels, min_rows=1)
    return _centroids(codes, labels)


def _centroids(codes: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    sums = np.zeros((classes.size, codes.shape[1]))
    np.add.at(sums, inverse, codes)
    return classes, sums / counts[:, None]


def compactness(codes, labels) -> float:
    """Within-class spread relative to between-class spread (lower is tighter).

    compactness = mean_c [ mean_{x in c} ||x - mu_c||^2 ] / mean_{c < c'} ||mu_c - mu_c'||^2

    with mu_c the centroid of class c; the numerator averages classes equally (a
    singleton class contributes 0), the denominator averages all unordered pairs
    of distinct classes. Both are squared Euclidean distances, so the ratio is
    unitless and invariant to scaling the codes. When all centroids coincide (a
    collapsed encoder) the ratio is ``inf``; callers writing JSON map it to null.

    Source: this project's DESIGN ("Metric definitions"), a Fisher-style ratio of
    within- to between-class scatter.

    Shape:
        codes: (n, N) float; labels: (n,) int or other sortable labels.
        Output: float >= 0 (or inf).

    Raises:
        ValueError: codes not 2-D, fewer than 2 rows, non-finite values; labels not
            1-D or of a different length; fewer than 2 classes.
    """
    codes, labels = check_codes_labels(codes, labels)
    classes, centroids = _centroids(codes, labels)
    if classes.size < 2:
        raise ValueError(
            f"labels has {classes.size} class; compactness compares within-class to "
            "between-class distances and needs at least 2 classes."
        )
    inverse = np.searchsorted(classes, labels)
    sq_to_centroid = ((codes - centroids[inverse]) ** 2).sum(axis=1)
    within = (np.bincount(inverse, weights=sq_to_centroid) / np.bincount(inverse)).mean()
    i, j = np.triu_indices(classes.size, k=1)
    between = ((centroids[i] - centroids[j]) ** 2).sum(axis=1).mean()
    if between == 0.0:
        return float("inf")
    return float(within / between)


def nearest_representative(codes, rep_codes, rep_labels) -> tuple[np.ndarray, np.ndarray]:
    """Label and Euclidean distance of the nearest representative of each code.

    Ties go to the representative listed first (distances come from
    the dot-product expansion ||x||^2 - 2 x.r + ||r||^2 in float64, as
    ``sklearn.metrics.pairwise_distances_argmin_min`` computes them, which can round near-ties
    either way).

    Shape:
        codes: (n, N) float; rep_codes: (m, N) float; rep_labels: (m,) any labels.
        Output: ``(pred_labels, distances)``: pred_labels (n,) with the dtype of
        rep_labels, distances (n,) float64, Euclidean (not squared), in code units.

    Raises:
        ValueError: codes or rep_codes not 2-D, empty or non-finite; widths differ;
            rep_labels not 1-D or of a different length than rep_codes.
    """
    codes = check_codes(codes, "codes", min_rows=1)
    rep_codes, rep_labels = check_codes_labels(
        rep_codes, rep_labels, codes_name="rep_codes", labels_name="rep_labels", min_rows=1
    )
    if codes.shape[1] != rep_codes.shape[1]:
        raise ValueError(
            f"codes have width {codes.shape[1]} but rep_codes have width "
            f"{rep_codes.shape[1]}; both must come from the same encoder."
        )
    return _nearest(codes, rep_codes, rep_labels)


def _squared_distances(codes: np.ndarray, rep_codes: np.ndarray) -> np.ndarray:
    """(n, m) squared Euclidean distances by the dot-product expansion, clipped at 0 (float64)."""
    d2 = (codes**2).sum(axis=1)[:, None] - 2 * codes @ rep_codes.T + (rep_codes**2).sum(axis=1)[None, :]
    return np.maximum(d2, 0.0)


def _nearest(codes, rep_codes, rep_labels) -> tuple[np.ndarray, np.ndarray]:
    d2 = _squared_distances(codes, rep_codes)
    nearest = d2.argmin(axis=1)
    return rep_labels[nearest], np.sqrt(d2[np.arange(len(codes)), nearest])


def draw_heldout_examples(
    train_labels, heldout: Sequence, *, n_draws: int = 10, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The training rows that represent each held-out class, one per class per draw.

    Draw d picks, for each held-out class (sorted order), one training row of that
    class uniformly at random; draws are independent and reproducible for a given
    ``seed`` (``numpy.random.default_rng(seed)``).

    Shape:
        train_labels: (n,) labels. heldout: sequence of H class ids (duplicates
        ignored). Output: ``(heldout_classes, draws)`` with heldout_classes (H,)
        sorted unique, draws (n_draws, H) int64 row indices into train_labels,
        draws[d, h] a row of class heldout_classes[h].

    Raises:
        ValueError: train_labels not 1-D; n_draws < 1; a held-out class with no
            training row (nothing to draw the one example from).
    """
    train_labels = np.asarray(train_labels)
    if train_labels.ndim != 1:
        raise ValueError(
            f"train_labels must be 1-D (n,); got shape {train_labels.shape}. "
            "Flatten it with .ravel()."
        )
    if int(n_draws) != n_draws or n_draws < 1:
        raise ValueError(f"n_draws must be an integer >= 1; got {n_draws!r}.")
    if isinstance(heldout, str):
        raise ValueError(
            f"heldout must be a sequence of class ids, not the string {heldout!r}; "
            f"wrap a single class in a list: [{heldout!r}]."
        )
    heldout = list(heldout)
    # An empty list would become a float array; keep the labels' dtype instead.
    heldout_classes = np.unique(np.asarray(heldout)) if heldout else train_labels[:0]
    rows_of = []
    for cls in heldout_classes.tolist():  # plain Python values read well in errors
        rows = np.flatnonzero(train_labels == cls)
        if rows.size == 0:
            raise ValueError(
                f"held-out class {cls!r} has no row in train_labels, so no one-shot "
                "example can be drawn; give it at least one training row or remove it "
                "from heldout."
            )
        rows_of.append(rows)
    rng = np.random.default_rng(seed)
    draws = np.empty((int(n_draws), len(rows_of)), dtype=np.int64)
    for d in range(int(n_draws)):
        for h, rows in enumerate(rows_of):
            draws[d, h] = rows[rng.integers(rows.size)]
    return heldout_classes, draws


def _macro_f1(truth: np.ndarray, predicted: np.ndarray, labels: np.ndarray) -> float:
    """``f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)`` from counts:
    F1 = 2 tp / (predicted + true) per label (0 where both are 0), averaged over ``labels`` (sorted
    unique). Rows whose true label is not in ``labels`` still count against what they were given.
    Measured about 20x faster than scikit-learn's on 5,000 rows (no validation, one bincount)."""
    k = labels.size
    t = np.searchsorted(labels, truth)
    t_known = (t < k) & (labels[np.minimum(t, k - 1)] == truth)
    p = np.searchsorted(labels, predicted)  # predictions are always representatives, hence in labels
    true_count = np.bincount(t[t_known], minlength=k)
    pred_count = np.bincount(p, minlength=k)
    tp = np.bincount(p[t_known & (t == p)], minlength=k)
    denominator = true_count + pred_count
    return float(np.mean(np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)))


def one_shot_evaluation(
    train_codes,
    train_labels,
    test_codes,
    test_labels,
    heldout: Sequence,
    *,
    n_draws: int = 10,
    seed: int = 0,
) -> dict[str, float | int]:
    """One-shot recognition of held-out classes by nearest representative.

    Protocol (DESIGN, "Metric definitions"; motivated by Arsenault, "Lossless
    Triplet loss", 2018: recognise a fault type from a single example): each known
    class (present in train, not held out) is represented by the centroid of its
    training codes (the prototype of Snell, Swersky, Zemel, "Prototypical
    Networks", NeurIPS 2017); each held-out class by ONE of its training codes,
    drawn at random (see ``draw_heldout_examples``). Every test code gets the class
    of its nearest representative (Euclidean). Per draw:

    - ``one_shot_macro_f1``: ``sklearn.metrics.f1_score(average="macro",
      zero_division=0)`` over the label set = sorted representative classes (every
      class in train). Test rows of a class with no representative are still scored
      (always wrong: they are false positives of the class they are given) but that
      class adds no F1 term.
    - ``heldout_accuracy``: accuracy on the test rows whose true class is held out;
      ``nan`` when there are none (``heldout`` empty, or no such test row). Callers
      that write JSON map ``nan`` to null.

    Both are averaged over ``n_draws`` draws; ``*_std`` is the population standard
    deviation (ddof=0) over draws. With ``heldout`` empty every draw is the same.

    Shape:
        train_codes: (n_train, N) float; train_labels: (n_train,);
        test_codes: (n_test, N) float; test_labels: (n_test,);
        heldout: sequence of class ids (present in train_labels).
        Output: dict with float ``one_shot_macro_f1``, ``one_shot_macro_f1_std``,
        ``heldout_accuracy``, ``heldout_accuracy_std`` (in [0, 1] or nan), int
        ``n_draws`` and ``confusion``: ``true`` (class ids of the test rows and representatives),
        ``predicted`` (representative class ids) and ``counts`` (true x predicted, mean test-row
        counts over the draws).

    Raises:
        ValueError: codes not 2-D, empty or non-finite; labels not 1-D or of a
            different length than their codes; train and test widths differ;
            n_draws < 1; a held-out class with no training row.
    """
    train_codes, train_labels = check_codes_labels(
        train_codes, train_labels, codes_name="train_codes", labels_name="train_labels",
        min_rows=1,
    )
    test_codes, test_labels = check_codes_labels(
        test_codes, test_labels, codes_name="test_codes", labels_name="test_labels",
        min_rows=1,
    )
    if train_codes.shape[1] != test_codes.shape[1]:
        raise ValueError(
            f"train_codes have width {train_codes.shape[1]} but test_codes have width "
            f"{test_codes.shape[1]}; both must come from the same encoder."
        )
    heldout_classes, draws = draw_heldout_examples(
        train_labels, heldout, n_draws=n_draws, seed=seed
    )
    is_known = ~np.isin(train_labels, heldout_classes)
    known_classes, known_centroids = _centroids(train_codes[is_known], train_labels[is_known])
    rep_labels = np.concatenate([known_classes, heldout_classes])
    f1_labels = np.unique(rep_labels)
    heldout_rows = np.isin(test_labels, heldout_classes)

    f1s, accuracies = [], []
    truth_classes = np.union1d(f1_labels, test_labels)
    confusion = np.zeros((truth_classes.size, f1_labels.size))
    to_known = _squared_distances(test_codes, known_centroids)  # the same in every draw
    for draw in draws:
        d2 = np.hstack([to_known, _squared_distances(test_codes, train_codes[draw])])
        predicted = rep_labels[d2.argmin(axis=1)]
        np.add.at(confusion, (np.searchsorted(truth_classes, test_labels), np.searchsorted(f1_labels, predicted)), 1)
        f1s.append(_macro_f1(test_labels, predicted, f1_labels))
        accuracies.append(
            np.mean(predicted[heldout_rows] == test_labels[heldout_rows])
            if heldout_rows.any()
            else np.nan
        )
    return {
        "one_shot_macro_f1": float(np.mean(f1s)),
        "one_shot_macro_f1_std": float(np.std(f1s)),
        "heldout_accuracy": float(np.mean(accuracies)),
        "heldout_accuracy_std": float(np.std(accuracies)),
        "n_draws": int(n_draws),
        "confusion": {"true": truth_classes.tolist(), "predicted": f1_labels.tolist(),
                      "counts": (confusion / len(draws)).tolist()},
    }
