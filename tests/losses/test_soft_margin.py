"""The soft-margin triplet loss (Hermans, Beyer, Leibe 2017) against float64 by hand and its limits."""

import math

import numpy as np
import pytest
import torch

from lossless_triplet.losses import SoftMarginTripletLoss, make_loss, soft_margin_triplet_loss

from . import reference as ref


@pytest.mark.parametrize("dtype, rel", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_functional_equals_float64_formula(dtype, rel):
    g = torch.Generator().manual_seed(0)
    a, p, n = (torch.randn(12, 5, generator=g, dtype=torch.float64) * 2 for _ in range(3))
    expected = [ref.soft_margin(ref.sqdist(a[i], p[i]), ref.sqdist(a[i], n[i])) for i in range(12)]
    got = soft_margin_triplet_loss(a.to(dtype), p.to(dtype), n.to(dtype), reduction="none")
    np.testing.assert_allclose(got.double().numpy(), expected, rtol=rel)
    assert soft_margin_triplet_loss(a, p, n).item() == pytest.approx(np.mean(expected), rel=1e-12)
    assert soft_margin_triplet_loss(a, p, n, reduction="sum").item() == pytest.approx(np.sum(expected), rel=1e-12)


def test_hand_computed_values():
    zero = torch.zeros(1, 2)
    one = torch.tensor([[1.0, 0.0]])
    # d(a,p) = 0, d(a,n) = 1: ln(1 + e^-1); swapped: ln(1 + e).
    assert soft_margin_triplet_loss(zero, zero, one).item() == pytest.approx(math.log1p(math.exp(-1)), rel=1e-6)
    assert soft_margin_triplet_loss(zero, one, zero).item() == pytest.approx(math.log1p(math.e), rel=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_no_overflow_and_finite_gradient_at_the_extremes(dtype):
    anchor = torch.zeros(3, 1, dtype=dtype, requires_grad=True)
    positive = torch.tensor([[100.0], [0.0], [0.0]], dtype=dtype, requires_grad=True)
    negative = torch.tensor([[0.0], [100.0], [0.0]], dtype=dtype, requires_grad=True)
    loss = soft_margin_triplet_loss(anchor, positive, negative, reduction="none")  # x = 1e4, -1e4, 0
    assert loss.dtype == (torch.float32 if dtype == torch.float16 else dtype)
    np.testing.assert_allclose(loss.detach().double().numpy(), [1e4, 0.0, math.log(2)], rtol=1e-6)
    loss.sum().backward()
    for t in (anchor, positive, negative):
        assert torch.isfinite(t.grad).all()
    # d(positive) of x = 1e4 is sigmoid(1e4) * 2 (p - a) = 200; at equal codes the gradient is 0.
    assert positive.grad[0, 0].item() == pytest.approx(200.0, rel=1e-3)
    assert negative.grad[2, 0].item() == 0.0


def test_gradient_of_the_difference_is_its_sigmoid():
    x = torch.tensor([-3.0, 0.0, 2.5], dtype=torch.float64, requires_grad=True)
    # d(a,p) = x + 10 and d(a,n) = 10 with 1-D codes: a = 0, p = sqrt(x + 10), n = sqrt(10).
    anchor = torch.zeros(3, 1, dtype=torch.float64)
    positive = torch.sqrt(x + 10).unsqueeze(1)
    negative = torch.full((3, 1), math.sqrt(10), dtype=torch.float64)
    soft_margin_triplet_loss(anchor, positive, negative, reduction="sum").backward()
    np.testing.assert_allclose(x.grad.numpy(), torch.sigmoid(x.detach()).numpy(), rtol=1e-12)


def test_registered_for_the_cli_and_compare():
    assert isinstance(make_loss("soft_margin"), SoftMarginTripletLoss)


def test_pml_smooth_loss_without_margin_is_the_same_function():
    pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
    pml_distances = pytest.importorskip("pytorch_metric_learning.distances")
    pml_reducers = pytest.importorskip("pytorch_metric_learning.reducers")
    g = torch.Generator().manual_seed(3)
    codes = torch.rand(20, 4, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 4, (20,), generator=g)
    pml = pml_losses.TripletMarginLoss(margin=0.0, smooth_loss=True, reducer=pml_reducers.MeanReducer(),
                                       distance=pml_distances.LpDistance(normalize_embeddings=False, p=2, power=2))
    assert SoftMarginTripletLoss()(codes, labels).item() == pytest.approx(pml(codes, labels).item(), rel=1e-9)
