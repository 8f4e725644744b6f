"""pytorch-metric-learning miners plug into these losses through ``indices_tuple``."""

import pytest
import torch

from lossless_triplet.losses import (
    LinearLosslessTripletLoss,
    LosslessTripletLoss,
    TripletMarginLoss,
    lossless_triplet_loss,
    triplet_margin_loss,
)

pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
pml_miners = pytest.importorskip("pytorch_metric_learning.miners")
pml_distances = pytest.importorskip("pytorch_metric_learning.distances")
pml_reducers = pytest.importorskip("pytorch_metric_learning.reducers")


def squared_euclidean():
    """PML's distance matching this package's d: squared Euclidean on raw codes."""
    return pml_distances.LpDistance(normalize_embeddings=False, p=2, power=2)


def batch(seed, size=24, n=4, n_classes=4):
    g = torch.Generator().manual_seed(seed)
    codes = torch.rand(size, n, generator=g, dtype=torch.float64)
    return codes, torch.randint(0, n_classes, (size,), generator=g)


@pytest.mark.parametrize("type_of_triplets", ["all", "hard", "semihard"])
def test_triplet_margin_miner_indices_plug_in(type_of_triplets):
    codes, labels = batch(0)
    miner = pml_miners.TripletMarginMiner(margin=0.2, type_of_triplets=type_of_triplets, distance=squared_euclidean())
    a, p, n = miner(codes, labels)
    assert len(a) > 0
    for module in (LosslessTripletLoss(), LinearLosslessTripletLoss(), TripletMarginLoss()):
        x = codes.clone().requires_grad_(True)
        loss = module(x, labels, (a, p, n))
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    expected = lossless_triplet_loss(codes[a], codes[p], codes[n]).item()
    assert LosslessTripletLoss()(codes, labels, (a, p, n)).item() == pytest.approx(expected, rel=1e-12)


def test_hinge_on_mined_triplets_equals_pml_triplet_margin_loss():
    codes, labels = batch(1)
    miner = pml_miners.TripletMarginMiner(margin=0.2, type_of_triplets="semihard", distance=squared_euclidean())
    indices = miner(codes, labels)
    pml = pml_losses.TripletMarginLoss(margin=0.2, distance=squared_euclidean(), reducer=pml_reducers.MeanReducer())
    ours = TripletMarginLoss(margin=0.2)(codes, labels, indices)
    assert ours.item() == pytest.approx(pml(codes, labels, indices).item(), rel=1e-9)


def test_batch_all_equals_pml_all_triplets():
    codes, labels = batch(2)
    pml = pml_losses.TripletMarginLoss(margin=0.2, distance=squared_euclidean(), reducer=pml_reducers.MeanReducer())
    assert TripletMarginLoss()(codes, labels).item() == pytest.approx(pml(codes, labels).item(), rel=1e-9)


def test_our_hard_mining_equals_pml_batch_hard_miner():
    codes, labels = batch(3)
    pml_indices = pml_miners.BatchHardMiner(distance=squared_euclidean())(codes, labels)
    loss = TripletMarginLoss()
    assert TripletMarginLoss(mining="hard")(codes, labels).item() == pytest.approx(
        loss(codes, labels, pml_indices).item(), rel=1e-12
    )
    a, p, n = pml_indices
    assert loss(codes, labels, pml_indices).item() == pytest.approx(
        triplet_margin_loss(codes[a], codes[p], codes[n]).item(), rel=1e-12
    )
