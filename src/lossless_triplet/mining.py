"""Which triplets and pairs a labelled batch contributes.

A miner only returns index tuples, as in pytorch-metric-learning: triplets as
``(anchor, positive, negative)`` and pairs as ``(anchor1, positive, anchor2,
negative)``, each a 1-D int64 tensor. Losses accept such an ``indices_tuple``,
which is the seam that lets users plug in their own miners.

A triplet (a, p, n) is valid when a != p, labels[a] == labels[p] and
labels[n] != labels[a] (Schroff et al., FaceNet, CVPR 2015; "batch all" in
Hermans, Beyer, Leibe, "In Defense of the Triplet Loss", 2017).
"""

from __future__ import annotations

import torch

__all__ = ["label_masks", "all_triplets", "all_pairs"]

IndicesTuple = tuple[torch.Tensor, ...]


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
