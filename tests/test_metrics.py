"""Metrics against slow, obvious loops and hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lossless_triplet import metrics
from lossless_triplet.metrics import (
    class_centroids,
    compactness,
    draw_heldout_examples,
    nearest_representative,
    one_shot_evaluation,
    retrieval_metrics,
)

# --------------------------------------------------------------------------- helpers


def brute_retrieval(codes, labels):
    """Musgrave et al. 2020, one query at a time: full sort of the other rows."""
    codes = np.asarray(codes, dtype=float)
    n = len(codes)
    p1, rp, mapr = [], [], []
    for q in range(n):
        others = [j for j in range(n) if j != q]
        order = sorted(others, key=lambda j: math.dist(codes[q], codes[j]))
        r = sum(labels[j] == labels[q] for j in others)
        if r == 0:
            continue
        rel = [labels[j] == labels[q] for j in order[:r]]
        hits, ap = 0, 0.0
        for i, is_rel in enumerate(rel, start=1):
            hits += is_rel
            if is_rel:
                ap += hits / i
        p1.append(float(rel[0]))
        rp.append(sum(rel) / r)
        mapr.append(ap / r)
    return {"precision_at_1": np.mean(p1), "r_precision": np.mean(rp), "map_at_r": np.mean(mapr)}


def random_clusters(seed, n=60, n_classes=4, dim=6, spread=0.6):
    rng = np.random.default_rng(seed)
    labels = rng.integers(n_classes, size=n)
    centres = rng.normal(size=(n_classes, dim))
    codes = centres[labels] + spread * rng.normal(size=(n, dim))
    return codes, labels


def brute_nearest(codes, reps, rep_labels):
    pred, dist = [], []
    for x in codes:
        d = [math.sqrt(sum((a - b) ** 2 for a, b in zip(x, r))) for r in reps]
        k = int(np.argmin(d))
        pred.append(rep_labels[k])
        dist.append(d[k])
    return np.array(pred), np.array(dist)


def brute_macro_f1(y_true, y_pred, labels):
    f1s = []
    for c in labels:
        tp = sum(t == c and p == c for t, p in zip(y_true, y_pred))
        fp = sum(t != c and p == c for t, p in zip(y_true, y_pred))
        fn = sum(t == c and p != c for t, p in zip(y_true, y_pred))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(f1s))


# --------------------------------------------------------------------------- retrieval


@pytest.mark.parametrize("seed", range(5))
def test_retrieval_matches_brute_force(seed):
    codes, labels = random_clusters(seed)
    got = retrieval_metrics(codes, labels)
    want = brute_retrieval(codes, labels)
    assert got.keys() == {"precision_at_1", "r_precision", "map_at_r", "precision_at_1_se", "r_precision_se",
                          "map_at_r_se", "retrieval_method", "retrieval_queries"}
    assert got["retrieval_method"] == "exact" and got["retrieval_queries"] == len(labels)
    assert got["map_at_r_se"] == 0.0
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-12)
    # The data must not be trivially separable, or the comparison proves little.
    assert 0.2 < got["map_at_r"] < 0.95


def test_retrieval_blocked_queries_match_brute_force(monkeypatch):
    # A tiny block forces every class to be queried in several chunks (one row each).
    monkeypatch.setattr(metrics, "_DISTANCE_BLOCK", 7)
    codes, labels = random_clusters(11, n=45, n_classes=3)
    got = retrieval_metrics(codes, labels)
    want = brute_retrieval(codes, labels)
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_retrieval_of_a_majority_class_matches_brute_force(seed):
    # One class holds most rows: its ranks are counted from the few other rows (the other
    # branch of the binary search), and must still equal brute force.
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1, 2], [60, 6, 4])
    codes = rng.normal(size=(labels.size, 3)) + labels[:, None] * 0.7
    got, want = retrieval_metrics(codes, labels), brute_retrieval(codes, labels)
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-12)


def test_sampled_retrieval_is_an_unbiased_estimate_with_its_standard_error():
    # 94 % of one class, as on real fault tables: a small work budget forces the stratified sample.
    rng = np.random.default_rng(3)
    labels = np.repeat([0, 1, 2, 3], [1880, 40, 50, 30])
    codes = rng.normal(size=(labels.size, 4)) + labels[:, None] * 0.8
    exact = retrieval_metrics(codes, labels)
    assert exact["retrieval_method"] == "exact"
    z = []
    for seed in range(8):
        got = retrieval_metrics(codes, labels, work=200 * labels.size, seed=seed)
        assert got["retrieval_method"] == "sampled" and got["retrieval_queries"] < labels.size
        for key in metrics.RETRIEVAL_KEYS:
            assert got[f"{key}_se"] > 0
            z.append((got[key] - exact[key]) / got[f"{key}_se"])
    # Estimates scatter around the exact value by about their standard error.
    assert np.abs(z).max() < 4.5 and 0.3 < np.std(z) < 2.0
    # A class with fewer rows than the floor is queried in full.
    assert retrieval_metrics(codes, labels, work=200 * labels.size)["retrieval_queries"] >= 30 * 3 + 30


LINE_CODES = np.array([[0.0], [1.0], [3.0], [4.0], [10.0]])
LINE_LABELS = np.array([0, 1, 0, 0, 1])


def test_retrieval_hand_computed_line():
    # Class 0 = {0, 3, 4} (R = 2), class 1 = {1, 10} (R = 1).
    # query 0  (cls 0): neighbours 1(c1), 3(c0)   rel [0,1]: P@1 0, RP 1/2, MAP (0 + 1/2)/2 = 1/4
    # query 1  (cls 1): neighbour  0(c0)          rel [0]  : P@1 0, RP 0,   MAP 0
    # query 3  (cls 0): neighbours 4(c0), 1(c1)   rel [1,0]: P@1 1, RP 1/2, MAP (1/1 + 0)/2 = 1/2
    # query 4  (cls 0): neighbours 3(c0), 1(c1)   rel [1,0]: P@1 1, RP 1/2, MAP 1/2
    # query 10 (cls 1): neighbour  4(c0)          rel [0]  : P@1 0, RP 0,   MAP 0
    # means over 5 queries: P@1 2/5, RP 1.5/5 = 0.3, MAP 1.25/5 = 0.25
    got = retrieval_metrics(LINE_CODES, LINE_LABELS)
    assert got["precision_at_1"] == pytest.approx(0.4)
    assert got["r_precision"] == pytest.approx(0.3)
    assert got["map_at_r"] == pytest.approx(0.25)


def test_retrieval_singleton_class_is_excluded():
    # A far-away singleton changes no one's R nearest; counted as a query it would
    # add a 0 (its nearest is another class) and lower P@1 to 2/6.
    codes = np.vstack([LINE_CODES, [[100.0]]])
    labels = np.append(LINE_LABELS, 7)
    got = retrieval_metrics(codes, labels)
    assert got["precision_at_1"] == pytest.approx(0.4)
    assert got["r_precision"] == pytest.approx(0.3)
    assert got["map_at_r"] == pytest.approx(0.25)


def test_retrieval_perfect_clustering_is_one():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], [5, 8, 3])
    codes = 10.0 * labels[:, None] + 0.01 * rng.random((labels.size, 4))
    got = retrieval_metrics(codes, labels)
    assert {k: got[k] for k in metrics.RETRIEVAL_KEYS} == {"precision_at_1": 1.0, "r_precision": 1.0,
                                                            "map_at_r": 1.0}


def test_retrieval_excludes_self_by_index_not_by_distance():
    # Three identical codes of class 0: excluding "distance 0" instead of the query's
    # own row would drop the two same-class duplicates and score 0 for those queries.
    codes = np.array([[0.0, 0.0]] * 3 + [[1.0, 1.0]] * 2)
    labels = np.array([0, 0, 0, 1, 1])
    got = retrieval_metrics(codes, labels)
    assert {k: got[k] for k in metrics.RETRIEVAL_KEYS} == {"precision_at_1": 1.0, "r_precision": 1.0,
                                                            "map_at_r": 1.0}


def test_retrieval_accepts_string_labels():
    got = retrieval_metrics(LINE_CODES, np.array(["a", "b", "a", "a", "b"]))
    assert got["map_at_r"] == pytest.approx(0.25)


def test_retrieval_all_singletons_raises():
    with pytest.raises(ValueError, match="single code"):
        retrieval_metrics(np.eye(3), np.array([0, 1, 2]))


@pytest.mark.parametrize(
    "codes, labels, match",
    [
        (np.zeros(4), np.zeros(4, int), "codes must be a 2-D"),
        (np.zeros((4, 2)), np.zeros(3, int), "labels has 3 entries"),
        (np.zeros((4, 2)), np.zeros((4, 1), int), "labels must be 1-D"),
        (np.array([[0.0], [np.nan]]), np.zeros(2, int), "non-finite"),
        (np.array([[0.0], [np.inf]]), np.zeros(2, int), "non-finite"),
        (np.zeros((1, 2)), np.zeros(1, int), "at least 2 row"),
    ],
)
def test_retrieval_and_compactness_validate_inputs(codes, labels, match):
    with pytest.raises(ValueError, match=match):
        retrieval_metrics(codes, labels)
    with pytest.raises(ValueError, match=match):
        compactness(codes, labels)


# --------------------------------------------------------------------------- compactness

TINY_CODES = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 0.0], [10.0, 4.0], [1.0, 10.0]])
TINY_LABELS = np.array([0, 0, 1, 1, 2])


def test_compactness_hand_computed():
    # centroids: c0 (1, 0), c1 (10, 2), c2 (1, 10)
    # within: c0 (1 + 1)/2 = 1; c1 (4 + 4)/2 = 4; c2 (singleton) 0 -> mean 5/3
    # between: |c0-c1|^2 = 81 + 4 = 85; |c0-c2|^2 = 100; |c1-c2|^2 = 81 + 64 = 145 -> mean 110
    # compactness = (5/3) / 110 = 1/66
    assert compactness(TINY_CODES, TINY_LABELS) == pytest.approx(1 / 66)


def test_compactness_is_scale_invariant():
    codes, labels = random_clusters(3)
    assert compactness(3.0 * codes, labels) == pytest.approx(compactness(codes, labels))


def test_compactness_tight_clusters_score_lower():
    tight, labels = random_clusters(4, spread=0.1)
    loose, labels_loose = random_clusters(4, spread=1.0)
    assert (labels == labels_loose).all()
    assert compactness(tight, labels) < compactness(loose, labels)


def test_compactness_needs_two_classes():
    with pytest.raises(ValueError, match="at least 2 classes"):
        compactness(np.eye(3), np.zeros(3, int))


def test_compactness_collapsed_codes_are_infinitely_loose():
    codes = np.array([[0.0], [2.0], [0.0], [2.0]])  # both centroids at 1
    assert compactness(codes, np.array([0, 0, 1, 1])) == math.inf


def test_class_centroids_hand_computed():
    classes, centroids = class_centroids(TINY_CODES, TINY_LABELS)
    np.testing.assert_array_equal(classes, [0, 1, 2])
    np.testing.assert_allclose(centroids, [[1.0, 0.0], [10.0, 2.0], [1.0, 10.0]])


# --------------------------------------------------------------------------- nearest


@pytest.mark.parametrize("seed", range(3))
def test_nearest_representative_matches_loop(seed):
    rng = np.random.default_rng(seed)
    codes = rng.random((40, 5))
    reps = rng.random((6, 5))
    rep_labels = np.array(["a", "b", "c", "d", "e", "f"])
    pred, dist = nearest_representative(codes, reps, rep_labels)
    want_pred, want_dist = brute_nearest(codes, reps, rep_labels)
    np.testing.assert_array_equal(pred, want_pred)
    np.testing.assert_allclose(dist, want_dist, rtol=1e-9, atol=1e-12)


def test_nearest_representative_rejects_width_mismatch():
    with pytest.raises(ValueError, match="width"):
        nearest_representative(np.zeros((2, 3)), np.zeros((2, 4)), np.array([0, 1]))


# --------------------------------------------------------------------------- one-shot


def unambiguous_split():
    """Known classes 0 and 1, held-out class 2: three well separated blobs."""
    rng = np.random.default_rng(0)
    centres = {0: (0.0, 0.0), 1: (10.0, 0.0), 2: (0.0, 10.0)}

    def blob(cls, n):
        return np.array(centres[cls]) + 0.3 * rng.random((n, 2)), np.full(n, cls)

    train = [blob(0, 8), blob(1, 8), blob(2, 5)]
    test = [blob(0, 6), blob(1, 4), blob(2, 7)]
    return (
        np.vstack([c for c, _ in train]), np.concatenate([l for _, l in train]),
        np.vstack([c for c, _ in test]), np.concatenate([l for _, l in test]),
    )


def test_one_shot_unambiguous_case_is_perfect():
    result = one_shot_evaluation(*unambiguous_split(), heldout=[2], n_draws=10, seed=0)
    assert result == {
        "one_shot_macro_f1": 1.0,
        "one_shot_macro_f1_std": 0.0,
        "heldout_accuracy": 1.0,
        "heldout_accuracy_std": 0.0,
        "n_draws": 10,
        # every test row on its own class in every draw: a diagonal of the test class counts
        "confusion": {"true": [0, 1, 2], "predicted": [0, 1, 2],
                      "counts": [[6.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 7.0]]},
    }


def test_one_shot_heldout_accuracy_counts_only_heldout_rows():
    train_x, train_y, test_x, test_y = unambiguous_split()
    # Two class-0 test rows moved onto class 1: known classes suffer, held-out does not.
    test_x = test_x.copy()
    test_x[:2] = [10.0, 0.0]
    result = one_shot_evaluation(train_x, train_y, test_x, test_y, [2], n_draws=3)
    predicted = test_y.copy()
    predicted[:2] = 1
    assert result["heldout_accuracy"] == 1.0
    # class 0: tp 4 fn 2 -> 8/10; class 1: tp 4 fp 2 -> 8/10; class 2: 1 -> mean 13/15
    assert result["one_shot_macro_f1"] == pytest.approx(13 / 15)
    want = brute_macro_f1(test_y, predicted, [0, 1, 2])
    # the confusion holds the same predictions: two class-0 rows counted as class 1 in every draw
    assert result["confusion"]["counts"][0][:2] == [4.0, 2.0]
    assert result["one_shot_macro_f1"] == pytest.approx(want)


def test_one_shot_f1_label_set_is_the_representative_classes():
    train_x, train_y, test_x, test_y = unambiguous_split()
    # Two test rows of class 9, which has no representative, sit on class 0's blob.
    test_x = np.vstack([test_x, [[0.1, 0.1], [0.2, 0.2]]])
    test_y = np.append(test_y, [9, 9])
    result = one_shot_evaluation(train_x, train_y, test_x, test_y, [2], n_draws=2)
    # class 0: tp 6, fp 2 -> 12/14 = 6/7; classes 1 and 2: 1; class 9 adds no term
    # -> (6/7 + 2) / 3 = 20/21 (with class 9 as a label it would be (6/7 + 2) / 4).
    assert result["one_shot_macro_f1"] == pytest.approx(20 / 21)


def test_one_shot_matches_loop_over_draws():
    # Held-out classes spread wide and overlapping, so each draw changes the answer.
    rng = np.random.default_rng(5)
    train_y = np.repeat([0, 1, 2, 3], [15, 15, 12, 12])
    test_y = np.repeat([0, 1, 2, 3], [10, 10, 10, 10])
    centres = np.array([[0.0, 0.0], [4.0, 0.0], [2.0, 3.0], [2.0, -3.0]])
    scale = np.array([1.0, 1.0, 2.5, 2.5])
    train_x = centres[train_y] + scale[train_y, None] * rng.normal(size=(train_y.size, 2))
    test_x = centres[test_y] + scale[test_y, None] * rng.normal(size=(test_y.size, 2))
    heldout = [3, 2]

    result = one_shot_evaluation(train_x, train_y, test_x, test_y, heldout, n_draws=6, seed=9)

    classes, draws = draw_heldout_examples(train_y, heldout, n_draws=6, seed=9)
    np.testing.assert_array_equal(classes, [2, 3])
    known = [train_x[train_y == c].mean(axis=0) for c in (0, 1)]
    f1s, accs = [], []
    for draw in draws:
        assert [train_y[i] for i in draw] == [2, 3]
        pred, _ = brute_nearest(test_x, known + [train_x[i] for i in draw], [0, 1, 2, 3])
        f1s.append(brute_macro_f1(test_y, pred, [0, 1, 2, 3]))
        mask = test_y >= 2
        accs.append(np.mean(pred[mask] == test_y[mask]))
    assert np.std(f1s) > 0  # the draws really matter here
    assert result["one_shot_macro_f1"] == pytest.approx(np.mean(f1s))
    assert result["one_shot_macro_f1_std"] == pytest.approx(np.std(f1s))
    assert result["heldout_accuracy"] == pytest.approx(np.mean(accs))
    assert result["heldout_accuracy_std"] == pytest.approx(np.std(accs))
    assert result["n_draws"] == 6


def test_one_shot_reproducible_and_seed_changes_draws():
    split = unambiguous_split()
    labels = np.repeat([0, 1], 50)
    assert one_shot_evaluation(*split, [2], seed=3) == one_shot_evaluation(*split, [2], seed=3)
    _, a = draw_heldout_examples(labels, [0, 1], n_draws=10, seed=3)
    _, b = draw_heldout_examples(labels, [0, 1], n_draws=10, seed=3)
    _, c = draw_heldout_examples(labels, [0, 1], n_draws=10, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len({tuple(row) for row in a}) > 1  # each draw is a new draw


def test_one_shot_works_with_string_labels():
    train_x, train_y, test_x, test_y = unambiguous_split()
    names = np.array(["normal", "link-down", "node-down"])
    result = one_shot_evaluation(train_x, names[train_y], test_x, names[test_y], ["node-down"])
    assert result["one_shot_macro_f1"] == 1.0
    assert result["heldout_accuracy"] == 1.0


def test_one_shot_without_heldout_is_deterministic_and_nan_accuracy():
    train_x, train_y, test_x, test_y = unambiguous_split()
    result = one_shot_evaluation(train_x, train_y, test_x, test_y, [], n_draws=4)
    assert result["one_shot_macro_f1"] == 1.0
    assert result["one_shot_macro_f1_std"] == 0.0
    assert math.isnan(result["heldout_accuracy"])
    assert math.isnan(result["heldout_accuracy_std"])


def test_one_shot_heldout_absent_from_train_raises():
    train_x, train_y, test_x, test_y = unambiguous_split()
    with pytest.raises(ValueError, match="held-out class 5 has no row"):
        one_shot_evaluation(train_x, train_y, test_x, test_y, [2, 5])


@pytest.mark.parametrize("n_draws", [0, -1, 2.5])
def test_one_shot_rejects_bad_n_draws(n_draws):
    with pytest.raises(ValueError, match="n_draws"):
        one_shot_evaluation(*unambiguous_split(), [2], n_draws=n_draws)


def test_one_shot_rejects_a_bare_string_heldout():
    train_x, train_y, test_x, test_y = unambiguous_split()
    names = np.array(["normal", "link-down", "node-down"])
    with pytest.raises(ValueError, match="wrap a single class"):
        one_shot_evaluation(train_x, names[train_y], test_x, names[test_y], "node-down")


def test_one_shot_rejects_width_mismatch():
    train_x, train_y, test_x, test_y = unambiguous_split()
    with pytest.raises(ValueError, match="width"):
        one_shot_evaluation(train_x, train_y, test_x[:, :1], test_y, [2])


def test_macro_f1_from_counts_equals_scikit_learn():
    from sklearn.metrics import f1_score

    from lossless_triplet.metrics import _macro_f1

    rng = np.random.default_rng(0)
    for _ in range(300):  # labels absent from truth, truth labels absent from the label set, tiny sets
        labels = np.unique(rng.integers(0, 9, size=rng.integers(2, 7)))
        truth = rng.integers(0, 9, size=rng.integers(1, 60))
        predicted = rng.choice(labels, size=truth.size)
        assert _macro_f1(truth, predicted, labels) == pytest.approx(
            f1_score(truth, predicted, labels=labels, average="macro", zero_division=0), abs=1e-12)
    names = np.array(["a", "b", "c"])
    assert _macro_f1(np.array(["a", "x", "c"]), np.array(["a", "a", "b"]), names) == pytest.approx(2 / 9)


def test_ties_between_classes_count_against_the_query():
    # Two classes on one point: every neighbour is at distance 0, so nothing is retrieved by the
    # code itself; a same-class-first tie rule would report P@1 = 1.
    codes = np.zeros((6, 2))
    labels = np.array([0, 0, 0, 1, 1, 1])
    got = retrieval_metrics(codes, labels)
    assert got["precision_at_1"] == 0.0
    # R = 2 same-class codes, each ranked after the 3 tied others: positions 4 and 5 > R.
    assert got["r_precision"] == 0.0 and got["map_at_r"] == 0.0
