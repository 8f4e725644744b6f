"""Identify requests batched on the fly: while one batch is being computed (on one worker thread),
new requests queue and go together into the next one, so NumPy and torch overheads are paid once
per batch, not once per row. Each request keeps its own previous-row semantics (:func:`identify_many`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor

import numpy as np

from ..bundle import FaultModel

logger = logging.getLogger("lossless_triplet.service")

__all__ = ["MAX_BATCH_ROWS", "Batcher", "identify_many"]

MAX_BATCH_ROWS = 8192  # rows of several requests identified together (one request may exceed it alone)


def identify_many(model: FaultModel, memory, raws: Sequence[np.ndarray], *,
                  pool: Executor | None = None) -> list[dict[str, np.ndarray]]:
    """Identify several independent row blocks in one pass, each as ``FaultModel.identify(raw)`` would.

    Delta views see each block on its own: a block's first row has no previous
    row. Blocks are stacked with an all-missing row before each, which makes the
    first delta of every block missing exactly as ``previous=None`` does; views
    and the scaler work row by row, so nothing else crosses a block boundary.
    Baseline views (10 rows back) compute each block's features on its own.
    With a ``pool``, the features of a stack of at least
    :data:`~lossless_triplet.bundle.PARALLEL_ROWS` rows are computed as two halves at once
    (see :meth:`~lossless_triplet.bundle.FaultModel.features`).

    Shape: raws: k arrays (n_i, F) float32, NaN = missing. Returns k dicts of (n_i,) arrays
    (the keys of :meth:`~lossless_triplet.memory.FaultMemory.identify`, plus ``element``) and
    ``evidence`` (n_i lists of ``{"column", "deviation", "missing"}``, most deviant first; each
    block explained on its own like its features, see :mod:`lossless_triplet.explain`).

    Raises:
        ValueError: as :meth:`FaultMemory.identify` (e.g. an empty memory).
    """
    sizes = [len(raw) for raw in raws]
    result = memory.identify(model.represent_features(_stacked_features(model, raws, pool)))
    result |= _stacked_evidence(model, raws)
    bounds = np.cumsum([0, *sizes])
    return [{key: value[a:b] for key, value in result.items()} for a, b in zip(bounds[:-1], bounds[1:])]


def _stacked_evidence(model: FaultModel, raws: Sequence[np.ndarray]) -> dict:
    """``element`` (n,) str and ``evidence`` (n lists of {column, deviation, missing}) of every block,
    each on its own like its features (:meth:`FaultModel.explain`), in one pass: blocks are stacked with
    ``history_rows`` all-missing rows before each, which the baseline's mean ignores, so no block
    sees another's rows."""
    n = sum(len(raw) for raw in raws)
    if model.explainer is None:
        return {"element": np.full(n, "", dtype=str), "evidence": [[] for _ in range(n)]}
    gap = model.explainer.history_rows
    if gap and len(raws) > 1:
        filler = np.full((gap, raws[0].shape[1]), np.nan, dtype=np.float32)
        stacked = np.concatenate([part for raw in raws for part in (filler, raw)])
        keep = np.concatenate([np.r_[np.zeros(gap, dtype=bool), np.ones(len(raw), dtype=bool)] for raw in raws])
        explained = {key: value[keep] for key, value in model.explainer.explain(stacked).items()}
    else:
        explained = model.explainer.explain(np.concatenate(raws))
    names = model.explainer.view.feature_names_in_
    values = np.round(explained["evidence_values"].astype(np.float64), 2)
    shown = np.where(explained["evidence_missing"], None, values.astype(object))
    evidence = [[{"column": names[j], "deviation": v, "missing": v is None}
                 for j, v, raw in zip(columns, row, raw_row) if raw != 0.0]
                for columns, row, raw_row in zip(explained["evidence_columns"].tolist(), shown.tolist(),
                                                 values.tolist())]
    return {"element": explained["element"], "evidence": np.array(evidence + [None], dtype=object)[:-1]}


def _stacked_features(model: FaultModel, raws: Sequence[np.ndarray], pool: Executor | None) -> np.ndarray:
    """Features of several blocks, each as if alone (see :func:`identify_many`), rows in order."""
    if len(raws) == 1:
        return model.features(raws[0], pool=pool)
    if model.view.history_rows > 1:  # a baseline view: one gap row cannot separate blocks
        return np.concatenate([model.features(raw, pool=pool) for raw in raws])
    if not model.view.needs_previous_row:
        return model.features(np.concatenate(raws), pool=pool)
    gap = np.full((1, raws[0].shape[1]), np.nan, dtype=np.float32)
    stacked = np.concatenate([part for raw in raws for part in (gap, raw)])
    keep = np.ones(len(stacked), dtype=bool)
    keep[np.cumsum([0] + [len(raw) + 1 for raw in raws[:-1]])] = False
    return model.features(stacked, pool=pool)[keep]


class Batcher:
    """Coalesces concurrent identify requests into batches computed on one worker thread."""

    def __init__(self, compute: Callable[[list[np.ndarray]], list], max_rows: int = MAX_BATCH_ROWS) -> None:
        self._compute = compute
        self._max_rows = max_rows
        self._pending: deque = deque()
        self._running = False
        self._task: asyncio.Task | None = None  # held: the loop keeps only weak references to tasks
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="identify")

    async def submit(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        """Queue one request's rows (n, F); resolves to its own slice of a batch's result."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((raw, future))
        if not self._running:
            self._running = True
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch, rows = [], 0
                while self._pending and (not batch or rows + len(self._pending[0][0]) <= self._max_rows):
                    raw, future = self._pending.popleft()
                    if not future.done():  # the client may have gone
                        batch.append((raw, future))
                        rows += len(raw)
                if not batch:
                    continue
                try:
                    results = await loop.run_in_executor(self._executor, self._compute, [raw for raw, _ in batch])
                except Exception as error:  # noqa: BLE001 - handed to every waiting request
                    logger.exception("identify failed on a batch of %d request(s)", len(batch))
                    results = [error] * len(batch)
                for (_, future), result in zip(batch, results):
                    if future.done():
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._running = False

    def close(self) -> None:
        """Wait for the batch in progress, then stop the worker thread."""
        self._executor.shutdown(wait=True)
