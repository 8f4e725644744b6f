"""The five losses on explicit triplets / pairs, as plain functions.

d(x, y) is the squared Euclidean distance and N the code width throughout. Half
precision inputs are computed in float32 and the result returned in float32;
float32 and float64 inputs are computed in their own dtype.
"""

from __future__ import annotations

import torch

from ..distances import safe_sqrt, squared_distances
from ._checks import check_codes, check_eps, check_margin, check_reduction, check_unit_interval, resolve_beta
from ._precision import upcast

__all__ = [
    "EPS",
    "TRIPLET_MARGIN",
    "CONTRASTIVE_MARGIN",
    "lossless_triplet_loss",
    "linear_lossless_triplet_loss",
    "triplet_margin_loss",
    "soft_margin_triplet_loss",
    "contrastive_loss",
    "lossless_positive_term",
    "lossless_negative_term",
]

EPS = 1e-8  # Arsenault 2018, "Lossless Triplet loss"
TRIPLET_MARGIN = 0.2  # Schroff, Kalenichenko, Philbin, FaceNet, CVPR 2015
CONTRASTIVE_MARGIN = 1.0  # Hadsell, Chopra, LeCun, CVPR 2006


def _compute_dtype(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Upcast float16/bfloat16 to float32: ln(eps) and 1 - d/beta need float32 at least."""
    if tensors[0].dtype in (torch.float16, torch.bfloat16):
        return tuple(upcast(t, torch.float32) for t in tensors)
    return tensors


def _triplet_distances(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, *, validate: bool,
                       bounded: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(d(a,p), d(a,n))``, squared, in the compute dtype, after checking the codes (and their [0, 1]
    range for the ``bounded`` losses) when ``validate``: the common start of every explicit-triplet loss."""
    if validate:
        check_codes(anchor=anchor, positive=positive, negative=negative)
        if bounded:
            check_unit_interval(anchor=anchor, positive=positive, negative=negative)
    anchor, positive, negative = _compute_dtype(anchor, positive, negative)
    return squared_distances(anchor, positive), squared_distances(anchor, negative)


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return loss
    if loss.numel() == 0:
        # An empty batch has no loss; keep a graph so backward() still works.
        return loss.sum()
    return loss.sum() if reduction == "sum" else loss.mean()


def lossless_positive_term(d_ap: torch.Tensor, n: int, beta: float, eps: float) -> torch.Tensor:
    """Positive log term of the lossless loss, -ln(-d_ap/beta + 1 + eps), element-wise.

    Evaluated as -ln((beta - d_ap)/beta + eps): in float32 ``1 + 1e-8`` rounds to
    1, so the paper's order would give ln(0) = -inf at d_ap = beta, while this
    order keeps eps. Distances are clamped into [0, N], their range for codes
    in [0, 1]^N, to absorb rounding of distances computed by expansion.

    Shape: d_ap any shape; output the same shape.
    Source: M.-O. Arsenault, "Lossless Triplet loss", 2018.
    """
    return -torch.log((beta - d_ap.clamp(0.0, n)) / beta + eps)


def lossless_negative_term(d_an: torch.Tensor, n: int, beta: float, eps: float) -> torch.Tensor:
    """Negative log term of the lossless loss, -ln(-(N - d_an)/beta + 1 + eps), element-wise.

    Evaluated as -ln((beta - N + d_an)/beta + eps), so d_an = 0 with beta = N gives
    -ln(1e-8) = 18.42 in float32 rather than inf (see :func:`lossless_positive_term`).

    Shape: d_an any shape; output the same shape.
    Source: M.-O. Arsenault, "Lossless Triplet loss", 2018.
    """
    return -torch.log((beta - n + d_an.clamp(0.0, n)) / beta + eps)


def lossless_triplet_loss(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    *,
    beta: float | None = None,
    eps: float = EPS,
    reduction: str = "mean",
    validate: bool = True,
) -> torch.Tensor:
    """Lossless triplet loss of Arsenault (2018) on explicit triplets.

    loss = -ln(-d(a,p)/beta + 1 + eps) - ln(-(N - d(a,n))/beta + 1 + eps)

    Unlike the hinge of the triplet margin loss, no triplet ever stops
    contributing: the log keeps a gradient everywhere and grows sharply as a
    positive nears distance beta or a negative nears distance 0. It needs codes
    in [0, 1]^N (a sigmoid head), which bounds every squared distance by N.

    Args:
        anchor, positive, negative: codes in [0, 1].
        beta: scaling, default N; must be >= N.
        eps: keeps the log finite at the bounds (default 1e-8, as in the paper).
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
        validate: check shapes, finiteness and the [0, 1] range (skip for speed
            only when the codes come from a sigmoid).

    Shape:
        anchor, positive, negative: (B, N) float. Output: scalar, or (B,) for
        ``reduction="none"``. Float16/bfloat16 inputs give a float32 result.

    Raises:
        ValueError: bad shapes, NaN/inf, codes outside [0, 1], beta < N, eps <= 0,
            unknown reduction.

    Source: M.-O. Arsenault, "Lossless Triplet loss", 2018.
    """
    check_reduction(reduction)
    check_eps(eps)
    d_ap, d_an = _triplet_distances(anchor, positive, negative, validate=validate, bounded=True)
    n = anchor.shape[1]
    beta = resolve_beta(beta, n)
    return _reduce(lossless_positive_term(d_ap, n, beta, eps) + lossless_negative_term(d_an, n, beta, eps), reduction)


def linear_lossless_triplet_loss(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    *,
    reduction: str = "mean",
    validate: bool = True,
) -> torch.Tensor:
    """Linear lossless triplet loss: d(a,p) - d(a,n) + N, with no hinge.

    For codes in [0, 1]^N every squared distance is <= N, so the value is >= 0
    without a max(., 0), and every triplet keeps its gradient.

    Shape:
        anchor, positive, negative: (B, N) float in [0, 1]. Output: scalar, or
        (B,) for ``reduction="none"``.

    Raises:
        ValueError: bad shapes, NaN/inf, codes outside [0, 1], unknown reduction.

    Source: M.-O. Arsenault, "Lossless Triplet loss", 2018.
    """
    check_reduction(reduction)
    d_ap, d_an = _triplet_distances(anchor, positive, negative, validate=validate, bounded=True)
    return _reduce(d_ap - d_an + anchor.shape[1], reduction)


def triplet_margin_loss(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    *,
    margin: float = TRIPLET_MARGIN,
    reduction: str = "mean",
    validate: bool = True,
) -> torch.Tensor:
    """Triplet margin loss of FaceNet on squared distances: max(d(a,p) - d(a,n) + margin, 0).

    Triplets already past the margin give exactly 0 and no gradient: the
    behaviour the lossless loss was designed to avoid. Codes need not be bounded.

    Shape:
        anchor, positive, negative: (B, N) float. Output: scalar, or (B,) for
        ``reduction="none"``.

    Raises:
        ValueError: bad shapes, NaN/inf, negative or non-finite margin, unknown reduction.

    Source: F. Schroff, D. Kalenichenko, J. Philbin, "FaceNet", CVPR 2015 (alpha = 0.2).
    """
    check_reduction(reduction)
    check_margin(margin)
    d_ap, d_an = _triplet_distances(anchor, positive, negative, validate=validate, bounded=False)
    return _reduce(torch.relu(d_ap - d_an + margin), reduction)


def soft_margin_triplet_loss(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    *,
    reduction: str = "mean",
    validate: bool = True,
) -> torch.Tensor:
    """Soft-margin triplet loss ln(1 + exp(d(a,p) - d(a,n))): the hinge replaced by a softplus.

    The standard answer to the seed's complaint about max(., 0): no triplet ever stops
    contributing (the gradient with respect to d(a,p) - d(a,n) is its sigmoid, small but never 0
    past the "margin"), and there is no margin to choose. Evaluated as ``logaddexp(x, 0)``: exact
    in the input's dtype, no overflow for any difference (1e4 gives 1e4, -1e4 gives 0), and a
    gradient of 1/2 at x = 0 (equal codes give a finite gradient, 0 with respect to the codes).
    d is the SQUARED Euclidean distance, as in every loss of this package; Hermans et al. and
    pytorch-metric-learning (``TripletMarginLoss(smooth_loss=True)``, whose ``LpDistance`` has
    power 1) use the unsquared distance, whose gradient is undefined at equal codes.

    Shape:
        anchor, positive, negative: (B, N) float (any range). Output: scalar, or (B,) for
        ``reduction="none"``. Float16/bfloat16 inputs give a float32 result.

    Raises:
        ValueError: bad shapes, NaN/inf, unknown reduction.

    Source: A. Hermans, L. Beyer, B. Leibe, "In Defense of the Triplet Loss for Person
    Re-Identification", arXiv:1703.07737, 2017 (section 2, "soft-margin").
    """
    check_reduction(reduction)
    d_ap, d_an = _triplet_distances(anchor, positive, negative, validate=validate, bounded=False)
    difference = d_ap - d_an
    return _reduce(torch.logaddexp(difference, torch.zeros_like(difference)), reduction)


def contrastive_loss(
    x1: torch.Tensor,
    x2: torch.Tensor,
    similar: torch.Tensor,
    *,
    margin: float = CONTRASTIVE_MARGIN,
    reduction: str = "mean",
    validate: bool = True,
) -> torch.Tensor:
    """Contrastive loss on pairs: similar ½D², dissimilar ½max(0, margin - D)².

    D = ||x1 - x2|| is the (unsquared) Euclidean distance. The similar branch
    uses D² directly and the dissimilar branch a square root whose gradient is
    0 (not NaN) for identical points.

    Shape:
        x1, x2: (B, N) float; similar: (B,) bool. Output: scalar, or (B,) for
        ``reduction="none"``.

    Raises:
        ValueError: bad shapes, NaN/inf, similar not a (B,) bool tensor,
            margin <= 0, unknown reduction.

    Source: R. Hadsell, S. Chopra, Y. LeCun, "Dimensionality Reduction by
    Learning an Invariant Mapping", CVPR 2006 (margin m = 1).
    """
    check_reduction(reduction)
    check_margin(margin, strictly_positive=True)
    if validate:
        check_codes(x1=x1, x2=x2)
        if not isinstance(similar, torch.Tensor) or similar.dtype != torch.bool or similar.shape != (x1.shape[0],):
            raise ValueError(
                f"similar must be a bool tensor of shape ({x1.shape[0]},); got "
                f"{getattr(similar, 'dtype', type(similar).__name__)} {tuple(getattr(similar, 'shape', ()))}"
            )
    x1, x2 = _compute_dtype(x1, x2)
    d = squared_distances(x1, x2)
    dissimilar = torch.relu(margin - safe_sqrt(d)).pow(2)
    loss = 0.5 * torch.where(similar, d, dissimilar)
    return _reduce(loss, reduction)
