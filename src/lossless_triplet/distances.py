"""Squared Euclidean distances with finite gradients everywhere.

Every loss in this package works on the *squared* Euclidean distance
d(x, y) = sum_k (x_k - y_k)^2, so no square root sits on a gradient path: the
gradient of sqrt at 0 is infinite, and identical codes (common once a cluster
has collapsed) would turn into NaN gradients.
"""

from __future__ import annotations

import torch

__all__ = ["squared_distances", "pairwise_squared_distances", "safe_sqrt"]


def squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Row-wise squared Euclidean distance between matching rows of ``x`` and ``y``.

    Computed from the differences (not the expansion ``|x|^2 + |y|^2 - 2xy``), so
    the result is exact to rounding, never negative, and bounded by ``N`` for codes
    in [0, 1]^N (correctly rounded sums of terms <= 1 cannot exceed N).

    Shape:
        x, y: (B, N) floating point. Output: (B,), same dtype.

    Raises:
        ValueError: when the shapes differ or are not 2-D.
    """
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError(
            f"expected two (B, N) tensors of the same shape, got {tuple(x.shape)} and "
            f"{tuple(y.shape)}; pass one code per row"
        )
    return (x - y).pow(2).sum(dim=1)


def pairwise_squared_distances(x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """All squared Euclidean distances between the rows of ``x`` and of ``y``.

    Uses the Gram expansion ``|x_i|^2 + |y_j|^2 - 2 x_i.y_j`` (one matrix product,
    O(B^2) memory, no (B, B, N) tensor). Cancellation can make it slightly
    negative, so it is clamped at 0; with ``y`` omitted the diagonal is set to
    exactly 0 (a code is at distance 0 from itself). No square root is taken, so
    the gradient is finite for identical rows (unlike ``torch.cdist``).

    Shape:
        x: (B, N); y: (C, N) or None (then y = x). Output: (B, C), dtype of x.

    Raises:
        ValueError: when inputs are not 2-D or their widths differ.
    """
    same = y is None
    y = x if same else y
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(
            f"expected (B, N) and (C, N) tensors, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    x_sq = x.pow(2).sum(dim=1, keepdim=True)
    y_sq = x_sq.T if same else y.pow(2).sum(dim=1).unsqueeze(0)
    d = (x_sq + y_sq - 2.0 * (x @ y.T)).clamp_min(0.0)
    if same:
        eye = torch.eye(len(x), dtype=torch.bool, device=d.device)
        d = torch.where(eye, torch.zeros_like(d), d)
    return d


def safe_sqrt(d: torch.Tensor) -> torch.Tensor:
    """Square root whose gradient is 0 (not inf/NaN) where ``d == 0``.

    ``torch.where`` selects rather than multiplies, so no ``inf * 0`` reaches the
    gradient: at 0 both the value and the gradient are 0.

    Shape: any; output has the shape and dtype of ``d``.
    """
    positive = d > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, d, torch.ones_like(d))), torch.zeros_like(d))
