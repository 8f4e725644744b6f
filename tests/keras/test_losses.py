"""Keras losses against the paper formulas (float64 NumPy) and the PyTorch losses.

Backend-agnostic: run on torch in the normal suite and rerun on JAX by test_jax.py.
Tolerances: relative 1e-6 in float64, 1e-4 in float32.
"""

import doctest
import math

import numpy as np
import pytest
import torch

keras = pytest.importorskip("keras")
import lossless_triplet.keras as lk  # noqa: E402
from lossless_triplet import losses as tl  # noqa: E402

from ..losses import reference as ref  # noqa: E402

# Keras' torch backend copies tensors to NumPy the way NumPy 2 deprecates (not our code).
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

RTOL = {"float64": 1e-6, "float32": 1e-4}


def _float64_ok():
    if keras.backend.backend() != "jax":
        return True
    import jax

    return bool(jax.config.jax_enable_x64)


needs_float64 = pytest.mark.skipif(not _float64_ok(), reason="JAX without x64")
DTYPES = [pytest.param("float64", marks=needs_float64), "float32"]


def value(x):
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double()
    return np.asarray(x, dtype=np.float64)


def codes(rows, width, seed, dtype="float64"):
    return np.random.default_rng(seed).random((rows, width)).astype(dtype)


def labels_of(rows, n_classes, seed):
    return np.random.default_rng(seed + 100).integers(0, n_classes, rows)


def split3(y_pred):
    n = y_pred.shape[1] // 3
    return [torch.tensor(y_pred[:, i * n : (i + 1) * n]) for i in range(3)]


def grad(loss, y_true, y_pred):
    """d loss / d y_pred on the current backend (torch autograd or jax.grad)."""
    backend = keras.backend.backend()
    if backend == "torch":
        x = torch.tensor(y_pred, requires_grad=True)
        loss(y_true, x).backward()
        return x.grad.numpy()
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(lambda x: loss(y_true, x))(jax.numpy.asarray(y_pred)))
    pytest.skip(f"no gradient helper for the {backend} backend")


# ----------------------------------------------------------------------------- seed layout (B, 3N)

# (Keras loss, per-triplet formula of (d_ap, d_an, N), PyTorch functional on (a, p, n))
TRIPLET_LAYOUT_CASES = [
    (lambda **k: lk.LosslessTripletLoss(**k), lambda dp, dn, n: ref.lossless(dp, dn, n), tl.lossless_triplet_loss),
    (
        lambda **k: lk.LosslessTripletLoss(beta=10.0, **k),
        lambda dp, dn, n: ref.lossless(dp, dn, n, beta=10.0),
        lambda a, p, n, **k: tl.lossless_triplet_loss(a, p, n, beta=10.0, **k),
    ),
    (
        lambda **k: lk.LinearLosslessTripletLoss(**k),
        lambda dp, dn, n: ref.linear_lossless(dp, dn, n),
        tl.linear_lossless_triplet_loss,
    ),
    (lambda **k: lk.TripletMarginLoss(**k), lambda dp, dn, n: ref.triplet(dp, dn), tl.triplet_margin_loss),
    (
        lambda **k: lk.TripletMarginLoss(margin=1.0, **k),
        lambda dp, dn, n: ref.triplet(dp, dn, 1.0),
        lambda a, p, n, **k: tl.triplet_margin_loss(a, p, n, margin=1.0, **k),
    ),
    (lambda **k: lk.SoftMarginTripletLoss(**k), lambda dp, dn, n: ref.soft_margin(dp, dn), tl.soft_margin_triplet_loss),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make, formula, torch_fn", TRIPLET_LAYOUT_CASES)
@pytest.mark.parametrize("rows, n, seed", [(16, 3, 0), (9, 8, 1), (5, 1, 2)])
def test_triplets_layout_equals_formula_and_pytorch(make, formula, torch_fn, dtype, rows, n, seed):
    y_pred = codes(rows, 3 * n, seed, dtype)
    a, p, neg = (y_pred[:, i * n : (i + 1) * n].astype(np.float64) for i in range(3))
    expected = [formula(ref.sqdist(a[i], p[i]), ref.sqdist(a[i], neg[i]), n) for i in range(rows)]
    loss = make(layout="triplets", dtype=dtype)
    got = value(loss(np.zeros(rows), y_pred))
    assert got == pytest.approx(np.mean(expected), rel=RTOL[dtype])
    assert got == pytest.approx(torch_fn(*split3(y_pred)).item(), rel=RTOL[dtype])
    per_row = value(make(layout="triplets", dtype=dtype, reduction=None)(np.zeros(rows), y_pred))
    np.testing.assert_allclose(per_row, expected, rtol=RTOL[dtype], atol=1e-12)
    np.testing.assert_allclose(per_row, torch_fn(*split3(y_pred), reduction="none").numpy(), rtol=RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_contrastive_triplets_layout_is_the_mean_over_both_pairs(dtype):
    y_pred = codes(12, 6, 3, dtype)
    a, p, neg = split3(y_pred.astype(np.float64))
    x1, x2 = torch.cat([a, a]), torch.cat([p, neg])
    similar = torch.tensor([True] * 12 + [False] * 12)
    expected = np.mean([ref.contrastive(x1[i].numpy(), x2[i].numpy(), bool(similar[i])) for i in range(24)])
    got = value(lk.ContrastiveLoss(layout="triplets", dtype=dtype)(np.zeros(12), y_pred))
    assert got == pytest.approx(expected, rel=RTOL[dtype])
    assert got == pytest.approx(tl.contrastive_loss(x1, x2, similar).item(), rel=RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("margin", [1.0, 0.5])
@pytest.mark.parametrize("flag_shape", [(10,), (10, 1)])
def test_contrastive_pairs_layout_equals_formula_and_pytorch(dtype, margin, flag_shape):
    y_pred = codes(10, 8, 4, dtype) * 0.6  # some dissimilar pairs inside the margin
    flags = np.random.default_rng(5).integers(0, 2, 10)
    x1, x2 = y_pred[:, :4].astype(np.float64), y_pred[:, 4:].astype(np.float64)
    expected = np.mean([ref.contrastive(x1[i], x2[i], bool(flags[i]), margin) for i in range(10)])
    loss = lk.ContrastiveLoss(margin, layout="pairs", dtype=dtype)
    got = value(loss(flags.reshape(flag_shape), y_pred))
    assert got == pytest.approx(expected, rel=RTOL[dtype])
    torch_value = tl.contrastive_loss(
        torch.tensor(y_pred[:, :4]), torch.tensor(y_pred[:, 4:]), torch.tensor(flags == 1), margin=margin
    )
    assert got == pytest.approx(torch_value.item(), rel=RTOL[dtype])
    assert value(loss(flags.astype(bool), y_pred)) == pytest.approx(got, rel=1e-12)


def test_n_is_read_from_the_width():
    # Same codes read as N = 2 and N = 4: beta defaults to each N, never to a constant 3.
    for n in (2, 4):
        y_pred = codes(6, 3 * n, 6)
        a, p, neg = (y_pred[:, i * n : (i + 1) * n] for i in range(3))
        expected = np.mean([ref.lossless(ref.sqdist(a[i], p[i]), ref.sqdist(a[i], neg[i]), n) for i in range(6)])
        got = value(lk.LosslessTripletLoss(layout="triplets", dtype="float32")(np.zeros(6), y_pred.astype("float32")))
        assert got == pytest.approx(expected, rel=1e-4)


# ----------------------------------------------------------------------------- float32 bounds


def test_float32_bounds_keep_eps():
    # d(a,p) = N and d(a,n) = 0: each term is -ln(eps) = 18.42, not inf (1 + 1e-8 == 1 in float32).
    y_pred = np.array([[0, 0, 0, 1, 1, 1, 0, 0, 0]], dtype="float32")
    loss = lk.LosslessTripletLoss(layout="triplets")
    got = loss(np.zeros(1), y_pred)
    assert keras.backend.standardize_dtype(got.dtype) == "float32"
    assert value(got) == pytest.approx(-2 * math.log(1e-8), rel=1e-5)
    # Gradient of -ln((N - d)/N + eps) at the bound, w.r.t. the anchor: 2(a - p)/(N eps).
    g = grad(loss, np.zeros(1), y_pred)
    assert np.isfinite(g).all()
    np.testing.assert_allclose(g[0, :3], np.full(3, 2 * (0.0 - 1.0) / (3 * 1e-8)), rtol=1e-4)
    torch_value = tl.lossless_triplet_loss(*split3(y_pred))
    assert value(got) == pytest.approx(torch_value.item(), rel=1e-4)


def test_float32_bounds_in_the_labels_layout():
    # Identical codes with different labels (d_an = 0) and opposite corners with one label (d_ap = N).
    y_pred = np.array([[0, 0, 0], [0, 0, 0], [1, 1, 1], [0, 0, 0]], dtype="float32")
    labels = np.array([0, 1, 0, 1])
    got = value(lk.LosslessTripletLoss()(labels, y_pred))
    expected = tl.LosslessTripletLoss()(torch.tensor(y_pred), torch.tensor(labels)).item()
    assert np.isfinite(got) and got == pytest.approx(expected, rel=1e-4)
    brute_force = ref.brute_force_batch(y_pred, labels.tolist(), lambda dp, dn: ref.lossless(dp, dn, 3))
    assert got == pytest.approx(brute_force, rel=1e-4)
    assert np.isfinite(grad(lk.LosslessTripletLoss(), labels, y_pred)).all()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_is_computed_in_float32(dtype):
    # In half precision eps = 1e-8 underflows to 0; computing in float32 keeps -ln(eps) finite.
    y_pred = np.array([[0, 0, 0, 1, 1, 1, 0, 0, 0]], dtype="float32")
    got = value(lk.LosslessTripletLoss(layout="triplets", dtype=dtype)(np.zeros(1), y_pred))
    assert got == pytest.approx(-2 * math.log(1e-8), rel=1e-2)


# ----------------------------------------------------------------------------- labels layout (batch-all)

BATCH_CASES = [
    (
        lambda **k: lk.LosslessTripletLoss(**k),
        tl.LosslessTripletLoss(),
        lambda n: lambda dp, dn: ref.lossless(dp, dn, n),
    ),
    (
        lambda **k: lk.LosslessTripletLoss(beta=10.0, **k),
        tl.LosslessTripletLoss(beta=10.0),
        lambda n: lambda dp, dn: ref.lossless(dp, dn, n, beta=10.0),
    ),
    (
        lambda **k: lk.LinearLosslessTripletLoss(**k),
        tl.LinearLosslessTripletLoss(),
        lambda n: lambda dp, dn: ref.linear_lossless(dp, dn, n),
    ),
    (lambda **k: lk.TripletMarginLoss(**k), tl.TripletMarginLoss(), lambda n: ref.triplet),
    (
        lambda **k: lk.TripletMarginLoss(margin=1.0, **k),
        tl.TripletMarginLoss(margin=1.0),
        lambda n: lambda dp, dn: ref.triplet(dp, dn, 1.0),
    ),
    (lambda **k: lk.SoftMarginTripletLoss(**k), tl.SoftMarginTripletLoss(), lambda n: ref.soft_margin),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make, torch_loss, formula", BATCH_CASES)
@pytest.mark.parametrize("rows, n, n_classes, seed", [(12, 3, 3, 0), (20, 8, 4, 1), (9, 2, 2, 2)])
def test_labels_layout_equals_brute_force_and_pytorch(make, torch_loss, formula, dtype, rows, n, n_classes, seed):
    y_pred, labels = codes(rows, n, seed, dtype), labels_of(rows, n_classes, seed)
    got = value(make(dtype=dtype)(labels, y_pred))
    expected = ref.brute_force_batch(y_pred, labels.tolist(), formula(n))
    assert got == pytest.approx(expected, rel=RTOL[dtype])
    assert got == pytest.approx(torch_loss(torch.tensor(y_pred), torch.tensor(labels)).item(), rel=RTOL[dtype])
    # Labels as Keras often passes them: a (B, 1) column.
    assert value(make(dtype=dtype)(labels[:, None], y_pred)) == pytest.approx(got, rel=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("margin", [1.0, 0.3])
def test_contrastive_labels_layout_equals_all_pairs_and_pytorch(dtype, margin):
    y_pred, labels = codes(13, 4, 7, dtype), labels_of(13, 3, 7)
    got = value(lk.ContrastiveLoss(margin, dtype=dtype)(labels, y_pred))
    assert got == pytest.approx(ref.brute_force_pairs(y_pred, labels.tolist(), margin), rel=RTOL[dtype])
    torch_value = tl.ContrastiveLoss(margin=margin)(torch.tensor(y_pred), torch.tensor(labels)).item()
    assert got == pytest.approx(torch_value, rel=RTOL[dtype])


def test_hinge_batch_all_with_ties_and_a_larger_batch():
    # Binary codes make many equal distances (ties between queries and negatives).
    rng = np.random.default_rng(8)
    y_pred, labels = rng.integers(0, 2, (24, 3)).astype("float64"), rng.integers(0, 3, 24)
    for margin in (0.0, 1.0, 2.0):
        got = value(lk.TripletMarginLoss(margin, dtype="float32")(labels, y_pred.astype("float32")))
        expected = ref.brute_force_batch(y_pred, labels.tolist(), lambda dp, dn: ref.triplet(dp, dn, margin))
        assert got == pytest.approx(expected, rel=1e-4, abs=1e-7)
    y_pred, labels = codes(96, 5, 9, "float32"), labels_of(96, 6, 9)
    expected = tl.TripletMarginLoss()(torch.tensor(y_pred), torch.tensor(labels)).item()
    assert value(lk.TripletMarginLoss()(labels, y_pred)) == pytest.approx(expected, rel=1e-4)


@needs_float64
@pytest.mark.parametrize(
    "make, torch_loss",
    [
        (lk.LosslessTripletLoss, tl.LosslessTripletLoss()),
        (lk.LinearLosslessTripletLoss, tl.LinearLosslessTripletLoss()),
        (lk.TripletMarginLoss, tl.TripletMarginLoss(margin=1.0)),
        (lk.ContrastiveLoss, tl.ContrastiveLoss()),
        (lk.SoftMarginTripletLoss, tl.SoftMarginTripletLoss()),
    ],
)
def test_labels_layout_gradient_equals_pytorch(make, torch_loss):
    y_pred, labels = codes(14, 3, 10), labels_of(14, 3, 10)
    # reduction="sum" (B times the mean): Keras' default reduction rounds to float32 on torch.
    kwargs = {"dtype": "float64", "reduction": "sum", **({"margin": 1.0} if make is lk.TripletMarginLoss else {})}
    x = torch.tensor(y_pred, requires_grad=True)
    (torch_loss(x, torch.tensor(labels)) * len(labels)).backward()
    np.testing.assert_allclose(grad(make(**kwargs), labels, y_pred), x.grad.numpy(), rtol=1e-6, atol=1e-12)


@needs_float64
def test_labels_layout_shares_average_to_the_batch_all_mean():
    y_pred, labels = codes(10, 3, 11), labels_of(10, 3, 11)
    mean = value(lk.LosslessTripletLoss(dtype="float64")(labels, y_pred))
    shares = value(lk.LosslessTripletLoss(dtype="float64", reduction=None)(labels, y_pred))
    assert shares.shape == (10,)
    assert shares.mean() == pytest.approx(mean, rel=1e-6)
    weighted = lk.LosslessTripletLoss(dtype="float64")(labels, y_pred, sample_weight=np.ones(10))
    assert value(weighted) == pytest.approx(mean, rel=1e-6)


@pytest.mark.parametrize("make", [lk.LosslessTripletLoss, lk.LinearLosslessTripletLoss, lk.TripletMarginLoss,
                                  lk.SoftMarginTripletLoss])
def test_no_positive_gives_zero_with_finite_gradient(make):
    y_pred = codes(5, 3, 12, "float32")
    labels = np.arange(5)  # every label distinct: no positive, a normal event
    assert value(make()(labels, y_pred)) == 0.0
    g = grad(make(), labels, y_pred)
    assert np.isfinite(g).all() and not g.any()


@pytest.mark.parametrize("make", [lk.LosslessTripletLoss, lk.LinearLosslessTripletLoss, lk.TripletMarginLoss,
                                  lk.SoftMarginTripletLoss, lk.ContrastiveLoss])
@pytest.mark.parametrize("validate", [True, False])
def test_all_labels_equal_is_an_error_that_names_the_seed_layout(make, validate):
    # The seed's (B, 3N) [anchor | positive | negative] codes with dummy zero labels.
    y_pred = codes(16, 9, 14, "float32")
    with pytest.raises(ValueError, match=r"labels of the batch are equal.*layout='triplets'"):
        make(validate=validate)(np.zeros(16), y_pred)
    assert value(make()(np.zeros(1), y_pred[:1])) == 0.0


def test_seed_layout_fit_with_default_arguments_stops_with_the_fix():
    # The seed's model: three inputs, one shared sigmoid encoder, y_pred = [a | p | n] (B, 3N),
    # compiled with the default layout and fitted on dummy zero labels. Before, the loss was 0
    # and the weights never moved; now fit stops and says what to pass instead.
    keras.utils.set_random_seed(0)
    encoder = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="sigmoid")])
    inputs = [keras.Input((4,)) for _ in range(3)]
    model = keras.Model(inputs, keras.layers.Concatenate()([encoder(x) for x in inputs]))
    model.compile(optimizer="adam", loss=lk.LosslessTripletLoss())
    x = list(np.random.default_rng(0).random((3, 32, 4)).astype("float32"))
    before = [w.copy() for w in encoder.get_weights()]
    with pytest.raises(ValueError, match=r"all 32 labels of the batch are equal.*width 9.*layout='triplets'"):
        model.fit(x, np.zeros(32), batch_size=32, epochs=1, verbose=0)
    # With the layout it names, the same fit trains: a positive loss and weights that move.
    model.compile(optimizer="adam", loss=lk.LosslessTripletLoss(layout="triplets"))
    history = model.fit(x, np.zeros(32), batch_size=32, epochs=2, verbose=0)
    assert min(history.history["loss"]) > 0
    assert any(not np.allclose(a, b) for a, b in zip(before, encoder.get_weights()))


def test_contrastive_with_one_row_gives_zero():
    assert value(lk.ContrastiveLoss()(np.zeros(1), codes(1, 3, 13, "float32"))) == 0.0


def test_identical_points_give_finite_contrastive_gradient():
    # D = 0 for every pair: the sqrt of the dissimilar branch must not give NaN gradients.
    cases = [("labels", np.array([0, 0, 1, 1]), 1), ("pairs", np.zeros(4), 2), ("triplets", np.zeros(4), 3)]
    for layout, y_true, parts in cases:
        y_pred = np.full((4, 3 * parts), 0.3, dtype="float32")
        assert np.isfinite(grad(lk.ContrastiveLoss(layout=layout), y_true, y_pred)).all()


# ----------------------------------------------------------------------------- errors


def _message(fn):
    with pytest.raises(ValueError) as info:
        fn()
    return str(info.value)


def test_beta_below_n_has_the_pytorch_message():
    a, p, neg = (torch.rand(2, 3) for _ in range(3))
    expected = _message(lambda: tl.lossless_triplet_loss(a, p, neg, beta=2.0))
    assert _message(lambda: lk.LosslessTripletLoss(2.0, layout="triplets")(np.zeros(2), codes(2, 9, 0))) == expected
    assert _message(lambda: lk.LosslessTripletLoss(2.0)(np.arange(2), codes(2, 3, 0))) == expected


def test_hyper_parameters_have_the_pytorch_messages():
    a = torch.rand(2, 3)
    for keras_fn, torch_fn in [
        (lambda: lk.LosslessTripletLoss(eps=0.0), lambda: tl.lossless_triplet_loss(a, a, a, eps=0.0)),
        (lambda: lk.TripletMarginLoss(-0.1), lambda: tl.triplet_margin_loss(a, a, a, margin=-0.1)),
        (lambda: lk.TripletMarginLoss(math.inf), lambda: tl.triplet_margin_loss(a, a, a, margin=math.inf)),
        (lambda: lk.ContrastiveLoss(0.0), lambda: tl.contrastive_loss(a, a, torch.ones(2, dtype=bool), margin=0.0)),
    ]:
        assert _message(keras_fn) == _message(torch_fn)


@pytest.mark.parametrize("make", [lk.LosslessTripletLoss, lk.LinearLosslessTripletLoss])
def test_codes_outside_unit_interval_are_refused(make):
    y_pred = codes(4, 9, 14, "float32")
    with pytest.raises(ValueError, match=r"negative has values outside \[0, 1\].*sigmoid"):
        make(layout="triplets")(np.zeros(4), np.concatenate([y_pred[:, :6], y_pred[:, 6:] - 2], axis=1))
    with pytest.raises(ValueError, match=r"y_pred has values outside \[0, 1\].*sigmoid"):
        make()(np.arange(4), y_pred + 1.5)
    make(layout="triplets", validate=False)(np.zeros(4), y_pred + 1.5)  # the opt-out skips the check
    lk.TripletMarginLoss()(np.arange(4), y_pred + 1.5)  # unbounded codes are fine for the hinge


def test_nan_is_refused():
    y_pred = codes(4, 6, 15, "float32")
    y_pred[1, 2] = np.nan
    with pytest.raises(ValueError, match="y_pred holds NaN or inf"):
        lk.TripletMarginLoss()(np.arange(4), y_pred)
    with pytest.raises(ValueError, match="x1 holds NaN or inf"):
        lk.ContrastiveLoss(layout="pairs")(np.ones(4), y_pred)


def test_layout_errors_name_the_fix():
    with pytest.raises(ValueError, match=r"layout='pairs' is not valid for LosslessTripletLoss"):
        lk.LosslessTripletLoss(layout="pairs")
    with pytest.raises(ValueError, match=r"width 8, not a positive multiple of 3.*layout='labels'"):
        lk.LosslessTripletLoss(layout="triplets")(np.zeros(4), codes(4, 8, 16, "float32"))
    with pytest.raises(ValueError, match=r"\[x1 \| x2\], shape \(B, 2N\); got width 5"):
        lk.ContrastiveLoss(layout="pairs")(np.zeros(4), codes(4, 5, 16, "float32"))
    with pytest.raises(ValueError, match="2-D"):
        lk.LosslessTripletLoss()(np.zeros(4), np.zeros(4, "float32"))


def test_label_errors():
    y_pred = codes(4, 3, 17, "float32")
    # The seed's dummy targets with the default layout: the message points to layout='triplets'.
    with pytest.raises(ValueError, match=r"shape \(4,\) or \(4, 1\), got \(4, 9\).*layout='triplets'"):
        lk.LosslessTripletLoss()(np.zeros((4, 9)), y_pred)
    with pytest.raises(ValueError, match=r"shape \(4,\) to match y_pred, got \(3,\)"):
        lk.LosslessTripletLoss()(np.zeros(3), y_pred)
    with pytest.raises(ValueError, match="integer class ids"):
        lk.LosslessTripletLoss()(np.array([0.0, 0.5, 1.0, 1.0]), y_pred)
    with pytest.raises(ValueError, match=r"1 \(similar\) or 0 \(dissimilar\)"):
        lk.ContrastiveLoss(layout="pairs")(np.array([0, 1, 2, 1]), codes(4, 6, 17, "float32"))


# ----------------------------------------------------------------------------- serialisation, docs


@pytest.mark.parametrize(
    "loss",
    [
        lk.LosslessTripletLoss(12.0, 1e-6, layout="triplets", validate=False, dtype="float64"),
        lk.LinearLosslessTripletLoss(layout="triplets", reduction="sum"),
        lk.TripletMarginLoss(0.5, name="hinge"),
        lk.ContrastiveLoss(2.0, layout="pairs"),
    ],
)
def test_config_round_trip(loss):
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is type(loss)
    assert restored.get_config() == loss.get_config()
    assert keras.saving.get_registered_name(type(loss)) == f"lossless_triplet>{type(loss).__name__}"


def test_module_docstring_examples_run():
    result = doctest.testmod(lk, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
