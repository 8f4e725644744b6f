"""The blockwise batch-all engine: block sizes, gradients, memory, ties and awkward label sets."""

import numpy as np
import pytest
import torch

from lossless_triplet.losses import (
    LinearLosslessTripletLoss,
    LosslessTripletLoss,
    SoftMarginTripletLoss,
    TripletMarginLoss,
    linear_lossless_triplet_loss,
    lossless_triplet_loss,
    soft_margin_triplet_loss,
    triplet_margin_loss,
)
from lossless_triplet.losses import batch as batch_module
from lossless_triplet.losses._batch_all import (
    _Layout,
    hinge_batch_all,
    lossless_batch_all,
    soft_margin_batch_all,
    triplet_count,
)
from lossless_triplet.mining import all_triplets

LABEL_SETS = {
    "balanced": torch.arange(4).repeat_interleave(6),
    "random": torch.randint(0, 5, (23,), generator=torch.Generator().manual_seed(0)),
    "one big class": torch.tensor([3] * 15 + [0, 1, 1, 2, 7]),
    "singletons and pairs": torch.tensor([0, 1, 2, 3, 3, 4, 5, 5, 6, 9, 9, 9]),
    "unsorted large ids": torch.tensor([70, -2, 70, 5, -2, 5, 70, 1000, 5, -2]),
}
EXPLICIT = {
    "lossless": (LosslessTripletLoss(), lossless_triplet_loss),
    "linear": (LinearLosslessTripletLoss(), linear_lossless_triplet_loss),
    "triplet": (TripletMarginLoss(margin=0.3), lambda a, p, n: triplet_margin_loss(a, p, n, margin=0.3)),
    "soft_margin": (SoftMarginTripletLoss(), soft_margin_triplet_loss),
}


@pytest.mark.parametrize("labels_name", list(LABEL_SETS))
@pytest.mark.parametrize("loss_name", list(EXPLICIT))
@pytest.mark.parametrize("block", [1, 40, 1 << 22])
def test_value_and_gradient_equal_explicit_triplets_for_any_block(monkeypatch, labels_name, loss_name, block):
    monkeypatch.setattr(batch_module, "_BLOCK", block)
    labels = LABEL_SETS[labels_name]
    codes = torch.rand(len(labels), 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    module, explicit = EXPLICIT[loss_name]
    fast, slow = codes.clone().requires_grad_(True), codes.clone().requires_grad_(True)
    a, p, n = all_triplets(labels)
    got, expected = module(fast, labels), explicit(slow[a], slow[p], slow[n])
    got.backward()
    expected.backward()
    assert got.item() == pytest.approx(expected.item(), rel=1e-10)
    np.testing.assert_allclose(fast.grad.numpy(), slow.grad.numpy(), rtol=1e-7, atol=1e-10)


def test_row_blocks_cover_the_batch_and_keep_bands_narrow():
    for labels in [*LABEL_SETS.values(), torch.randint(0, 10, (2000,)), torch.randint(0, 300, (1000,))]:
        layout = _Layout.of(labels)
        for block in (len(labels), 1000 * len(labels), 1 << 22):
            blocks = layout.row_blocks(block)
            assert blocks[0][0] == 0 and blocks[-1][1] == len(labels)
            assert all(left[1] == right[0] for left, right in zip(blocks, blocks[1:]))
            for start, stop in blocks:
                lo, hi = layout.band(start, stop)
                rows = layout.labels[start:stop]
                assert (layout.labels[:lo] != rows.min()).all() and (layout.labels[hi:] != rows.max()).all()


def test_triplet_count_matches_enumeration():
    for labels in LABEL_SETS.values():
        assert triplet_count(labels) == len(all_triplets(labels)[0])


def test_no_gradient_requested_means_no_gradient_work():
    labels = LABEL_SETS["balanced"]
    codes = torch.rand(len(labels), 4)
    with torch.no_grad():
        assert torch.isfinite(lossless_batch_all(codes, labels, 4, 4.0, 1e-8))
        assert torch.isfinite(hinge_batch_all(codes, labels, 0.2))
    assert not LosslessTripletLoss()(codes, labels).requires_grad


def test_loss_scales_the_gradient_by_the_upstream_gradient():
    labels = LABEL_SETS["random"]
    codes = torch.rand(len(labels), 3, dtype=torch.float64)
    for module, _ in EXPLICIT.values():
        once, thrice = codes.clone().requires_grad_(True), codes.clone().requires_grad_(True)
        module(once, labels).backward()
        (3.0 * module(thrice, labels)).backward()
        np.testing.assert_allclose(thrice.grad.numpy(), 3.0 * once.grad.numpy(), rtol=1e-12)


def test_large_offsets_keep_the_hinge_accurate():
    # Codes far from the origin: a plain float32 Gram expansion would lose the distances;
    # centring keeps them.
    labels = LABEL_SETS["balanced"]
    codes = torch.rand(len(labels), 3, generator=torch.Generator().manual_seed(2)) + 1000.0
    expected = TripletMarginLoss()(codes.double() - 1000.0, labels).item()
    assert TripletMarginLoss()(codes, labels).item() == pytest.approx(expected, rel=1e-3)


def test_soft_margin_batch_all_memory_is_bounded_by_the_block():
    # B = 1000 with classes of ~100: all (a, p, n) at once would be 1e8 elements (800 MB in
    # float64); the blockwise kernel holds at most the block, and its gradient equals a
    # smaller block's.
    g = torch.Generator().manual_seed(6)
    codes = torch.rand(1000, 8, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 10, (1000,), generator=g)
    results = []
    for block in (1 << 22, 1 << 16):
        x = codes.clone().requires_grad_(True)
        loss = soft_margin_batch_all(x, labels, block=block)
        loss.backward()
        results.append((loss.item(), x.grad))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-12)
    np.testing.assert_allclose(results[0][1].numpy(), results[1][1].numpy(), rtol=1e-9, atol=1e-15)


def test_hinge_batch_all_never_builds_a_cubic_tensor():
    # B = 1000: a B^3 float64 tensor would need 8 GB.
    g = torch.Generator().manual_seed(5)
    codes = torch.rand(1000, 8, generator=g, requires_grad=True)
    labels = torch.randint(0, 10, (1000,), generator=g)
    loss = TripletMarginLoss()(codes, labels)
    loss.backward()
    assert np.isfinite(loss.item()) and torch.isfinite(codes.grad).all()
