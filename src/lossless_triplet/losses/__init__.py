"""Losses for learning bounded codes: the lossless triplet loss and the losses it is compared with.

Each loss exists as a function on explicit triplets/pairs, a function on a
labelled batch (``batch_*``) and an ``nn.Module`` taking ``(embeddings, labels)``.
"""

from .batch import (
    batch_contrastive_loss,
    batch_linear_lossless_triplet_loss,
    batch_lossless_triplet_loss,
    batch_soft_margin_triplet_loss,
    batch_triplet_margin_loss,
)
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
from .modules import (
    ContrastiveLoss,
    LinearLosslessTripletLoss,
    LosslessTripletLoss,
    SoftMarginTripletLoss,
    TripletMarginLoss,
)
from .registry import LOSSES, make_loss

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
    "batch_lossless_triplet_loss",
    "batch_linear_lossless_triplet_loss",
    "batch_triplet_margin_loss",
    "batch_soft_margin_triplet_loss",
    "batch_contrastive_loss",
    "LosslessTripletLoss",
    "LinearLosslessTripletLoss",
    "TripletMarginLoss",
    "SoftMarginTripletLoss",
    "ContrastiveLoss",
    "LOSSES",
    "make_loss",
]
