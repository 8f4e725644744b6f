"""Small argument helpers shared by the sub-commands."""

from __future__ import annotations

import argparse

from ..defaults import AUTO_VIEW, LOSS_NAMES
from ..representation import Representation
from ..viewspec import parse_view


def require_positive(args, *names: str) -> None:
    """Refuse an option below 1, naming its flag (``dim`` -> ``--dim``); options not given (None) pass.

    Raises:
        ValueError: ``--NAME VALUE must be >= 1``.
    """
    for name in names:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} {value} must be >= 1")


def csv_list(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]`` (argparse ``type=`` for comma-separated options)."""
    return [item.strip() for item in text.split(",") if item.strip()]


VIEW_HELP = ("auto (default): chosen on the training table by inner leave-one-known-fault-out validation among "
             "the views its column names allow; or BASE[+OPTION...]: base raw (the columns), columns (each column "
             "signed-log, robust-scaled, clipped), pooled (order statistics of all columns as one group) or "
             "kpi-stats (order statistics per KPI group); options +link "
             "(link balances), +pooled (statistics over all columns), +delta (change since the previous row), "
             "+baseline (deviation from the median of the previous 10 rows; rows must be one network's minutes "
             "in order)")
REPRESENTATION_HELP = ("what the fault memory compares, terms joined by +: code (the learned code), features "
                       "(the view's scaled features; W*features beside the code), W*excess (how far each feature "
                       "lies beyond its range in the known training rows), W*sorted_excess (the same, sorted by "
                       "size: whichever column moved), e.g. code, features, code+0.25*features+16*sorted_excess; "
                       "default: chosen on the training table")


LOSS_HELP = (f"a loss name ({', '.join(LOSS_NAMES)}), optionally with hyper-parameters after a colon, "
             "e.g. lossless:beta=2N (N: the code width) or triplet:margin=0.5")


def loss_name(text: str) -> str:
    """argparse ``type=`` for a loss name with optional options (``lossless:beta=2N``); the base name is
    checked here, the options when the loss is built (:func:`lossless_triplet.losses.make_loss`).

    Raises:
        argparse.ArgumentTypeError: an unknown base name, listing the known ones.
    """
    base = text.strip().partition(":")[0]
    if base not in LOSS_NAMES:
        raise argparse.ArgumentTypeError(f"unknown loss {base!r}; choose from {', '.join(LOSS_NAMES)}")
    return text.strip()


def loss_list(text: str) -> list[str]:
    """argparse ``type=`` for ``--losses``: comma-separated loss names; options with several
    values are joined by ``;`` inside one name (``lossless:beta=2N;eps=1e-6``). Base names are
    checked here (:func:`loss_name`), options when the losses are built.

    Raises:
        argparse.ArgumentTypeError: an unknown base name, listing the known ones."""
    return [loss_name(item).replace(";", ",") for item in csv_list(text)]


def view_name(text: str) -> str:
    """argparse ``type=`` for ``--view``: ``auto`` or a valid view name, in canonical form.

    Raises:
        argparse.ArgumentTypeError: naming the problem (from :func:`lossless_triplet.viewspec.parse_view`).
    """
    if text == AUTO_VIEW:
        return text
    try:
        return parse_view(text).name
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def representation_name(text: str) -> str:
    """argparse ``type=`` for ``--representation``: a valid name, in canonical form.

    Raises:
        argparse.ArgumentTypeError: naming the valid forms.
    """
    try:
        return Representation.parse(text).name
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
