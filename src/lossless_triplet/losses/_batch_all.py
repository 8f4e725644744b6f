"""Batch-all triplet losses in O(B^2) time and O(block) memory.

The batch is first put in label order, so the same-class columns of a run of
anchor rows form one contiguous *band*, and every column outside it is a
negative of every row. Anchors are then taken a few rows at a time: each step
builds one (rows, B) block of squared distances, adds its share of the loss
and, when a gradient is wanted, the rows' gradient. Nothing of size B x B (let
alone B x B x B) is ever kept, and autograd records a single node: the gradient
is computed during the forward pass, block by block, and only scaled in
``backward`` (so these functions are differentiable once, not twice).

With d_aj = |x_a - x_j|^2 and G[a, j] = dL/dd_aj, the gradient is

    dL/dx_a = 2 sum_j S[a, j] (x_a - x_j) = 2 (sum_j S[a, j]) x_a - 2 (S x)_a,
    S = G + G^T,

a product with ``[x | 1]``. The lossless loss knows S for its rows in closed
form (one product per block); the hinge adds G's row side and column side
(two). Codes are centred first (distances do not change) to keep that
difference well conditioned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.autograd.function import once_differentiable

__all__ = [
    "DEFAULT_BLOCK",
    "hinge_batch_all",
    "soft_margin_batch_all",
    "lossless_batch_all",
    "linear_batch_all",
    "triplet_count",
]

# Elements in one (rows, B) working block: 32 MB in float64, a working set of about
# 150 MB at any B. Larger blocks mean fewer (parallel) operations per call.
DEFAULT_BLOCK = 1 << 22


def triplet_count(labels: torch.Tensor) -> int:
    """Number of valid (a, p, n): sum over classes of n_c (n_c - 1) (B - n_c).

    Shape: labels (B,) integer. Output: Python int.
    """
    _, counts = torch.unique(labels, return_counts=True)
    counts = counts.to(torch.int64)
    return int((counts * (counts - 1) * (len(labels) - counts)).sum())


@dataclass
class _Layout:
    """A batch in label order: per row, its class's run [class_lo, class_lo + class_size) of rows."""

    order: torch.Tensor  # (B,) int64: sorted position -> original row
    labels: torch.Tensor  # (B,) sorted labels
    class_lo: torch.Tensor  # (B,) int64
    class_size: torch.Tensor  # (B,) int64
    bounds: list[tuple[int, int]]  # [lo, hi) of each class

    @classmethod
    def of(cls, labels: torch.Tensor) -> _Layout:
        order = torch.argsort(labels, stable=True)
        _, counts = torch.unique_consecutive(labels[order], return_counts=True)
        starts = torch.cumsum(counts, 0) - counts
        bounds = list(zip(starts.tolist(), (starts + counts).tolist()))
        return cls(order, labels[order], starts.repeat_interleave(counts), counts.repeat_interleave(counts), bounds)

    def band(self, start: int, stop: int) -> tuple[int, int]:
        """Columns [lo, hi) holding every same-class column of rows [start, stop)."""
        return int(self.class_lo[start]), int(self.class_lo[stop - 1] + self.class_size[stop - 1])

    def row_blocks(self, block: int) -> list[tuple[int, int]]:
        """Row ranges [start, stop) of at most ``block / B`` rows (and B/8 when that is more
        than 256), cut at class boundaries where possible so that each block's band is
        no wider than the block or one class."""
        batch = len(self.order)
        rows = max(1, min(block // batch, max(256, batch // 8)))
        blocks, open_start = [], None
        for lo, hi in self.bounds:
            if open_start is not None and hi - open_start > rows:
                blocks.append((open_start, lo))
                open_start = None
            if hi - lo > rows:
                blocks.extend((s, min(hi, s + rows)) for s in range(lo, hi, rows))
            elif open_start is None:
                open_start = lo
        if open_start is not None:
            blocks.append((open_start, batch))
        return blocks


def _distance_rows(
    x: torch.Tensor,
    sq: torch.Tensor,
    start: int,
    stop: int,
    scale: float = 1.0,
    upper: float | None = None,
    shift: float = 0.0,
) -> torch.Tensor:
    """(stop - start, B) block of ``scale * d`` clamped to [0, upper], plus ``shift``.

    d by the Gram expansion; ``sq`` holds ``scale * |x_j|^2``. Folding the scale and
    the shift into the expansion saves passes over the block.
    """
    d = torch.addmm(sq.unsqueeze(0), x[start:stop], x.T, alpha=-2.0 * scale)
    d.add_(sq[start:stop].unsqueeze(1) + shift)
    return d.clamp_(shift, None if upper is None else upper + shift)


def _row_gradient(s_x1: torch.Tensor, x_rows: torch.Tensor) -> torch.Tensor:
    """2 (sum_j S[a, j]) x_a - 2 (S x)_a from ``s_x1 = S [x | 1]``."""
    n = x_rows.shape[1]
    return 2.0 * (s_x1[:, n:] * x_rows - s_x1[:, :n])


def _with_ones(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, x.new_ones(len(x), 1)], dim=1)


class _BlockwiseLoss(torch.autograd.Function):
    """Runs a block kernel in label order: forward returns the mean, backward scales the stored gradient."""

    @staticmethod
    def forward(ctx, x, labels, kernel, n_triplets, block, need_grad):
        layout = _Layout.of(labels)
        xs = x[layout.order].contiguous()
        # Autocast would run the Gram products in half precision: the kernels choose their dtypes.
        with torch.autocast(device_type=x.device.type, enabled=False):
            total, grad = kernel(xs, layout, block, need_grad)
        if need_grad:
            unsorted = torch.empty_like(grad)
            unsorted[layout.order] = grad / n_triplets
            ctx.save_for_backward(unsorted)
        return (total / n_triplets).to(x.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        (grad,) = ctx.saved_tensors
        return grad * grad_output, None, None, None, None, None


def _run(x: torch.Tensor, labels: torch.Tensor, kernel, block: int) -> torch.Tensor:
    need_grad = torch.is_grad_enabled() and x.requires_grad
    return _BlockwiseLoss.apply(x, labels, kernel, triplet_count(labels), block, need_grad)


def hinge_batch_all(x: torch.Tensor, labels: torch.Tensor, margin: float, block: int = DEFAULT_BLOCK) -> torch.Tensor:
    """Mean over all valid triplets of max(d_ap - d_an + margin, 0), in O(B^2 log B).

    Per anchor the thresholds d_ap + margin of its positives are sorted once and
    every negative distance is placed among them by binary search: negative n
    is active for exactly the positives ranked above d_an. Histograms of those
    ranks, summed cumulatively, give per positive the count and the distance
    sum of its active negatives, so its hinge sum is count * (d_ap + margin) -
    sum; the gradient is dL/dd_ap = count and dL/dd_an = -#{active positives}.
    Sorting costs O(P log P) per anchor (P positives), the search O(B log P).
    Zero-loss triplets count in the mean.

    Shape:
        x: (B, N) float32/float64 (computed in its dtype, prefix sums in float64);
        labels: (B,) integer with at least one valid triplet. Output: scalar, x's dtype.

    Source: F. Schroff, D. Kalenichenko, J. Philbin, "FaceNet", CVPR 2015.
    """

    def kernel(xs, layout, blk, need):
        return _hinge_kernel(xs, layout, blk, need, margin)

    return _run(x, labels, kernel, block)


def _pairwise_start(x: torch.Tensor, need_grad: bool):
    """What the hinge and soft-margin kernels start from: centred codes, their squared norms, ``[x | 1]``
    and a zero gradient (when one is wanted), and a float64 zero total."""
    x = x - x.mean(dim=0)
    x_one = _with_ones(x) if need_grad else None
    grad = torch.zeros_like(x) if need_grad else None
    return x, x.pow(2).sum(dim=1), x_one, grad, torch.zeros((), dtype=torch.float64, device=x.device)


def _block_pairs(layout: _Layout, start: int, stop: int, offsets: torch.Tensor):
    """For anchor rows [start, stop): ``negative`` (rows, B) bool, and each anchor's positives padded to
    the largest class, ``columns`` (rows, width) column indices (clamped into the batch) with
    ``is_positive`` (rows, width) marking the real ones (not padding, not the anchor itself)."""
    anchors = torch.arange(start, stop, device=offsets.device).unsqueeze(1)
    negative = layout.labels[start:stop].unsqueeze(1) != layout.labels.unsqueeze(0)
    columns = layout.class_lo[start:stop].unsqueeze(1) + offsets
    is_positive = (offsets < layout.class_size[start:stop].unsqueeze(1)) & (columns != anchors)
    return negative, columns.clamp_max_(len(layout.order) - 1), is_positive


def _add_block_gradient(grad, g, x, x_one, start: int, stop: int) -> None:
    """Add a block's G[a, j] = dL/dd_aj (rows [start, stop), every column) to ``grad``: G is not symmetric
    and G^T's rows belong to other blocks, so the row side and the column side are both added here."""
    grad[start:stop] += _row_gradient(g @ x_one, x[start:stop])
    grad += _row_gradient(g.T @ x_one[start:stop], x)


def _hinge_kernel(x, layout, block, need_grad, margin):
    x, sq, x_one, grad, total = _pairwise_start(x, need_grad)
    # Above every squared distance ((|x_a| + |x_j|)^2 <= 4 max|x|^2) plus the margin.
    far = 4.0 * float(sq.max()) + margin + 1.0
    width = int(layout.class_size.max())
    offsets = torch.arange(width, device=x.device)
    for start, stop in layout.row_blocks(block):
        d = _distance_rows(x, sq, start, stop)
        negative, columns, is_positive = _block_pairs(layout, start, stop, offsets)
        # Thresholds d_ap + margin, ascending; padding and the anchor itself at -far sort
        # first and are below every d_an, so no negative is ever active for them.
        key, key_order = torch.where(is_positive, d.gather(1, columns) + margin, -far).sort(dim=1)
        # Negative n is active (d_an < d_ap + margin) for the sorted positives from rank[n] on.
        rank = torch.searchsorted(key, d, right=True)
        as_negative = negative.to(torch.float64)
        active = torch.zeros(len(key), width + 1, dtype=torch.float64, device=x.device)
        count = active.scatter_add(1, rank, as_negative).cumsum_(dim=1)[:, :width]
        inside = active.scatter_add_(1, rank, d.to(torch.float64) * as_negative).cumsum_(dim=1)[:, :width]
        # Sum of d_ap + margin - d_an over the active negatives of each positive.
        total += (count * key.to(torch.float64) - inside).sum()
        if not need_grad:
            continue
        # G[a, j] = dL/dd_aj: #active negatives on positives, -#active positives on negatives.
        g = torch.where(negative, rank - width, 0).to(x.dtype)
        per_slot = torch.empty_like(key).scatter_(1, key_order, count.to(x.dtype))
        g.scatter_add_(1, columns, torch.where(is_positive, per_slot, 0.0))
        _add_block_gradient(grad, g, x, x_one, start, stop)
    return total, grad


def soft_margin_batch_all(x: torch.Tensor, labels: torch.Tensor, block: int = DEFAULT_BLOCK) -> torch.Tensor:
    """Mean over all valid triplets of ln(1 + exp(d_ap - d_an)), in O(B^2 K) time, O(block) memory.

    The softplus is neither separable nor piecewise linear, so no sort or class sum shortens
    the sum: every (a, p, n) is evaluated, a block of anchors at a time as a (rows, K, B) tensor
    (K the largest class in the batch), and the gradient is accumulated in the same pass:
    dL/dd_ap = sum_n sigmoid(d_ap - d_an), dL/dd_an = -sum_p sigmoid(d_ap - d_an). Memory is
    bounded by ``block`` elements, not by B^2 K.

    Shape:
        x: (B, N) float32/float64 (computed in its dtype, the sum in float64); labels: (B,)
        integer with at least one valid triplet. Output: scalar, x's dtype.

    Source: A. Hermans, L. Beyer, B. Leibe, "In Defense of the Triplet Loss for Person
    Re-Identification", 2017 (soft margin).
    """
    return _run(x, labels, _soft_margin_kernel, block)


def _soft_margin_kernel(x, layout, block, need_grad):
    batch = len(x)
    x, sq, x_one, grad, total = _pairwise_start(x, need_grad)
    width = int(layout.class_size.max())
    offsets = torch.arange(width, device=x.device)
    zero = x.new_zeros(())
    for start, stop in layout.row_blocks(max(batch, block // width)):
        d = _distance_rows(x, sq, start, stop)
        negative, columns, is_positive = _block_pairs(layout, start, stop, offsets)
        difference = d.gather(1, columns).unsqueeze(2) - d.unsqueeze(1)  # (rows, K, B): d_ap - d_an
        valid = is_positive.unsqueeze(2) & negative.unsqueeze(1)
        total += torch.where(valid, torch.logaddexp(difference, zero), zero).sum(dtype=torch.float64)
        if not need_grad:
            continue
        slope = torch.where(valid, torch.sigmoid(difference), zero)
        g = -slope.sum(dim=1)  # on negatives; 0 elsewhere
        g.scatter_add_(1, columns, torch.where(is_positive, slope.sum(dim=2), zero))
        _add_block_gradient(grad, g, x, x_one, start, stop)
    return total, grad


def _log_group(eps: float) -> int:
    """How many log arguments in [eps, 1 + eps] multiply without leaving float64's normal range."""
    return max(1, min(32, int(600.0 / max(1.0, -math.log(eps)))))


def _row_log_sums(t: torch.Tensor, group: int) -> torch.Tensor:
    """sum_j ln t[a, j] per row, with one log per ``group`` entries (products first).

    Shape: t (R, C) positive float64. Output: (R,) float64.
    """
    rows, cols = t.shape
    whole = cols // group * group
    sums = torch.log(t[:, :whole].reshape(rows, -1, group).prod(dim=2)).sum(dim=1)
    return sums if whole == cols else sums + torch.log(t[:, whole:]).sum(dim=1)


def lossless_batch_all(
    x: torch.Tensor, labels: torch.Tensor, n: int, beta: float, eps: float, block: int = DEFAULT_BLOCK
) -> torch.Tensor:
    """Mean over all valid triplets of the lossless loss, by its separable form.

    sum_(a,p,n) f(d_ap) + g(d_an) = sum_(a,p) f(d_ap) #neg(a) + sum_(a,n) g(d_an) #pos(a),
    with f(d) = -ln((beta - d)/beta + eps) and g(d) = -ln((beta - N + d)/beta + eps);
    f'(d) = 1 / (beta arg) and g'(d) = -1 / (beta arg), arg being the log's
    argument. Distances are clamped into [0, N], their range for codes in [0, 1]^N.

    Distances, log arguments and the loss are float64 whatever x's dtype: the
    negative term changes by ~1 when d moves by beta * eps = 1e-8 N, below the
    error of a float32 Gram expansion. The logs are summed as logs of products
    of up to 32 arguments (exact to ~1e-15). The gradient products run in x's
    dtype (float32 or float64).

    Shape:
        x: (B, N) float32/float64; labels: (B,) integer with at least one valid
        triplet. Output: scalar, x's dtype.

    Source: M.-O. Arsenault, "Lossless Triplet loss", 2018.
    """

    def kernel(xs, layout, blk, need):
        return _lossless_kernel(xs, layout, blk, need, n, beta, eps)

    return _run(x, labels, kernel, block)


def _lossless_kernel(x, layout, block, need_grad, n, beta, eps):
    batch = len(x)
    x64 = x.to(torch.float64)
    x64 = x64 - x64.mean(dim=0)
    sq = x64.pow(2).sum(dim=1) / beta
    size = layout.class_size.to(torch.float64)
    n_pos, n_neg = size - 1, batch - size  # per anchor
    # Log arguments, from e = d / beta: negatives e + shift, positives (1 + eps) - e = top - (e + shift).
    shift = (beta - n) / beta + eps
    top = 1.0 + eps + shift
    group = _log_group(eps)
    if need_grad:
        xg = x64.to(x.dtype)
        x_one = _with_ones(xg)
        n_pos_g, n_neg_g = n_pos.to(x.dtype).unsqueeze(1), n_neg.to(x.dtype).unsqueeze(1)
        # For S on negative pairs, -(n_pos(a) + n_pos(j)) / (beta arg): one product gives both parts.
        y = torch.cat([x_one, n_pos_g * x_one], dim=1)
        grad = torch.empty_like(xg)
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    for start, stop in layout.row_blocks(block):
        lo, hi = layout.band(start, stop)
        rows = torch.arange(stop - start, device=x.device)
        arg = _distance_rows(x64, sq, start, stop, scale=1.0 / beta, upper=n / beta, shift=shift)
        band = arg[:, lo:hi]
        same = layout.labels[start:stop].unsqueeze(1) == layout.labels[lo:hi].unsqueeze(0)
        pos_arg = torch.where(same, top - band, 1.0)
        pos_arg[rows, rows + (start - lo)] = 1.0  # the anchor itself: ln 1 = 0
        # Every column as a negative, then the band's same-class entries moved to the positive side.
        neg_log = _row_log_sums(arg, group) - torch.where(same, torch.log(band), 0.0).sum(dim=1)
        pos_log = torch.log(pos_arg).sum(dim=1)
        total -= (n_pos[start:stop] * neg_log + n_neg[start:stop] * pos_log).sum()
        if not need_grad:
            continue
        inverse = arg.to(x.dtype).reciprocal_()
        by_row = inverse @ y
        s_x1 = (n_pos_g[start:stop] * by_row[:, : n + 1] + by_row[:, n + 1 :]).div_(-beta)
        # Band correction: same-class S = 2 n_neg(a) / (beta pos_arg), minus the negative form put there.
        pos_inverse = pos_arg.to(x.dtype).reciprocal_()
        pos_inverse[rows, rows + (start - lo)] = 0.0
        wrong = (n_pos_g[start:stop] + n_pos_g[lo:hi].T) * inverse[:, lo:hi]
        right = 2.0 * n_neg_g[start:stop] * pos_inverse
        s_x1 += torch.where(same, right + wrong, 0.0).div_(beta) @ x_one[lo:hi]
        grad[start:stop] = _row_gradient(s_x1, xg[start:stop])
    return total, (grad if need_grad else None)


def linear_batch_all(x: torch.Tensor, labels: torch.Tensor, n: int) -> torch.Tensor:
    """Mean over all valid triplets of d(a,p) - d(a,n) + N, from class sums in O(B N).

    With q_j = |x_j|^2 and, per class c, n_c members, Q_c = sum q_j and X_c = sum x_j:
        sum_(p in c) d_ap = n_c q_a + Q_c - 2 x_a.X_c   (p = a adds 0)
    and the same over the whole batch; the separable form then needs no pairwise
    distance at all. Plain autograd differentiates it. Codes are centred first
    (distances do not change) to keep the cancellation small.

    Shape:
        x: (B, N) float64 (sums of B N terms); labels: (B,) integer with at least
        one valid triplet. Output: float64 scalar.

    Source: M.-O. Arsenault, "Lossless Triplet loss", 2018.
    """
    batch = len(x)
    x = x - x.mean(dim=0).detach()
    _, cls, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    counts = counts.to(x.dtype)
    q = x.pow(2).sum(dim=1)
    class_q = torch.zeros(len(counts), dtype=x.dtype, device=x.device).index_add(0, cls, q)
    class_x = torch.zeros(len(counts), x.shape[1], dtype=x.dtype, device=x.device).index_add(0, cls, x)
    n_c = counts[cls]
    same = n_c * q + class_q[cls] - 2.0 * (x * class_x[cls]).sum(dim=1)
    every = batch * q + q.sum() - 2.0 * (x @ x.sum(dim=0))
    n_pos, n_neg = n_c - 1, batch - n_c
    total = (n_neg * same - n_pos * (every - same)).sum() + n * (n_pos * n_neg).sum()
    return total / (n_pos * n_neg).sum()
