"""Batch-all modules against brute-force enumeration of every valid triplet / pair."""

import numpy as np
import pytest
import torch

from lossless_triplet.losses import (
    LOSSES,
    ContrastiveLoss,
    LinearLosslessTripletLoss,
    LosslessTripletLoss,
    SoftMarginTripletLoss,
    TripletMarginLoss,
    lossless_triplet_loss,
    make_loss,
)
from lossless_triplet.mining import all_pairs, all_triplets, mine_triplets

from . import reference as ref


def batch(size, n, n_classes, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    codes = torch.rand(size, n, generator=g, dtype=dtype)
    labels = torch.randint(0, n_classes, (size,), generator=g)
    return codes, labels


TRIPLET_CASES = [
    (LosslessTripletLoss(), lambda n: (lambda dp, dn: ref.lossless(dp, dn, n))),
    (LosslessTripletLoss(beta=10.0), lambda n: (lambda dp, dn: ref.lossless(dp, dn, n, beta=10.0))),
    (LinearLosslessTripletLoss(), lambda n: (lambda dp, dn: ref.linear_lossless(dp, dn, n))),
    (TripletMarginLoss(), lambda n: ref.triplet),
    (TripletMarginLoss(margin=1.0), lambda n: (lambda dp, dn: ref.triplet(dp, dn, 1.0))),
    (SoftMarginTripletLoss(), lambda n: ref.soft_margin),
]


@pytest.mark.parametrize("module, formula", TRIPLET_CASES)
@pytest.mark.parametrize("size, n, n_classes, seed", [(12, 3, 3, 0), (20, 8, 4, 1), (9, 2, 2, 2)])
def test_triplet_modules_equal_brute_force(module, formula, size, n, n_classes, seed):
    codes, labels = batch(size, n, n_classes, seed)
    expected = ref.brute_force_batch(codes.numpy(), labels.tolist(), formula(n))
    assert module(codes, labels).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("margin", [0.5, 1.0])
@pytest.mark.parametrize("size, n, seed", [(10, 3, 0), (17, 5, 1)])
def test_contrastive_module_equals_brute_force(margin, size, n, seed):
    codes, labels = batch(size, n, 3, seed)
    expected = ref.brute_force_pairs(codes.numpy(), labels.tolist(), margin)
    assert ContrastiveLoss(margin=margin)(codes, labels).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("module, formula", TRIPLET_CASES)
@pytest.mark.parametrize("mining", ["all", "hard", "semihard"])
def test_reductions_equal_brute_force_per_anchor(module, formula, mining):
    codes, labels = batch(14, 3, 3, 8)
    a, p, neg = all_triplets(labels) if mining == "all" else mine_triplets(codes, labels, mining,
                                                                          margin=getattr(module, "margin", None))
    values = [formula(3)(ref.sqdist(codes[i], codes[j]), ref.sqdist(codes[i], codes[k]))
              for i, j, k in zip(a.tolist(), p.tolist(), neg.tolist())]
    per_anchor = np.zeros(len(labels))
    np.add.at(per_anchor, a.numpy(), values)
    kwargs = {k: getattr(module, k) for k in ("beta", "margin") if hasattr(module, k)}
    get = {r: type(module)(mining=mining, reduction=r, **kwargs)(codes, labels) for r in ("mean", "sum", "none")}
    assert get["mean"].item() == pytest.approx(np.mean(values), rel=1e-9)
    assert get["sum"].item() == pytest.approx(np.sum(values), rel=1e-9)
    assert get["none"].shape == (len(labels),)
    np.testing.assert_allclose(get["none"].numpy(), per_anchor, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("module, formula", TRIPLET_CASES)
def test_per_anchor_gradient_equals_explicit_triplets(module, formula):
    # reduction="none" runs on plain autograd: weight each anchor and compare with the same
    # weighted sum over explicit triplets.
    codes, labels = batch(13, 4, 3, 9)
    weights = torch.rand(len(labels), dtype=torch.float64)
    kwargs = {k: getattr(module, k) for k in ("beta", "margin") if hasattr(module, k)}
    fast, slow = codes.clone().requires_grad_(True), codes.clone().requires_grad_(True)
    (type(module)(reduction="none", **kwargs)(fast, labels) * weights).sum().backward()
    a, p, n = all_triplets(labels)
    (type(module)(reduction="none", **kwargs)(slow, labels, (a, p, n)) * weights).sum().backward()
    np.testing.assert_allclose(fast.grad.numpy(), slow.grad.numpy(), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_contrastive_reductions_equal_brute_force(reduction):
    codes, labels = batch(10, 3, 3, 10)
    per_row = np.zeros(len(labels))
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            per_row[i] += ref.contrastive(codes[i].numpy(), codes[j].numpy(), labels[i] == labels[j])
    got = ContrastiveLoss(reduction=reduction)(codes, labels)
    np.testing.assert_allclose(got.numpy(), per_row.sum() if reduction == "sum" else per_row, rtol=1e-9)
    pairs = ContrastiveLoss(reduction=reduction)(codes, labels, all_pairs(labels))
    np.testing.assert_allclose(pairs.sum().item(), per_row.sum(), rtol=1e-9)


def test_hinge_chunking_covers_every_anchor(monkeypatch):
    from lossless_triplet.losses import batch as batch_module

    codes, labels = batch(15, 3, 3, 4)
    whole = TripletMarginLoss(margin=1.0)(codes, labels)
    monkeypatch.setattr(batch_module, "_BLOCK", 15 * 15 * 2)  # two anchors per chunk
    assert TripletMarginLoss(margin=1.0)(codes, labels).item() == pytest.approx(whole.item(), rel=1e-12)


@pytest.mark.parametrize("module", [LosslessTripletLoss(), LinearLosslessTripletLoss(), TripletMarginLoss(),
                                    SoftMarginTripletLoss()])
def test_indices_tuple_equals_batch_all_when_all_triplets_given(module):
    codes, labels = batch(11, 4, 3, 5)
    assert module(codes, labels, all_triplets(labels)).item() == pytest.approx(
        module(codes, labels).item(), rel=1e-9
    )


def test_indices_tuple_selects_only_those_triplets():
    codes, labels = batch(8, 3, 2, 6)
    a, p, n = (t[:3] for t in all_triplets(labels))
    expected = lossless_triplet_loss(codes[a], codes[p], codes[n]).item()
    assert LosslessTripletLoss()(codes, labels, (a, p, n)).item() == pytest.approx(expected, rel=1e-12)


def test_contrastive_pair_indices_equal_all_pairs():
    codes, labels = batch(10, 3, 3, 7)
    loss = ContrastiveLoss()
    assert loss(codes, labels, all_pairs(labels)).item() == pytest.approx(loss(codes, labels).item(), rel=1e-9)


ALL_MODULES = [LosslessTripletLoss(), LinearLosslessTripletLoss(), TripletMarginLoss(), ContrastiveLoss(),
               SoftMarginTripletLoss()]


@pytest.mark.parametrize("module", ALL_MODULES)
def test_identical_codes_give_finite_gradients(module):
    codes = torch.full((6, 3), 0.5, dtype=torch.float32, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    loss = module(codes, labels)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(codes.grad).all()


def test_identical_negatives_hit_the_eps_bound_in_float32():
    # All codes equal: every d = 0, so the lossless mean is -ln(1 + eps) + -ln(eps) = 18.42.
    codes = torch.full((4, 3), 0.25)
    labels = torch.tensor([0, 0, 1, 1])
    assert LosslessTripletLoss()(codes, labels).item() == pytest.approx(18.420680, rel=1e-6)


@pytest.mark.parametrize("module", [m for m in ALL_MODULES if not isinstance(m, ContrastiveLoss)])
def test_no_positive_gives_zero_with_graph(module):
    codes = torch.rand(5, 3, requires_grad=True)
    loss = module(codes, torch.arange(5))  # every label distinct: no positive, a normal event
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(codes.grad).all()


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("validate", [True, False])
def test_all_labels_equal_is_an_error_that_names_the_fix(name, validate):
    module = make_loss(name, validate=validate)
    codes = torch.rand(6, 3)
    with pytest.raises(ValueError, match=r"all 6 labels of the batch are equal \(2\).*P classes x K rows"):
        module(codes, torch.full((6,), 2))
    assert module(codes[:1], torch.tensor([2])).item() == 0.0  # one row: nothing to compare, no error


def test_contrastive_single_row_gives_zero():
    codes = torch.rand(1, 3, requires_grad=True)
    loss = ContrastiveLoss()(codes, torch.tensor([0]))
    assert loss.item() == 0.0
    loss.backward()


def test_half_precision_batch_is_float32_and_close():
    codes, labels = batch(16, 4, 3, 8, dtype=torch.float32)
    for dtype in (torch.float16, torch.bfloat16):
        got = LosslessTripletLoss()(codes.to(dtype), labels)
        assert got.dtype == torch.float32
        expected = LosslessTripletLoss()(codes.to(dtype).double(), labels).item()
        assert got.item() == pytest.approx(expected, rel=1e-5)


def test_batch_module_errors():
    codes, labels = batch(6, 3, 2, 0, dtype=torch.float32)
    with pytest.raises(ValueError, match="sigmoid"):
        LosslessTripletLoss()(codes * 3, labels)
    with pytest.raises(ValueError, match="beta"):
        LosslessTripletLoss(beta=1.0)(codes, labels)
    with pytest.raises(ValueError, match=r"shape \(6,\)"):
        TripletMarginLoss()(codes, labels[:4])
    with pytest.raises(ValueError, match="integer"):
        TripletMarginLoss()(codes, labels.float())
    with pytest.raises(ValueError, match="indices_tuple"):
        LosslessTripletLoss()(codes, labels, (labels, labels))


def test_separable_form_never_builds_a_cubic_tensor():
    # B = 1500: a B^3 float64 tensor would need 27 GB; the separable form needs B^2.
    codes, labels = batch(1500, 4, 5, 9, dtype=torch.float32)
    codes.requires_grad_(True)
    loss = LosslessTripletLoss()(codes, labels)
    loss.backward()
    assert np.isfinite(loss.item()) and torch.isfinite(codes.grad).all()


@pytest.mark.parametrize("module", ALL_MODULES[:3])
def test_batch_all_gradient_equals_explicit_triplets(module):
    codes, labels = batch(10, 3, 3, 10)
    fast = codes.clone().requires_grad_(True)
    slow = codes.clone().requires_grad_(True)
    module(fast, labels).backward()
    module(slow, labels, all_triplets(labels)).backward()
    np.testing.assert_allclose(fast.grad.numpy(), slow.grad.numpy(), rtol=1e-7, atol=1e-10)


def test_contrastive_mining_names_the_pair_miners():
    assert ContrastiveLoss(mining="all").margin == 1.0
    with pytest.raises(ValueError, match="over pairs, not triplets.*PairMarginMiner"):
        ContrastiveLoss(mining="hard")
