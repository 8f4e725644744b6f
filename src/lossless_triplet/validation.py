"""One protocol for fitted objects, as scikit-learn has: one error, one check, one state format.

- :class:`NotFittedError`, raised by :func:`check_is_fitted` for every object that learns from
  data (:class:`~lossless_triplet.data.Standardizer`, :class:`~lossless_triplet.data.views.FeatureView`,
  :class:`~lossless_triplet.memory.FaultMemory`, :class:`~lossless_triplet.representation.Representation`,
  :class:`~lossless_triplet.explain.Explainer`): a method that needs what ``fit`` learns, called first.
- Codes (or any rows of vectors) entering the metrics or the fault memory are checked once, at the
  boundary, by :func:`check_codes` / :func:`check_codes_labels`; inner code trusts them.
- Every persisted object's ``to_dict`` starts with :func:`state_header` (its format name and
  version) and its ``from_dict`` calls :func:`check_state` first, so a state of another kind or
  of a version this release cannot read is refused with a message, never half-read.

Leaf module (NumPy only): every layer may use it. Source: scikit-learn's
``sklearn.utils.validation.check_is_fitted`` and ``sklearn.exceptions.NotFittedError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["NotFittedError", "check_codes", "check_codes_labels", "check_is_fitted", "check_state", "state_header"]


class NotFittedError(ValueError, AttributeError):
    """A method that needs learned state was called before ``fit`` (or ``from_dict``).

    A ``ValueError`` (bad use of an argument-free call) and an ``AttributeError`` (a learned
    attribute is missing), as scikit-learn's."""


def check_is_fitted(obj: object, attribute: str, fit_call: str) -> None:
    """Raise :class:`NotFittedError` unless ``obj`` has the learned ``attribute`` (a name ending in
    ``_``) set to something other than None.

    Args:
        fit_call: how to fit it, for the message (``fit(train_X, feature_names)``).

    Raises:
        NotFittedError: ``this Standardizer is not fitted yet; call fit(train_features) first``.
    """
    if getattr(obj, attribute, None) is None:
        name = type(obj).__name__
        raise NotFittedError(f"this {name} is not fitted yet; call {fit_call} first "
                             f"(or load a fitted one with {name}.from_dict)")


def state_header(kind: str, version: int) -> dict[str, Any]:
    """The first keys of a ``to_dict`` state: ``{"format": "lossless_triplet.<kind>", "version": version}``."""
    return {"format": f"lossless_triplet.{kind}", "version": int(version)}


def check_state(state: Any, kind: str, versions: tuple[int, ...], *, unversioned: int | None = None) -> int:
    """The version of a ``to_dict`` state of ``kind``, after checking it can be read.

    Args:
        versions: the versions this release reads.
        unversioned: the version of a state written before states carried a header (None: such
            a state is refused).

    Raises:
        ValueError: not a mapping, another kind, or a version outside ``versions`` (the message
            names what was found and what is read).
    """
    if not isinstance(state, Mapping):
        raise ValueError(f"a {kind} state must be a dict (from {kind}.to_dict), got {type(state).__name__}")
    if "format" not in state and "version" not in state and unversioned is not None:
        return unversioned
    expected = state_header(kind, 0)["format"]
    version = state.get("version")
    if state.get("format") != expected or version not in versions:
        raise ValueError(f"not a readable {kind} state (format {state.get('format')!r}, version {version!r}; this "
                         f"release reads {expected!r} version {', '.join(map(str, versions))}): pass the dict "
                         f"written by {kind}.to_dict, or refit with this release")
    return int(version)


def check_codes(codes, name: str = "codes", *, min_rows: int = 1, width: int | None = None,
                float64: bool = True) -> np.ndarray:
    """``codes`` as a float64 (n, N) array, after checking its shape and values.

    Args:
        name: the argument's name, for the messages.
        min_rows: rows it needs at least.
        width: the N it must have (None: any N >= 1).
        float64: False keeps float32 codes float32 (other dtypes still become float64): for a
            caller that converts them a block at a time.

    Raises:
        ValueError: not 2-D, fewer than ``min_rows`` rows, no column, another width, NaN or inf
            (each message names the argument and the fix).
    """
    codes = np.asarray(codes)
    if float64 or codes.dtype != np.float32:
        codes = codes.astype(np.float64, copy=False)
    if codes.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n, N) with one code per row; got shape {codes.shape}. "
                         f"Reshape a single code with {name}[None, :].")
    if codes.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} row(s); got {codes.shape[0]}. Pass more codes.")
    if codes.shape[1] < 1:
        raise ValueError(f"{name} has zero columns (shape {codes.shape}); codes need N >= 1.")
    if width is not None and codes.shape[1] != width:
        raise ValueError(f"{name} have width {codes.shape[1]} but width-{width} codes are expected (the fault "
                         "memory holds codes of one encoder and representation)")
    n_bad = int(np.count_nonzero(~np.isfinite(codes)))
    if n_bad:
        raise ValueError(f"{name} contains {n_bad} non-finite value(s) (NaN or inf); check the encoder output "
                         "(a diverged training run gives NaN codes) and encode scaled, imputed rows.")
    return codes


def check_codes_labels(codes, labels, *, codes_name: str = "codes", labels_name: str = "labels",
                       min_rows: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, labels)`` after :func:`check_codes` and checking one label per row.

    Raises:
        ValueError: as :func:`check_codes`; labels not 1-D or of another length."""
    codes = check_codes(codes, codes_name, min_rows=min_rows)
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"{labels_name} must be 1-D (n,), one label per row of {codes_name}; got shape "
                         f"{labels.shape}. Flatten it with .ravel().")
    if labels.shape[0] != codes.shape[0]:
        raise ValueError(f"{labels_name} has {labels.shape[0]} entries but {codes_name} has {codes.shape[0]} rows; "
                         "pass one label per code.")
    return codes, labels
