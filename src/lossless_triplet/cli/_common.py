"""Small argument helpers shared by the sub-commands."""

from __future__ import annotations

import argparse

from ..viewspec import AUTO, VIEWS, parse_view


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


# Names for argparse choices, kept here so that building the parser imports neither torch nor
# pandas (tests/test_cli.py checks they equal losses.LOSSES).
LOSS_NAMES = ("triplet", "linear_lossless", "lossless", "contrastive")
AUTO_VIEW = AUTO
VIEW_NAMES = VIEWS
VIEW_HELP = ("auto (default): chosen on the training table by inner leave-one-known-fault-out validation among "
             "the views its column names allow; or BASE[+OPTION...]: base raw (the columns), columns (each column "
             "signed-log, robust-scaled, clipped) or kpi-stats (order statistics per KPI group); options +link "
             "(link balances), +pooled (statistics over all columns), +delta (change since the previous row), "
             "+baseline (deviation from the median of the previous 10 rows; rows must be one network's minutes "
             "in order)")
FEATURE_WEIGHT_HELP = ("weight of the view's features beside the code in the fault memory (0: the code alone, "
                       "inf: the features alone; default: chosen on the training table)")


def view_name(text: str) -> str:
    """argparse ``type=`` for ``--view``: ``auto`` or a valid view name, in canonical form.

    Raises:
        argparse.ArgumentTypeError: naming the problem (from :func:`lossless_triplet.viewspec.parse_view`).
    """
    if text == AUTO:
        return text
    try:
        return parse_view(text).name
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def feature_weight(text: str) -> float:
    """argparse ``type=`` for ``--feature-weight``: a number >= 0 or ``inf``."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"--feature-weight {text!r} must be a number >= 0 or inf")
    return value
