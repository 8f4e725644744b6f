"""Feature views: what the encoder sees of a telemetry row.

One fault type strikes different routers and links; a single example can only
stand for its type if the representation does not depend on *which* link or
node was hit. The ``kpi-stats`` view pools each KPI group (the part of a column
name before ``/``, e.g. ``rx-pps`` in ``rx-pps/IntGW-01+link-...``) into order
statistics that are invariant to permuting the links of the group:

- every value is compressed with the symmetric log sign(x)·ln(1 + |x|)
  (packet rates and counts are heavy-tailed), then each column is
  robust-scaled with its own training median and inter-quartile range, so a
  link carrying 4,700 pps and one carrying 0.1 pps both read "how unusual is
  this link now";
- per group: min, max, mean, std, the 3 lowest and 3 highest scaled values, and
  the fraction of missing cells (a router that is down stops reporting).

``kpi-stats+link`` adds *link balances*: a link measured at both of its ends
(columns ``tx-pps/A+L`` and ``rx-pps/B+L``) should carry what one end sends to
the other, so ``signed_log1p(sent at A) - signed_log1p(received at B)`` (a log
ratio) is about constant in normal traffic whatever its volume, and moves when
the link drops or holds packets. Each directed balance is robust-scaled like a
column, and the balances of one KPI pair form a group pooled like the others.

``+delta`` adds the same statistics of the change since the previous
row (previous row in the given order, i.e. the previous minute for KDDI), which
captures fault onsets. ``+baseline`` adds each statistic minus its median over the
previous :data:`BASELINE_ROWS` rows (NaN ignored): how far this minute is from the
network's recent normal. A median, not a mean, because a fault lasts a few minutes
and should not move its own reference. Deltas and baselines need the rows before:
:meth:`FeatureView.transform` takes them as ``previous`` so a stream read in chunks
gives the same result as the whole table.

``columns`` keeps every column apart (signed log, robust scale, clip): for tables whose names carry
no structure (``kpi_00``, ``kpi_01``, ...). ``pooled`` keeps only the order statistics of ALL
columns (and link balances) as one group, and ``+pooled`` adds them to another base: a view that
does not care which column moved, so that one example of a fault that strikes column 28 still
stands for the same fault striking column 30.

Column names: ``KPI<sep>NODE[+LINK]`` with the separator found from the table (the first of
``/ : | . @`` that at least half of the names hold; ``rx-pps/IntGW-01+link-a``,
``rx-pps:IntGW-01+link-a`` and ``rx_pps.intgw01.link_a`` read alike). Names without it form
groups of one.

Bounded by construction (no float artifacts): a column's spread is at least
:data:`SPREAD_FLOOR` times max(1, |median|) in signed-log units, so a column that never moved in
training (KDDI's admin-status columns: one value in every known-class row) is read in units of that
floor, and every scaled value is clipped to +-:data:`CLIP`; the per-group statistic ``moved`` is the
fraction of the group's training-constant columns that left their training value (|scaled| >= 1).

Views are fitted on training rows only and serialise to JSON (no pickle).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from ..validation import check_is_fitted, check_state, state_header
from ..viewspec import AUTO, BASELINE_ROWS, VIEWS, ViewSpec, parse_view

__all__ = ["VIEWS", "CLIP", "SPREAD_FLOOR", "FeatureView", "column_parts", "kpi_groups", "link_pairs",
           "resolve_view", "signed_log1p"]

# Rows the group statistics gather at once: their (rows, G, W) blocks stay in cache (KDDI, s per 100k
# rows: 1,024: 0.25; 4,096: 0.49)
_POOL_BLOCK = 1024
_MEDIAN_BLOCK = 512  # rows per block of the rolling median: its lanes stay in cache (4,096: 4x slower)
N_EXTREMES = 3  # lowest / highest values kept per group (DESIGN.md prototype)
_STATS = ("min", "max", "mean", "std", *(f"low{i + 1}" for i in range(N_EXTREMES)),
          *(f"high{i + 1}" for i in range(N_EXTREMES)), "missing", "moved")
# Smallest spread of a column, relative to max(1, |median|), in signed-log units: 1e-3 is a 0.1 %
# change of the raw value, about 10^4 float32 roundings of a log value, so a spread below it is
# rounding, not signal (KDDI's always-up admin-status columns had a spread of 6e-14).
SPREAD_FLOOR = 1e-3
CLIP = 50.0  # |scaled value| bound, in spreads: a column 50 spreads away is "far" whatever its cause
ALL_COLUMNS = "*"  # the name of the +pooled group
_SEPARATORS = ("/", ":", "|", ".", "@")


def signed_log1p(x: np.ndarray) -> np.ndarray:
    """sign(x) * ln(1 + |x|): compresses heavy tails, keeps 0 at 0 and the sign (NaN stays NaN)."""
    return np.copysign(np.log1p(np.abs(x)), x)


def column_parts(feature_names: Sequence[str]) -> list[tuple[str, str, str]]:
    """``(kpi, node, link)`` of every column name, ``""`` for a part it does not have.

    The separator is the table's: the first of ``/ : | . @`` held by at least half of the names.
    A name ``KPI<sep>PLACE`` has KPI before the first separator; PLACE is ``NODE+LINK`` (or
    ``NODE<sep>LINK`` without a ``+``), or NODE alone. ``rx-pps/IntGW-01+link-a``,
    ``rx-pps:IntGW-01+link-a`` and ``rx-pps.IntGW-01.link-a`` all give
    ``("rx-pps", "IntGW-01", "link-a")``; a name without the separator is its own KPI.
    """
    names = [str(n) for n in feature_names]
    sep = next((s for s in _SEPARATORS if 2 * sum(s in n for n in names) >= max(len(names), 1)), None)
    parts = []
    for name in names:
        if sep is None or sep not in name:
            parts.append((name, "", ""))
            continue
        kpi, place = name.split(sep, 1)
        inner = "+" if "+" in place else sep if sep in place else None
        node, link = place.split(inner, 1) if inner else (place, "")
        parts.append((kpi, node, link))
    return parts


def kpi_groups(feature_names: Sequence[str]) -> dict[str, list[int]]:
    """Column indices per KPI group (the KPI part of :func:`column_parts`; the whole name without one)."""
    groups: dict[str, list[int]] = {}
    for i, (kpi, _, _) in enumerate(column_parts(feature_names)):
        groups.setdefault(kpi, []).append(i)
    return groups


# Words that name the sending and the receiving end of the same KPI (tx-pps / rx-pps).
DIRECTION_WORDS = (("tx", "rx"), ("outgoing", "incoming"), ("out", "in"), ("sent", "received"))
_SENDING_WORD = re.compile(r"(?<![A-Za-z])(" + "|".join(out for out, _ in DIRECTION_WORDS) + r")(?![A-Za-z])",
                           re.IGNORECASE)


def _receiving_kpi(kpi: str) -> str:
    """The KPI name with every sending word replaced by its partner, in the same case (TX-pps -> RX-pps)."""
    partner = dict(DIRECTION_WORDS)

    def swap(match: re.Match) -> str:
        word = match.group(0)
        other = partner[word.lower()]
        return other.upper() if word.isupper() else other.capitalize() if word[0].isupper() else other

    return _SENDING_WORD.sub(swap, kpi)


def link_pairs(feature_names: Sequence[str]) -> dict[str, np.ndarray]:
    """The directed links measured at both ends, per pair of KPIs: ``"OUT>IN"`` -> (B, 2) int column
    indices ``[sender's OUT column, receiver's IN column]``.

    A column ``KPI/NODE+LINK`` (any separator, see :func:`column_parts`) measures LINK at NODE.
    A sending KPI is a name holding a word of :data:`DIRECTION_WORDS` (``tx``, ``outgoing``,
    ``out``, ``sent``, any case, delimited by non-letters: ``ifOutOctets`` holds none); its
    receiving KPI is the same name with every such word replaced by its partner in the same case (``rx-pps`` for ``tx-pps``, ``RX`` for ``TX``).
    A link measured at exactly two nodes A and B, by both KPIs at both nodes, gives two pairs:
    OUT at A with IN at B, and OUT at B with IN at A. Pairs are sorted by link, then sender.
    Empty when no name fits.
    """
    parts = column_parts(feature_names)
    columns = {part: i for i, part in enumerate(parts)}
    ends: dict[tuple[str, str], list[str]] = {}  # (kpi, link) -> nodes
    for kpi, node, link in parts:
        if node and link:
            ends.setdefault((kpi, link), []).append(node)
    pairs: dict[str, np.ndarray] = {}
    for kpi in dict.fromkeys(kpi for kpi, _ in ends):
        incoming = _receiving_kpi(kpi)
        found = []
        for (k, link), nodes in sorted(ends.items()):
            both_ends = len(set(nodes)) == 2 and sorted(nodes) == sorted(ends.get((incoming, link), []))
            if incoming == kpi or k != kpi or not both_ends:
                continue
            for sender, receiver in (sorted(nodes), sorted(nodes)[::-1]):
                found.append((columns[kpi, sender, link], columns[incoming, receiver, link]))
        if found:
            pairs[f"{kpi}>{incoming}"] = np.array(found, dtype=np.int64)
    return pairs


# A sorting network for 10 inputs (29 comparators; Knuth, TAOCP vol. 3, sec. 5.3.4): it sorts every
# 0/1 input, hence every input. Run on 10 row-shifted copies of a block it gives each window's
# median with a few dozen vectorised min/max passes instead of sorting every window apart.
_NETWORK_10 = ((0, 5), (1, 6), (2, 7), (3, 8), (4, 9), (0, 3), (5, 8), (1, 4), (6, 9), (0, 2), (3, 6), (7, 9),
               (0, 1), (2, 4), (5, 7), (8, 9), (1, 2), (4, 6), (7, 8), (3, 5), (2, 5), (6, 8), (1, 3), (4, 7),
               (2, 3), (6, 7), (3, 4), (5, 6), (4, 5))


def _pruned(network: Sequence[tuple[int, int]], outputs: Sequence[int]) -> tuple[tuple[int, int, bool, bool], ...]:
    """The comparators ``(a, b)`` of a network (min to wire a, max to wire b) that the ``outputs`` wires
    depend on, each as ``(a, b, min read later, max read later)``: what gives those outputs with the
    fewest min/max passes."""
    needed, steps = set(outputs), []
    for a, b in reversed(network):
        low, high = a in needed, b in needed
        if low or high:
            steps.append((a, b, low, high))
            needed |= {a, b}
    return tuple(reversed(steps))


# The two middle outputs of _NETWORK_10 (the median of 10 is their mean): 50 min/max passes of 58.
_MEDIAN_STEPS = _pruned(_NETWORK_10, (4, 5))


def _rolling_median(past: np.ndarray, level: np.ndarray) -> np.ndarray:
    """(n, D) median of the :data:`BASELINE_ROWS` rows before each row of ``level`` (taken from
    ``past``, then ``level`` itself), NaN ignored; NaN where none is observed (the first row
    without history).

    Windows without a NaN go through :data:`_MEDIAN_STEPS` (the part of :data:`_NETWORK_10` that
    gives its middle outputs); the others (the first rows of a table, statistics of a missing group)
    are sorted one by one. Both give (v[4] + v[5]) / 2 of the sorted values, so the result does not
    depend on the path.

    Shape: past (k, D), k <= BASELINE_ROWS, the rows before ``level[0]``; level (n, D).
    """
    rows = BASELINE_ROWS
    n, width = level.shape
    padded = np.concatenate([np.full((rows - len(past), width), np.nan, dtype=level.dtype), past, level])
    windows = np.lib.stride_tricks.sliding_window_view(padded, rows, axis=0)[:n]  # window j: the rows before j
    gap = np.lib.stride_tricks.sliding_window_view(np.isnan(padded).any(axis=1), rows)[:n].any(axis=1)
    out = np.empty((n, width), dtype=level.dtype)
    for start in range(0, n, _MEDIAN_BLOCK):
        stop = min(start + _MEDIAN_BLOCK, n)
        lanes = [padded[start + j:stop + j] for j in range(rows)]  # views: every step writes new arrays
        for a, b, low, high in _MEDIAN_STEPS:
            x, y = lanes[a], lanes[b]
            if low:
                lanes[a] = np.minimum(x, y)
            if high:
                lanes[b] = np.maximum(x, y)
        np.add(lanes[4], lanes[5], out=out[start:stop])
        out[start:stop] /= 2
        gaps = start + np.flatnonzero(gap[start:stop])
        if gaps.size:
            out[gaps] = _sorted_median(windows[gaps])
    return out


def _last(rows: np.ndarray, k: int) -> np.ndarray:
    """The last ``k`` rows (none for k = 0, where ``rows[-0:]`` would give all)."""
    return rows[len(rows) - min(len(rows), k):]


def _sorted_median(windows: np.ndarray) -> np.ndarray:
    """(m, D) median over the last axis of (m, D, rows) windows, NaN ignored (NaN if all are)."""
    rows = windows.shape[2]
    ordered = np.sort(windows, axis=2)  # NaN sorts last
    count = rows - np.isnan(ordered).sum(axis=2)
    lower = np.take_along_axis(ordered, np.maximum(count - 1, 0)[..., None] // 2, axis=2)[..., 0]
    upper = np.take_along_axis(ordered, (count // 2)[..., None], axis=2)[..., 0]
    with np.errstate(invalid="ignore"):
        return np.where(count > 0, (lower + upper) / 2, np.nan).astype(windows.dtype)


def _robust_scale(logged: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-column median, spread and "constant in training" flag of signed-log training values.

    The spread is the inter-quartile range, or the std where that range is 0 (a 0/1 status that
    is almost always 1), but never below ``SPREAD_FLOOR * max(1, |median|)``: a column whose spread
    is below that floor (constant in training, or moving by rounding only) is flagged constant and
    read in units of the floor, so its moves at run time are large but bounded (and clipped to
    :data:`CLIP` in :meth:`FeatureView.transform`), never ``1 / rounding noise``.
    Shape: logged (n, F) -> three (F,) arrays (float64, float64, bool).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)  # all-NaN columns: median 0, floor spread
        q1, median, q3 = np.nanpercentile(logged, [25, 50, 75], axis=0)
        std = np.nan_to_num(np.nanstd(logged, axis=0))
    median, iqr = np.nan_to_num(median), np.nan_to_num(q3 - q1)
    spread = np.where(iqr > 0, iqr, std)
    floor = SPREAD_FLOOR * np.maximum(1.0, np.abs(median))
    constant = spread < floor
    return median, np.where(constant, floor, spread), constant


def _group_index(groups: Mapping[str, list[int]], n_columns: int) -> np.ndarray:
    """(G, W) column indices, one row per group padded with ``n_columns`` (a NaN column)."""
    width = max(len(cols) for cols in groups.values())
    return np.array([cols + [n_columns] * (width - len(cols)) for cols in groups.values()])


def _pooled_stats(scaled: np.ndarray, index: np.ndarray, sizes: np.ndarray, constant: np.ndarray) -> np.ndarray:
    """(n, F) scaled values -> (n, G * len(_STATS)) statistics of every group at once, computed
    :data:`_POOL_BLOCK` rows at a time (see :func:`_pooled_block`)."""
    if len(scaled) <= _POOL_BLOCK:
        return _pooled_block(scaled, index, sizes, constant)
    return np.concatenate([_pooled_block(scaled[start:start + _POOL_BLOCK], index, sizes, constant)
                           for start in range(0, len(scaled), _POOL_BLOCK)])


def _pooled_block(scaled: np.ndarray, index: np.ndarray, sizes: np.ndarray, constant: np.ndarray) -> np.ndarray:
    """(n, F) scaled values -> (n, G * len(_STATS)) statistics of every group at once.

    ``moved`` is the fraction of the group's columns that were constant in training (``constant``,
    (F,) bool) and sit at least one spread from their training value.

    The groups are gathered into one NaN-padded (n, G, W) block and sorted along W (NaN sorts
    last), so the cost is a fixed number of NumPy passes whatever the number of groups (one
    row costs microseconds, not milliseconds). NaN where a group has no observed value
    (imputed downstream).
    """
    n, k = len(scaled), N_EXTREMES
    padded = np.concatenate([scaled, np.full((n, 1), np.nan, dtype=scaled.dtype)], axis=1)
    ordered = np.take(padded, index, axis=1)  # (n, G, W)
    ordered.sort(axis=2)
    width = min(k, index.shape[1])
    stats = np.full((n, len(index), len(_STATS)), np.nan, dtype=scaled.dtype)
    missing = np.isnan(ordered)
    # einsum reduces the short last axis several times faster than .sum(axis=2) (measured 5x)
    n_valid = index.shape[1] - np.einsum("ngw->ng", missing.view(np.uint8)).astype(np.int64)
    # lowest values: the first positions (NaN past the observed ones, as wanted)
    stats[:, :, 0] = ordered[:, :, 0]
    stats[:, :, 4:4 + width] = ordered[:, :, :width]
    # highest values: counted back from the last observed position
    top = n_valid[:, :, None] - 1 - np.arange(k)
    high = np.take_along_axis(ordered, np.clip(top, 0, None), axis=2)
    high[top < 0] = np.nan
    stats[:, :, 4 + k:4 + 2 * k] = high
    stats[:, :, 1] = high[:, :, 0]
    ordered[missing] = 0
    with np.errstate(invalid="ignore", divide="ignore"):  # all-NaN groups give NaN
        mean = np.einsum("ngw->ng", ordered) / n_valid
        ordered -= mean[:, :, None]
        ordered[missing] = 0
        stats[:, :, 3] = np.sqrt(np.einsum("ngw,ngw->ng", ordered, ordered) / n_valid)
    stats[:, :, 2] = mean
    stats[:, :, -2] = 1 - n_valid / sizes
    # moved: only the training-constant columns are read, counted per group by one product with
    # their (C, G) 0/1 membership (exact: whole counts <= W in float32)
    fixed = np.flatnonzero(constant)
    member = (index[None, :, :] == fixed[:, None, None]).any(axis=2).astype(np.float32)  # (C, G)
    with np.errstate(invalid="ignore"):  # NaN (missing) has not moved
        away = (np.abs(scaled[:, fixed]) >= 1).astype(np.float32)
    stats[:, :, -1] = (away @ member) / sizes
    return stats.reshape(n, len(index) * len(_STATS))


def resolve_view(name: str, feature_names: Sequence[str]) -> str:
    """``"auto"`` becomes the first of :func:`candidate_views` (the structural default, used where
    no selection runs); other names are parsed and returned in canonical form.

    Raises:
        ValueError: an unknown view name."""
    return candidate_views(feature_names)[0] if name == AUTO else parse_view(name).name


def candidate_views(feature_names: Sequence[str], *, time_ordered: bool = False) -> list[str]:
    """The views worth trying on a table, from its column names alone (the selection of
    :mod:`lossless_triplet.pipeline.selection` picks one on training data).

    ``kpi-stats+link`` when the names define a link measured at both ends, else ``kpi-stats``
    when some KPI group has 2 or more columns, each also with ``+pooled``; else (names without
    structure) ``columns`` and ``columns+pooled``; and, for a time-ordered table (one network's
    rows in time order), each of those with ``+baseline``.

    ``pooled`` alone (statistics of all columns, no column of its own) is a valid view but not a
    candidate: the memory's sorted excess already reads the same whichever column a fault moves,
    and it can only do so from per-column features. With ``pooled`` alone it sees 24 statistics
    instead of every column, and the inner validation cannot tell the difference (its pretend-new
    faults are known faults, inside the training range, where no excess matters): on KDDI with
    anonymous columns the seed whose selection picked ``pooled+baseline`` scored 0.39 macro-F1
    against 0.66-0.74 for the others (docs/results.md).
    """
    if link_pairs(feature_names):
        plain = ["kpi-stats+link", "kpi-stats+link+pooled"]
    elif any(len(c) > 1 for c in kpi_groups(feature_names).values()):
        plain = ["kpi-stats", "kpi-stats+pooled"]
    else:
        plain = ["columns", "columns+pooled"]
    return plain + ([f"{v}+baseline" for v in plain] if time_ordered else [])


class FeatureView:
    """A fitted mapping from raw feature rows to the encoder's input features.

    Args:
        name: a view name, see :mod:`lossless_triplet.viewspec` (e.g. ``"raw"``, ``"columns+pooled"``,
            ``"kpi-stats+link+baseline"``); stored in canonical form.

    Learned by :meth:`fit` (training rows only): ``feature_names_in_``, ``median_``, ``iqr_`` (the
    spread, floored) and ``constant_`` (per input column, of the signed-log values), ``links_``
    (see :func:`link_pairs`; empty unless ``+link``) with ``link_median_``, ``link_iqr_`` and
    ``link_constant_`` (per directed link), ``groups_`` (pooled group name -> column indices; link
    balances count on after the input columns, one per directed link), ``feature_names_out_`` and
    ``invariant_features_`` (int indices into the output: the pooled statistics, which do not
    depend on which column moved; every feature for a view that pools nothing).

    Raises:
        ValueError: an unknown view name; (at fit or from_dict) a ``+link`` view on columns that
            define no link measured at both ends.
    """

    def __init__(self, name: str = "raw") -> None:
        self.spec: ViewSpec = parse_view(name)
        self.name = self.spec.name

    def fit(self, X: np.ndarray, feature_names: Sequence[str]) -> FeatureView:
        """Learn per-column medians, spreads and constant flags, and the KPI groups.

        Shape: X (n_rows, n_features) float, NaN = missing.

        Raises:
            ValueError: X not 2-D or not matching ``feature_names``.
        """
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(feature_names):
            raise ValueError(f"X has shape {X.shape} but {len(feature_names)} feature names were given")
        self._set_columns(feature_names)
        logged = signed_log1p(X)
        self.median_, self.iqr_, self.constant_ = _robust_scale(logged)
        if self.links_:
            self.link_median_, self.link_iqr_, self.link_constant_ = _robust_scale(self._log_ratios(logged))
        return self

    @property
    def _pairs(self) -> np.ndarray:
        """(B, 2) column indices of every directed link pair, groups in order."""
        return np.concatenate(list(self.links_.values())) if self.links_ else np.zeros((0, 2), dtype=np.int64)

    def _log_ratios(self, logged: np.ndarray) -> np.ndarray:
        """(n, B) signed-log sent minus signed-log received, per directed link pair.

        One gather of both ends: measured about 1.5x faster than two fancy indexes."""
        ends = np.take(logged, self._pairs.ravel(), axis=1).reshape(len(logged), len(self._pairs), 2)
        return ends[:, :, 0] - ends[:, :, 1]

    def _set_columns(self, feature_names: Sequence[str]) -> None:
        spec = self.spec
        self.feature_names_in_ = tuple(str(n) for n in feature_names)
        self.links_ = link_pairs(self.feature_names_in_) if spec.link else {}
        if spec.link and not self.links_:
            raise ValueError(
                f"the {self.name} view found no link measured at both ends: it needs columns named "
                "KPI/NODE+LINK with a sending and a receiving KPI (tx/rx, outgoing/incoming, out/in, "
                "sent/received) for the same LINK at two nodes; choose the view "
                f"{replace(spec, link=False).name} for this table"
            )
        columns = list(self.feature_names_in_)
        self.groups_ = kpi_groups(columns) if spec.base == "kpi-stats" else {}
        first = len(columns)  # balances are columns after the inputs
        for group, pairs in self.links_.items():
            if spec.base == "kpi-stats":
                self.groups_[group] = list(range(first, first + len(pairs)))
            columns += [f"{group}#{i}" for i in range(len(pairs))]
            first += len(pairs)
        if spec.pooled or spec.base == "pooled":
            self.groups_[ALL_COLUMNS] = list(range(first))
        self.readout_names_ = (tuple(columns) if spec.base == "columns" else ()) + tuple(
            f"{group}/{stat}" for group in self.groups_ for stat in _STATS)
        if spec.base == "raw":
            self.feature_names_out_ = self.feature_names_in_
            self.invariant_features_ = np.arange(len(columns))
            return
        kinds = ("", *(["delta-"] if spec.delta else []), *(["baseline-"] if spec.baseline else []))
        self.feature_names_out_ = tuple(f"{kind}{name}" for kind in kinds for name in self.readout_names_)
        per_column = len(columns) if spec.base == "columns" else 0
        pooled = np.arange(per_column, len(self.readout_names_))
        if not pooled.size:  # a view of single columns: nothing is pooled, every feature counts
            pooled = np.arange(len(self.readout_names_))
        self.invariant_features_ = np.concatenate([pooled + k * len(self.readout_names_) for k in range(len(kinds))])

    def _concat(self, own: np.ndarray, links: str) -> np.ndarray:
        """An input-column array followed by its link-balance counterpart (``links``: attribute name)."""
        return np.concatenate([own, *([getattr(self, links)] if self.links_ else [])])

    @property
    def needs_previous_row(self) -> bool:
        """Whether :meth:`transform` uses rows before the first one (delta and baseline views)."""
        return self.history_rows > 0

    @property
    def history_rows(self) -> int:
        """How many rows before the first one :meth:`transform` uses: :data:`BASELINE_ROWS` for
        ``+baseline`` views, 1 for ``+delta``, else 0."""
        return self.spec.history_rows

    def recent_rows(self, *parts: np.ndarray | None) -> np.ndarray:
        """The last :attr:`history_rows` raw rows of ``parts`` taken in order (what ``previous``
        of :meth:`transform` needs to continue a stream), as float32 (k, n_features_in), oldest
        first; only the tails are copied.

        Shape: each part None, (n_features_in,) for one row, or (n, n_features_in).
        """
        width, keep = len(self.feature_names_in_), self.history_rows
        tails = [_last(np.asarray(part, dtype=np.float32).reshape(-1, width), keep)
                 for part in parts if part is not None]
        return _last(np.concatenate(tails), keep) if tails else np.zeros((0, width), dtype=np.float32)

    def transform(self, X: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
        """Map raw rows to view features.

        Args:
            X: (n_rows, n_features_in) float, NaN = missing, rows in time order.
            previous: raw rows that precede ``X[0]``, (n_features_in,) for one or
                (k, n_features_in) oldest first; the last :attr:`history_rows` are used
                (delta: the last row; baseline: the last 10), the rest ignored. Without
                them the first row's deltas are missing (NaN, imputed downstream like any
                missing cell) and the first baselines use the rows of ``X`` seen so far
                (none for the first row: NaN).

        Returns:
            float32 (n_rows, len(feature_names_out_)), every value within +-2 :data:`CLIP`
            (deltas and baselines are differences of values within +-CLIP) for every view but
            ``raw``; NaN where a statistic has no observed value (imputed by the Standardizer
            that follows).

        Raises:
            NotFittedError: called before fit. ValueError: a column count that differs from fit.
        """
        check_is_fitted(self, "median_", "fit(train_X, feature_names)")
        X = np.asarray(X, dtype=np.float32)  # float32 throughout: half the memory traffic of float64
        if X.ndim != 2 or X.shape[1] != len(self.feature_names_in_):
            raise ValueError(f"expected (n, {len(self.feature_names_in_)}) rows, got shape {X.shape}")
        if self.spec.base == "raw":
            return X.astype(np.float32)
        scaled = self._scaled(X)
        blocks = [self._readout(scaled)]
        history = self.recent_rows(previous)
        if self.spec.delta:
            before = self._scaled(history[-1:]) if len(history) else np.full((1, scaled.shape[1]), np.nan, dtype=np.float32)
            blocks.append(self._readout(np.diff(np.vstack([before, scaled]), axis=0)))
        if self.spec.baseline:
            past = self._readout(self._scaled(history)) if len(history) else blocks[0][:0]
            blocks.append(blocks[0] - _rolling_median(past, blocks[0]))
        return np.hstack(blocks).astype(np.float32, copy=False)

    def column_values(self, X: np.ndarray) -> np.ndarray:
        """(n, F) float32 per input column: (signed_log1p(X) - median) / spread, clipped to +-:data:`CLIP`
        (NaN where a cell is missing): the values the view's features are read from, without link
        balances, statistics, deltas or baselines.

        Raises:
            NotFittedError: called before fit. ValueError: a column count that differs from fit."""
        check_is_fitted(self, "median_", "fit(train_X, feature_names)")
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != len(self.feature_names_in_):
            raise ValueError(f"expected (n, {len(self.feature_names_in_)}) rows, got shape {X.shape}")
        return self._scaled(X)[:, :len(self.feature_names_in_)]

    def _scaled(self, X: np.ndarray) -> np.ndarray:
        """(signed_log1p(X) - median) / spread, clipped to +-:data:`CLIP`, in float32, computed in
        place (one buffer); the ``+link`` views append the link balances, scaled the same way with
        their own medians and spreads.

        log1p runs in torch: NumPy's float32 log1p is scalar code, measured 8x slower than
        torch's vectorised one on 100k KDDI rows (164 vs 20 ms), the largest cost of the view.
        """

        out = np.abs(X)
        torch.from_numpy(out).log1p_()
        np.copysign(out, X, out=out)
        if self.links_:  # link balances are columns after the inputs: one (n, F + B) block
            out = np.concatenate([out, self._log_ratios(out)], axis=1)
        out -= self._concat(self.median_, "link_median_").astype(np.float32)
        out *= (1 / self._concat(self.iqr_, "link_iqr_")).astype(np.float32)
        return np.clip(out, -CLIP, CLIP, out=out)

    def _readout(self, scaled: np.ndarray) -> np.ndarray:
        """Per-column values (``columns``) and/or the statistics of the pooled groups."""
        parts = [scaled] if self.spec.base == "columns" else []
        if self.groups_:
            index = _group_index(self.groups_, scaled.shape[1])
            sizes = np.array([len(cols) for cols in self.groups_.values()])
            parts.append(_pooled_stats(scaled, index, sizes, self._concat(self.constant_, "link_constant_")))
        return parts[0] if len(parts) == 1 else np.hstack(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state (restore with :meth:`from_dict`).

        Raises:
            NotFittedError: called before ``fit``."""
        check_is_fitted(self, "median_", "fit(train_X, feature_names)")
        state = {**state_header("FeatureView", 1), "name": self.name, "feature_names_in": list(self.feature_names_in_),
                 "median": self.median_.tolist(), "iqr": self.iqr_.tolist(), "constant": self.constant_.tolist()}
        if self.links_:
            state |= {"link_median": self.link_median_.tolist(), "link_iqr": self.link_iqr_.tolist(),
                      "link_constant": self.link_constant_.tolist()}
        return state

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> FeatureView:
        """Rebuild a fitted view from :meth:`to_dict` output.

        Raises:
            ValueError: another kind or version of state, missing keys, lengths that do not match,
                a ``+link`` view whose columns define no link.
        """
        check_state(state, "FeatureView", (1,), unversioned=1)  # bundles before versioned states: 1
        try:
            view = cls(state["name"])
            names = [str(n) for n in state["feature_names_in"]]
            median = np.asarray(state["median"], dtype=np.float64)
            iqr = np.asarray(state["iqr"], dtype=np.float64)
            constant = np.asarray(state["constant"], dtype=bool)
        except KeyError as missing:
            raise ValueError(f"feature view state lacks {missing}; the model bundle is incomplete") from None
        if not (len(names) == len(median) == len(iqr) == len(constant)):
            raise ValueError("feature view state has mismatched lengths; the model bundle is corrupt")
        try:
            view._set_columns(names)
        except ValueError as error:  # a +link view whose saved columns hold no link
            raise ValueError(f"feature view state is inconsistent ({error}); the model bundle is corrupt") from None
        view.median_, view.iqr_, view.constant_ = median, iqr, constant
        if view.links_:
            try:
                view.link_median_ = np.asarray(state["link_median"], dtype=np.float64)
                view.link_iqr_ = np.asarray(state["link_iqr"], dtype=np.float64)
                view.link_constant_ = np.asarray(state["link_constant"], dtype=bool)
            except KeyError as missing:
                raise ValueError(f"feature view state lacks {missing}; the model bundle is incomplete") from None
            if not (len(view.link_median_) == len(view.link_iqr_) == len(view.link_constant_) == len(view._pairs)):
                raise ValueError("feature view state has mismatched link lengths; the model bundle is corrupt")
        return view
