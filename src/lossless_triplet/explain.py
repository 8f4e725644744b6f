"""Which element and which KPIs moved: the evidence beside each identified status.

An operator acts on "where", not only on "what". For every row, :class:`Explainer` reports

- ``evidence``: the k columns (KPIs, default 3) that deviate most from normal for that row, each
  with its signed deviation in robust units: the row's signed-log value minus the median of the
  training rows of the normal status, over their spread (inter-quartile range, floored and clipped
  as in :mod:`lossless_triplet.data.views`), and, for time-ordered tables, minus the mean of the
  row's previous 10 rows instead, whichever deviation is larger in size. A cell that is missing
  where the normal training rows (almost) always had one (missing in under 1 % of them) counts as
  a deviation of -50, the clip: the element stopped reporting, the strongest sign of all (a
  router that goes down leaves its own columns empty, and its neighbours' links deviate);
- ``element``: the network element most implicated, read from the column names
  (:func:`~lossless_triplet.data.views.column_parts`: ``KPI/NODE+LINK``, any separator): the node
  whose columns deviate most in all (the sum of the absolute deviations of its columns: a node's
  every column moves when it goes down, a neighbour only on the link it shares), written
  ``NODE+LINK`` with the link of that node's most deviant column when it has one. Columns without
  a node part (anonymous names) give the most deviant column's name. On KDDI's eval split the
  failed router is the element, or in the top-3 evidence, for every node-down minute and 97 % of
  the interface-down minutes (``benchmarks/explain_kddi.py``); the mean instead of the sum, or
  missing cells not counted, found the failed router as element in 19 % of node-down minutes.

It is an explanation of the row, not of the code: which measurements are unusual, whatever the
status the memory found. Compact text for ``detect``: ``column:+9.1;column:-1.0`` (deviations to
one decimal).

Sources: robust z-scores (median / inter-quartile range) as in P. J. Rousseeuw, M. Hubert,
"Robust statistics for outlier detection", WIREs DMKD 2011; the per-KPI explanation mirrors the
O-RAN SC anomaly-detection xApp, which names the degraded KPIs of each anomaly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .blocks import concat_rows, row_starts
from .data.views import CLIP, FeatureView, column_parts
from .validation import check_state, state_header

__all__ = ["EVIDENCE_K", "Explainer", "format_evidence", "normal_status"]

EVIDENCE_K = 3
MISSING_RARE = 0.01  # a column missing in fewer of the normal training rows "stopped reporting" when missing


@dataclass
class Explainer:
    """Per-row evidence (the most deviant columns) and element (the most implicated node).

    Attributes:
        view: a fitted ``columns`` (or ``columns+baseline`` for time-ordered tables) FeatureView of
            the training rows of the normal status: its scaled values are the deviations.
        normal_status: the status whose training rows define "normal".
        k: columns reported per row.
        missing_rate: (F,) share of the normal training rows where each column is missing.

    Raises:
        ValueError: k < 1 (at construction).
    """

    view: FeatureView
    normal_status: str
    k: int = EVIDENCE_K
    missing_rate: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k={self.k} must be >= 1 (columns reported per row)")
        names = self.view.feature_names_in_
        if self.missing_rate is None:
            self.missing_rate = np.ones(len(names))
        self.missing_rate = np.asarray(self.missing_rate, dtype=np.float64)
        parts = column_parts(names)
        self._nodes = [node for _, node, _ in parts]
        self._links = [link for _, _, link in parts]
        keys = sorted({n for n in self._nodes if n})
        self._node_keys = np.array(keys, dtype=object)
        # (F, nodes) membership: a node's summed absolute deviation in one product
        member = np.zeros((len(names), len(keys)), dtype=np.float32)
        for j, node in enumerate(self._nodes):
            if node:
                member[j, keys.index(node)] = 1.0
        self._sum = member
        self._member_of = member.T.astype(bool)  # (nodes, F): the columns of each node
        self._element_of = np.array([f"{node}+{link}" if link else node for node, link in zip(self._nodes, self._links)],
                                    dtype=str)  # (F,): the element a column names

    @classmethod
    def fit(cls, X_normal: np.ndarray, feature_names: Sequence[str], *, normal_status: str, time_ordered: bool,
            k: int = EVIDENCE_K) -> Explainer:
        """Fit on the raw training rows of the normal status (time-ordered: rows in time order).

        Shape: X_normal (n, F) float, NaN = missing.

        Raises:
            ValueError: no row, or X not matching ``feature_names``.
        """
        if len(X_normal) == 0:
            raise ValueError(f"no training row of the normal status {normal_status!r} to measure deviations from")
        view = FeatureView("columns+baseline" if time_ordered else "columns").fit(X_normal, feature_names)
        return cls(view, str(normal_status), k, np.isnan(np.asarray(X_normal, dtype=np.float64)).mean(axis=0))

    @classmethod
    def for_table(cls, data, *, time_ordered: bool, rows: np.ndarray | None = None) -> Explainer:
        """Fit on the rows of a table's normal status (:func:`normal_status`, chosen among ``rows``).

        Args:
            data: a :class:`~lossless_triplet.data.Dataset` (raw features, labels, names).
            time_ordered: whether its rows are one network's minutes in order (the baseline).
            rows: (n,) bool, the rows whose labels choose the normal status (default all).

        Raises:
            ValueError: as :meth:`fit`.
        """
        labels = data.labels if rows is None else data.labels[rows]
        normal = normal_status(data.class_names, labels)
        return cls.fit(data.features[data.labels == data.class_names.index(normal)], data.feature_names,
                       normal_status=normal, time_ordered=time_ordered)

    @property
    def history_rows(self) -> int:
        """Rows before a chunk the baseline looks back at (0 without time order)."""
        return self.view.history_rows

    def deviations(self, raw: np.ndarray, previous: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Signed deviation of every column and where a cell went missing.

        The baseline of a time-ordered row is the mean of its column over the previous
        :data:`~lossless_triplet.viewspec.BASELINE_ROWS` rows (missing cells ignored): a rolling
        mean costs three running sums, where a rolling median of every column would double the
        cost of ``detect``.

        Returns:
            ``(z, lost)``: z (n, F) float32, the deviation from normal, or from the row's baseline
            when that is larger in size (time-ordered tables), -:data:`CLIP` where ``lost``, 0 where
            another cell is missing; lost (n, F) bool, a cell missing that the normal training rows
            (almost) always had (:data:`MISSING_RARE`).
        """
        raw = np.asarray(raw, dtype=np.float32)
        z = self.view.column_values(raw)
        if self.history_rows:
            before = self.view.recent_rows(previous)
            base = z - _previous_mean(self.view.column_values(before) if len(before) else z[:0], z, self.history_rows)
            larger = np.abs(base) > np.abs(z)  # False where either is NaN
            np.copyto(z, base, where=larger)  # masked copies: several times faster than z[mask] = ...
        np.copyto(z, 0.0, where=np.isnan(z))
        lost = np.isnan(raw) & (self.missing_rate < MISSING_RARE)
        np.copyto(z, -CLIP, where=lost)
        return z, lost

    def explain(self, raw: np.ndarray, previous: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Evidence and element of raw rows (``previous``: the rows before, as for ``detect``).

        Shape: raw (n, F) float, NaN = missing; previous as for
        :meth:`~lossless_triplet.data.views.FeatureView.transform`.

        Returns:
            dict: ``element`` (n,) str ("" when no column deviates), ``evidence_columns`` (n, k) int
            column indices, most deviant first, ``evidence_values`` (n, k) float32 signed deviations
            and ``evidence_missing`` (n, k) bool (that cell stopped reporting).
        """
        raw = np.asarray(raw, dtype=np.float32)
        return concat_rows([self._explain_block(raw[start:start + _EXPLAIN_BLOCK], self.view.recent_rows(previous, raw[:start]))
                            for start in row_starts(len(raw), _EXPLAIN_BLOCK)])

    def _explain_block(self, raw: np.ndarray, previous: np.ndarray) -> dict[str, np.ndarray]:
        z, lost = self.deviations(raw, previous)
        size = np.abs(z)
        top = _largest(size, min(self.k, z.shape[1]))
        return {"element": self._elements(size, top[:, 0]), "evidence_columns": top,
                "evidence_values": np.take_along_axis(z, top, axis=1),
                "evidence_missing": np.take_along_axis(lost, top, axis=1)}

    def _elements(self, size: np.ndarray, first: np.ndarray) -> np.ndarray:
        if not len(self._node_keys):
            names = np.array(self.view.feature_names_in_, dtype=str)
            return np.where(size[np.arange(len(size)), first] > 0, names[first], "")
        node = (size @ self._sum).argmax(axis=1)
        # that node's most deviant column gives the link: its element is the column's NODE[+LINK]
        column = np.where(self._member_of[node], size, -1.0).argmax(axis=1)
        return np.where(size.max(axis=1) > 0, self._element_of[column], "")

    def evidence_text(self, explained: Mapping[str, np.ndarray]) -> np.ndarray:
        """(n,) str: ``column:+9.1;column:-1.0`` per row (see :func:`format_evidence`)."""
        return format_evidence(self.view.feature_names_in_, explained["evidence_columns"],
                               explained["evidence_values"], explained["evidence_missing"])

    def to_dict(self) -> dict:
        """JSON-safe state (see :meth:`from_dict`)."""
        return {**state_header("Explainer", 1), "view": self.view.to_dict(), "normal_status": self.normal_status, "k": self.k,
                "missing_rate": [round(float(r), 6) for r in self.missing_rate]}

    @classmethod
    def from_dict(cls, state: Mapping) -> Explainer:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: another kind or version of state, a missing key (a corrupt bundle).
        """
        check_state(state, "Explainer", (1,), unversioned=1)  # bundles before versioned states: 1
        try:
            return cls(FeatureView.from_dict(state["view"]), str(state["normal_status"]), int(state.get("k", EVIDENCE_K)),
                       np.asarray(state["missing_rate"], dtype=np.float64))
        except KeyError as missing:
            raise ValueError(f"the explainer state lacks {missing}; the model bundle is corrupt") from None


def normal_status(class_names: Sequence[str], labels: np.ndarray) -> str:
    """The status meaning "no fault": ``normal`` (any case) when a class has that name, else the
    largest class among ``labels`` (on fault tables, the normal traffic)."""
    for name in class_names:
        if str(name).strip().casefold() == "normal":
            return str(name)
    values, counts = np.unique(labels, return_counts=True)
    return str(class_names[int(values[counts.argmax()])])


def _largest(size: np.ndarray, k: int) -> np.ndarray:
    """(n, k) column indices of the k largest values of each row, largest first (ties: lowest index).
    k passes of argmax: for k = 3 several times faster than ``argpartition`` on a (65536, 121) block."""
    work = size.copy()
    rows = np.arange(len(size))
    out = np.empty((len(size), k), dtype=np.int64)
    for j in range(k):
        out[:, j] = work.argmax(axis=1)
        work[rows, out[:, j]] = -np.inf
    return out


def _previous_mean(past: np.ndarray, level: np.ndarray, rows: int) -> np.ndarray:
    """(n, F) mean of the ``rows`` rows before each row of ``level`` (``past`` first), NaN ignored; NaN
    where none is observed. ``rows`` shifted additions of the whole block: O(rows n F), no sort; every
    window is summed in the same order wherever the blocks fall."""
    n = len(level)
    values = np.concatenate([np.full((rows - len(past), level.shape[1]), np.nan, dtype=np.float32),
                             past[len(past) - min(len(past), rows):], level]).astype(np.float32)
    missing = np.isnan(values)
    gappy = np.flatnonzero(missing.any(axis=0))  # columns with a missing cell: only they need counting
    np.copyto(values, 0.0, where=missing)
    total = values[:n].copy()  # row i of level sits at rows + i of values; its window is [i, rows + i)
    for lag in range(1, rows):
        total += values[lag:lag + n]
    count = np.full(total.shape, rows, dtype=np.float32)
    if gappy.size:
        seen = ~missing[:, gappy]
        observed = seen[:n].astype(np.float32)
        for lag in range(1, rows):
            observed += seen[lag:lag + n].view(np.uint8)  # 0/1 counts (a bool -> float cast per add was 3x slower)
        count[:, gappy] = observed
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.divide(total, count, out=total)


# Rows explained at once: the deviations, the top k and the element stay in cache (KDDI, s per 100k
# rows: 1,024: 0.30-0.33; 4,096: 0.41-0.42; 512: 0.38-0.45)
_EXPLAIN_BLOCK = 1024
_TENTHS = 2 * int(CLIP) * 10 + 10  # |deviation| <= 2 CLIP (a baseline difference), in tenths


@cache
def _tenth_texts() -> pa.Array:
    """``:-101.0`` ... ``:+101.0``, the one-decimal texts of every deviation, indexed by tenths + _TENTHS
    (built once: 2,021 f-strings cost more than formatting a 4,096-row block with them)."""
    return pa.array([f":{t / 10:+.1f}" for t in range(-_TENTHS, _TENTHS + 1)])


def format_evidence(names: Sequence[str], columns: np.ndarray, values: np.ndarray,
                    missing: np.ndarray | None = None) -> np.ndarray:
    """(n,) object array of str ``name:+9.1;name:-1.0;name:missing`` from (n, k) column indices, signed
    deviations and (optionally) which of them are missing cells; columns that did not deviate (0.0) are
    left out.

    Built with Arrow's string kernels over whole columns (a lookup table of the one-decimal texts):
    formatting 65,536 rows one by one in Python took longer than explaining them."""

    n, k = columns.shape
    if n == 0:
        return np.zeros(0, dtype=object)
    tenths = np.clip(np.rint(np.asarray(values, dtype=np.float64) * 10), -_TENTHS, _TENTHS).astype(np.int64)
    table = _tenth_texts()
    labels = pa.array([str(name) for name in names])
    pieces = []
    for j in range(k):
        text = table.take(pa.array(tenths[:, j] + _TENTHS))
        if missing is not None:
            text = pc.if_else(pa.array(missing[:, j]), ":missing", text)
        piece = pc.binary_join_element_wise(labels.take(pa.array(columns[:, j])), text, "")
        pieces.append(pc.if_else(pa.array(np.asarray(values)[:, j] != 0.0), piece, None))
    joined = pc.binary_join_element_wise(*pieces, ";", null_handling="skip")
    # an object array of Python str: a fixed-width NumPy str array of 65,536 texts of ~170 characters
    # would be 45 MB, and building it cost more than the text itself
    return joined.to_numpy(zero_copy_only=False)
