"""Streaming detection and evaluation of a saved fault model on tables.

``detect_file`` reads a table chunk by chunk and writes one prediction line per
input row, in order, so memory is bounded by the chunk whatever the file size.
Each chunk is identified in blocks of :data:`BLOCK_ROWS` rows, spread over one worker
thread per core: a block's whole path (view, encoder, memory, evidence) stays in the
CPU caches, where one pass over a 65,536-row chunk allocated and touched hundreds of MB
of temporaries (measured: 4.2 s per 100k KDDI rows as whole chunks, 2.0 s in blocks of
4,096 on one thread, 1.25 s on two; ``benchmarks/detect_speed.py``).
Views that look back (delta: 1 row, baseline: 10) get the last raw rows before each
block and each chunk, so the features do not depend on where blocks or chunks are cut
(the encoder's float32 sums may differ between batch sizes: ``distance`` and
``unknown_score`` by a few float32 units in the last place, 9 at most seen on KDDI; statuses
only at an exact tie).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from ..blocks import concat_rows, row_starts
from ..bundle import FaultModel
from ..data import Dataset, iter_feature_table, iter_labelled_table
from ..io import written_at_end
from ..memory import UNKNOWN
from ..metrics import retrieval_metrics
from ..models import encode

__all__ = ["BLOCK_ROWS", "PREDICTION_COLUMNS", "detect_file", "evaluate_file", "evaluate_model",
           "identified_chunks", "prediction_columns", "worker_count"]

PREDICTION_COLUMNS = ("row", "status", "nearest", "distance", "unknown", "unknown_score", "element", "evidence")
MIN_CHUNK_ROWS = 1024  # detect's smallest chunk: below it the per-chunk costs dominate
# Rows identified at once. KDDI (121 columns, 216 view features, 432-wide memory vectors), one
# thread, s per 100k rows: 65,536: 4.2; 16,384: 2.3; 8,192: 2.1; 4,096: 2.1; 2,048: 2.0;
# 1,024: 2.1; 512: 2.6 (below ~1,000 the per-call costs grow). On two threads 4,096 was best (1.25).
BLOCK_ROWS = 4096


def worker_count() -> int:
    """The cores this process may run on (its CPU affinity where the OS reports one): the number
    of worker threads :func:`detect_file` and :func:`evaluate_file` use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


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
        # blocks go to one worker per core (NumPy, torch and Arrow release the GIL), each with a
        # one-thread BLAS; predictions go to a temporary file renamed at the end, so a failed run
        # leaves no partial output
        with (written_at_end(out) as partial, partial.open("wb") as handle, _workers("detect") as pool):
            handle.write((",".join(PREDICTION_COLUMNS) + "\n").encode())
            chunks = iter_feature_table(table, model.feature_names, max(chunk_rows, MIN_CHUNK_ROWS))
            for raw, result in identified_chunks(model, chunks, pool=pool):
                pcsv.write_csv(_prediction_table(result, written), handle,
                               pcsv.WriteOptions(include_header=False))
                written += len(raw)
                if bar is not None:
                    bar.update(len(raw))
    finally:
        if bar is not None:
            bar.close()
    return written


@contextmanager
def _workers(name: str) -> Iterator[Executor]:
    """One worker thread per core, with BLAS held to one thread while they run (the memory's matrix
    product runs in every block: a multithreaded BLAS per worker oversubscribes the cores; measured
    1.9 s against 2.8 s per 100k KDDI rows on 2 cores). The limit is process-wide (the BLAS library
    has one setting) and is lifted on exit."""
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(worker_count(), thread_name_prefix=name) as pool:
        yield pool


def identified_chunks(model: FaultModel, chunks: Iterable[np.ndarray], *, pool: Executor | None = None
                      ) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """``(raw, result)`` for each chunk of raw rows in time order: :meth:`FaultModel.identify` and
    :meth:`FaultModel.explain` of its rows, computed in blocks of :data:`BLOCK_ROWS` rows, each
    given the raw rows before it that a view or the evidence looks back at (carried across
    chunks too), so the result does not depend on where chunks or blocks are cut.

    Args:
        chunks: (n_i, F) float32 raw rows, consecutive.
        pool: workers that identify the blocks at once (one per core is right: NumPy, torch and
            Arrow release the GIL). The blocks of the next chunk are handed to the pool before a
            chunk is yielded, so reading and writing overlap the work. None: one block after the
            other, in this thread.

    Yields:
        raw (n_i, F) and a dict of (n_i, ...) arrays: the keys of both methods.
    """
    for (raw,), result in _pipelined(_identified_block, model, ((raw,) for raw in chunks), pool):
        yield raw, result


_Block = Callable[[FaultModel, np.ndarray, np.ndarray], dict[str, np.ndarray]]


def _identified_block(model: FaultModel, raw: np.ndarray, previous: np.ndarray) -> dict[str, np.ndarray]:
    return model.identify(raw, previous) | model.explain(raw, previous)


def _pipelined(fn: _Block, model: FaultModel, items: Iterable[tuple], pool: Executor | None
               ) -> Iterator[tuple[tuple, dict[str, np.ndarray]]]:
    """``(item, result)`` for each item ``(raw, ...)`` of consecutive raw rows: ``fn`` over the blocks of
    ``raw`` (see :func:`_blocks`), merged. With a pool, item k + 1 is read and its blocks submitted
    before item k's result is collected and yielded."""
    history, waiting = None, None  # the last raw rows (views that look back); the item in flight
    for item in items:
        raw = item[0]
        started = [pool.submit(fn, model, block, previous) if pool is not None else fn(model, block, previous)
                   for block, previous in _blocks(model, raw, history)]
        history = model.recent_rows(history, raw)
        if waiting is not None:
            yield waiting[0], _merged(waiting[1])
        waiting = item, started
    if waiting is not None:
        yield waiting[0], _merged(waiting[1])


def _blocks(model: FaultModel, raw: np.ndarray, history: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(block, previous)`` for the blocks of :data:`BLOCK_ROWS` rows of ``raw``: ``previous`` is the
    :attr:`FaultModel.history_rows` raw rows before the block (from ``history``, the rows before ``raw``,
    then ``raw`` itself), so a block's result equals its rows' part of one pass over all of them.
    An empty ``raw`` gives one empty block."""
    return [(raw[start:start + BLOCK_ROWS], model.recent_rows(history, raw[:start]))
            for start in row_starts(len(raw), BLOCK_ROWS)]


def _merged(parts: list) -> dict[str, np.ndarray]:
    """The row-wise concatenation of block results (dicts of arrays, or futures of them), key by key."""
    return concat_rows([part.result() if isinstance(part, Future) else part for part in parts])


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
    raw = data.features[:, columns]
    result = concat_rows([_identified_with_codes(model, *block) for block in _blocks(model, raw, None)])
    return _evaluation(model, result, data.label_names.astype(str), result["codes"], retrieval)


def _identified_with_codes(model: FaultModel, raw: np.ndarray, previous: np.ndarray | None = None
                           ) -> dict[str, np.ndarray]:
    """:meth:`FaultMemory.identify` of raw rows and their ``codes`` (for the retrieval measures)."""
    x = model.features(raw, previous=previous)
    codes = encode(model.encoder, x)
    return model.memory.identify(model.representation.combine(codes, x)) | {"codes": codes}


def _explained_with_codes(model: FaultModel, raw: np.ndarray, previous: np.ndarray | None = None
                          ) -> dict[str, np.ndarray]:
    """:func:`_identified_with_codes` and :meth:`FaultModel.explain` of raw rows."""
    return _identified_with_codes(model, raw, previous) | model.explain(raw, previous)


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
    block = _identified_with_codes if truth_column is None else _explained_with_codes
    try:
        with _workers("evaluate") as pool:
            chunks = iter_labelled_table(table, model.feature_names, label_column, max(chunk_rows, MIN_CHUNK_ROWS),
                                         truth_column=truth_column)
            for (raw, cells, truth), result in _pipelined(block, model, chunks, pool):
                if truth is not None:
                    hits.append(_explanation_hits(model, result, truth))
                statuses.append(result["status"])
                scores.append(result["unknown_score"].astype(np.float32))
                unknown.append(result["unknown"])
                codes.append(result["codes"].astype(np.float32))
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


def _explanation_hits(model: FaultModel, explained: dict[str, np.ndarray], truth: np.ndarray) -> np.ndarray:
    """(n,) int8: 1 when the row's target element (``truth``) is named by its element or one of its
    evidence columns (in ``explained``, :meth:`FaultModel.explain` output), 0 when not, -1 for rows
    without a target."""
    names = np.array(model.feature_names, dtype=object)
    out = np.full(len(truth), -1, dtype=np.int8)
    for i, target in enumerate(truth.tolist()):
        if target:
            named = [explained["element"][i]] if model.explainer is None else [
                explained["element"][i], *names[explained["evidence_columns"][i]]]
            out[i] = any(target in text for text in named)
    return out


def _evaluation(model: FaultModel, result: dict, names: np.ndarray, codes: np.ndarray, retrieval: bool) -> dict:
    """The evaluation document from per-row results, true label names and codes."""
    from sklearn.metrics import f1_score, roc_auc_score  # here: detect alone does not pay for importing it


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
