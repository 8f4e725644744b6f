"""Property tests: every loss and mining mode stays finite on any codes in [0, 1]^N.

Codes include cube corners, exact duplicates (zero distances, collapsed clusters)
and every dtype; batch-all must equal brute force on small batches.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lossless_triplet.losses import (
    ContrastiveLoss,
    LinearLosslessTripletLoss,
    LosslessTripletLoss,
    SoftMarginTripletLoss,
    TripletMarginLoss,
)
from lossless_triplet.mining import MINING

from . import reference as ref

TRIPLET_MODULES = {
    "lossless": (LosslessTripletLoss, lambda n: (lambda dp, dn: ref.lossless(dp, dn, n))),
    "linear": (LinearLosslessTripletLoss, lambda n: (lambda dp, dn: ref.linear_lossless(dp, dn, n))),
    "triplet": (TripletMarginLoss, lambda n: ref.triplet),
    "soft_margin": (SoftMarginTripletLoss, lambda n: ref.soft_margin),
}
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]

unit = st.one_of(st.sampled_from([0.0, 1.0, 0.5]), st.floats(0.0, 1.0, allow_nan=False))


@st.composite
def code_batches(draw, max_size=14, max_n=5):
    """(codes (B, N) float64 in [0, 1], labels (B,)): rows drawn from a small pool, so duplicates are common."""
    n = draw(st.integers(1, max_n))
    pool = draw(st.lists(st.lists(unit, min_size=n, max_size=n), min_size=1, max_size=6))
    size = draw(st.integers(1, max_size))
    rows = draw(st.lists(st.integers(0, len(pool) - 1), min_size=size, max_size=size))
    labels = draw(st.lists(st.integers(0, 3), min_size=size, max_size=size))
    if size >= 2 and len(set(labels)) == 1:  # one class is refused (tested apart): give it a second
        labels[-1] = (labels[-1] + 1) % 4
    return torch.tensor([pool[r] for r in rows], dtype=torch.float64), torch.tensor(labels)


@settings(max_examples=40, deadline=None)
@given(code_batches(), st.sampled_from(list(TRIPLET_MODULES)), st.sampled_from(MINING), st.sampled_from(DTYPES))
def test_every_triplet_loss_and_mining_is_finite(batch, name, mining, dtype):
    codes, labels = batch
    x = codes.to(dtype).requires_grad_(True)
    loss = TRIPLET_MODULES[name][0](mining=mining)(x, labels)
    loss.backward()
    assert loss.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert torch.isfinite(loss) and loss.item() >= -1e-6
    assert torch.isfinite(x.grad).all()


@settings(max_examples=25, deadline=None)
@given(code_batches(), st.sampled_from(DTYPES))
def test_contrastive_is_finite(batch, dtype):
    codes, labels = batch
    x = codes.to(dtype).requires_grad_(True)
    loss = ContrastiveLoss()(x, labels)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()


@settings(max_examples=40, deadline=None)
@given(code_batches(max_size=10), st.sampled_from(list(TRIPLET_MODULES)))
def test_batch_all_equals_brute_force(batch, name):
    codes, labels = batch
    module, formula = TRIPLET_MODULES[name]
    expected = ref.brute_force_batch(codes.numpy(), labels.tolist(), formula(codes.shape[1]))
    assert module()(codes, labels).item() == pytest.approx(expected, rel=1e-9, abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(code_batches(max_size=10), st.sampled_from(list(TRIPLET_MODULES)))
def test_batch_all_on_half_codes_equals_float64_of_the_same_codes(batch, name):
    codes, labels = batch
    module = TRIPLET_MODULES[name][0]()
    for dtype in (torch.float16, torch.bfloat16):
        rounded = codes.to(dtype)
        # float32 inside (float64 for the lossless distances): close to float64 on the same rounded codes.
        expected = module(rounded.double(), labels).item()
        assert module(rounded, labels).item() == pytest.approx(expected, rel=1e-5, abs=1e-5)
