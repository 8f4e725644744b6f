"""Which element and which KPIs moved: the evidence beside each identified status.

An operator acts on "where", not only on "what". For every row, :class:`Explainer` reports

- ``evidence``: the k columns (KPIs, default 3) that deviate most from normal for that row, each
  with its signed deviation in robust units: the row's signed-log value minus the median of the
  training rows of the normal status, over their spread (inter-quartile range, floored and clipped
  as in :mod:`lossless_triplet.data.views`), and, for time-ordered tables, minus the median of the
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

import numpy as np

from .data.views import CLIP, FeatureView, column_parts

__all__ = ["EVIDENCE_K", "Explainer", "format_evidence"]

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
        self._member = member.astype(bool)

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

    @property
    def history_rows(self) -> int:
        """Rows before a chunk the baseline looks back at (0 without time order)."""
        return self.view.history_rows

    def deviations(self, raw: np.ndarray, previous: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Signed deviation of every column and where a cell went missing.

        Returns:
            ``(z, lost)``: z (n, F) float32, the deviation from normal, or from the row's baseline
            when that is larger in size (time-ordered tables), -:data:`CLIP` where ``lost``, 0 where
            another cell is missing; lost (n, F) bool, a cell missing that the normal training rows
            (almost) always had (:data:`MISSING_RARE`).
        """
        values = self.view.transform(raw, previous=previous)
        width = len(self.view.feature_names_in_)
        z = values[:, :width]
        if values.shape[1] > width:
            base = values[:, width:]
            z = np.where(np.abs(np.nan_to_num(base)) > np.abs(np.nan_to_num(z)), base, z)
        lost = np.isnan(np.asarray(raw, dtype=np.float32)) & (self.missing_rate < MISSING_RARE)
        return np.where(lost, np.float32(-CLIP), np.nan_to_num(z, nan=0.0)).astype(np.float32), lost

    def explain(self, raw: np.ndarray, previous: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Evidence and element of raw rows (``previous``: the rows before, as for ``detect``).

        Shape: raw (n, F) float, NaN = missing; previous as for
        :meth:`~lossless_triplet.data.views.FeatureView.transform`.

        Returns:
            dict: ``element`` (n,) str ("" when no column deviates), ``evidence_columns`` (n, k) int
            column indices, most deviant first, ``evidence_values`` (n, k) float32 signed deviations
            and ``evidence_missing`` (n, k) bool (that cell stopped reporting).
        """
        z, lost = self.deviations(raw, previous)
        size = np.abs(z)
        k = min(self.k, z.shape[1])
        top = np.argpartition(-size, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(-size, top, axis=1).argsort(axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        return {"element": self._elements(size, top[:, 0]), "evidence_columns": top,
                "evidence_values": np.take_along_axis(z, top, axis=1),
                "evidence_missing": np.take_along_axis(lost, top, axis=1)}

    def _elements(self, size: np.ndarray, first: np.ndarray) -> np.ndarray:
        names = np.array(self.view.feature_names_in_, dtype=object)
        if not len(self._node_keys):
            return np.where(size[np.arange(len(size)), first] > 0, names[first], "").astype(str)
        node = (size @ self._sum).argmax(axis=1)
        # that node's most deviant column gives the link
        masked = np.where(self._member[:, node].T, size, -1.0)
        column = masked.argmax(axis=1)
        links = np.array(self._links, dtype=object)[column]
        element = np.where(links != "", self._node_keys[node] + "+" + links, self._node_keys[node])
        return np.where(size.max(axis=1) > 0, element, "").astype(str)

    def evidence_text(self, explained: Mapping[str, np.ndarray]) -> np.ndarray:
        """(n,) str: ``column:+9.1;column:-1.0`` per row (see :func:`format_evidence`)."""
        return format_evidence(self.view.feature_names_in_, explained["evidence_columns"],
                               explained["evidence_values"], explained["evidence_missing"])

    def to_dict(self) -> dict:
        """JSON-safe state (see :meth:`from_dict`)."""
        return {"view": self.view.to_dict(), "normal_status": self.normal_status, "k": self.k,
                "missing_rate": [round(float(r), 6) for r in self.missing_rate]}

    @classmethod
    def from_dict(cls, state: Mapping) -> Explainer:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: a missing key (a corrupt bundle).
        """
        try:
            return cls(FeatureView.from_dict(state["view"]), str(state["normal_status"]), int(state.get("k", EVIDENCE_K)),
                       np.asarray(state["missing_rate"], dtype=np.float64))
        except KeyError as missing:
            raise ValueError(f"the explainer state lacks {missing}; the model bundle is corrupt") from None


def format_evidence(names: Sequence[str], columns: np.ndarray, values: np.ndarray,
                    missing: np.ndarray | None = None) -> np.ndarray:
    """(n,) str ``name:+9.1;name:-1.0;name:missing`` from (n, k) column indices, signed deviations and
    (optionally) which of them are missing cells; columns that did not deviate (0.0) are left out."""
    names = list(names)
    missing = np.zeros(columns.shape, dtype=bool) if missing is None else missing
    out = [";".join(f"{names[j]}:{'missing' if gone else f'{v:+.1f}'}"
                    for j, v, gone in zip(row_columns, row_values, row_missing) if v != 0.0)
           for row_columns, row_values, row_missing in zip(columns.tolist(), values.tolist(), missing.tolist())]
    return np.array(out, dtype=str) if out else np.zeros(0, dtype=str)
