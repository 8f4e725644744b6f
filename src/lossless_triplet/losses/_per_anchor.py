"""``reduction="none"`` of the batch-all losses: each anchor's sum over its triplets.

The blockwise kernels of :mod:`._batch_all` compute the gradient of the batch total during the
forward pass, which a per-anchor output (weighted by any ``grad_output``) cannot reuse. These
functions build the same sums with plain autograd instead: O(B^2) memory for the separable
losses (one (B, B) distance matrix), O(B^2 K) for the others (K the largest class in the
batch: every (a, p, n) is evaluated, a block of anchors at a time, and autograd keeps each
block). Their sum equals ``reduction="sum"``; the tests compare both against brute force.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..distances import pairwise_squared_distances
from ..mining import label_masks

__all__ = ["separable_per_anchor", "pairwise_per_anchor"]


def separable_per_anchor(x: torch.Tensor, labels: torch.Tensor, f: Callable, g: Callable) -> torch.Tensor:
    """Per anchor a: sum over its triplets of f(d_ap) + g(d_an) = #neg(a) sum_p f(d_ap) + #pos(a) sum_n g(d_an).

    Shape: x (B, N) float; labels (B,) integer. Output: (B,) x's dtype (0 where a anchors no triplet).
    """
    positive, negative = label_masks(labels)
    d = pairwise_squared_distances(x)
    n_pos = positive.sum(dim=1).to(x.dtype)
    n_neg = negative.sum(dim=1).to(x.dtype)
    zero = x.new_zeros(())
    return (n_neg * torch.where(positive, f(d), zero).sum(dim=1)
            + n_pos * torch.where(negative, g(d), zero).sum(dim=1))


def pairwise_per_anchor(x: torch.Tensor, labels: torch.Tensor, h: Callable, block: int = 1 << 22) -> torch.Tensor:
    """Per anchor a: sum over its positives p and negatives n of h(d_ap - d_an).

    Shape: x (B, N) float; labels (B,) integer. ``h`` is element-wise. Output: (B,) x's dtype.
    """
    positive, negative = label_masks(labels)
    d = pairwise_squared_distances(x)
    width = max(1, int(positive.sum(dim=1).max()))
    # Each row's positive columns first (a stable sort of "not positive"), padded to the widest row.
    columns = torch.argsort((~positive).to(torch.int8), dim=1, stable=True)[:, :width]
    is_positive = positive.gather(1, columns)
    d_ap = d.gather(1, columns)
    rows = max(1, block // (width * len(x)))
    zero = x.new_zeros(())
    parts = []
    for start in range(0, len(x), rows):
        stop = min(len(x), start + rows)
        difference = d_ap[start:stop].unsqueeze(2) - d[start:stop].unsqueeze(1)
        valid = is_positive[start:stop].unsqueeze(2) & negative[start:stop].unsqueeze(1)
        parts.append(torch.where(valid, h(difference), zero).sum(dim=(1, 2)))
    return torch.cat(parts)
