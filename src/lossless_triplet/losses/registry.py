"""The losses by the names the CLI and metrics.json use, with optional hyper-parameters.

A loss name is a registered name, optionally followed by ``:`` and ``key=value`` options joined
by ``,``: ``lossless``, ``lossless:beta=64``, ``triplet:margin=0.5``. Values are numbers, or
``kN`` (k times the code width N, e.g. ``beta=2N``) where the code width is known.
"""

from __future__ import annotations

import inspect

from torch import nn

from ..defaults import LOSS_NAMES
from .modules import (
    ContrastiveLoss,
    LinearLosslessTripletLoss,
    LosslessTripletLoss,
    SoftMarginTripletLoss,
    TripletMarginLoss,
)

# keyed by lossless_triplet.defaults.LOSS_NAMES, in that order
LOSSES: dict[str, type[nn.Module]] = dict(zip(LOSS_NAMES, (
    TripletMarginLoss, LinearLosslessTripletLoss, LosslessTripletLoss, ContrastiveLoss, SoftMarginTripletLoss),
    strict=True))
_NUMERIC_OPTIONS = ("beta", "eps", "margin")


def parse_loss_name(name: str, embedding_dim: int | None = None) -> tuple[str, dict[str, float]]:
    """``(registered name, options)`` of a loss name (see the module docstring).

    Raises:
        ValueError: an unknown loss, an option the loss does not take, a value that is not a
            number (or ``kN`` without a known code width); the message lists what is valid.
    """
    base, _, rest = str(name).strip().partition(":")
    if base not in LOSSES:
        raise ValueError(f"unknown loss {base!r}; choose from {', '.join(LOSSES)}")
    accepted = [p for p in inspect.signature(LOSSES[base]).parameters if p in _NUMERIC_OPTIONS]
    options: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, equals, text = (s.strip() for s in item.partition("="))
        if not equals or key not in accepted:
            raise ValueError(f"loss option {item!r} is not valid for {base}; it takes "
                             f"{', '.join(k + '=NUMBER' for k in accepted) or 'no option'} (e.g. lossless:beta=2N)")
        try:
            if text.upper().endswith("N"):
                if embedding_dim is None:
                    raise ValueError
                options[key] = float(text[:-1] or 1) * embedding_dim
            else:
                options[key] = float(text)
        except ValueError:
            raise ValueError(f"loss option {key}={text!r} must be a number, or kN (k times the code width N)"
                             + ("" if embedding_dim else " where the code width is known")) from None
    return base, options


def make_loss(name: str, *, embedding_dim: int | None = None, **kwargs) -> nn.Module:
    """The loss module registered under ``name`` (options after ``:`` allowed), built with ``kwargs``.

    Args:
        name: e.g. ``"triplet"``, ``"lossless:beta=2N"``.
        embedding_dim: the code width N, for option values written ``kN``.
        kwargs: further constructor arguments (e.g. ``validate=False``).

    Raises:
        ValueError: an unknown name or option (the message lists the valid ones), a bad value
            (from the loss's own checks).
    """
    base, options = parse_loss_name(name, embedding_dim)
    return LOSSES[base](**options, **kwargs)
