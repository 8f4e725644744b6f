"""Small argument helpers shared by the sub-commands."""

from __future__ import annotations


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
# pandas (tests/test_cli.py checks they equal losses.LOSSES and data.views.VIEWS).
LOSS_NAMES = ("triplet", "linear_lossless", "lossless", "contrastive")
AUTO_VIEW = "auto"
VIEW_NAMES = ("raw", "kpi-stats", "kpi-stats+delta", "kpi-stats+link", "kpi-stats+delta+link", "kpi-stats+baseline",
              "kpi-stats+link+baseline")
