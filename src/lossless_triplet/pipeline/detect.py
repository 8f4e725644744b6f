"""Streaming detection and evaluation of a saved fault model on tables.

``detect_file`` reads a table chunk by chunk and writes one prediction line per
input row, in order, so memory is bounded by the chunk whatever the file size.
Views that look back (delta: 1 row, baseline: 10) carry the last raw rows of a
chunk over to the next one, so the features do not depend on the chunk size (the
encoder's float32 sums may differ in the last digit between batch sizes).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
from sklearn.metrics import f1_score, roc_auc_score
from tqdm.auto import tqdm

from ..bundle import FaultModel
from ..data import Dataset, iter_feature_table, iter_labelled_table
from ..io import written_at_end
from ..memory import UNKNOWN
from ..metrics import retrieval_metrics
from ..models import encode

__all__ = ["PREDICTION_COLUMNS", "detect_file", "evaluate_file", "evaluate_model", "identified_chunks",
           "prediction_columns"]

PREDICTION_COLUMNS = ("row", "status", "nearest", "distance", "unknown", "unknown_score", "element", "evidence")
MIN_CHUNK_ROWS = 1024  # detect's smallest chunk: below it the per-chunk costs dominate


def detect_file(
    model: FaultModel,
    table: str | Path,
    out: str | Path,
    *,
    chunk_rows: int = 65_536,
    progress: bool = True,
) -> int:
    """Identify every row of ``table`` and write the predictions as CSV to ``out``.

    Output columns: ``row`` (0-based input row), ``status`` (a known status or
    ``unknown``), ``nearest`` (nearest signature), ``distance`` (Euclidean, in
    code space, to the nearest; float32 shortest form), ``unknown``
    (``true``/``false``), ``unknown_score`` (distance / radius, > 1 means unknown),
    ``element`` (the network element most implicated) and ``evidence`` (the most deviant
    columns, ``column:+9.1;column:missing``): see :mod:`lossless_triplet.explain`.

    Tables are parsed by Arrow on all cores; predictions are written by Arrow's CSV writer.

    Args:
        model: a loaded :class:`~lossless_triplet.bundle.FaultModel`.
        table: CSV/TSV/Parquet with (at least) the model's feature columns.
        out: the prediction CSV to write (parent directories are created).
        chunk_rows: rows per chunk (bounds memory with the reader's text block); at least
            :data:`MIN_CHUNK_ROWS` are taken (below that the per-chunk cost of the view, the
            encoder call and the writer dominates: 7-row chunks once took 124 s on 24 MB).
        progress: show a row counter on stderr.

    Returns:
        Number of rows written. On an error nothing is left at ``out`` (the
        predictions are written to a temporary file and renamed at the end).

    Raises:
        ValueError: a missing feature column (each named), a non-numeric or infinite cell.
        FileNotFoundError: no such table.
    """

    bar = None
    if progress:

        bar = tqdm(unit="rows", unit_scale=True, desc="detect")  # left on screen: the final count
    written = 0
    try:
        # the view of a chunk runs as two halves on two threads (FaultModel.features); predictions
        # go to a temporary file renamed at the end, so a failed run leaves no partial output
        with (written_at_end(out) as partial, partial.open("wb") as handle,
              ThreadPoolExecutor(1, thread_name_prefix="detect-view") as pool,
              ThreadPoolExecutor(1, thread_name_prefix="detect-explain") as explaining):
            handle.write((",".join(PREDICTION_COLUMNS) + "\n").encode())
            chunks = iter_feature_table(table, model.feature_names, max(chunk_rows, MIN_CHUNK_ROWS))
            for raw, result in identified_chunks(model, chunks, pool=pool, explaining=explaining):
                pcsv.write_csv(_prediction_table(result, written), handle,
                               pcsv.WriteOptions(include_header=False))
                written += len(raw)
                if bar is not None:
                    bar.update(len(raw))
    finally:
        if bar is not None:
            bar.close()
    return written


def identified_chunks(model: FaultModel, chunks: Iterable[np.ndarray], *, pool: Executor | None = None,
                      explaining: Executor | None = None) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """``(raw, result)`` for each chunk of raw rows in time order: :meth:`FaultModel.identify` and
    :meth:`FaultModel.explain`, with the rows a view or the evidence looks back at carried from one
    chunk to the next (so the result does not depend on where the chunks are cut).

    Args:
        chunks: (n_i, F) float32 raw rows, consecutive.
        pool: one worker for the two halves of each chunk's view (:meth:`FaultModel.features`).
        explaining: one worker that computes the evidence beside the identification (NumPy and
            Arrow release the GIL); None: one after the other.
    """
    history = None  # the last raw rows, for views that look back (delta, baseline)
    for raw in chunks:
        explained = explaining.submit(model.explain, raw, history) if explaining is not None else None
        result = model.identify(raw, previous=history, pool=pool)
        result |= explained.result() if explained is not None else model.explain(raw, history)
        history = model.recent_rows(history, raw)
        yield raw, result


def prediction_columns(result: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The prediction columns of :data:`PREDICTION_COLUMNS` but ``row``, from an identified chunk:
    distances and scores as float32 (what ``detect`` and the Spark engine write)."""
    return {"status": result["status"], "nearest": result["nearest"],
            "distance": result["distance"].astype(np.float32), "unknown": result["unknown"],
            "unknown_score": result["unknown_score"].astype(np.float32), "element": result["element"],
            "evidence": result["evidence"]}


def _prediction_table(result: dict[str, np.ndarray], first_row: int):
    """The prediction columns of one chunk as an Arrow table (written by Arrow's CSV writer)."""

    columns = {"row": np.arange(first_row, first_row + len(result["status"]))} | prediction_columns(result)
    return pa.table({name: pa.array(values, pa.string() if name in ("element", "evidence") else None)
                     for name, values in columns.items()})


def evaluate_model(model: FaultModel, data: Dataset, *, retrieval: bool = True) -> dict:
    """Measure a fault model on a labelled table held in memory (see :func:`evaluate_file` for the
    document; :func:`evaluate_file` streams a table of any size from disk).

    Raises:
        ValueError: the table lacks the model's feature columns.
    """
    missing = [n for n in model.feature_names if n not in data.feature_names]
    if missing:
        raise ValueError(f"the table lacks the model's feature column(s) {missing}")
    columns = [data.feature_names.index(n) for n in model.feature_names]
    result, codes = _identified_with_codes(model, data.features[:, columns])
    return _evaluation(model, result, data.label_names.astype(str), codes, retrieval)


def _identified_with_codes(model: FaultModel, raw: np.ndarray, previous=None, pool=None):
    """``(FaultMemory.identify result, codes)`` of raw rows: the codes kept for the retrieval measures."""
    x = model.features(raw, previous=previous, pool=pool)
    codes = encode(model.encoder, x)
    return model.memory.identify(model.representation.combine(codes, x)), codes


def evaluate_file(model: FaultModel, table: str | Path, label_column: str, *, chunk_rows: int = 65_536,
                  retrieval: bool = True, truth_column: str | None = None, progress: bool = False) -> dict:
    """Measure a fault model on a labelled table, streamed in chunks like :func:`detect_file`.

    A row counts as correct when its ``status`` equals its label, where labels
    without a signature in the memory should come out ``unknown``. Memory grows with the rows
    only by what the measures keep per row: the status, the unknown score and the N-wide code
    (about 80 bytes at N = 16: 1M rows fit in well under 2 GB).

    Returns:
        JSON-safe dict: ``n_rows``, ``accuracy``, ``macro_f1`` (over the true
        labels, ``unknown`` included when present), ``unknown_rate``,
        ``unknown_auroc`` (rows of statuses without a signature vs rows with one,
        scored by ``unknown_score``; None when one side is empty), the retrieval
        metrics of the codes (P@1, R-precision, MAP@R, with their method, number of queries and
        standard errors: :func:`~lossless_triplet.metrics.retrieval_metrics`; when ``retrieval``),
        and per-status counts. With ``truth_column`` (a column naming the target element of each
        fault row, empty elsewhere) also ``explanation``: per true status, over its rows with a
        target, the ``hit_rate`` (the target is in the row's ``element`` or in the name of one of its
        evidence columns) and ``rows``.

    Raises:
        ValueError: a missing feature or label column, a bad cell or a missing label (each named).
        FileNotFoundError: no such table.
    """
    bar = None
    if progress:

        bar = tqdm(unit="rows", unit_scale=True, desc="evaluate")
    statuses, scores, unknown, codes, labels, hits = [], [], [], [], [], []
    history = None
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="evaluate-view") as pool:
            for raw, cells, truth in iter_labelled_table(table, model.feature_names, label_column,
                                                         max(chunk_rows, MIN_CHUNK_ROWS), truth_column=truth_column):
                result, chunk_codes = _identified_with_codes(model, raw, history, pool)
                if truth is not None:
                    hits.append(_explanation_hits(model, raw, history, truth))
                history = model.recent_rows(history, raw)
                statuses.append(result["status"])
                scores.append(result["unknown_score"].astype(np.float32))
                unknown.append(result["unknown"])
                codes.append(chunk_codes.astype(np.float32))
                labels.append(cells)
                if bar is not None:
                    bar.update(len(raw))
    finally:
        if bar is not None:
            bar.close()
    result = {"status": np.concatenate(statuses), "unknown_score": np.concatenate(scores),
              "unknown": np.concatenate(unknown)}
    names = np.concatenate(labels)
    document = _evaluation(model, result, names, np.concatenate(codes), retrieval)
    if truth_column is not None:
        hit = np.concatenate(hits)  # 1 hit, 0 miss, -1 no target
        document["explanation"] = {
            str(status): {"hit_rate": float(np.mean(hit[(names == status) & (hit >= 0)])),
                          "rows": int(((names == status) & (hit >= 0)).sum())}
            for status in np.unique(names[hit >= 0])}
    return document


def _explanation_hits(model: FaultModel, raw: np.ndarray, history, truth: np.ndarray) -> np.ndarray:
    """(n,) int8: 1 when the row's target element (``truth``) is named by its element or one of its
    evidence columns, 0 when not, -1 for rows without a target."""
    explained = model.explain(raw, previous=history)
    names = np.array(model.feature_names, dtype=object)
    out = np.full(len(raw), -1, dtype=np.int8)
    for i, target in enumerate(truth.tolist()):
        if target:
            named = [explained["element"][i]] if model.explainer is None else [
                explained["element"][i], *names[explained["evidence_columns"][i]]]
            out[i] = any(target in text for text in named)
    return out


def _evaluation(model: FaultModel, result: dict, names: np.ndarray, codes: np.ndarray, retrieval: bool) -> dict:
    """The evaluation document from per-row results, true label names and codes."""

    known = np.isin(names, model.memory.names)
    truth = np.where(known, names, UNKNOWN)
    document = {
        "n_rows": len(names),
        "accuracy": float((result["status"] == truth).mean()),
        "macro_f1": float(f1_score(truth, result["status"], labels=sorted(set(truth)), average="macro",
                                   zero_division=0)),
        "unknown_rate": float(result["unknown"].mean()),
        "unknown_auroc": (float(roc_auc_score(~known, result["unknown_score"]))
                          if 0 < known.sum() < len(known) else None),
        "statuses": _counts(result["status"]),
        "truth": _counts(truth),
    }
    if retrieval and len(np.unique(names)) > 1:
        document.update(retrieval_metrics(codes, names))
    return document


def _counts(values: Sequence[str]) -> dict[str, int]:
    names, counts = np.unique(np.asarray(values), return_counts=True)
    return {str(n): int(c) for n, c in zip(names, counts)}
