"""Which triplets and pairs a labelled batch contributes.

A miner only returns index tuples, as in pytorch-metric-learning: triplets as
``(anchor, positive, negative)`` and pairs as ``(anchor1, positive, anchor2,
negative)``, each a 1-D int64 tensor. Losses accept such an ``indices_tuple``,
which is the seam that lets users plug in their own miners.

A triplet (a, p, n) is valid when a != p, labels[a] == labels[p] and
labels[n] != labels[a] (Schroff et al., FaceNet, CVPR 2015; "batch all" in
Hermans, Beyer, Leibe, "In Defense of the Triplet Loss", 2017).

Three strategies choose among the valid triplets (``MINING``):

- ``"all"``: every valid triplet (:func:`all_triplets`).
- ``"hard"``: per anchor its farthest positive and nearest negative
  (:func:`batch_hard_triplets`; Hermans, Beyer, Leibe 2017).
- ``"semihard"``: per (anchor, positive) pair the nearest negative farther than
  the positive, and with a margin also inside it (:func:`semihard_triplets`;
  Schroff et al. 2015).

The hard and semi-hard miners compare squared distances computed in float64,
a block of anchors at a time (memory O(block), not O(B^2)), with no gradient:
the loss is then evaluated on the chosen triplets. Ties go to the lowest index.
"""

from __future__ import annotations

import torch

from .distances import pairwise_squared_distances

__all__ = [
    "MINING",
    "check_mining",
    "label_masks",
    "all_triplets",
    "all_pairs",
    "batch_hard_triplets",
    "semihard_triplets",
    "mine_triplets",
]

IndicesTuple = tuple[torch.Tensor, ...]

MINING = ("all", "hard", "semihard")

# Elements of the (rows, B) distance block a miner holds at once.
_BLOCK = 1 << 20


def label_masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive and negative pair masks of a batch.

    Shape:
        labels: (B,) integer. Outputs: two (B, B) bool tensors; ``positive[i, j]``
        is True when i != j share a label, ``negative[i, j]`` when labels differ.
    """
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same


def all_triplets(labels: torch.Tensor) -> IndicesTuple:
    """Every valid (anchor, positive, negative) of the batch ("batch all").

    Materialises all triplets, O(B^3) memory in the worst case: meant for small
    batches, tests and users who want explicit indices. The batch losses use
    closed forms instead and never call this.

    Shape:
        labels: (B,) integer. Output: three (T,) int64 tensors, T = number of
        valid triplets, ordered by anchor, then positive, then negative.
    """
    positive, negative = label_masks(labels)
    valid = positive.unsqueeze(2) & negative.unsqueeze(1)
    a, p, n = torch.nonzero(valid, as_tuple=True)
    return a, p, n


def all_pairs(labels: torch.Tensor) -> IndicesTuple:
    """Every unordered pair i < j, split into positive and negative pairs.

    Shape:
        labels: (B,) integer. Output: ``(a1, p, a2, n)`` int64 tensors: (a1[k],
        p[k]) are same-label pairs, (a2[k], n[k]) different-label pairs.
    """
    positive, negative = label_masks(labels)
    upper = torch.ones_like(positive).triu(diagonal=1)
    a1, p = torch.nonzero(positive & upper, as_tuple=True)
    a2, n = torch.nonzero(negative & upper, as_tuple=True)
    return a1, p, a2, n


def check_mining(mining: str) -> None:
    """Raise ValueError unless ``mining`` is one of :data:`MINING`."""
    if mining not in MINING:
        raise ValueError(f"mining={mining!r} is not valid; use one of {MINING}")


def _distance_blocks(embeddings: torch.Tensor, labels: torch.Tensor, block: int):
    """(start, stop, d, same) for blocks of anchor rows: float64 distances to every row."""
    x = embeddings.detach().to(torch.float64)
    batch = len(x)
    rows = max(1, block // max(batch, 1))
    for start in range(0, batch, rows):
        stop = min(batch, start + rows)
        d = pairwise_squared_distances(x[start:stop], x)
        same = labels[start:stop].unsqueeze(1) == labels.unsqueeze(0)
        diagonal = torch.arange(stop - start, device=x.device)
        d[diagonal, diagonal + start] = 0.0
        yield start, stop, d, same


def _empty_triplets(device: torch.device) -> IndicesTuple:
    empty = torch.empty(0, dtype=torch.int64, device=device)
    return empty, empty.clone(), empty.clone()


def batch_hard_triplets(embeddings: torch.Tensor, labels: torch.Tensor, *, block: int = _BLOCK) -> IndicesTuple:
    """Batch-hard mining: per anchor its farthest positive and its nearest negative.

    Anchors without a positive or without a negative give no triplet.

    Shape:
        embeddings: (B, N) float; labels: (B,) integer. Output: three (T,) int64
        tensors, T <= B, one triplet per anchor in anchor order.

    Source: A. Hermans, L. Beyer, B. Leibe, "In Defense of the Triplet Loss for
    Person Re-Identification", 2017 ("batch hard").
    """
    parts = []
    for start, stop, d, same in _distance_blocks(embeddings, labels, block):
        positive = same.clone()
        diagonal = torch.arange(stop - start, device=d.device)
        positive[diagonal, diagonal + start] = False
        keep = positive.any(dim=1) & ~same.all(dim=1)
        farthest_positive = torch.where(positive, d, -torch.inf).argmax(dim=1)
        nearest_negative = torch.where(same, torch.inf, d).argmin(dim=1)
        anchors = torch.arange(start, stop, device=d.device)
        parts.append((anchors[keep], farthest_positive[keep], nearest_negative[keep]))
    if not parts:
        return _empty_triplets(labels.device)
    return tuple(torch.cat(column) for column in zip(*parts))


def semihard_triplets(
    embeddings: torch.Tensor, labels: torch.Tensor, *, margin: float | None = None, block: int = _BLOCK
) -> IndicesTuple:
    """Semi-hard mining: per (anchor, positive) the nearest negative farther than the positive.

    A negative n is semi-hard for (a, p) when d(a,p) < d(a,n), and, when a
    ``margin`` is given (the hinge loss), also d(a,n) < d(a,p) + margin: it is
    not yet harder than the positive but still violates the margin. The nearest
    such negative is chosen. **Fallback** when (a, p) has no semi-hard negative:
    the anchor's farthest negative, as in TensorFlow Addons'
    ``triplet_semihard_loss`` (every negative is then either nearer than the
    positive, and the farthest is the least hard of them, or already past the
    margin, and the triplet has zero hinge loss). Anchors without a negative
    give no triplet.

    Memory is O(block) for the distances plus O(T) for the output, where T is
    the number of positive pairs (about B^2 / #classes).

    Shape:
        embeddings: (B, N) float; labels: (B,) integer. Output: three (T,) int64
        tensors, one triplet per (anchor, positive), ordered by anchor then positive.

    Raises:
        ValueError: a negative or non-finite margin.

    Source: F. Schroff, D. Kalenichenko, J. Philbin, "FaceNet", CVPR 2015, section 3.2.
    """
    if margin is not None and not (0 <= margin < float("inf")):
        raise ValueError(f"margin={margin} must be finite and >= 0, or None for no margin condition")
    parts = []
    for start, stop, d, same in _distance_blocks(embeddings, labels, block):
        positive = same.clone()
        diagonal = torch.arange(stop - start, device=d.device)
        positive[diagonal, diagonal + start] = False
        n_positive = positive.sum(dim=1)
        width = int(n_positive.max())
        if width == 0:
            continue
        # Each row's positive columns first, in index order (a stable sort of the mask).
        pos_columns = torch.argsort((~positive).to(torch.uint8), dim=1, stable=True)[:, :width]
        is_pair = (torch.arange(width, device=d.device) < n_positive.unsqueeze(1)) & ~same.all(dim=1, keepdim=True)
        d_ap = d.gather(1, pos_columns)
        # Negatives in ascending distance, ties in index order; non-negatives last (inf).
        neg_sorted, neg_order = torch.where(same, torch.inf, d).sort(dim=1, stable=True)
        first_farther = torch.searchsorted(neg_sorted, d_ap, right=True).clamp_max_(d.shape[1] - 1)
        candidate = neg_sorted.gather(1, first_farther)
        semihard = torch.isfinite(candidate)  # a negative with d_an > d_ap exists (non-negatives are inf)
        if margin is not None:
            semihard &= candidate < d_ap + margin
        farthest = torch.where(same, -torch.inf, d).argmax(dim=1, keepdim=True).expand_as(d_ap)
        negative = torch.where(semihard, neg_order.gather(1, first_farther), farthest)
        anchors = torch.arange(start, stop, device=d.device).unsqueeze(1).expand_as(d_ap)
        parts.append((anchors[is_pair], pos_columns[is_pair], negative[is_pair]))
    if not parts:
        return _empty_triplets(labels.device)
    return tuple(torch.cat(column) for column in zip(*parts))


def mine_triplets(
    embeddings: torch.Tensor, labels: torch.Tensor, mining: str = "all", *, margin: float | None = None
) -> IndicesTuple:
    """The triplets that ``mining`` selects: ``"all"``, ``"hard"`` or ``"semihard"``.

    ``margin`` only matters for ``"semihard"`` (see :func:`semihard_triplets`).

    Shape:
        embeddings: (B, N) float; labels: (B,) integer. Output: three (T,) int64 tensors.

    Raises:
        ValueError: an unknown ``mining``.
    """
    check_mining(mining)
    if mining == "hard":
        return batch_hard_triplets(embeddings, labels)
    if mining == "semihard":
        return semihard_triplets(embeddings, labels, margin=margin)
    return all_triplets(labels)
