"""Half precision, autocast and float64: computed in float32 (or float64) inside, always finite."""

import pytest
import torch
from torch import nn

from lossless_triplet.losses import ContrastiveLoss, LinearLosslessTripletLoss, LosslessTripletLoss, TripletMarginLoss
from lossless_triplet.mining import MINING

MODULES = [
    (module, mining)
    for module in (LosslessTripletLoss, LinearLosslessTripletLoss, TripletMarginLoss)
    for mining in MINING
]


def batch(seed, size=30, n=6, n_classes=3):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(size, n, generator=g), torch.randint(0, n_classes, (size,), generator=g)


@pytest.mark.parametrize("module, mining", MODULES)
def test_autocast_changes_nothing(module, mining):
    codes, labels = batch(0)
    plain = module(mining=mining)(codes, labels)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = module(mining=mining)(codes, labels)
    assert inside.dtype == torch.float32
    assert inside.item() == pytest.approx(plain.item(), rel=1e-6)


@pytest.mark.parametrize("module, mining", MODULES + [(ContrastiveLoss, None)])
def test_encoder_under_autocast_trains_with_finite_float32_loss(module, mining):
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 4), nn.Sigmoid())
    features, labels = torch.randn(24, 5), torch.arange(4).repeat(6)
    loss_fn = module() if mining is None else module(mining=mining)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        codes = encoder(features)
        loss = loss_fn(codes, labels)
    assert codes.dtype == torch.bfloat16 and loss.dtype == torch.float32
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in encoder.parameters())


@pytest.mark.parametrize("module, mining", MODULES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_codes_give_float32_close_to_float64(module, mining, dtype):
    codes, labels = batch(1)
    rounded = codes.to(dtype)
    x = rounded.clone().requires_grad_(True)
    loss = module(mining=mining)(x, labels)
    loss.backward()
    assert loss.dtype == torch.float32 and x.grad.dtype == dtype
    assert torch.isfinite(x.grad.float()).all()
    assert loss.item() == pytest.approx(module(mining=mining)(rounded.double(), labels).item(), rel=1e-5)


@pytest.mark.parametrize("module, mining", MODULES)
def test_float64_in_float64_out(module, mining):
    codes, labels = batch(2)
    x = codes.double().requires_grad_(True)
    loss = module(mining=mining)(x, labels)
    loss.backward()
    assert loss.dtype == torch.float64 and x.grad.dtype == torch.float64


def test_duplicate_negatives_keep_the_eps_bound_for_float32_codes():
    # A negative identical to its anchor: -ln(eps) = 18.42 exactly, although a float32
    # Gram expansion of these codes would give d ~ 1e-7 and -ln(d/N + eps) ~ 16.
    g = torch.Generator().manual_seed(3)
    anchor = torch.rand(1, 16, generator=g) * 0.2 + 0.4
    codes = torch.cat([anchor, anchor, anchor]).float()
    labels = torch.tensor([0, 0, 1])
    # Triplets: (0,1,2), (1,0,2): d_ap = 0, d_an = 0 -> -ln(1 + eps) - ln(eps).
    assert LosslessTripletLoss()(codes, labels).item() == pytest.approx(18.420680734, rel=1e-7)


@pytest.mark.parametrize("mining", MINING)
def test_float16_gradient_saturates_instead_of_overflowing(mining):
    # Found by the property test: N = 1 and a positive pair at the largest distance (d_ap = beta = 1).
    # The slope there is 2/(beta*eps) = 2e8: a float32 gradient, beyond float16 (65504).
    codes, labels = torch.tensor([[0.0], [1.0], [0.0]]), torch.tensor([0, 0, 1])
    wide = codes.clone().requires_grad_(True)
    LosslessTripletLoss(mining=mining)(wide, labels).backward()
    assert wide.grad.abs().max() > 1e8  # the true gradient, held by float32
    half = codes.half().requires_grad_(True)
    LosslessTripletLoss(mining=mining)(half, labels).backward()
    largest = torch.finfo(torch.float16).max
    torch.testing.assert_close(half.grad.float(), wide.grad.clamp(-largest, largest))
