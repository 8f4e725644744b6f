"""Input validation shared by the losses: one clear ValueError per misuse."""

from __future__ import annotations

import torch

REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is not valid; use one of {REDUCTIONS}")


def check_codes(**named: torch.Tensor) -> int:
    """Check that every tensor is a finite floating (B, N) batch of one shape; return N."""
    shapes = {name: tuple(t.shape) for name, t in named.items()}
    for name, t in named.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.ndim != 2:
            raise ValueError(f"{name} must be 2-D (B, N) codes, got shape {tuple(t.shape)}")
        if not t.is_floating_point():
            raise ValueError(f"{name} must be floating point, got {t.dtype}; cast with .float()")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} holds NaN or inf; check the encoder's output")
    if len(set(shapes.values())) > 1:
        raise ValueError(f"all inputs must have the same (B, N) shape, got {shapes}")
    return next(iter(named.values())).shape[1]


def check_unit_interval(**named: torch.Tensor) -> None:
    """The lossless losses need codes in [0, 1]^N so that every squared distance is <= N."""
    for name, t in named.items():
        if t.numel() and (bool((t < 0).any()) or bool((t > 1).any())):
            raise ValueError(
                f"{name} has values outside [0, 1] (min {t.min().item():.4g}, max "
                f"{t.max().item():.4g}); the lossless losses need bounded codes: end the encoder "
                "with a sigmoid head (torch.sigmoid), or pass validate=False if you guarantee it"
            )


def resolve_beta(beta: float | None, n: int) -> float:
    """beta defaults to N (Arsenault 2018); beta < N makes the log argument negative."""
    if beta is None:
        return float(n)
    if not beta >= n:
        raise ValueError(
            f"beta={beta} is smaller than the code width N={n}: the log argument "
            "(beta - d)/beta goes negative for distances in (beta, N]; use beta >= N "
            "(the default beta=None means beta=N)"
        )
    return float(beta)


def check_eps(eps: float) -> None:
    if not eps > 0:
        raise ValueError(f"eps={eps} must be > 0: it keeps -ln(.) finite at the bounds")


def check_margin(margin: float, *, strictly_positive: bool = False) -> None:
    ok = margin > 0 if strictly_positive else margin >= 0
    if not ok or margin != margin or margin == float("inf"):
        bound = "> 0" if strictly_positive else ">= 0"
        raise ValueError(f"margin={margin} must be finite and {bound}")


def check_labels(labels: torch.Tensor, batch_size: int) -> None:
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor of class ids, got {type(labels).__name__}")
    if labels.ndim != 1 or labels.shape[0] != batch_size:
        raise ValueError(
            f"labels must have shape ({batch_size},) to match the embeddings, got {tuple(labels.shape)}"
        )
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"labels must be integer class ids, got {labels.dtype}; use .long()")


SINGLE_CLASS_FIX = (
    "For labelled batches draw P classes x K rows per batch (lossless_triplet.training.BalancedBatchSampler, "
    "or pytorch-metric-learning's MPerClassSampler); for codes already arranged as [anchor | positive | "
    "negative] use an explicit-triplet loss (lossless_triplet_loss(anchor, positive, negative), or "
    "layout='triplets' in lossless_triplet.keras)."
)


def single_class_message(batch_size: int, label) -> str:
    """The error for a batch whose labels are all equal (shared with the Keras losses)."""
    return (f"all {batch_size} labels of the batch are equal ({label}): with one class there is no negative, so "
            "no triplet and no dissimilar pair exists and the loss would be 0 with nothing learned. "
            + SINGLE_CLASS_FIX)


def check_label_variety(labels: torch.Tensor) -> None:
    """Refuse a batch of two or more rows whose labels are all equal.

    Such a batch has no valid triplet and no dissimilar pair BECAUSE of its labels (the seed's
    Keras layout passed with dummy zero labels, a loader that is not class-balanced): returning 0
    would train nothing and say nothing. A batch that merely lacks a positive (every label
    distinct) is a normal event under random sampling and still gives 0 with a graph.

    Shape: labels (B,) integer.

    Raises:
        ValueError: B >= 2 and every label equal; the message names the fix.
    """
    if len(labels) >= 2 and bool((labels == labels[0]).all()):
        raise ValueError(single_class_message(len(labels), labels[0].item()))
