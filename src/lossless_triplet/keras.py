"""The five losses as Keras 3 losses, written with ``keras.ops`` so they run on every backend.

Install with ``pip install lossless-triplet[keras]`` and pick a backend before Keras is first
imported, e.g. ``KERAS_BACKEND=torch`` (torch comes with this package; Keras' own default is
TensorFlow). The rest of the package never imports Keras.

Each class is a ``keras.losses.Loss`` with the hyper-parameters, defaults, numerics and error
messages of its PyTorch twin in :mod:`lossless_triplet.losses`, is registered for
``keras.saving`` (package ``"lossless_triplet"``), and reads one of these input layouts:

``layout="labels"`` (default; same call as the PyTorch modules)
    ``y_true``: (B,) or (B, 1) integer class ids; ``y_pred``: (B, N) codes. The loss averages
    over every valid triplet of the batch (batch-all; all pairs i < j for the contrastive
    loss). The lossless and linear losses use the separable O(B^2) form, the triplet margin
    loss an O(B^2 log B) sort; none of these builds a B x B x B tensor. The soft-margin loss
    has no such shortcut: it evaluates every (a, p, n) as one (B, B, B) tensor, O(B^3) memory
    (64 MB at B = 256 in float32; use the PyTorch module, blockwise, for larger batches). Pairwise distances are computed
    in float64 (when the backend has it) for the reason given in
    :mod:`lossless_triplet.losses.batch`. Keras casts ``y_true`` to the loss dtype, so class
    ids must stay below 2**24 with the default float32.

``layout="triplets"`` (the seed's Keras layout)
    ``y_pred``: (B, 3N) = [anchor | positive | negative] from a model with three inputs sharing
    one encoder; N is read from the width, never hard-coded; ``y_true`` is ignored (pass any
    dummy array, e.g. ``np.zeros(B)``). One loss value per row, computed like the functional
    losses. ``ContrastiveLoss`` takes this layout too: each row gives the similar pair (a, p)
    and the dissimilar pair (a, n), and its value is the mean of the two.

``layout="pairs"`` (``ContrastiveLoss`` only)
    ``y_pred``: (B, 2N) = [x1 | x2]; ``y_true``: (B,) or (B, 1) flags, 1 (or True) for a
    similar pair and 0 for a dissimilar one.

Why ``"labels"`` is the default: ``LosslessTripletLoss()`` then means the same thing in both
frameworks, the model is a plain encoder (the one used at inference), and every batch
contributes all its triplets instead of B pre-drawn ones.

Reduction and sample weights follow Keras. In the triplets and pairs layouts ``call`` returns
one value per row. In the labels layout it returns each anchor's share of the batch total,
``B * sum(loss of triplets anchored at a) / #valid triplets``, so Keras' default reduction
(``"sum_over_batch_size"``: the mean over rows) gives exactly the batch-all mean; a sample
weight then weights the triplets of that anchor, and ``reduction="sum"`` gives B times the mean.

Half precision codes are computed in float32 (Keras then returns the loss dtype). A float64
loss (``dtype="float64"``) computes in float64, but Keras' default reduction rounds its mean
to float32 on the torch and JAX backends (Keras 3.15 type promotion); ``reduction="sum"`` or
``None`` keeps float64.

A labels-layout batch of two or more rows whose labels are all equal is an error whenever the
labels' values are known (eager execution), whatever ``validate`` says: it has no negative, so
the loss would be 0 and the model would never move. The seed's three-input model compiled with
dummy zero labels and the default layout lands here, and the message says to pass
``layout="triplets"``.

With ``validate=True`` (default) codes are checked for NaN/inf and, for the lossless losses,
the [0, 1] range, and labels/flags for their values, whenever their values are known (eager
execution: Keras' default on the torch backend). Inside a traced graph (JAX ``jit``,
``tf.function``, ``torch.compile``) only the checks on shapes run.

Example, the seed's layout (three inputs, one shared encoder with a sigmoid code head)::

    >>> import numpy as np, keras
    >>> from lossless_triplet.keras import LosslessTripletLoss
    >>> keras.utils.set_random_seed(0)
    >>> encoder = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="sigmoid")])
    >>> inputs = [keras.Input((4,), name=name) for name in ("anchor", "positive", "negative")]
    >>> codes = keras.layers.Concatenate()([encoder(x) for x in inputs])  # (B, 3N), N = 3
    >>> model = keras.Model(inputs, codes)
    >>> model.compile(optimizer="adam", loss=LosslessTripletLoss(layout="triplets"))
    >>> x = np.random.default_rng(0).random((3, 32, 4)).astype("float32")
    >>> history = model.fit(list(x), np.zeros(32), epochs=1, verbose=0)
    >>> # d(a, p) = 1, d(a, n) = 2, N = 3: -ln(1 - 1/3) - ln(1 - (3 - 2)/3) = 2 ln(3/2)
    >>> y_pred = np.array([[0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0]])
    >>> print(f"{float(LosslessTripletLoss(layout='triplets')(np.zeros(1), y_pred)):.4f}")
    0.8109

Example, labels (batch-all over a labelled batch, one-input encoder)::

    >>> encoder.compile(optimizer="adam", loss=LosslessTripletLoss())  # layout="labels"
    >>> labels = np.array([0, 1, 2, 3] * 8)
    >>> history = encoder.fit(x[0], labels, batch_size=32, epochs=1, verbose=0)
    >>> y_pred = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # N = 2, triplets (0, 1, 2), (1, 0, 2)
    >>> print(f"{float(LosslessTripletLoss()(np.array([0, 0, 1]), y_pred)):.4f}")  # (ln 2 + 2 ln 2) / 2
    1.0397

Source: M.-O. Arsenault, "Lossless Triplet loss", 2018 (lossless, linear lossless);
F. Schroff, D. Kalenichenko, J. Philbin, "FaceNet", CVPR 2015 (triplet margin);
A. Hermans, L. Beyer, B. Leibe, "In Defense of the Triplet Loss", 2017 (soft margin);
R. Hadsell, S. Chopra, Y. LeCun, CVPR 2006 (contrastive).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
from keras import ops
from lossless_triplet.losses._checks import check_eps, check_margin, resolve_beta, single_class_message
from lossless_triplet.losses.functional import CONTRASTIVE_MARGIN, EPS, TRIPLET_MARGIN

__all__ = [
    "LAYOUTS",
    "LosslessTripletLoss",
    "LinearLosslessTripletLoss",
    "TripletMarginLoss",
    "SoftMarginTripletLoss",
    "ContrastiveLoss",
]

LAYOUTS = ("labels", "triplets", "pairs")
_TRIPLET_LAYOUTS = ("labels", "triplets")
_CONTRASTIVE_LAYOUTS = ("labels", "pairs", "triplets")
_PACKAGE = "lossless_triplet"


# ----------------------------------------------------------------------------- numerics


def _dtype(x) -> str:
    return keras.backend.standardize_dtype(x.dtype)


def _result_dtype(x) -> str:
    """Half precision is computed in float32 (ln(eps) and 1 - d/beta need it)."""
    return "float32" if _dtype(x) in ("float16", "bfloat16") else _dtype(x)


def _float64_available() -> bool:
    """JAX holds float64 only with ``jax_enable_x64``; the other backends always do."""
    if keras.backend.backend() != "jax":
        return True
    import jax

    return bool(jax.config.jax_enable_x64)


def _clamp(x, low: float, high: float | None = None):
    """Clip by selection, as torch.clamp: the gradient passes where low <= x <= high.

    (ops.clip on JAX halves the gradient at a bound, and the lossless loss is often there.)
    """
    x = ops.where(x < low, ops.full_like(x, low), x)
    return x if high is None else ops.where(x > high, ops.full_like(x, high), x)


def _squared_distances(x, y):
    """Row-wise squared Euclidean distance from the differences: exact to rounding, >= 0, <= N."""
    return ops.sum(ops.square(x - y), axis=1)


def _pairwise_squared_distances(x):
    """All squared distances within a batch, (B, N) -> (B, B), float64 where available.

    As :func:`lossless_triplet.distances.pairwise_squared_distances`: Gram expansion in
    float64, clamped at 0, diagonal exactly 0, no square root. Without float64 (JAX without
    x64) the differences are summed instead: exact to rounding in float32, O(B^2 N) memory.
    """
    if not _float64_available():
        return ops.sum(ops.square(ops.expand_dims(x, 1) - ops.expand_dims(x, 0)), axis=2)
    x = ops.cast(x, "float64")
    sq = ops.sum(ops.square(x), axis=1, keepdims=True)
    # The @ operator, not ops.matmul: Keras' type promotion rounds float64 to float32
    # outside TensorFlow (Keras 3.15), and so does ops.maximum.
    d = _clamp(sq + ops.transpose(sq) - 2.0 * (x @ ops.transpose(x)), 0.0)
    eye = ops.eye(ops.shape(x)[0], dtype="bool")
    return ops.where(eye, ops.zeros_like(d), d)


def _safe_sqrt(d):
    """sqrt with value and gradient 0 (not NaN) at d == 0: select, never multiply by a mask."""
    positive = d > 0
    return ops.where(positive, ops.sqrt(ops.where(positive, d, ops.ones_like(d))), ops.zeros_like(d))


def _lossless_positive_term(d, n: int, beta: float, eps: float):
    """-ln((beta - d)/beta + eps): keeps eps in float32, where 1 + 1e-8 rounds to 1."""
    return -ops.log((beta - _clamp(d, 0.0, float(n))) / beta + eps)


def _lossless_negative_term(d, n: int, beta: float, eps: float):
    """-ln((beta - N + d)/beta + eps): d(a,n) = 0 gives -ln(eps) = 18.42, not inf."""
    return -ops.log((beta - n + _clamp(d, 0.0, float(n))) / beta + eps)


def _contrastive_pair(d, similar, margin: float):
    """½D² for similar pairs, ½max(0, margin - D)² for the others, from D² = d."""
    return 0.5 * ops.where(similar, d, ops.square(ops.relu(margin - _safe_sqrt(d))))


def _label_masks(labels):
    """(B, B) masks: positive i != j with one label, negative labels differ."""
    same = ops.equal(ops.expand_dims(labels, 0), ops.expand_dims(labels, 1))
    eye = ops.eye(ops.shape(labels)[0], dtype="bool")
    return ops.logical_and(same, ops.logical_not(eye)), ops.logical_not(same)


def _cumsum(x, axis: int):
    """Cumulative sum in the dtype of x (Keras 3.15's torch backend rounds float64 to float32)."""
    if keras.backend.backend() == "torch":
        return x.cumsum(dim=axis)
    return ops.cumsum(x, axis=axis, dtype=_dtype(x))


def _shares(per_anchor, count, batch):
    """Per-anchor totals scaled so that their mean over the batch is total / count (0 if none)."""
    count = ops.cast(count, per_anchor.dtype)
    count = ops.where(count > 0, count, ops.ones_like(count))
    return per_anchor * ops.cast(batch, per_anchor.dtype) / count


def _separable_shares(codes, labels, pos_fn: Callable, neg_fn: Callable):
    """Batch-all of f(d_ap) + g(d_an) per anchor, O(B^2).

    sum over valid (a, p, n) = sum_a [sum_p f(d_ap) #neg(a) + sum_n g(d_an) #pos(a)].
    """
    positive, negative = _label_masks(labels)
    d = _pairwise_squared_distances(codes)
    n_pos = ops.sum(ops.cast(positive, d.dtype), axis=1)
    n_neg = ops.sum(ops.cast(negative, d.dtype), axis=1)
    zero = ops.zeros_like(d)
    per_anchor = ops.sum(ops.where(positive, pos_fn(d), zero), axis=1) * n_neg
    per_anchor = per_anchor + ops.sum(ops.where(negative, neg_fn(d), zero), axis=1) * n_pos
    return _shares(per_anchor, ops.sum(n_pos * n_neg), ops.shape(codes)[0])


def _hinge_shares(codes, labels, margin: float):
    """Batch-all of max(d_ap - d_an + margin, 0) per anchor in O(B^2 log B), O(B^2) memory.

    For anchor a, sort its negative distances together with the queries q = d_ap + margin
    of its positives; a query then sees, as running sums, the count c and the sum s of the
    negatives below it (the ones with a positive hinge) and contributes c q - s. Ties add
    0 either way, since the hinge is 0 there.
    """
    positive, negative = _label_masks(labels)
    d = _pairwise_squared_distances(codes)
    n_pos = ops.sum(ops.cast(positive, d.dtype), axis=1)
    n_neg = ops.sum(ops.cast(negative, d.dtype), axis=1)
    keys = ops.concatenate([ops.where(negative, d, ops.full_like(d, float("inf"))), d + margin], axis=1)
    is_neg = ops.concatenate([ops.cast(negative, d.dtype), ops.zeros_like(d)], axis=1)
    is_query = ops.concatenate([ops.zeros_like(d), ops.cast(positive, d.dtype)], axis=1)
    order = ops.argsort(keys, axis=1)
    keys = ops.take_along_axis(keys, order, axis=1)
    is_neg = ops.take_along_axis(is_neg, order, axis=1) > 0
    is_query = ops.take_along_axis(is_query, order, axis=1) > 0
    zero = ops.zeros_like(keys)
    below = _cumsum(ops.cast(is_neg, d.dtype), axis=1)
    below_sum = _cumsum(ops.where(is_neg, keys, zero), axis=1)
    per_query = below * ops.where(is_query, keys, zero) - below_sum
    per_anchor = ops.sum(ops.where(is_query, per_query, zero), axis=1)
    return _shares(per_anchor, ops.sum(n_pos * n_neg), ops.shape(codes)[0])


def _soft_margin_shares(codes, labels):
    """Batch-all of ln(1 + exp(d_ap - d_an)) per anchor, from one (B, B, B) tensor: O(B^3) memory."""
    positive, negative = _label_masks(labels)
    d = _pairwise_squared_distances(codes)
    n_pos = ops.sum(ops.cast(positive, d.dtype), axis=1)
    n_neg = ops.sum(ops.cast(negative, d.dtype), axis=1)
    difference = ops.expand_dims(d, 2) - ops.expand_dims(d, 1)  # [a, p, n] = d_ap - d_an
    valid = ops.logical_and(ops.expand_dims(positive, 2), ops.expand_dims(negative, 1))
    zero = ops.zeros_like(difference)
    per_anchor = ops.sum(ops.where(valid, ops.softplus(difference), zero), axis=(1, 2))
    return _shares(per_anchor, ops.sum(n_pos * n_neg), ops.shape(codes)[0])


def _contrastive_shares(codes, labels, margin: float):
    """Contrastive loss over all unordered pairs i < j, each pair counted for its row i."""
    positive, _ = _label_masks(labels)
    d = _pairwise_squared_distances(codes)
    batch = ops.shape(codes)[0]
    index = ops.arange(batch)
    upper = ops.less(ops.expand_dims(index, 1), ops.expand_dims(index, 0))
    per_anchor = ops.sum(ops.where(upper, _contrastive_pair(d, positive, margin), ops.zeros_like(d)), axis=1)
    n_pairs = ops.cast(batch, d.dtype) * (ops.cast(batch, d.dtype) - 1.0) / 2.0
    return _shares(per_anchor, n_pairs, batch)


# ----------------------------------------------------------------------------- validation


def _in_symbolic_scope() -> bool:
    try:  # Keras 3 keeps this helper outside its public API
        from keras.src.backend.common.symbolic_scope import in_symbolic_scope
    except ImportError:  # pragma: no cover - another Keras layout: fall back to the backend test
        return False
    return bool(in_symbolic_scope())


def _values_known(x) -> bool:
    """True in eager execution; False while a graph is traced or Keras builds the model on
    placeholder tensors (its symbolic scope: ones of the right shape, not the user's values)."""
    if _in_symbolic_scope():
        return False
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return not isinstance(x, jax.core.Tracer)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.executing_eagerly()
    if backend == "torch":
        import torch

        is_compiling = getattr(torch.compiler, "is_compiling", None)  # torch >= 2.3
        return not (is_compiling and is_compiling())
    return True


def _check_layout(layout: str, allowed: tuple[str, ...], cls: str) -> None:
    if layout not in allowed:
        raise ValueError(f"layout={layout!r} is not valid for {cls}; use one of {allowed}")


def _check_2d(y_pred) -> None:
    if len(y_pred.shape) != 2:
        raise ValueError(f"y_pred must be 2-D (B, width) codes, got shape {tuple(y_pred.shape)}")


def _split(y_pred, parts: int, layout: str) -> list:
    """[x_1 | ... | x_parts] (B, parts * N) -> parts tensors (B, N); N from the static width."""
    _check_2d(y_pred)
    width = y_pred.shape[1]
    if width is None or width == 0 or width % parts:
        names = {3: "[anchor | positive | negative], shape (B, 3N)", 2: "[x1 | x2], shape (B, 2N)"}
        raise ValueError(
            f"layout={layout!r} expects y_pred = {names[parts]}; got width {width}, "
            f"not a positive multiple of {parts}. For (B, N) codes with (B,) labels use layout='labels'"
        )
    n = width // parts
    return [y_pred[:, i * n : (i + 1) * n] for i in range(parts)]


def _check_codes(validate: bool, bounded: bool, **named) -> None:
    """Finite everywhere and, for the lossless losses, in [0, 1]: the checks of the PyTorch losses."""
    if not validate:
        return
    for name, x in named.items():
        if not _values_known(x):
            return
        if not bool(ops.all(ops.isfinite(x))):
            raise ValueError(f"{name} holds NaN or inf; check the encoder's output")
        if bounded and bool(ops.logical_or(ops.any(x < 0), ops.any(x > 1))):
            raise ValueError(
                f"{name} has values outside [0, 1] (min {float(ops.min(x)):.4g}, max {float(ops.max(x)):.4g}); "
                "the lossless losses need bounded codes: end the encoder with a sigmoid head "
                "(activation=\"sigmoid\"), or pass validate=False if you guarantee it"
            )


def _flat_targets(y_true, batch, what: str, hint: str):
    """y_true (B,) or (B, 1) -> (B,); the shape is checked always, the values by the caller."""
    shape = tuple(y_true.shape)
    if len(shape) == 2 and shape[1] == 1:
        y_true = ops.reshape(y_true, (-1,))
    elif len(shape) != 1:
        raise ValueError(f"{what} (y_true) must have shape ({batch},) or ({batch}, 1), got {shape}{hint}")
    if y_true.shape[0] is not None and batch is not None and y_true.shape[0] != batch:
        raise ValueError(f"{what} (y_true) must have shape ({batch},) to match y_pred, got {shape}")
    return y_true


def _labels(y_true, batch, validate: bool):
    """Class ids as Keras passes them (cast to the loss dtype): integral values, shape (B,)."""
    labels = _flat_targets(
        y_true, batch, "labels", "; for the seed's (B, 3N) [anchor | positive | negative] codes use layout='triplets'"
    )
    if validate and _values_known(labels) and not bool(ops.all(ops.equal(labels, ops.round(labels)))):
        raise ValueError("labels (y_true) must be integer class ids, got non-integer values")
    return labels


def _check_label_variety(labels, width) -> None:
    """A batch of >= 2 rows whose labels are all equal: the error of the PyTorch losses, plus
    the seed's layout when y_pred's width could be [anchor | positive | negative]."""
    if not _values_known(labels) or labels.shape[0] is None or labels.shape[0] < 2:
        return
    if bool(ops.all(ops.equal(labels, labels[0]))):
        message = single_class_message(labels.shape[0], float(labels[0]))
        if width and width % 3 == 0:
            message += (f" y_pred has width {width}: if it holds the seed's [anchor | positive | negative] "
                        f"codes of width {width // 3}, compile with layout='triplets' (y_true is then ignored).")
        raise ValueError(message)


def _similar(y_true, batch, validate: bool):
    """Pair flags: 1/True similar, 0/False dissimilar, shape (B,)."""
    flags = _flat_targets(y_true, batch, "similar", "")
    if validate and _values_known(flags):
        if not bool(ops.all(ops.logical_or(ops.equal(flags, 0), ops.equal(flags, 1)))):
            raise ValueError("similar (y_true) must hold 1 (similar) or 0 (dissimilar) flags, got other values")
    return ops.not_equal(flags, 0)


def _upcast(y_pred):
    return ops.cast(y_pred, "float32") if _dtype(y_pred) in ("float16", "bfloat16") else y_pred


# ----------------------------------------------------------------------------- losses


class _BatchLoss(keras.losses.Loss):
    """Shared plumbing: layout, validation flag, config. Subclasses hold the formulas."""

    _layouts: tuple[str, ...] = _TRIPLET_LAYOUTS

    def __init__(self, *, layout: str, validate: bool, reduction, name: str, dtype) -> None:
        _check_layout(layout, self._layouts, type(self).__name__)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.layout = layout
        self.validate = validate

    def call(self, y_true, y_pred):
        result_dtype = _result_dtype(y_pred)
        y_pred = _upcast(y_pred)
        if self.layout == "labels":
            _check_2d(y_pred)
            _check_codes(self.validate, self._bounded, y_pred=y_pred)
            labels = _labels(y_true, y_pred.shape[0], self.validate)
            _check_label_variety(labels, y_pred.shape[1])
            return ops.cast(self._batch_all(y_pred, labels), result_dtype)
        if self.layout == "pairs":
            x1, x2 = _split(y_pred, 2, self.layout)
            _check_codes(self.validate, self._bounded, x1=x1, x2=x2)
            return ops.cast(self._on_pairs(x1, x2, _similar(y_true, y_pred.shape[0], self.validate)), result_dtype)
        anchor, positive, negative = _split(y_pred, 3, self.layout)
        _check_codes(self.validate, self._bounded, anchor=anchor, positive=positive, negative=negative)
        return ops.cast(self._on_triplets(anchor, positive, negative), result_dtype)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(layout=self.layout, validate=self.validate, dtype=self.dtype)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LosslessTripletLoss(_BatchLoss):
    """Lossless triplet loss (Arsenault 2018) as a Keras 3 loss.

    loss = -ln(-d(a,p)/beta + 1 + eps) - ln(-(N - d(a,n))/beta + 1 + eps), d the squared
    Euclidean distance, evaluated as -ln((beta - d_ap)/beta + eps) - ln((beta - N + d_an)/beta
    + eps) so float32 keeps eps (d(a,n) = 0 gives 18.42, not inf). Same function as
    :func:`lossless_triplet.losses.lossless_triplet_loss` and, batch-all,
    :class:`lossless_triplet.losses.LosslessTripletLoss`.

    Args:
        beta: scaling, default N (the code width, read from y_pred); must be >= N.
        eps: keeps the log finite at the bounds (default 1e-8, as in the paper); > 0.
        layout: ``"labels"`` (default) or ``"triplets"``; see :mod:`lossless_triplet.keras`.
        validate: check finiteness and the [0, 1] range (eagerly) on every call.
        reduction, name, dtype: as for ``keras.losses.Loss``; ``dtype`` is the compute dtype
            (``keras.backend.floatx()`` by default; ``"float64"`` for full precision).

    Shape:
        labels layout: y_true (B,) or (B, 1) int, y_pred (B, N) float in [0, 1].
        triplets layout: y_true ignored, y_pred (B, 3N) float in [0, 1].
        Output: scalar (default reduction), or (B,) for ``reduction=None``.

    Raises:
        ValueError: eps <= 0 or an unknown layout (at construction); beta < N, a y_pred that is
            not 2-D or whose width is not a multiple of 3 (triplets), labels of the wrong shape
            or not integral, NaN/inf, codes outside [0, 1] (at call).

    Source: M.-O. Arsenault, "Lossless Triplet loss", 2018.
    """

    _bounded = True

    def __init__(
        self,
        beta: float | None = None,
        eps: float = EPS,
        *,
        layout: str = "labels",
        validate: bool = True,
        reduction: str | None = "sum_over_batch_size",
        name: str = "lossless_triplet_loss",
        dtype: str | None = None,
    ) -> None:
        check_eps(eps)
        super().__init__(layout=layout, validate=validate, reduction=reduction, name=name, dtype=dtype)
        self.beta = beta
        self.eps = eps

    def _on_triplets(self, anchor, positive, negative):
        n = anchor.shape[1]
        beta = resolve_beta(self.beta, n)
        return _lossless_positive_term(_squared_distances(anchor, positive), n, beta, self.eps) + (
            _lossless_negative_term(_squared_distances(anchor, negative), n, beta, self.eps)
        )

    def _batch_all(self, codes, labels):
        n = codes.shape[1]
        beta = resolve_beta(self.beta, n)
        return _separable_shares(
            codes,
            labels,
            lambda d: _lossless_positive_term(d, n, beta, self.eps),
            lambda d: _lossless_negative_term(d, n, beta, self.eps),
        )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "beta": self.beta, "eps": self.eps}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LinearLosslessTripletLoss(_BatchLoss):
    """Linear lossless triplet loss d(a,p) - d(a,n) + N (Arsenault 2018) as a Keras 3 loss.

    No hinge: for codes in [0, 1]^N every squared distance is <= N, so the value is >= 0 and
    every triplet keeps its gradient. Same function as
    :func:`lossless_triplet.losses.linear_lossless_triplet_loss` and, batch-all,
    :class:`lossless_triplet.losses.LinearLosslessTripletLoss`.

    Args:
        layout: ``"labels"`` (default) or ``"triplets"``.
        validate, reduction, name, dtype: as for :class:`LosslessTripletLoss`.

    Shape:
        labels layout: y_true (B,) int, y_pred (B, N) float in [0, 1]; triplets layout:
        y_pred (B, 3N) float in [0, 1]. Output: scalar, or (B,) for ``reduction=None``.

    Raises:
        ValueError: an unknown layout; bad shapes, non-integral labels, NaN/inf, codes outside
            [0, 1] (at call).

    Source: M.-O. Arsenault, "Lossless Triplet loss", 2018.
    """

    _bounded = True

    def __init__(
        self,
        *,
        layout: str = "labels",
        validate: bool = True,
        reduction: str | None = "sum_over_batch_size",
        name: str = "linear_lossless_triplet_loss",
        dtype: str | None = None,
    ) -> None:
        super().__init__(layout=layout, validate=validate, reduction=reduction, name=name, dtype=dtype)

    def _on_triplets(self, anchor, positive, negative):
        n = anchor.shape[1]
        return _squared_distances(anchor, positive) - _squared_distances(anchor, negative) + n

    def _batch_all(self, codes, labels):
        n = codes.shape[1]
        # f(d) = d + N and g(d) = -d: the constant N counted once per triplet.
        return _separable_shares(codes, labels, lambda d: d + n, lambda d: -d)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TripletMarginLoss(_BatchLoss):
    """Triplet margin loss max(d(a,p) - d(a,n) + margin, 0) of FaceNet as a Keras 3 loss.

    On squared distances; triplets past the margin give 0 and no gradient. Codes need not be
    bounded. Same function as :func:`lossless_triplet.losses.triplet_margin_loss` and,
    batch-all (zero-loss triplets count in the mean),
    :class:`lossless_triplet.losses.TripletMarginLoss`.

    Args:
        margin: alpha, default 0.2 as in FaceNet; finite and >= 0.
        layout: ``"labels"`` (default) or ``"triplets"``.
        validate, reduction, name, dtype: as for :class:`LosslessTripletLoss` (no range check).

    Shape:
        labels layout: y_true (B,) int, y_pred (B, N) float; triplets layout: y_pred (B, 3N)
        float. Output: scalar, or (B,) for ``reduction=None``.

    Raises:
        ValueError: negative or non-finite margin, an unknown layout (at construction); bad
            shapes, non-integral labels, NaN/inf (at call).

    Source: F. Schroff, D. Kalenichenko, J. Philbin, "FaceNet", CVPR 2015 (alpha = 0.2).
    """

    _bounded = False

    def __init__(
        self,
        margin: float = TRIPLET_MARGIN,
        *,
        layout: str = "labels",
        validate: bool = True,
        reduction: str | None = "sum_over_batch_size",
        name: str = "triplet_margin_loss",
        dtype: str | None = None,
    ) -> None:
        check_margin(margin)
        super().__init__(layout=layout, validate=validate, reduction=reduction, name=name, dtype=dtype)
        self.margin = margin

    def _on_triplets(self, anchor, positive, negative):
        return ops.relu(_squared_distances(anchor, positive) - _squared_distances(anchor, negative) + self.margin)

    def _batch_all(self, codes, labels):
        return _hinge_shares(codes, labels, self.margin)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "margin": self.margin}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SoftMarginTripletLoss(_BatchLoss):
    """Soft-margin triplet loss ln(1 + exp(d(a,p) - d(a,n))) (Hermans, Beyer, Leibe 2017) as a Keras 3 loss.

    The hinge replaced by a softplus, on squared distances, with no margin; evaluated by
    ``keras.ops.softplus`` (no overflow, gradient 1/2 at x = 0; not ``ops.logaddexp``, whose
    type promotion rounds float64 to float32 on the torch backend in Keras 3.15). Same function as
    :func:`lossless_triplet.losses.soft_margin_triplet_loss` and, batch-all,
    :class:`lossless_triplet.losses.SoftMarginTripletLoss` (which is blockwise: the labels
    layout here holds a (B, B, B) tensor, see the module docstring).

    Args:
        layout: ``"labels"`` (default) or ``"triplets"``.
        validate, reduction, name, dtype: as for :class:`LosslessTripletLoss` (no range check).

    Shape:
        labels layout: y_true (B,) int, y_pred (B, N) float; triplets layout: y_pred (B, 3N)
        float. Output: scalar, or (B,) for ``reduction=None``.

    Raises:
        ValueError: an unknown layout (at construction); bad shapes, non-integral labels,
            NaN/inf, all labels equal (at call).

    Source: A. Hermans, L. Beyer, B. Leibe, "In Defense of the Triplet Loss for Person
    Re-Identification", 2017.
    """

    _bounded = False

    def __init__(
        self,
        *,
        layout: str = "labels",
        validate: bool = True,
        reduction: str | None = "sum_over_batch_size",
        name: str = "soft_margin_triplet_loss",
        dtype: str | None = None,
    ) -> None:
        super().__init__(layout=layout, validate=validate, reduction=reduction, name=name, dtype=dtype)

    def _on_triplets(self, anchor, positive, negative):
        return ops.softplus(_squared_distances(anchor, positive) - _squared_distances(anchor, negative))

    def _batch_all(self, codes, labels):
        return _soft_margin_shares(codes, labels)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ContrastiveLoss(_BatchLoss):
    """Contrastive loss (Hadsell, Chopra, LeCun, CVPR 2006) as a Keras 3 loss.

    Similar pairs ½D², dissimilar pairs ½max(0, margin - D)², D = ||x1 - x2|| (no NaN gradient
    for identical points). Same function as :func:`lossless_triplet.losses.contrastive_loss`
    and, over all pairs i < j of a labelled batch, :class:`lossless_triplet.losses.ContrastiveLoss`.

    Args:
        margin: m, default 1.0; finite and > 0.
        layout: ``"labels"`` (default: all pairs i < j, similar when the labels agree),
            ``"pairs"`` (y_pred = [x1 | x2], y_true = similar flags) or ``"triplets"``
            (y_pred = [a | p | n]; each row is the mean of its pairs (a, p) similar and (a, n)
            dissimilar, so the batch mean is the mean over all 2B pairs).
        validate, reduction, name, dtype: as for :class:`LosslessTripletLoss` (no range check).

    Shape:
        labels: y_true (B,) int, y_pred (B, N). pairs: y_true (B,) or (B, 1) 0/1 or bool,
        y_pred (B, 2N). triplets: y_pred (B, 3N), y_true ignored. Output: scalar, or (B,) for
        ``reduction=None``.

    Raises:
        ValueError: margin <= 0 or not finite, an unknown layout (at construction); bad
            shapes, labels not integral, flags other than 0/1, NaN/inf (at call).

    Source: R. Hadsell, S. Chopra, Y. LeCun, "Dimensionality Reduction by Learning an
    Invariant Mapping", CVPR 2006 (margin m = 1).
    """

    _bounded = False
    _layouts = _CONTRASTIVE_LAYOUTS

    def __init__(
        self,
        margin: float = CONTRASTIVE_MARGIN,
        *,
        layout: str = "labels",
        validate: bool = True,
        reduction: str | None = "sum_over_batch_size",
        name: str = "contrastive_loss",
        dtype: str | None = None,
    ) -> None:
        check_margin(margin, strictly_positive=True)
        super().__init__(layout=layout, validate=validate, reduction=reduction, name=name, dtype=dtype)
        self.margin = margin

    def _on_pairs(self, x1, x2, similar):
        return _contrastive_pair(_squared_distances(x1, x2), similar, self.margin)

    def _on_triplets(self, anchor, positive, negative):
        similar = 0.5 * _squared_distances(anchor, positive)
        dissimilar = 0.5 * ops.square(ops.relu(self.margin - _safe_sqrt(_squared_distances(anchor, negative))))
        return 0.5 * (similar + dissimilar)

    def _batch_all(self, codes, labels):
        return _contrastive_shares(codes, labels, self.margin)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "margin": self.margin}
