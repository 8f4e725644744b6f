"""``nn.Module`` wrappers: each stores its hyper-parameters and calls its batch function.

Call every module as ``loss_fn(embeddings, labels)`` (the triplet losses mine
the batch as their ``mining`` says, batch-all by default) or
``loss_fn(embeddings, labels, indices_tuple)`` with indices from any miner, e.g.
pytorch-metric-learning's (then ``mining`` must be ``"all"``).
"""

from __future__ import annotations

import torch
from torch import nn

from ..mining import IndicesTuple, check_mining
from .batch import (
    batch_contrastive_loss,
    batch_linear_lossless_triplet_loss,
    batch_lossless_triplet_loss,
    batch_triplet_margin_loss,
)
from .functional import CONTRASTIVE_MARGIN, EPS, TRIPLET_MARGIN

__all__ = ["LosslessTripletLoss", "LinearLosslessTripletLoss", "TripletMarginLoss", "ContrastiveLoss"]


class LosslessTripletLoss(nn.Module):
    """Lossless triplet loss (Arsenault 2018), mean over all valid triplets of a batch.

    Args:
        beta: scaling, default N (the code width); must be >= N.
        eps: keeps the log finite at the bounds (default 1e-8).
        mining: ``"all"`` (batch-all, default) | ``"hard"`` | ``"semihard"``.
        validate: check shapes, finiteness and the [0, 1] range on every call.

    Shape:
        embeddings: (B, N) float in [0, 1]; labels: (B,) int; optional
        indices_tuple ``(anchor, positive, negative)``. Output: scalar.

    Raises:
        ValueError: an unknown ``mining`` (at construction); otherwise see
            :func:`~lossless_triplet.losses.batch_lossless_triplet_loss`.
    """

    def __init__(
        self, beta: float | None = None, eps: float = EPS, *, mining: str = "all", validate: bool = True
    ) -> None:
        super().__init__()
        check_mining(mining)
        self.beta = beta
        self.eps = eps
        self.mining = mining
        self.validate = validate

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
            validate=self.validate,
        )

    def extra_repr(self) -> str:
        return f"beta={self.beta}, eps={self.eps}, mining={self.mining!r}"


class LinearLosslessTripletLoss(nn.Module):
    """Linear lossless triplet loss d(a,p) - d(a,n) + N (Arsenault 2018), batch-all mean.

    Args:
        mining: ``"all"`` (batch-all, default) | ``"hard"`` | ``"semihard"``.
        validate: check shapes, finiteness and the [0, 1] range on every call.

    Shape:
        embeddings: (B, N) float in [0, 1]; labels: (B,) int; optional
        indices_tuple ``(anchor, positive, negative)``. Output: scalar.

    Raises:
        ValueError: an unknown ``mining`` (at construction); otherwise see
            :func:`~lossless_triplet.losses.batch_linear_lossless_triplet_loss`.
    """

    def __init__(self, *, mining: str = "all", validate: bool = True) -> None:
        super().__init__()
        check_mining(mining)
        self.mining = mining
        self.validate = validate

    def forward(
        self, embeddings: torch.Tensor, labels: torch.Tensor, indices_tuple: IndicesTuple | None = None
    ) -> torch.Tensor:
        return batch_linear_lossless_triplet_loss(
            embeddings, labels, mining=self.mining, indices_tuple=indices_tuple, validate=self.validate
        )

    def extra_repr(self) -> str:
        return f"mining={self.mining!r}"


class TripletMarginLoss(nn.Module):
    """Triplet margin loss max(d_ap - d_an + margin, 0) (FaceNet, CVPR 2015), batch-all mean.

    Args:
        margin: alpha, default 0.2 as in FaceNet.
        mining: ``"all"`` (batch-all, default) | ``"hard"`` (Hermans et al. 2017) |
            ``"semihard"`` (FaceNet: d_ap < d_an < d_ap + margin).
        validate: check shapes and finiteness on every call.

    Shape:
        embeddings: (B, N) float; labels: (B,) int; optional indices_tuple
        ``(anchor, positive, negative)``. Output: scalar.

    Raises:
        ValueError: an unknown ``mining`` (at construction); otherwise see
            :func:`~lossless_triplet.losses.batch_triplet_margin_loss`.
    """

    def __init__(self, margin: float = TRIPLET_MARGIN, *, mining: str = "all", validate: bool = True) -> None:
        super().__init__()
        check_mining(mining)
        self.margin = margin
        self.mining = mining
        self.validate = validate

    def forward(
        self, embeddings: torch.Tensor, labels: torch.Tensor, indices_tuple: IndicesTuple | None = None
    ) -> torch.Tensor:
        return batch_triplet_margin_loss(
            embeddings,
            labels,
            margin=self.margin,
            mining=self.mining,
            indices_tuple=indices_tuple,
            validate=self.validate,
        )

    def extra_repr(self) -> str:
        return f"margin={self.margin}, mining={self.mining!r}"


class ContrastiveLoss(nn.Module):
    """Contrastive loss (Hadsell, Chopra, LeCun, CVPR 2006), mean over all pairs i < j.

    Args:
        margin: m, default 1.0.

    Shape:
        embeddings: (B, N) float; labels: (B,) int; optional pair indices_tuple
        ``(a1, p, a2, n)``. Output: scalar.

    Raises:
        ValueError: see :func:`~lossless_triplet.losses.batch_contrastive_loss`.
    """

    def __init__(self, margin: float = CONTRASTIVE_MARGIN, *, validate: bool = True) -> None:
        super().__init__()
        self.margin = margin
        self.validate = validate

    def forward(
        self, embeddings: torch.Tensor, labels: torch.Tensor, indices_tuple: IndicesTuple | None = None
    ) -> torch.Tensor:
        return batch_contrastive_loss(
            embeddings, labels, margin=self.margin, indices_tuple=indices_tuple, validate=self.validate
        )

    def extra_repr(self) -> str:
        return f"margin={self.margin}"
