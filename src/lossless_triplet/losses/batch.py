"""The five losses on a labelled batch ``(embeddings, labels)``.

The triplet losses take ``mining="all" | "hard" | "semihard"`` (see
:mod:`lossless_triplet.mining`) or an ``indices_tuple`` ``(anchor, positive,
negative)`` from any miner, e.g. a pytorch-metric-learning one; the
contrastive loss averages over all unordered pairs i < j or a pair tuple.

Batch-all ("all", the default) never builds a B x B x B tensor and holds only a
bounded block of distances at a time (:mod:`._batch_all`):

- lossless: the separable form, O(B^2) time, distances in float64 (the negative
  term -ln(d/beta + eps) changes by ~1 when d moves by beta*eps = 1e-8 N, far
  below the rounding error of a float32 Gram expansion);
- linear lossless: the separable form reduced to class sums, O(B N), float64;
- triplet margin: per anchor its positives' thresholds d_ap + margin sorted
  and every negative distance placed among them by binary search, O(B^2 log B),
  in float32 (float64 for float64 codes): the hinge has no log;
- soft margin: no shortcut exists for a softplus of a difference, so every
  triplet is evaluated, O(B^2 K) time (K the largest class), O(block) memory.

``reduction``: ``"mean"`` (default) over the chosen triplets (pairs for the contrastive
loss), ``"sum"`` over them, or ``"none"``: a (B,) tensor holding, per anchor, the sum of the
losses of the triplets it anchors (per row i, of the pairs (i, j), j > i), 0 for a row that
anchors none. ``"none"`` sums to ``"sum"``; its mean is NOT ``"mean"`` (anchors hold different
numbers of triplets). Batch-all ``"none"`` runs on plain autograd (:mod:`._per_anchor`): O(B^2)
memory for the separable losses, O(B^2 K) for the margin and soft-margin losses.

A batch of two or more rows whose labels are all equal is an error (it has no negative: the
loss would be 0 and nothing learned); a batch that merely lacks a positive gives 0 with a graph.

Hard and semi-hard mining evaluate the explicit-triplet functions on the mined
triplets. Float16/bfloat16 codes are computed in float32 (float64 where said
above) and give a float32 loss; autocast is switched off inside.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..distances import pairwise_squared_distances, safe_sqrt
from ..mining import IndicesTuple, check_mining, label_masks, mine_triplets
from ._batch_all import (
    DEFAULT_BLOCK,
    hinge_batch_all,
    linear_batch_all,
    lossless_batch_all,
    soft_margin_batch_all,
    triplet_count,
)
from ._checks import (
    check_codes,
    check_eps,
    check_label_variety,
    check_labels,
    check_margin,
    check_reduction,
    check_unit_interval,
    resolve_beta,
)
from ._per_anchor import pairwise_per_anchor, separable_per_anchor
from ._precision import upcast
from .functional import (
    CONTRASTIVE_MARGIN,
    EPS,
    TRIPLET_MARGIN,
    contrastive_loss,
    linear_lossless_triplet_loss,
    lossless_negative_term,
    lossless_positive_term,
    lossless_triplet_loss,
    soft_margin_triplet_loss,
    triplet_margin_loss,
)

__all__ = [
    "batch_lossless_triplet_loss",
    "batch_linear_lossless_triplet_loss",
    "batch_triplet_margin_loss",
    "batch_soft_margin_triplet_loss",
    "batch_contrastive_loss",
]

# Elements of the distance block the batch-all losses hold at once.
_BLOCK = DEFAULT_BLOCK


def _validate(embeddings: torch.Tensor, labels: torch.Tensor, validate: bool, bounded: bool) -> None:
    """Shape, value and range checks when ``validate``; the one-class check always (it is O(B))."""
    if validate:
        check_codes(embeddings=embeddings)
        check_labels(labels, embeddings.shape[0])
        if bounded:
            check_unit_interval(embeddings=embeddings)
    check_label_variety(labels)


def _result_dtype(embeddings: torch.Tensor) -> torch.dtype:
    return torch.float32 if embeddings.dtype in (torch.float16, torch.bfloat16) else embeddings.dtype


def _zero(embeddings: torch.Tensor, reduction: str) -> torch.Tensor:
    """0 (per row for ``"none"``) that still has a graph, so ``backward()`` works on a batch with nothing to learn."""
    zero = (embeddings.sum() * 0).to(_result_dtype(embeddings))
    return zero + torch.zeros(len(embeddings), dtype=zero.dtype, device=zero.device) if reduction == "none" else zero


def _per_row(values: torch.Tensor, rows: torch.Tensor, batch: int, reduction: str) -> torch.Tensor:
    """Reduce one value per chosen triplet/pair; ``"none"`` sums them into their anchor's row."""
    if reduction == "none":
        return values.new_zeros(batch).index_add(0, rows, values)
    return values.sum() if reduction == "sum" else values.mean()


def _chosen_triplets(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    mining: str,
    indices_tuple: IndicesTuple | None,
    margin: float | None = None,
) -> IndicesTuple | None:
    """The explicit triplets to average over, or None for batch-all."""
    check_mining(mining)
    if indices_tuple is not None:
        if mining != "all":
            raise ValueError(
                f"got both mining={mining!r} and an indices_tuple; pass one: the indices_tuple "
                "already says which triplets to use (keep mining='all' with it)"
            )
        if len(indices_tuple) != 3:
            raise ValueError(
                "a triplet loss needs indices_tuple=(anchor, positive, negative), "
                f"got {len(indices_tuple)} tensors"
            )
        return indices_tuple
    if mining == "all":
        return None
    return mine_triplets(embeddings, labels, mining, margin=margin)


def _triplet_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    *,
    mining: str,
    indices_tuple: IndicesTuple | None,
    reduction: str,
    explicit: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    batch_all: Callable[[], torch.Tensor],
    per_anchor: Callable[[], torch.Tensor],
    mining_margin: float | None = None,
) -> torch.Tensor:
    """The flow every triplet loss shares: mined or given triplets through ``explicit`` (per-triplet
    values), else batch-all through ``batch_all`` (the mean) or ``per_anchor`` (``"none"``)."""
    triplets = _chosen_triplets(embeddings, labels, mining, indices_tuple, margin=mining_margin)
    if triplets is not None:
        a, p, neg = triplets
        if len(a) == 0:
            return _zero(embeddings, reduction)
        return _per_row(explicit(a, p, neg), a, len(labels), reduction)
    count = triplet_count(labels)
    if count == 0:
        return _zero(embeddings, reduction)
    if reduction == "none":
        return per_anchor().to(_result_dtype(embeddings))
    mean = batch_all()
    return mean if reduction == "mean" else mean * count


def batch_lossless_triplet_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    *,
    beta: float | None = None,
    eps: float = EPS,
    mining: str = "all",
    indices_tuple: IndicesTuple | None = None,
    reduction: str = "mean",
    validate: bool = True,
) -> torch.Tensor:
    """Lossless triplet loss over the mined triplets of a batch (default: all valid ones, mean).

    Batch-all uses the separable form (no B x B x B tensor): with f the positive
    and g the negative log term of :func:`lossless_triplet_loss`, the sum over
    triplets is sum_(a,p) f(d_ap) #neg(a) + sum_(a,n) g(d_an) #pos(a), computed a
    block of anchors at a time in float64 with a blockwise gradient: O(B^2) time,
    memory bounded by the block, not by B^2. Semi-hard mining uses no margin
    condition (the loss has none): the nearest negative farther than the positive.

    Args:
        beta, eps: as in :func:`lossless_triplet_loss`.
        mining: ``"all"`` | ``"hard"`` | ``"semihard"`` (see :mod:`lossless_triplet.mining`).
        indices_tuple: explicit ``(anchor, positive, negative)`` int64 index tensors,
            e.g. from a pytorch-metric-learning miner; then ``mining`` must stay ``"all"``.
        reduction: ``"mean"`` | ``"sum"`` over the triplets, or ``"none"``: per anchor, the
            sum over the triplets it anchors (see the module docstring).
        validate: check shapes, finiteness and the [0, 1] range.

    Shape:
        embeddings: (B, N) float in [0, 1]; labels: (B,) int. Output: scalar, or (B,) for
        ``reduction="none"`` (float32 for half inputs). A batch with no valid triplet gives 0.

    Raises:
        ValueError: bad shapes, NaN/inf, codes outside [0, 1], beta < N, eps <= 0,
            unknown mining or reduction, mining together with an indices_tuple, an
            indices_tuple that is not a 3-tuple, two or more rows whose labels are all equal.

    Source: M.-O. Arsenault, "Lossless Triplet loss", 2018; mining: Hermans, Beyer,
    Leibe 2017 (hard), Schroff, Kalenichenko, Philbin, CVPR 2015 (semi-hard).
    """
    check_eps(eps)
    check_reduction(reduction)
    _validate(embeddings, labels, validate, bounded=True)
    n = embeddings.shape[1]
    beta = resolve_beta(beta, n)
    x = upcast(embeddings, _result_dtype(embeddings))  # before any indexing: see _precision

    def per_anchor():
        return separable_per_anchor(upcast(embeddings, torch.float64), labels,
                                    lambda d: lossless_positive_term(d, n, beta, eps),
                                    lambda d: lossless_negative_term(d, n, beta, eps))

    return _triplet_loss(
        embeddings, labels, mining=mining, indices_tuple=indices_tuple, reduction=reduction,
        explicit=lambda a, p, neg: lossless_triplet_loss(x[a], x[p], x[neg], beta=beta, eps=eps,
                                                         reduction="none", validate=False),
        batch_all=lambda: lossless_batch_all(x, labels, n, beta, eps, block=_BLOCK),
        per_anchor=per_anchor)


def batch_linear_lossless_triplet_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    *,
    mining: str = "all",
    indices_tuple: IndicesTuple | None = None,
    reduction: str = "mean",
    validate: bool = True,
) -> torch.Tensor:
    """Linear lossless triplet loss d(a,p) - d(a,n) + N over the mined triplets (default: all, mean).

    Batch-all is separable, sum_(a,p) d_ap #neg(a) - sum_(a,n) d_an #pos(a) +
    N #triplets, and each sum over a class reduces to class sums of x and |x|^2:
    O(B N) time and memory, in float64. Semi-hard mining uses no margin condition.

    Args:
        mining, indices_tuple, reduction, validate: as in :func:`batch_lossless_triplet_loss`.

    Shape:
        embeddings: (B, N) float in [0, 1]; labels: (B,) int. Output: scalar, or (B,) for
        ``reduction="none"`` (float32 for half inputs). A batch with no valid triplet gives 0.

    Raises:
        ValueError: bad shapes, NaN/inf, codes outside [0, 1], unknown mining or reduction,
            mining together with an indices_tuple, a bad indices_tuple, two or more rows whose
            labels are all equal.

    Source: M.-O. Arsenault, "Lossless Triplet loss", 2018.
    """
    check_reduction(reduction)
    _validate(embeddings, labels, validate, bounded=True)
    n = embeddings.shape[1]
    x64 = upcast(embeddings, torch.float64)
    return _triplet_loss(
        embeddings, labels, mining=mining, indices_tuple=indices_tuple, reduction=reduction,
        explicit=lambda a, p, neg: linear_lossless_triplet_loss(embeddings[a], embeddings[p], embeddings[neg],
                                                                reduction="none", validate=False),
        batch_all=lambda: linear_batch_all(x64, labels, n).to(_result_dtype(embeddings)),
        per_anchor=lambda: separable_per_anchor(x64, labels, lambda d: d + n, lambda d: -d))


def batch_triplet_margin_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    *,
    margin: float = TRIPLET_MARGIN,
    mining: str = "all",
    indices_tuple: IndicesTuple | None = None,
    reduction: str = "mean",
    validate: bool = True,
) -> torch.Tensor:
    """Triplet margin loss max(d_ap - d_an + margin, 0) over the mined triplets (default: all, mean).

    Batch-all: the hinge is not separable, but a negative n is active for a
    positive p exactly when d_an < d_ap + margin, so sorting each anchor's
    thresholds d_ap + margin, placing every d_an among them by binary search and
    cumulating counts and sums gives the sum over all triplets in O(B^2 log B)
    time, a block of anchors at a time (no B x B x B tensor; memory bounded by
    the block). Zero-loss triplets count in the mean. Semi-hard
    mining requires d_ap < d_an < d_ap + margin (FaceNet).

    Args:
        margin: alpha, default 0.2 (FaceNet).
        mining, indices_tuple, reduction, validate: as in :func:`batch_lossless_triplet_loss`.

    Shape:
        embeddings: (B, N) float; labels: (B,) int. Output: scalar, or (B,) for
        ``reduction="none"`` (float32 for half inputs, float64 for float64). A batch with
        no valid triplet gives 0.

    Raises:
        ValueError: bad shapes, NaN/inf, negative margin, unknown mining or reduction, mining
            together with an indices_tuple, a bad indices_tuple, two or more rows whose labels
            are all equal.

    Source: F. Schroff, D. Kalenichenko, J. Philbin, "FaceNet", CVPR 2015; batch
    hard: A. Hermans, L. Beyer, B. Leibe, 2017.
    """
    check_margin(margin)
    check_reduction(reduction)
    _validate(embeddings, labels, validate, bounded=False)
    x = upcast(embeddings, _result_dtype(embeddings))
    return _triplet_loss(
        embeddings, labels, mining=mining, indices_tuple=indices_tuple, reduction=reduction, mining_margin=margin,
        explicit=lambda a, p, neg: triplet_margin_loss(embeddings[a], embeddings[p], embeddings[neg], margin=margin,
                                                       reduction="none", validate=False),
        batch_all=lambda: hinge_batch_all(x, labels, margin, block=_BLOCK),
        per_anchor=lambda: pairwise_per_anchor(x, labels, lambda t: torch.relu(t + margin), block=_BLOCK))


def batch_soft_margin_triplet_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    *,
    mining: str = "all",
    indices_tuple: IndicesTuple | None = None,
    reduction: str = "mean",
    validate: bool = True,
) -> torch.Tensor:
    """Soft-margin triplet loss ln(1 + exp(d_ap - d_an)) over the mined triplets (default: all, mean).

    Batch-all evaluates every valid triplet, O(B^2 K) time (K the largest class of the batch;
    a softplus of a difference has no separable or sorted shortcut), a block of anchors at a
    time with a blockwise gradient: memory bounded by the block, not by B^2 K. Semi-hard mining
    uses no margin condition (the loss has none); batch-hard mining is the "batch hard" +
    soft-margin combination of Hermans et al.

    Args:
        mining, indices_tuple, reduction, validate: as in :func:`batch_lossless_triplet_loss`.

    Shape:
        embeddings: (B, N) float (any range); labels: (B,) int. Output: scalar, or (B,) for
        ``reduction="none"`` (float32 for half inputs). A batch with no valid triplet gives 0.

    Raises:
        ValueError: bad shapes, NaN/inf, unknown mining or reduction, mining together with an
            indices_tuple, a bad indices_tuple, two or more rows whose labels are all equal.

    Source: A. Hermans, L. Beyer, B. Leibe, "In Defense of the Triplet Loss for Person
    Re-Identification", 2017.
    """
    check_reduction(reduction)
    _validate(embeddings, labels, validate, bounded=False)
    x = upcast(embeddings, _result_dtype(embeddings))
    zero = x.new_zeros(())
    return _triplet_loss(
        embeddings, labels, mining=mining, indices_tuple=indices_tuple, reduction=reduction,
        explicit=lambda a, p, neg: soft_margin_triplet_loss(x[a], x[p], x[neg], reduction="none", validate=False),
        batch_all=lambda: soft_margin_batch_all(x, labels, block=_BLOCK),
        per_anchor=lambda: pairwise_per_anchor(x, labels, lambda t: torch.logaddexp(t, zero), block=_BLOCK))


def batch_contrastive_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    *,
    margin: float = CONTRASTIVE_MARGIN,
    indices_tuple: IndicesTuple | None = None,
    reduction: str = "mean",
    validate: bool = True,
) -> torch.Tensor:
    """Contrastive loss over all unordered pairs i < j of a batch (default: mean).

    Same-label pairs contribute ½D², different-label pairs ½max(0, margin - D)².
    An ``indices_tuple`` is a pair tuple ``(a1, p, a2, n)`` as returned by
    :func:`lossless_triplet.mining.all_pairs` or a pytorch-metric-learning pair miner.
    ``reduction="none"`` gives per row i the sum over its pairs (i, j), j > i (with a pair
    tuple: over the pairs whose first index is i).

    Shape:
        embeddings: (B, N) float; labels: (B,) int. Output: scalar, or (B,) for
        ``reduction="none"``; 0 for B < 2.

    Raises:
        ValueError: bad shapes, NaN/inf, margin <= 0, unknown reduction, an indices_tuple that
            is not a 4-tuple, two or more rows whose labels are all equal (no dissimilar pair:
            the loss could only pull every code together).

    Source: R. Hadsell, S. Chopra, Y. LeCun, CVPR 2006.
    """
    check_margin(margin, strictly_positive=True)
    check_reduction(reduction)
    _validate(embeddings, labels, validate, bounded=False)
    if indices_tuple is not None:
        if len(indices_tuple) != 4:
            raise ValueError(
                f"the contrastive loss needs a pair indices_tuple=(a1, p, a2, n), got {len(indices_tuple)} tensors"
            )
        a1, p, a2, neg = indices_tuple
        first, second = torch.cat([a1, a2]), torch.cat([p, neg])
        if len(first) == 0:
            return _zero(embeddings, reduction)
        similar = torch.cat([torch.ones_like(a1, dtype=torch.bool), torch.zeros_like(a2, dtype=torch.bool)])
        values = contrastive_loss(embeddings[first], embeddings[second], similar, margin=margin,
                                  reduction="none", validate=False)
        return _per_row(values, first, len(labels), reduction)
    batch = len(labels)
    if batch < 2:
        return _zero(embeddings, reduction)
    positive, _ = label_masks(labels)
    d = pairwise_squared_distances(upcast(embeddings, torch.float64))
    per_pair = 0.5 * torch.where(positive, d, torch.relu(margin - safe_sqrt(d)).pow(2))
    upper = torch.ones_like(positive).triu(diagonal=1)
    per_row = torch.where(upper, per_pair, d.new_zeros(())).sum(dim=1)
    if reduction == "none":
        return per_row.to(_result_dtype(embeddings))
    total = per_row.sum()
    return (total if reduction == "sum" else total / (batch * (batch - 1) // 2)).to(_result_dtype(embeddings))
