"""The four losses on a labelled batch ``(embeddings, labels)``.

Without an ``indices_tuple`` the triplet losses average over *all* valid
triplets of the batch (batch-all) and the contrastive loss over all unordered
pairs i < j. With an ``indices_tuple`` (from :mod:`lossless_triplet.mining` or a
pytorch-metric-learning miner) they average over exactly those triplets/pairs.

Pairwise distances are computed in float64: the lossless negative term
-ln(d/beta + eps) changes by ~1 when d moves by beta*eps = 1e-8 N, far below
the rounding error of a float32 Gram expansion.
"""

from __future__ import annotations

import torch

from ..distances import pairwise_squared_distances, safe_sqrt
from ..mining import IndicesTuple, label_masks
from ._checks import check_codes, check_eps, check_labels, check_margin, check_unit_interval, resolve_beta
from .functional import (
    CONTRASTIVE_MARGIN,
    EPS,
    TRIPLET_MARGIN,
    contrastive_loss,
    linear_lossless_triplet_loss,
    lossless_negative_term,
    lossless_positive_term,
    lossless_triplet_loss,
    triplet_margin_loss,
)

__all__ = [
    "batch_lossless_triplet_loss",
    "batch_linear_lossless_triplet_loss",
    "batch_triplet_margin_loss",
    "batch_contrastive_loss",
]

# Largest (chunk, B, B) block the hinge loss materialises at once (elements).
_HINGE_BLOCK = 1 << 22


def _validate(embeddings: torch.Tensor, labels: torch.Tensor, validate: bool, bounded: bool) -> None:
    if not validate:
        return
    check_codes(embeddings=embeddings)
    check_labels(labels, embeddings.shape[0])
    if bounded:
        check_unit_interval(embeddings=embeddings)


def _result_dtype(embeddings: torch.Tensor) -> torch.dtype:
    return torch.float32 if embeddings.dtype in (torch.float16, torch.bfloat16) else embeddings.dtype


def _zero(embeddings: torch.Tensor) -> torch.Tensor:
    """0 that still has a graph, so ``loss.backward()`` works on a batch with nothing to learn."""
    return (embeddings.sum() * 0).to(_result_dtype(embeddings))


def _triplet_indices(indices_tuple: IndicesTuple) -> IndicesTuple:
    if len(indices_tuple) != 3:
        raise ValueError(
            f"a triplet loss needs indices_tuple=(anchor, positive, negative), got {len(indices_tuple)} tensors"
        )
    return indices_tuple


def _separable_batch_all(
    embeddings: torch.Tensor, labels: torch.Tensor, pos_fn, neg_fn
) -> torch.Tensor:
    """Mean of f(d_ap) + g(d_an) over all valid triplets in O(B^2).

    sum over (a,p,n) of f(d_ap) + g(d_an)
        = sum_(a,p) f(d_ap) * #neg(a) + sum_(a,n) g(d_an) * #pos(a)
    """
    positive, negative = label_masks(labels)
    n_pos = positive.sum(dim=1)
    n_neg = negative.sum(dim=1)
    n_triplets = int((n_pos * n_neg).sum())
    if n_triplets == 0:
        return _zero(embeddings)
    d = pairwise_squared_distances(embeddings.double())
    zero = d.new_zeros(())
    pos_sum = (torch.where(positive, pos_fn(d), zero) * n_neg.unsqueeze(1)).sum()
    neg_sum = (torch.where(negative, neg_fn(d), zero) * n_pos.unsqueeze(1)).sum()
    return ((pos_sum + neg_sum) / n_triplets).to(_result_dtype(embeddings))


def batch_lossless_triplet_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    *,
    beta: float | None = None,
    eps: float = EPS,
    indices_tuple: IndicesTuple | None = None,
    validate: bool = True,
) -> torch.Tensor:
    """Lossless triplet loss averaged over all valid triplets of a batch.

    Uses the separable form (no B x B x B tensor): with f the positive and g the
    negative log term of :func:`lossless_triplet_loss`, the sum over triplets is
    sum_(a,p) f(d_ap) #neg(a) + sum_(a,n) g(d_an) #pos(a).

    Shape:
        embeddings: (B, N) float in [0, 1]; labels: (B,) int. Output: scalar
        (float32 for half inputs). A batch with no valid triplet gives 0.

    Raises:
        ValueError: bad shapes, NaN/inf, codes outside [0, 1], beta < N, eps <= 0.

    Source: M.-O. Arsenault, "Lossless Triplet loss", 2018.
    """
    check_eps(eps)
    _validate(embeddings, labels, validate, bounded=True)
    n = embeddings.shape[1]
    beta = resolve_beta(beta, n)
    if indices_tuple is not None:
        a, p, neg = _triplet_indices(indices_tuple)
        if len(a) == 0:
            return _zero(embeddings)
        return lossless_triplet_loss(
            embeddings[a], embeddings[p], embeddings[neg], beta=beta, eps=eps, validate=False
        )
    return _separable_batch_all(
        embeddings,
        labels,
        lambda d: lossless_positive_term(d, n, beta, eps),
        lambda d: lossless_negative_term(d, n, beta, eps),
    )


def batch_linear_lossless_triplet_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    *,
    indices_tuple: IndicesTuple | None = None,
    validate: bool = True,
) -> torch.Tensor:
    """Linear lossless triplet loss d(a,p) - d(a,n) + N averaged over all valid triplets.

    Separable: sum_(a,p) d_ap #neg(a) - sum_(a,n) d_an #pos(a) + N #triplets.

    Shape:
        embeddings: (B, N) float in [0, 1]; labels: (B,) int. Output: scalar.

    Raises:
        ValueError: bad shapes, NaN/inf, codes outside [0, 1].

    Source: M.-O. Arsenault, "Lossless Triplet loss", 2018.
    """
    _validate(embeddings, labels, validate, bounded=True)
    n = embeddings.shape[1]
    if indices_tuple is not None:
        a, p, neg = _triplet_indices(indices_tuple)
        if len(a) == 0:
            return _zero(embeddings)
        return linear_lossless_triplet_loss(embeddings[a], embeddings[p], embeddings[neg], validate=False)
    # f(d) = d + N and g(d) = -d: the constant N counted once per triplet.
    return _separable_batch_all(embeddings, labels, lambda d: d + n, lambda d: -d)


def batch_triplet_margin_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    *,
    margin: float = TRIPLET_MARGIN,
    indices_tuple: IndicesTuple | None = None,
    validate: bool = True,
) -> torch.Tensor:
    """Triplet margin loss max(d_ap - d_an + margin, 0) averaged over all valid triplets.

    The hinge is not separable, so the (a, p, n) block is built a chunk of
    anchors at a time: memory O(B^2) per chunk, never a full B x B x B tensor.
    Zero-loss triplets count in the mean (mean over all valid triplets).

    Shape:
        embeddings: (B, N) float; labels: (B,) int. Output: scalar.

    Raises:
        ValueError: bad shapes, NaN/inf, negative margin.

    Source: F. Schroff, D. Kalenichenko, J. Philbin, "FaceNet", CVPR 2015.
    """
    check_margin(margin)
    _validate(embeddings, labels, validate, bounded=False)
    if indices_tuple is not None:
        a, p, neg = _triplet_indices(indices_tuple)
        if len(a) == 0:
            return _zero(embeddings)
        return triplet_margin_loss(embeddings[a], embeddings[p], embeddings[neg], margin=margin, validate=False)
    positive, negative = label_masks(labels)
    n_triplets = int((positive.sum(dim=1) * negative.sum(dim=1)).sum())
    if n_triplets == 0:
        return _zero(embeddings)
    d = pairwise_squared_distances(embeddings.double())
    batch = len(labels)
    chunk = max(1, _HINGE_BLOCK // (batch * batch))
    total = d.new_zeros(())
    for start in range(0, batch, chunk):
        rows = slice(start, start + chunk)
        hinge = torch.relu(d[rows].unsqueeze(2) - d[rows].unsqueeze(1) + margin)
        valid = positive[rows].unsqueeze(2) & negative[rows].unsqueeze(1)
        total = total + torch.where(valid, hinge, d.new_zeros(())).sum()
    return (total / n_triplets).to(_result_dtype(embeddings))


def batch_contrastive_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    *,
    margin: float = CONTRASTIVE_MARGIN,
    indices_tuple: IndicesTuple | None = None,
    validate: bool = True,
) -> torch.Tensor:
    """Contrastive loss averaged over all unordered pairs i < j of a batch.

    Same-label pairs contribute ½D², different-label pairs ½max(0, margin - D)².
    An ``indices_tuple`` is a pair tuple ``(a1, p, a2, n)`` as returned by
    :func:`lossless_triplet.mining.all_pairs` or a pytorch-metric-learning pair miner.

    Shape:
        embeddings: (B, N) float; labels: (B,) int. Output: scalar; 0 for B < 2.

    Raises:
        ValueError: bad shapes, NaN/inf, margin <= 0, an indices_tuple that is
            not a 4-tuple.

    Source: R. Hadsell, S. Chopra, Y. LeCun, CVPR 2006.
    """
    check_margin(margin, strictly_positive=True)
    _validate(embeddings, labels, validate, bounded=False)
    if indices_tuple is not None:
        if len(indices_tuple) != 4:
            raise ValueError(
                f"the contrastive loss needs a pair indices_tuple=(a1, p, a2, n), got {len(indices_tuple)} tensors"
            )
        a1, p, a2, neg = indices_tuple
        first, second = torch.cat([a1, a2]), torch.cat([p, neg])
        if len(first) == 0:
            return _zero(embeddings)
        similar = torch.cat([torch.ones_like(a1, dtype=torch.bool), torch.zeros_like(a2, dtype=torch.bool)])
        return contrastive_loss(embeddings[first], embeddings[second], similar, margin=margin, validate=False)
    batch = len(labels)
    if batch < 2:
        return _zero(embeddings)
    positive, _ = label_masks(labels)
    d = pairwise_squared_distances(embeddings.double())
    per_pair = 0.5 * torch.where(positive, d, torch.relu(margin - safe_sqrt(d)).pow(2))
    upper = torch.ones_like(positive).triu(diagonal=1)
    total = torch.where(upper, per_pair, d.new_zeros(())).sum()
    return (total / (batch * (batch - 1) // 2)).to(_result_dtype(embeddings))
