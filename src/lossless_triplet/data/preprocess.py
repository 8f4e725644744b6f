"""Scaling: impute missing cells with training medians, then standardise per feature.

Fit on the TRAINING split only and reuse the fitted object for every other split (and save it
with the model via ``to_dict``): statistics learned from test rows leak the test set into the
features.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..validation import check_is_fitted, check_state, state_header

logger = logging.getLogger("lossless_triplet")

_VERSION = 1  # of to_dict's state


class Standardizer:
    """Median imputation followed by standardisation, ``(x - mean_) / scale_``, per feature.

    ``fit`` learns, from training rows only:

    - ``median_``: float64 (n_features,), median of the non-missing values of each feature;
      fills NaN cells. A feature missing in every training row gets 0 (warning logged).
    - ``mean_``, ``scale_``: float64 (n_features,), mean and standard deviation (ddof=0) of
      each feature AFTER imputation, so ``fit_transform`` output has mean 0 and std 1 per
      feature; a constant feature gets ``scale_`` 1 (its output is 0, not NaN).
    - ``n_features_in_``: number of feature columns.

    ``transform`` sets ``last_n_imputed_`` (cells filled in that call) and logs it at INFO on
    the ``lossless_triplet`` logger when it is above 0. Save a fitted object with
    ``to_dict`` (JSON-safe, no pickle) and restore it with ``from_dict``.

    Example::

        scaler = Standardizer().fit(train.features)
        x_train, x_eval = scaler.transform(train.features), scaler.transform(eval.features)
    """

    median_: np.ndarray
    mean_: np.ndarray

    def __init__(self, min_scale: float = 0.0) -> None:
        if not min_scale >= 0:
            raise ValueError(f"min_scale={min_scale} must be >= 0")
        self.min_scale = float(min_scale)

    scale_: np.ndarray
    n_features_in_: int
    last_n_imputed_: int

    def fit(self, X: np.ndarray, feature_names=None) -> Standardizer:
        """Learn medians, means and scales from training rows.

        Args:
            X: array-like (n_rows, n_features), float, NaN for missing cells; n_rows >= 1.
            feature_names: optional names of the columns, used only to name columns in warnings.

        Returns:
            self.

        Raises:
            ValueError: X not 2-D, no rows or no columns, or +/-inf in X.
        """
        X = _check_matrix(X, expected_features=None)
        missing = np.isnan(X)
        all_missing = np.flatnonzero(missing.all(axis=0))
        if all_missing.size:
            named = [feature_names[i] for i in all_missing] if feature_names is not None else all_missing.tolist()
            logger.warning(
                "Standardizer.fit: feature column(s) %s have no value in any training row; "
                "imputing 0 and using scale 1",
                named,
            )
        median = np.zeros(X.shape[1])
        observed = np.flatnonzero(~missing.all(axis=0))
        median[observed] = np.nanmedian(X[:, observed], axis=0)
        filled = np.where(missing, median, X)
        scale = filled.std(axis=0)
        scale[filled.max(axis=0) == filled.min(axis=0)] = 1.0  # exactly constant: no division
        scale = np.maximum(scale, self.min_scale)
        self.median_ = median
        self.mean_ = filled.mean(axis=0)
        self.scale_ = scale
        self.n_features_in_ = int(X.shape[1])
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Fill NaN cells with ``median_`` and standardise with ``mean_`` and ``scale_``.

        Args:
            X: array-like (n_rows, n_features_in_), float, NaN for missing cells.

        Returns:
            float32 array (n_rows, n_features_in_) without NaN.

        Raises:
            NotFittedError: called before ``fit`` (or ``from_dict``).
            ValueError: X not 2-D, a different number of columns than in ``fit``, or +/-inf.
        """
        self._check_fitted()
        # float32 throughout (the output dtype): half the memory traffic of float64
        X = _check_matrix(X, expected_features=self.n_features_in_, dtype=np.float32)
        missing = np.isnan(X)
        n_imputed = int(missing.sum())  # a local: transform may run on several threads at once
        self.last_n_imputed_ = n_imputed
        if n_imputed:
            logger.info(
                "Standardizer: imputed %d missing value(s) of the encoder input with training medians in %d row(s)",
                n_imputed,
                int(missing.any(axis=1).sum()),
            )
        X -= self.mean_.astype(np.float32)
        X /= self.scale_.astype(np.float32)
        if n_imputed:
            filled = ((self.median_ - self.mean_) / self.scale_).astype(np.float32)
            np.copyto(X, np.broadcast_to(filled, X.shape), where=missing)
        return X

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        """``fit(X)`` then ``transform(X)``; same shapes and errors as those two."""
        return self.fit(X).transform(X)

    def to_dict(self) -> dict[str, Any]:
        """The learned statistics as a JSON-safe dict (lists of floats), for a model bundle.

        Raises:
            NotFittedError: called before ``fit``.
        """
        self._check_fitted()
        return {
            **state_header("Standardizer", _VERSION),
            "n_features_in": self.n_features_in_,
            "median": self.median_.tolist(),
            "mean": self.mean_.tolist(),
            "scale": self.scale_.tolist(),
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> Standardizer:
        """Rebuild a fitted Standardizer from ``to_dict`` output (values restored exactly).

        Raises:
            ValueError: not a Standardizer dict, an unknown version, a missing key, lists of
                the wrong length, or non-finite values (or zero scales).
        """
        check_state(state, "Standardizer", (_VERSION,))
        missing = [k for k in ("n_features_in", "median", "mean", "scale") if k not in state]
        if missing:
            raise ValueError(f"Standardizer state lacks key(s) {missing}")
        n_features = int(state["n_features_in"])
        arrays = {}
        for key in ("median", "mean", "scale"):
            values = np.asarray(state[key], dtype=np.float64)
            if values.shape != (n_features,) or not np.isfinite(values).all():
                raise ValueError(
                    f"Standardizer state {key!r} must be {n_features} finite numbers; "
                    f"got shape {values.shape}"
                )
            arrays[key] = values
        if (arrays["scale"] <= 0).any():
            raise ValueError("Standardizer state 'scale' must be positive")
        scaler = cls()
        scaler.median_, scaler.mean_, scaler.scale_ = (
            arrays["median"],
            arrays["mean"],
            arrays["scale"],
        )
        scaler.n_features_in_ = n_features
        return scaler

    def _check_fitted(self) -> None:
        check_is_fitted(self, "scale_", "fit(train_features)")

    def __repr__(self) -> str:
        fitted = f"n_features_in_={self.n_features_in_}" if hasattr(self, "scale_") else "unfitted"
        return f"Standardizer({fitted})"


def _check_matrix(X: np.ndarray, expected_features: int | None, dtype=np.float64) -> np.ndarray:
    """A copy of X as ``dtype`` after shape and finiteness checks."""
    try:
        X = np.array(X, dtype=dtype)
    except (TypeError, ValueError) as error:
        raise ValueError(f"X must be a numeric array (n_rows, n_features): {error}") from error
    if X.ndim != 2:
        raise ValueError(
            f"X must be 2-D (n_rows, n_features); got shape {X.shape} "
            "(reshape a single row with X.reshape(1, -1))"
        )
    if expected_features is not None and X.shape[1] != expected_features:
        raise ValueError(
            f"X has {X.shape[1]} feature columns but this Standardizer was fitted on "
            f"{expected_features}; pass the same columns, in the same order, as in fit"
        )
    if expected_features is None and (X.shape[0] == 0 or X.shape[1] == 0):
        raise ValueError(f"fit needs at least one row and one column; got shape {X.shape}")
    if np.isinf(X).any():
        infinite = np.argwhere(np.isinf(X))
        row, column = (int(i) for i in infinite[0])
        raise ValueError(
            f"X has an infinite value at row {row}, column {column} (0-based; "
            f"{len(infinite)} in all); replace +/-inf with NaN (imputed) or a finite value"
        )
    return X
