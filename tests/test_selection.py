"""The honest protocol: masked history, the representation, the inner selection and its rule."""

import json
import math

import numpy as np
import pytest

from lossless_triplet.data import Dataset
from lossless_triplet.data.views import FeatureView
from lossless_triplet.pipeline.selection import (
    Representation,
    candidate_representations,
    known_runs,
    one_standard_error_choice,
    prepare_features,
    select,
    transform_known,
)
from lossless_triplet.training import TrainConfig
from lossless_triplet.validation import NotFittedError

NAMES = ["rx/a", "rx/b", "rx/c", "cpu/r1", "cpu/r2"]


def stream(n=120, seed=0):
    """Four statuses in episodes of 10 minutes, in time order: 0 normal, 1-3 faults on different columns."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(n, dtype=np.int64)
    for start in range(10, n, 40):
        labels[start:start + 10] = 1 + (start // 40) % 3
    x = rng.normal(100, 3, size=(n, len(NAMES)))
    for c in (1, 2, 3):
        x[labels == c, c - 1] *= 4 + c  # fault c multiplies one column
    return x.astype(np.float32), labels


def test_known_runs_are_the_runs_of_true():
    keep = np.array([1, 1, 0, 0, 1, 0, 1, 1, 1], dtype=bool)
    assert known_runs(keep) == [(0, 2), (4, 5), (6, 9)]
    assert known_runs(np.zeros(3, dtype=bool)) == []


def test_held_out_minutes_never_reach_training_rows_through_history():
    x, labels = stream()
    keep = labels != 2
    view = FeatureView("kpi-stats+baseline").fit(x[keep], NAMES)
    masked = transform_known(view, x, keep)
    # brute force: each run of known rows transformed alone, as if the table started there
    expected = np.concatenate([view.transform(x[a:b]) for a, b in known_runs(keep)])
    np.testing.assert_array_equal(masked, expected)
    wild = x.copy()
    wild[~keep] = 1e6  # whatever the held-out minutes hold, the training features do not move
    np.testing.assert_array_equal(transform_known(view, wild, keep), masked)
    full = view.transform(x)[keep]  # with the history, the rows after a held-out episode differ
    assert not np.allclose(full, masked, equal_nan=True)


def test_prepare_features_fits_on_known_rows_and_keeps_full_history_for_examples():
    x, labels = stream()
    keep = labels != 3
    prepared = prepare_features(x, NAMES, keep, "kpi-stats+baseline")
    assert prepared.x_known.shape == (keep.sum(), len(prepared.view.feature_names_out_))
    np.testing.assert_array_equal(prepared.x_all, prepared.scaler.transform(prepared.view.transform(x)))
    np.testing.assert_allclose(prepared.view.median_, FeatureView("kpi-stats").fit(x[keep], NAMES).median_)
    assert prepared.scaler.min_scale == 0.1 and prepare_features(x, NAMES, keep, "raw").scaler.min_scale == 0


def test_representation_combines_the_terms_by_hand():
    codes = np.array([[0.1, 0.9], [0.5, 0.5]], dtype=np.float32)
    features = np.array([[1.0, -2.0, 3.0, 0.0], [9.0, 0.0, 0.0, -9.0]], dtype=np.float32)
    s = math.sqrt(2 / 4)
    rep = Representation.parse("code+0.5*features+4*excess").fit(features[:1] * 0 + [[0, -1, 0, 0]])
    # training range: low = high = [0, -1, 0, 0], so the excess is x - that
    excess = features - np.array([0, -1, 0, 0], dtype=np.float32)
    np.testing.assert_allclose(rep.combine(codes, features), np.hstack([codes, 0.5 * s * features, 4 * s * excess]),
                               rtol=1e-6)
    np.testing.assert_array_equal(Representation.parse("code").combine(codes, None), codes)
    np.testing.assert_allclose(Representation.parse("features").combine(codes, features), s * features, rtol=1e-6)


def test_sorted_excess_by_hand_uses_every_feature_and_ignores_which_column_moved():
    codes = np.zeros((3, 2), dtype=np.float32)
    train = np.array([[0, 0, 0, 0], [1, 1, 1, 1]], dtype=np.float32)  # range [0, 1] in every column
    rows = np.array([[3.0, 0.5, -2.0, 1.0],  # excess [2, 0, -2, 0] -> sorted |.| [2, 2, 0, 0]
                     [0.5, -2.0, 1.0, 3.0],  # the same moves in other columns
                     [0.5, 0.5, 0.5, 5.0]], dtype=np.float32)  # excess [0, 0, 0, 4] -> [4, 0, 0, 0]
    # columns_ (the features and excess terms) are the first two; the sorted excess reads all four
    rep = Representation.parse("code+4*excess+2*sorted_excess").fit(train, columns=np.array([0, 1]))
    t = 2 * math.sqrt(2 / 4)
    np.testing.assert_allclose(rep.combine(codes, rows)[:, 4:], t * np.array([[2, 2, 0, 0], [2, 2, 0, 0], [4, 0, 0, 0]]),
                               rtol=1e-6)
    np.testing.assert_allclose(rep.combine(codes, rows)[:, 2:4], 4 * np.array([[2, 0], [0, -2], [0, 0]]), rtol=1e-6)
    # sorting keeps the norm: with every column used, both excess terms add the same squared length
    both = Representation.parse("code+1*excess+1*sorted_excess").fit(train)
    out = both.combine(codes, rows)
    np.testing.assert_allclose((out[:, 2:6] ** 2).sum(1), (out[:, 6:] ** 2).sum(1), rtol=1e-6)
    with pytest.raises(ValueError, match="fitted on 4.*same view"):
        rep.combine(codes, rows[:, :3])


@pytest.mark.parametrize("term", ["16*excess", "16*sorted_excess"])
def test_excess_is_zero_on_training_rows_and_changes_no_decision_among_them(term):
    rng = np.random.default_rng(3)
    train = rng.normal(size=(200, 6)).astype(np.float32)
    rep = Representation.parse(f"code+{term}").fit(train)
    codes = rng.random((200, 3)).astype(np.float32)
    np.testing.assert_array_equal(rep.combine(codes, train)[:, 3:], 0)
    # a row outside the range: the same extra distance to every in-range vector
    far = np.array([[0, 0, 0, 40, 0, 0]], dtype=np.float32)
    row = rep.combine(codes[:1], far)[0]
    to_all = ((rep.combine(codes, train) - row) ** 2).sum(1) - ((codes - codes[0]) ** 2).sum(1)
    np.testing.assert_allclose(to_all, to_all[0], rtol=1e-4)


@pytest.mark.parametrize("text", ["code", "features", "code+0.5*features", "code+4*excess", "features+16*excess",
                                  "code+0.25*features+1*excess", "code+16*sorted_excess",
                                  "code+0.5*features+1*excess+4*sorted_excess"])
def test_representation_names_round_trip(text):
    rep = Representation.parse(text)
    assert rep.name == text and Representation.parse(rep.name) == rep
    rep.fit(np.zeros((3, 2), dtype=np.float32))
    restored = Representation.from_dict(rep.to_dict())
    assert restored.name == text
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    np.testing.assert_array_equal(restored.combine(x, x), rep.combine(x, x))


@pytest.mark.parametrize("text", ["", "code+code", "2*code", "code+0*excess", "code+inf*features", "excess",
                                  "code+features*2", "code+x*excess", "4*excess", "4*sorted_excess", "code+sorted_excess",
                                  "code+1*sorted_excess+2*sorted_excess"])
def test_bad_representation_names_are_refused(text):
    # the excess alone is 0 on every training row: every known signature would get radius 0
    with pytest.raises(ValueError, match="unknown representation|needs the code or the features"):
        Representation.parse(text)


def test_excess_needs_fit_and_saved_ranges():
    with pytest.raises(ValueError, match="needs the view features"):
        Representation.parse("features").combine(np.zeros((3, 16)), None)
    rep = Representation.parse("code+4*excess")
    with pytest.raises(NotFittedError, match="Representation is not fitted yet; call fit"):
        rep.combine(np.zeros((1, 2)), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="incomplete"):
        Representation.from_dict({"name": "code+4*excess"})


def test_representation_input_errors_name_the_problem():
    with pytest.raises(ValueError, match="needs the code or the features"):
        Representation.parse("4*sorted_excess")  # a valid name of an invalid representation: its own message
    rep = Representation.parse("code+4*excess")
    with pytest.raises(ValueError, match="NaN or inf"):
        rep.fit(np.array([[0.0, np.nan]], dtype=np.float32))
    with pytest.raises(ValueError, match="non-empty list of indices"):
        rep.fit(np.zeros((3, 4), dtype=np.float32), columns=np.array([], dtype=np.int64))
    rep.fit(np.zeros((3, 4), dtype=np.float32), columns=np.array([1, 3]))
    for width in (3, 5):
        with pytest.raises(ValueError, match=f"have {width} columns but the representation was fitted on 4"):
            rep.combine(np.zeros((1, 2)), np.zeros((1, width)))


def test_version_1_states_keep_their_ranges_at_their_columns():
    # version 1 (and unversioned bundles) stored low/high of the used columns only
    features = np.array([[0.0, 5.0, -1.0, 7.0], [2.0, 9.0, 3.0, 8.0]], dtype=np.float32)
    fitted = Representation.parse("code+4*excess").fit(features[:1] * 0 + [[0, 1, 2, 3]], columns=np.array([1, 3]))
    old = {"name": "code+4*excess", "columns": [1, 3], "low": [1.0, 3.0], "high": [1.0, 3.0]}
    codes = np.zeros((2, 2), dtype=np.float32)
    for state in (old, {"format": "lossless_triplet.Representation", "version": 1, **old}):
        restored = Representation.from_dict(state)
        np.testing.assert_array_equal(restored.combine(codes, features), fitted.combine(codes, features))
    assert fitted.to_dict()["version"] == 2
    # saved again (add-fault rewrites the bundle): strict JSON, the unused columns null, same vectors
    resaved = json.loads(json.dumps(restored.to_dict(), allow_nan=False))
    assert resaved["low"] == [None, 1.0, None, 3.0]
    np.testing.assert_array_equal(Representation.from_dict(resaved).combine(codes, features),
                                  fitted.combine(codes, features))
    with pytest.raises(ValueError, match="have 2 columns but the representation was fitted on 4"):
        restored.combine(codes, features[:, :2])  # a version-1 state still knows its columns reach index 3
    with pytest.raises(ValueError, match="2 columns; the model bundle is damaged"):
        Representation.from_dict({**old, "low": [1.0]})


def test_candidates_hold_every_base_with_and_without_excess():
    names = candidate_representations((0.5,), (4.0,))
    assert names == ["code", "code+4*sorted_excess", "code+0.5*features", "code+0.5*features+4*sorted_excess", "features",
                     "features+4*sorted_excess"]


def test_one_standard_error_rule():
    # "code" is best on average but within noise of "code+4*excess": the excess wins
    per_fold = {("v", "code"): [0.50, 0.40, 0.60], ("v", "code+4*excess"): [0.49, 0.41, 0.57],
                ("v", "features"): [0.20, 0.10, 0.15]}
    assert one_standard_error_choice(per_fold) == ("v", "code+4*excess")
    # consistently worse by more than one standard error: the best stays
    per_fold[("v", "code+4*excess")] = [0.40, 0.30, 0.51]
    assert one_standard_error_choice(per_fold) == ("v", "code")
    with pytest.raises(ValueError, match="no candidate"):
        one_standard_error_choice({("v", "code"): []})


def test_select_records_its_choice_on_the_training_table():
    x, labels = stream(n=240)
    known = labels != 3
    selection = select(x, NAMES, labels, known, views=["kpi-stats", "columns+pooled"], loss="triplet",
                       config=TrainConfig(embedding_dim=3, epochs=1, steps_per_epoch=8), class_names=["n", "a", "b", "c"])
    assert selection.view in ("kpi-stats", "columns+pooled")
    assert selection.folds == ["a", "b"] or selection.folds == ["b", "a"]  # known faults, never normal, never c
    record = selection.to_dict()
    assert record["inner_steps"] == 2 and set(record["scores"]) == {"kpi-stats", "columns+pooled"}
    assert record["representation"] in record["scores"][record["view"]]
    assert record["note"] == "view and representation chosen on the training table (2 inner folds)"
    kept, best = record["per_fold"]["kept"], record["per_fold"]["best"]
    assert (kept["view"], kept["representation"]) == (record["view"], record["representation"])
    assert np.mean(kept["scores"]) == pytest.approx(record["scores"][kept["view"]][kept["representation"]], abs=1e-3)
    assert np.mean(best["scores"]) >= np.mean(kept["scores"]) - 1e-9


def test_select_keeps_the_first_candidates_when_nothing_can_be_pretended_new():
    x, labels = stream()
    two = labels <= 1
    selection = select(x[two], NAMES, labels[two], np.ones(two.sum(), dtype=bool), views=["kpi-stats", "columns"],
                       loss="triplet", config=TrainConfig(embedding_dim=3, epochs=1, steps_per_epoch=4))
    assert (selection.view, selection.representation.name, selection.folds) == ("kpi-stats", "code", [])
    assert selection.note.startswith("defaults: 2 known class(es), too few")


def test_time_order_comes_from_strictly_increasing_timestamps():
    x, labels = stream(n=5)
    assert Dataset(x, labels, NAMES, ["a", "b", "c", "d"], np.arange(5)).is_time_ordered
    assert not Dataset(x, labels, NAMES, ["a", "b", "c", "d"], np.array([1, 1, 2, 3, 4])).is_time_ordered
    assert not Dataset(x, labels, NAMES, ["a", "b", "c", "d"]).is_time_ordered
