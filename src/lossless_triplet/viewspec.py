"""Feature-view names, parsed: one base and options joined by ``+`` (``kpi-stats+link+baseline``).

Plain Python (no NumPy, torch or pandas), so the command-line parser can validate a view name
without importing the heavy modules. What each part computes is documented in
:mod:`lossless_triplet.data.views`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .defaults import AUTO_VIEW

__all__ = ["AUTO", "BASES", "OPTIONS", "VIEWS", "ViewSpec", "parse_view"]

AUTO = AUTO_VIEW  # the view chosen by the honest protocol, not a base
BASES = ("raw", "columns", "pooled", "kpi-stats")
# Canonical order of the options in a name (keeps the first round's names: kpi-stats+delta+link).
OPTIONS = ("delta", "link", "pooled", "baseline")
# The views the documentation names; any base with any options parses.
VIEWS = ("raw", "columns", "columns+pooled", "columns+delta", "columns+baseline", "columns+pooled+baseline",
         "pooled", "pooled+baseline",
         "kpi-stats", "kpi-stats+delta", "kpi-stats+link", "kpi-stats+delta+link", "kpi-stats+baseline",
         "kpi-stats+link+baseline", "kpi-stats+link+pooled+baseline")


@dataclass(frozen=True)
class ViewSpec:
    """A parsed view name.

    Attributes:
        base: ``raw`` (the columns as they are), ``columns`` (each column signed-log,
            robust-scaled, clipped), ``pooled`` (order statistics of all those columns as one group:
            which column moved does not matter) or ``kpi-stats`` (order statistics per KPI group).
        delta, link, pooled, baseline: the options (see :mod:`lossless_triplet.data.views`).
    """

    base: str
    delta: bool = False
    link: bool = False
    pooled: bool = False
    baseline: bool = False

    @property
    def name(self) -> str:
        """The canonical name: the base, then the options in :data:`OPTIONS` order."""
        return "+".join([self.base, *(o for o in OPTIONS if getattr(self, o))])

    @property
    def history_rows(self) -> int:
        """Rows before the first one that the view looks at: 10 for ``+baseline``, 1 for ``+delta``."""
        return BASELINE_ROWS if self.baseline else int(self.delta)


BASELINE_ROWS = 10  # rows (minutes for KDDI) whose median is a +baseline view's reference


def parse_view(name: str) -> ViewSpec:
    """Parse ``BASE[+OPTION...]`` (options in any order, each at most once).

    Raises:
        ValueError: an unknown base or option, a repeated option, or options on ``raw``.
    """
    base, *options = str(name).strip().split("+")
    if base not in BASES:
        raise ValueError(f"unknown feature view {name!r}: it must start with one of {', '.join(BASES)} "
                         f"(or be {AUTO!r}); e.g. {', '.join(VIEWS[:4])}")
    unknown = [o for o in options if o not in OPTIONS]
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} in feature view {name!r}; options: {', '.join(OPTIONS)}")
    if len(set(options)) != len(options):
        raise ValueError(f"feature view {name!r} repeats an option")
    if base == "raw" and options:
        raise ValueError(f"feature view {name!r}: the raw view takes no options; use columns+{'+'.join(options)}")
    if base == "pooled" and "pooled" in options:
        raise ValueError(f"feature view {name!r}: the pooled view already pools all columns; drop +pooled")
    return ViewSpec(base, **{o: True for o in options})
