"""The losses by the names the CLI and metrics.json use."""

from __future__ import annotations

from torch import nn

from .modules import ContrastiveLoss, LinearLosslessTripletLoss, LosslessTripletLoss, TripletMarginLoss

LOSSES: dict[str, type[nn.Module]] = {
    "triplet": TripletMarginLoss,
    "linear_lossless": LinearLosslessTripletLoss,
    "lossless": LosslessTripletLoss,
    "contrastive": ContrastiveLoss,
}


def make_loss(name: str, **kwargs) -> nn.Module:
    """The loss module registered under ``name``, built with ``kwargs``.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose from {', '.join(LOSSES)}")
    return LOSSES[name](**kwargs)
