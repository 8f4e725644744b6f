"""Hard and semi-hard mining against brute-force selection, and the losses that use them."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lossless_triplet.losses import (
    LinearLosslessTripletLoss,
    LosslessTripletLoss,
    TripletMarginLoss,
    batch_lossless_triplet_loss,
    batch_triplet_margin_loss,
    linear_lossless_triplet_loss,
    lossless_triplet_loss,
    triplet_margin_loss,
)
from lossless_triplet.mining import MINING, all_triplets, batch_hard_triplets, mine_triplets, semihard_triplets

from . import reference as ref


@st.composite
def grid_batches(draw, max_size=12):
    """Codes on a dyadic grid (exact in any summation order, so ties are real ties) and labels."""
    size = draw(st.integers(2, max_size))
    n = draw(st.integers(1, 4))
    codes = draw(st.lists(st.lists(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), min_size=n, max_size=n),
                          min_size=size, max_size=size))
    labels = draw(st.lists(st.integers(0, 3), min_size=size, max_size=size))
    return torch.tensor(codes, dtype=torch.float64), torch.tensor(labels)


def as_list(triplets):
    return list(zip(*(t.tolist() for t in triplets)))


@settings(max_examples=60, deadline=None)
@given(grid_batches(), st.sampled_from([1, 7, 1 << 20]))
def test_batch_hard_equals_brute_force(batch, block):
    codes, labels = batch
    got = batch_hard_triplets(codes, labels, block=block)
    assert as_list(got) == ref.brute_force_hard(codes.numpy(), labels.tolist())
    assert all(t.dtype == torch.int64 for t in got)


@settings(max_examples=60, deadline=None)
@given(grid_batches(), st.sampled_from([None, 0.0, 0.2, 0.5]), st.sampled_from([1, 7, 1 << 20]))
def test_semihard_equals_brute_force(batch, margin, block):
    codes, labels = batch
    got = semihard_triplets(codes, labels, margin=margin, block=block)
    assert as_list(got) == ref.brute_force_semihard(codes.numpy(), labels.tolist(), margin)


def test_float32_codes_mine_like_float64():
    g = torch.Generator().manual_seed(0)
    codes = torch.rand(40, 5, generator=g)
    labels = torch.randint(0, 4, (40,), generator=g)
    for miner in (batch_hard_triplets, semihard_triplets):
        assert as_list(miner(codes, labels)) == as_list(miner(codes.double(), labels))


def test_semihard_prefers_the_nearest_farther_negative_and_falls_back_to_the_farthest():
    # One dimension: anchor 0 at 0.0, positive 1 at 0.3; negatives at 0.1 (hard), 0.5, 0.7.
    codes = torch.tensor([[0.0], [0.3], [0.1], [0.5], [0.7]])
    labels = torch.tensor([0, 0, 1, 1, 1])
    a, p, n = semihard_triplets(codes, labels)
    assert (a[0].item(), p[0].item(), n[0].item()) == (0, 1, 3)  # d_ap .09 < d_an .25, the nearest such
    # With margin 0.1 no negative lies in (0.09, 0.19): fall back to the farthest negative.
    a, p, n = semihard_triplets(codes, labels, margin=0.1)
    assert (a[0].item(), p[0].item(), n[0].item()) == (0, 1, 4)


def test_miners_skip_anchors_without_positive_or_negative():
    codes = torch.rand(4, 2)
    for labels in (torch.zeros(4, dtype=torch.long), torch.arange(4)):
        for miner in (batch_hard_triplets, semihard_triplets):
            assert all(len(t) == 0 for t in miner(codes, labels))


def test_mine_triplets_dispatches_and_rejects_unknown():
    codes = torch.rand(6, 2)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    assert as_list(mine_triplets(codes, labels, "all")) == as_list(all_triplets(labels))
    assert as_list(mine_triplets(codes, labels, "hard")) == as_list(batch_hard_triplets(codes, labels))
    assert as_list(mine_triplets(codes, labels, "semihard", margin=0.2)) == as_list(
        semihard_triplets(codes, labels, margin=0.2)
    )
    with pytest.raises(ValueError, match="mining='easy'"):
        mine_triplets(codes, labels, "easy")
    with pytest.raises(ValueError, match="margin"):
        semihard_triplets(codes, labels, margin=-1.0)


MODULES = [
    (LosslessTripletLoss, lossless_triplet_loss, None),
    (LinearLosslessTripletLoss, linear_lossless_triplet_loss, None),
    (TripletMarginLoss, triplet_margin_loss, 0.2),
]


@pytest.mark.parametrize("module, functional, margin", MODULES)
@pytest.mark.parametrize("seed", [0, 1])
def test_mined_losses_equal_functional_on_brute_force_triplets(module, functional, margin, seed):
    g = torch.Generator().manual_seed(seed)
    codes = torch.rand(14, 3, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 3, (14,), generator=g)
    for mining, triplets in (
        ("hard", ref.brute_force_hard(codes.numpy(), labels.tolist())),
        ("semihard", ref.brute_force_semihard(codes.numpy(), labels.tolist(), margin)),
    ):
        a, p, n = (torch.tensor(column) for column in zip(*triplets))
        expected = functional(codes[a], codes[p], codes[n]).item()
        assert module(mining=mining)(codes, labels).item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("module", [LosslessTripletLoss, LinearLosslessTripletLoss, TripletMarginLoss])
@pytest.mark.parametrize("mining", MINING)
def test_mined_loss_has_a_gradient_and_is_zero_without_triplets(module, mining):
    codes = torch.rand(8, 3, requires_grad=True)
    loss = module(mining=mining)(codes, torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(codes.grad).all()
    empty = module(mining=mining)(codes, torch.arange(8))  # no positive: no triplet
    assert empty.item() == 0.0
    empty.backward()
    with pytest.raises(ValueError, match="labels of the batch are equal"):
        module(mining=mining)(codes, torch.zeros(8, dtype=torch.long))


def test_modules_store_mining_and_reject_bad_values():
    assert TripletMarginLoss(mining="hard").mining == "hard"
    assert "semihard" in repr(LosslessTripletLoss(mining="semihard"))
    for module in (LosslessTripletLoss, LinearLosslessTripletLoss, TripletMarginLoss):
        assert module().mining == "all"
        with pytest.raises(ValueError, match="mining='batch_hard'"):
            module(mining="batch_hard")
    codes, labels = torch.rand(6, 2), torch.tensor([0, 0, 1, 1, 2, 2])
    with pytest.raises(ValueError, match="mining"):
        batch_triplet_margin_loss(codes, labels, mining="nope")


def test_mining_together_with_indices_tuple_is_an_error():
    codes, labels = torch.rand(6, 2), torch.tensor([0, 0, 1, 1, 2, 2])
    with pytest.raises(ValueError, match="indices_tuple"):
        TripletMarginLoss(mining="hard")(codes, labels, all_triplets(labels))
    with pytest.raises(ValueError, match="indices_tuple"):
        batch_lossless_triplet_loss(codes, labels, mining="semihard", indices_tuple=all_triplets(labels))


def test_hard_mining_scales_linearly_in_memory():
    # The miner holds (rows, B) blocks only; the loss sees B triplets.
    g = torch.Generator().manual_seed(3)
    codes = torch.rand(1500, 8, generator=g, requires_grad=True)
    labels = torch.randint(0, 10, (1500,), generator=g)
    loss = TripletMarginLoss(mining="hard")(codes, labels)
    loss.backward()
    assert np.isfinite(loss.item()) and len(batch_hard_triplets(codes, labels)[0]) == 1500
