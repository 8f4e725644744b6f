"""Standardizer: median imputation from training rows, standardisation, save/load, errors."""

import json
import logging

import numpy as np
import pytest

from lossless_triplet.data import NotFittedError, Standardizer

NAN = np.nan
TRAIN = np.array(
    [
        [1.0, 10.0, 5.0],
        [NAN, 20.0, 5.0],
        [3.0, NAN, 5.0],
        [4.0, 40.0, 5.0],
    ]
)


def test_fit_learns_medians_then_mean_and_scale_of_imputed_data():
    scaler = Standardizer().fit(TRAIN)
    # Medians of the observed values, by hand: [1, 3, 4] -> 3; [10, 20, 40] -> 20; 5.
    np.testing.assert_array_equal(scaler.median_, [3.0, 20.0, 5.0])
    # Imputed columns: [1, 3, 3, 4] and [10, 20, 20, 40]; the constant column gets scale 1.
    np.testing.assert_allclose(scaler.mean_, [2.75, 22.5, 5.0])
    np.testing.assert_allclose(scaler.scale_, [np.std([1, 3, 3, 4]), np.std([10, 20, 20, 40]), 1])
    assert scaler.n_features_in_ == 3


def test_transform_imputes_with_training_medians_and_logs_count(caplog):
    scaler = Standardizer().fit(TRAIN)
    eval_rows = np.array([[NAN, NAN, 7.0], [2.75, 22.5, 5.0]], dtype=np.float32)
    with caplog.at_level(logging.INFO, logger="lossless_triplet"):
        out = scaler.transform(eval_rows)
    assert out.dtype == np.float32 and out.shape == (2, 3)
    expected_first = (np.array([3.0, 20.0, 7.0]) - scaler.mean_) / scaler.scale_
    np.testing.assert_allclose(out[0], expected_first, rtol=1e-6)
    np.testing.assert_allclose(out[1], [0, 0, 0], atol=1e-6)
    assert scaler.last_n_imputed_ == 2
    assert "imputed 2 missing value(s)" in caplog.text
    scaler.transform(eval_rows[1:])
    assert scaler.last_n_imputed_ == 0


def test_eval_uses_train_statistics_not_its_own():
    rng = np.random.default_rng(0)
    train, evaluation = rng.normal(0, 1, (200, 4)), rng.normal(5, 3, (50, 4))
    scaler = Standardizer().fit(train)
    out = scaler.transform(evaluation)
    np.testing.assert_allclose(out, (evaluation - train.mean(0)) / train.std(0), rtol=1e-5)
    z = Standardizer().fit_transform(train)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-6)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-5)


def test_all_missing_training_column_gets_zero_median_and_warns(caplog):
    X = np.array([[1.0, NAN], [2.0, NAN]])
    with caplog.at_level(logging.WARNING, logger="lossless_triplet"):
        scaler = Standardizer().fit(X)
    assert scaler.median_[1] == 0 and scaler.scale_[1] == 1 and scaler.mean_[1] == 0
    assert "[1]" in caplog.text
    assert not np.isnan(scaler.transform(X)).any()


def test_to_dict_from_dict_roundtrip_through_json():
    scaler = Standardizer().fit(TRAIN * 1.1)
    state = json.loads(json.dumps(scaler.to_dict()))
    restored = Standardizer.from_dict(state)
    for name in ("median_", "mean_", "scale_"):
        np.testing.assert_array_equal(getattr(restored, name), getattr(scaler, name))
    np.testing.assert_array_equal(restored.transform(TRAIN), scaler.transform(TRAIN))


def test_errors():
    with pytest.raises(NotFittedError, match="fit"):
        Standardizer().transform(TRAIN)
    scaler = Standardizer().fit(TRAIN)
    with pytest.raises(ValueError, match="2 feature columns.*fitted on 3"):
        scaler.transform(TRAIN[:, :2])
    with pytest.raises(ValueError, match="infinite value at row 1, column 0"):
        scaler.transform(np.array([[1.0, 2, 3], [np.inf, 2, 3]]))
    with pytest.raises(ValueError, match="infinite"):
        Standardizer().fit(np.array([[-np.inf, 1.0]]))
    with pytest.raises(ValueError, match="2-D"):
        scaler.transform(np.ones(3))
    with pytest.raises(ValueError, match="at least one row"):
        Standardizer().fit(np.empty((0, 3)))
    with pytest.raises(ValueError, match="not a readable Standardizer state"):
        Standardizer.from_dict({"median": [0.0]})
    bad = scaler.to_dict() | {"scale": [1.0, 1.0]}
    with pytest.raises(ValueError, match="'scale' must be 3"):
        Standardizer.from_dict(bad)


def test_transform_imputes_when_called_from_several_threads_at_once():
    """The service computes two halves of a batch at once; one call's count must not leak into the other."""
    import concurrent.futures

    rng = np.random.default_rng(0)
    scaler = Standardizer().fit(rng.normal(size=(50, 4)))
    holes = rng.normal(size=(2000, 4))
    holes[::3, 1] = np.nan
    clean = rng.normal(size=(2000, 4))
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        outputs = list(pool.map(scaler.transform, [holes, clean] * 100))
    assert not any(np.isnan(out).any() for out in outputs)
