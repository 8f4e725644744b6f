"""``nn.Module`` wrappers: each stores its hyper-parameters and calls its batch function.

Call every module as ``loss_fn(embeddings, labels)`` (the triplet losses mine
the batch as their ``mining`` says, batch-all by default) or
``loss_fn(embeddings, labels, indices_tuple)`` with indices from any miner, e.g.
pytorch-metric-learning's (then ``mining`` must be ``"all"``). Each takes ``reduction``
(``"mean"`` over the triplets or pairs, ``"sum"``, or ``"none"``: per anchor, see
:mod:`lossless_triplet.losses.batch`).

How they differ from the losses users know (each class says the rest):

- ``torch.nn.TripletMarginLoss(margin=1.0, p=2)`` takes explicit ``(anchor, positive, negative)``
  tensors, uses the UNSQUARED p-norm distance (with ``eps=1e-6`` added to the difference) and
  averages over the B triplets it is given. Every loss here uses the SQUARED Euclidean distance
  (finite gradient at equal codes), mines the triplets from labels and averages over all of them.
- pytorch-metric-learning's ``TripletMarginLoss(margin=0.05)`` L2-normalises the embeddings,
  uses the unsquared distance, and its default ``AvgNonZeroReducer`` divides by the number of
  triplets with a NON-ZERO loss; here zero-loss triplets count in the mean (PML's
  ``MeanReducer``). With ``distance=LpDistance(normalize_embeddings=False, power=2)`` and
  ``reducer=MeanReducer()`` PML gives exactly our :class:`TripletMarginLoss` (tested), and with
  ``smooth_loss=True, margin=0`` our :class:`SoftMarginTripletLoss`.
"""

from __future__ import annotations

import torch
from torch import nn

from ..mining import IndicesTuple, check_mining
from ._checks import check_eps, check_margin, check_reduction
from .batch import (
    batch_contrastive_loss,
    batch_linear_lossless_triplet_loss,
    batch_lossless_triplet_loss,
    batch_soft_margin_triplet_loss,
    batch_triplet_margin_loss,
)
from .functional import CONTRASTIVE_MARGIN, EPS, TRIPLET_MARGIN

__all__ = [
    "LosslessTripletLoss",
    "LinearLosslessTripletLoss",
    "TripletMarginLoss",
    "SoftMarginTripletLoss",
    "ContrastiveLoss",
]


class _TripletModule(nn.Module):
    """What the triplet modules share: ``mining``, ``reduction`` and ``validate``, checked and stored.

    Raises:
        ValueError: an unknown ``mining`` or ``reduction``.
    """

    def __init__(self, mining: str, reduction: str, validate: bool) -> None:
        super().__init__()
        check_mining(mining)
        check_reduction(reduction)
        self.mining = mining
        self.reduction = reduction
        self.validate = validate

    def _options_repr(self) -> str:
        return f"mining={self.mining!r}, reduction={self.reduction!r}"


class LosslessTripletLoss(_TripletModule):
    """Lossless triplet loss (Arsenault 2018), mean over all valid triplets of a batch.

    Args:
        beta: scaling, default N (the code width); must be >= N.
        eps: keeps the log finite at the bounds (default 1e-8).
        mining: ``"all"`` (batch-all, default) | ``"hard"`` | ``"semihard"``.
        reduction: ``"mean"`` (default) | ``"sum"`` | ``"none"`` (per anchor).
        validate: check shapes, finiteness and the [0, 1] range on every call.

    Unlike ``torch.nn.TripletMarginLoss`` and PML's ``TripletMarginLoss`` there is no margin and
    no hinge: every triplet contributes a log term, and codes must lie in [0, 1]^N (a sigmoid
    head) so that squared distances are bounded by N <= beta.

    Shape:
        embeddings: (B, N) float in [0, 1]; labels: (B,) int; optional
        indices_tuple ``(anchor, positive, negative)``. Output: scalar, or (B,) for
        ``reduction="none"``.

    Raises:
        ValueError: eps <= 0, an unknown ``mining`` or ``reduction`` (at construction); otherwise see
            :func:`~lossless_triplet.losses.batch_lossless_triplet_loss`.
    """

    def __init__(
        self, beta: float | None = None, eps: float = EPS, *, mining: str = "all", reduction: str = "mean",
        validate: bool = True,
    ) -> None:
        check_eps(eps)
        super().__init__(mining, reduction, validate)
        self.beta = beta
        self.eps = eps

    def forward(
        self, embeddings: torch.Tensor, labels: torch.Tensor, indices_tuple: IndicesTuple | None = None
    ) -> torch.Tensor:
        return batch_lossless_triplet_loss(
            embeddings,
            labels,
            beta=self.beta,
            eps=self.eps,
            mining=self.mining,
            indices_tuple=indices_tuple,
            reduction=self.reduction,
            validate=self.validate,
        )

    def extra_repr(self) -> str:
        return f"beta={self.beta}, eps={self.eps}, {self._options_repr()}"


class LinearLosslessTripletLoss(_TripletModule):
    """Linear lossless triplet loss d(a,p) - d(a,n) + N (Arsenault 2018), batch-all mean.

    Args:
        mining: ``"all"`` (batch-all, default) | ``"hard"`` | ``"semihard"``.
        reduction: ``"mean"`` (default) | ``"sum"`` | ``"none"`` (per anchor).
        validate: check shapes, finiteness and the [0, 1] range on every call.

    Unlike ``torch.nn.TripletMarginLoss`` there is no hinge: the hinge-free difference of squared
    distances, kept >= 0 by the constant N (codes in [0, 1]^N).

    Shape:
        embeddings: (B, N) float in [0, 1]; labels: (B,) int; optional
        indices_tuple ``(anchor, positive, negative)``. Output: scalar, or (B,) for
        ``reduction="none"``.

    Raises:
        ValueError: an unknown ``mining`` or ``reduction`` (at construction); otherwise see
            :func:`~lossless_triplet.losses.batch_linear_lossless_triplet_loss`.
    """

    def __init__(self, *, mining: str = "all", reduction: str = "mean", validate: bool = True) -> None:
        super().__init__(mining, reduction, validate)

    def forward(
        self, embeddings: torch.Tensor, labels: torch.Tensor, indices_tuple: IndicesTuple | None = None
    ) -> torch.Tensor:
        return batch_linear_lossless_triplet_loss(
            embeddings, labels, mining=self.mining, indices_tuple=indices_tuple, reduction=self.reduction,
            validate=self.validate,
        )

    def extra_repr(self) -> str:
        return self._options_repr()


class TripletMarginLoss(_TripletModule):
    """Triplet margin loss max(d_ap - d_an + margin, 0) (FaceNet, CVPR 2015), batch-all mean.

    Args:
        margin: alpha, default 0.2 as in FaceNet.
        mining: ``"all"`` (batch-all, default) | ``"hard"`` (Hermans et al. 2017) |
            ``"semihard"`` (FaceNet: d_ap < d_an < d_ap + margin).
        reduction: ``"mean"`` (default) | ``"sum"`` | ``"none"`` (per anchor).
        validate: check shapes and finiteness on every call.

    Differences from the namesakes: ``torch.nn.TripletMarginLoss`` has margin 1.0, the unsquared
    distance and explicit triplets; PML's has margin 0.05, L2-normalised embeddings, the
    unsquared distance and divides by the number of non-zero triplets. This one: margin 0.2 on
    SQUARED distances (FaceNet), labels in, and the mean over every chosen triplet, zeros included.

    Shape:
        embeddings: (B, N) float; labels: (B,) int; optional indices_tuple
        ``(anchor, positive, negative)``. Output: scalar, or (B,) for ``reduction="none"``.

    Raises:
        ValueError: a negative or non-finite margin, an unknown ``mining`` or ``reduction`` (at
            construction); otherwise see :func:`~lossless_triplet.losses.batch_triplet_margin_loss`.
    """

    def __init__(self, margin: float = TRIPLET_MARGIN, *, mining: str = "all", reduction: str = "mean",
                 validate: bool = True) -> None:
        check_margin(margin)
        super().__init__(mining, reduction, validate)
        self.margin = margin

    def forward(
        self, embeddings: torch.Tensor, labels: torch.Tensor, indices_tuple: IndicesTuple | None = None
    ) -> torch.Tensor:
        return batch_triplet_margin_loss(
            embeddings,
            labels,
            margin=self.margin,
            mining=self.mining,
            indices_tuple=indices_tuple,
            reduction=self.reduction,
            validate=self.validate,
        )

    def extra_repr(self) -> str:
        return f"margin={self.margin}, {self._options_repr()}"


class SoftMarginTripletLoss(_TripletModule):
    """Soft-margin triplet loss ln(1 + exp(d_ap - d_an)) (Hermans, Beyer, Leibe 2017), batch-all mean.

    The hinge max(d_ap - d_an + margin, 0) replaced by a softplus of d_ap - d_an: no margin to
    choose, and no triplet ever stops contributing (the answer to the seed's complaint that the
    hinge throws away every triplet past the margin, with codes left unbounded).

    Args:
        mining: ``"all"`` (batch-all, default) | ``"hard"`` (batch hard, the paper's pairing) |
            ``"semihard"`` (no margin condition).
        reduction: ``"mean"`` (default) | ``"sum"`` | ``"none"`` (per anchor).
        validate: check shapes and finiteness on every call.

    Differences from the namesakes: the paper and sentence-transformers'
    ``BatchHardSoftMarginTripletLoss`` use the unsquared distance and batch-hard mining; PML's
    ``TripletMarginLoss(smooth_loss=True)`` adds its margin (0.05) inside the softplus. This one:
    SQUARED distances (finite gradient at equal codes), no margin, batch-all by default.

    Shape:
        embeddings: (B, N) float; labels: (B,) int; optional indices_tuple
        ``(anchor, positive, negative)``. Output: scalar, or (B,) for ``reduction="none"``.

    Raises:
        ValueError: an unknown ``mining`` or ``reduction`` (at construction); otherwise see
            :func:`~lossless_triplet.losses.batch_soft_margin_triplet_loss`.
    """

    def __init__(self, *, mining: str = "all", reduction: str = "mean", validate: bool = True) -> None:
        super().__init__(mining, reduction, validate)

    def forward(
        self, embeddings: torch.Tensor, labels: torch.Tensor, indices_tuple: IndicesTuple | None = None
    ) -> torch.Tensor:
        return batch_soft_margin_triplet_loss(
            embeddings, labels, mining=self.mining, indices_tuple=indices_tuple, reduction=self.reduction,
            validate=self.validate,
        )

    def extra_repr(self) -> str:
        return self._options_repr()


class ContrastiveLoss(nn.Module):
    """Contrastive loss (Hadsell, Chopra, LeCun, CVPR 2006), mean over all pairs i < j.

    Args:
        margin: m, default 1.0 (on the unsquared distance D, as in the paper and PML's
            ``ContrastiveLoss(neg_margin=1)``; PML's default reducer averages only non-zero pairs).
        mining: only ``"all"`` (every pair i < j): accepted so that the five modules share one
            signature; pairs are chosen with a pair ``indices_tuple`` instead.
        reduction: ``"mean"`` (default, over all pairs i < j) | ``"sum"`` | ``"none"`` (per row i).
        validate: check shapes and finiteness on every call.

    Shape:
        embeddings: (B, N) float; labels: (B,) int; optional pair indices_tuple
        ``(a1, p, a2, n)``. Output: scalar, or (B,) for ``reduction="none"``.

    Raises:
        ValueError: margin <= 0 or not finite, a ``mining`` other than ``"all"`` (the message names the
            pair miners), an unknown ``reduction`` (at construction); otherwise
            see :func:`~lossless_triplet.losses.batch_contrastive_loss`.
    """

    def __init__(self, margin: float = CONTRASTIVE_MARGIN, *, mining: str = "all", reduction: str = "mean",
                 validate: bool = True) -> None:
        super().__init__()
        if mining != "all":
            raise ValueError(
                f"mining={mining!r}: the contrastive loss is over pairs, not triplets, and always uses every pair "
                "i < j (mining='all'); to choose pairs, pass a pair miner's indices_tuple (a1, p, a2, n), e.g. "
                "pytorch_metric_learning.miners.PairMarginMiner, as loss(embeddings, labels, indices_tuple)")
        check_margin(margin, strictly_positive=True)
        check_reduction(reduction)
        self.margin = margin
        self.reduction = reduction
        self.validate = validate

    def forward(
        self, embeddings: torch.Tensor, labels: torch.Tensor, indices_tuple: IndicesTuple | None = None
    ) -> torch.Tensor:
        return batch_contrastive_loss(
            embeddings, labels, margin=self.margin, indices_tuple=indices_tuple, reduction=self.reduction,
            validate=self.validate,
        )

    def extra_repr(self) -> str:
        return f"margin={self.margin}, reduction={self.reduction!r}"
