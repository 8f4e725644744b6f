"""The explicit-triplet losses against float64 evaluations of the paper formulas."""

import math

import numpy as np
import pytest
import torch

from lossless_triplet.losses import (
    contrastive_loss,
    linear_lossless_triplet_loss,
    lossless_triplet_loss,
    triplet_margin_loss,
)

from . import reference as ref


def random_triplets(batch, n, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(batch, n, generator=g, dtype=dtype) for _ in range(3)]


def per_row_reference(a, p, neg, fn):
    return np.array([fn(ref.sqdist(a[i], p[i]), ref.sqdist(a[i], neg[i])) for i in range(len(a))])


@pytest.mark.parametrize("n", [1, 3, 16, 64])
@pytest.mark.parametrize("seed", [0, 1])
def test_lossless_matches_formula_in_float64(n, seed):
    a, p, neg = random_triplets(32, n, seed)
    expected = per_row_reference(a.numpy(), p.numpy(), neg.numpy(), lambda dp, dn: ref.lossless(dp, dn, n))
    got = lossless_triplet_loss(a, p, neg, reduction="none").numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert lossless_triplet_loss(a, p, neg).item() == pytest.approx(expected.mean(), rel=1e-6)
    assert lossless_triplet_loss(a, p, neg, reduction="sum").item() == pytest.approx(expected.sum(), rel=1e-6)


@pytest.mark.parametrize("beta_factor", [1.0, 1.5, 4.0])
def test_lossless_beta_matches_formula(beta_factor):
    n = 8
    a, p, neg = random_triplets(16, n, 3)
    beta = n * beta_factor
    expected = per_row_reference(
        a.numpy(), p.numpy(), neg.numpy(), lambda dp, dn: ref.lossless(dp, dn, n, beta=beta)
    )
    np.testing.assert_allclose(lossless_triplet_loss(a, p, neg, beta=beta, reduction="none"), expected, rtol=1e-6)


@pytest.mark.parametrize("n", [1, 3, 16])
def test_linear_and_triplet_match_formula(n):
    a, p, neg = random_triplets(32, n, 7)
    an, pn, nn_ = a.numpy(), p.numpy(), neg.numpy()
    np.testing.assert_allclose(
        linear_lossless_triplet_loss(a, p, neg, reduction="none"),
        per_row_reference(an, pn, nn_, lambda dp, dn: ref.linear_lossless(dp, dn, n)),
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        triplet_margin_loss(a, p, neg, reduction="none"),
        per_row_reference(an, pn, nn_, ref.triplet),
        rtol=1e-6,
        atol=1e-12,
    )


def test_linear_lossless_is_never_negative_on_unit_codes():
    a, p, neg = random_triplets(256, 4, 11)
    assert (linear_lossless_triplet_loss(a, p, neg, reduction="none") >= 0).all()


@pytest.mark.parametrize("n", [2, 5])
def test_contrastive_matches_formula(n):
    x1, x2, _ = random_triplets(40, n, 5)
    similar = torch.arange(40) % 3 == 0
    expected = [ref.contrastive(x1[i].numpy(), x2[i].numpy(), bool(similar[i])) for i in range(40)]
    np.testing.assert_allclose(contrastive_loss(x1, x2, similar, reduction="none"), expected, rtol=1e-6)


def test_seed_worked_example_hinge_gives_zero_lossless_does_not():
    # Arsenault's example: alpha 0.2, d(a,n) = 2.4, d(a,p) = 1.2 -> 1.2 - 2.4 + 0.2 < 0.
    # N = 3 codes with those squared distances: a = 0, p = (sqrt .6, sqrt .6, 0), n = (1, 1, sqrt .4).
    a = torch.zeros(1, 3)
    p = torch.tensor([[math.sqrt(0.6), math.sqrt(0.6), 0.0]])
    neg = torch.tensor([[1.0, 1.0, math.sqrt(0.4)]])
    assert triplet_margin_loss(a, p, neg).item() == 0.0
    lossless = lossless_triplet_loss(a, p, neg).item()
    assert lossless == pytest.approx(ref.lossless(1.2, 2.4, 3), rel=1e-5)
    assert lossless > 0.5


def test_float32_bounds_keep_eps():
    # d(a,n) = 0 and d(a,p) = N = 3: each term is -ln(eps) = 18.42, not inf.
    a = torch.zeros(1, 3, requires_grad=True)
    p = torch.ones(1, 3)
    neg = torch.zeros(1, 3)
    loss = lossless_triplet_loss(a, p, neg)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(-2 * math.log(1e-8), rel=1e-5)
    loss.backward()
    assert torch.isfinite(a.grad).all()
    # Gradient of -ln((N - d)/N + eps) w.r.t. a through d = |a - p|^2: 2(a - p) / (N eps).
    # The negative term's gradient is 0 here (a == n makes d(a,n)'s gradient 0).
    expected = 2 * (0.0 - 1.0) / (3 * 1e-8)
    np.testing.assert_allclose(a.grad.numpy(), np.full((1, 3), expected), rtol=1e-4)


def test_float32_negative_gradient_at_bound_matches_formula():
    # d(a,n) tiny but nonzero: gradient of -ln(d/N + eps) is -(1/N)/(d/N + eps) * d(d)/da.
    a = torch.tensor([[0.5, 0.5, 0.5]], requires_grad=True)
    p = torch.tensor([[0.5, 0.5, 0.5]])
    neg = torch.tensor([[0.5, 0.5, 0.5 + 1e-3]])
    lossless_triplet_loss(a, p, neg).backward()
    d = 1e-6
    expected_z = -(1 / 3) / (d / 3 + 1e-8) * 2 * (-1e-3)
    assert a.grad[0, 2].item() == pytest.approx(expected_z, rel=1e-3)
    assert torch.isfinite(a.grad).all()


def test_half_precision_is_computed_in_float32():
    a, p, neg = random_triplets(8, 4, 2, dtype=torch.float32)
    for dtype in (torch.float16, torch.bfloat16):
        got = lossless_triplet_loss(a.to(dtype), p.to(dtype), neg.to(dtype))
        assert got.dtype == torch.float32
        assert torch.isfinite(got)
        ref32 = lossless_triplet_loss(a.to(dtype).float(), p.to(dtype).float(), neg.to(dtype).float())
        assert got.item() == pytest.approx(ref32.item(), rel=1e-6)


def test_identical_points_give_finite_contrastive_gradient():
    x1 = torch.full((2, 3), 0.3, requires_grad=True)
    x2 = torch.full((2, 3), 0.3)
    loss = contrastive_loss(x1, x2, torch.tensor([False, True]))
    loss.backward()
    assert loss.item() == pytest.approx(0.25 * 1.0)  # mean of 0.5*1^2 and 0
    assert torch.isfinite(x1.grad).all()


@pytest.mark.parametrize("fn", [lossless_triplet_loss, linear_lossless_triplet_loss])
def test_codes_outside_unit_interval_are_refused(fn):
    a, p, neg = random_triplets(4, 3, 0, dtype=torch.float32)
    with pytest.raises(ValueError, match="sigmoid"):
        fn(a + 1.5, p, neg)
    with pytest.raises(ValueError, match="sigmoid"):
        fn(a, p, neg - 2)
    # The opt-out skips the check (the caller guarantees the range).
    fn(a, p, neg, validate=False)


def test_beta_below_n_is_refused():
    a, p, neg = random_triplets(4, 3, 0)
    with pytest.raises(ValueError, match="beta >= N"):
        lossless_triplet_loss(a, p, neg, beta=2.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"reduction": "avg"}, "reduction"), ({"eps": 0.0}, "eps")],
)
def test_bad_hyper_parameters(kwargs, match):
    a, p, neg = random_triplets(4, 3, 0)
    with pytest.raises(ValueError, match=match):
        lossless_triplet_loss(a, p, neg, **kwargs)


def test_bad_shapes_and_values():
    a, p, neg = random_triplets(4, 3, 0)
    with pytest.raises(ValueError, match="same"):
        triplet_margin_loss(a, p[:, :2], neg)
    with pytest.raises(ValueError, match="2-D"):
        triplet_margin_loss(a[0], p[0], neg[0])
    bad = a.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        triplet_margin_loss(bad, p, neg)
    with pytest.raises(ValueError, match="margin"):
        triplet_margin_loss(a, p, neg, margin=-1.0)
    with pytest.raises(ValueError, match="bool"):
        contrastive_loss(a, p, torch.ones(4))
