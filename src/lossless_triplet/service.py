"""Real-time detection service: identify network status over HTTP, change faults live, notify a policy engine.

An ASGI app (FastAPI) over one saved model bundle (see :mod:`lossless_triplet.bundle`):

- ``POST /v1/identify``: rows -> per row ``status``, ``nearest``, ``distance``,
  ``unknown``, ``unknown_score``: exactly what ``lossless-triplet detect`` writes
  for a table made of the same rows in the same order (a JSON ``null`` is a
  missing cell, imputed like an empty CSV cell). Delta views use the previous row
  *of the request*; the first row of every request has none (as the first row of
  a ``detect`` table), so results never depend on other requests.
- ``GET /v1/faults``, ``POST /v1/faults`` (name + example rows: create or extend a
  signature), ``DELETE /v1/faults/{name}``; the changing two need a bearer token.
- ``GET /v1/model``, ``GET /healthz``, ``GET /metrics`` (Prometheus text).

Rows are JSON objects keyed by feature name (``{"rows": [{...}, ...]}``, or the
bare array) or columns (``{"columns": {"name": [v0, v1, ...], ...}}``). Besides the
model's feature columns a row may carry ``source`` (string: which network function
or probe it watches) and ``timestamp`` (number or string, echoed in events); any
other key is refused with 422 naming it, as is a missing feature column, a
non-numeric, boolean, infinite or beyond-float32 value, and an empty row list.
``POST /v1/identify`` also takes the same columns as an Arrow IPC stream
(``Content-Type: application/vnd.apache.arrow.stream``), the fast way to send
thousands of rows (see :func:`parse_arrow`).

Design:

- Identify requests are batched on the fly: while one batch is being computed
  (on one worker thread), new requests queue and go together into the next one,
  so numpy and torch overheads are paid once per batch, not once per row.
  Each request keeps its own previous-row semantics (see :func:`identify_many`).
- Fault changes are serialised by a lock, applied to a *copy* of the memory,
  written to ``signatures.safetensors`` atomically (temporary file, fsync,
  rename) and only then published by swapping one reference; identify reads the
  reference once per batch, so it never sees a half-changed memory and a change
  is on disk before its response leaves.
- Status changes of a ``source`` become events, logged as JSON lines on the
  ``lossless_triplet.events`` logger and POSTed to a webhook by one background
  thread with retries and exponential backoff; its queue is bounded and a full
  queue drops (and counts) events, so a down webhook never slows identification.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import gc
import hmac
import itertools
import json
import logging
import operator
import os
import queue
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .bundle import NO_SPACE, SIGNATURES_FILE, FaultModel
from .data.tables import float32_matrix
from .memory import UNKNOWN, is_reserved

try:  # optional: decodes request bodies ~5x and encodes answers ~10x faster than the json module
    import orjson
except ImportError:  # pragma: no cover - the stdlib path below is always correct, only slower
    orjson = None

__all__ = ["TOKEN_ENV", "DEFAULT_MAX_BODY_BYTES", "EXTRA_FIELDS", "BadRequest", "EventNotifier", "FaultService",
           "create_app", "identify_many", "parse_arrow", "parse_rows", "read_token"]

logger = logging.getLogger("lossless_triplet.service")
event_logger = logging.getLogger("lossless_triplet.events")

TOKEN_ENV = "LOSSLESS_TRIPLET_TOKEN"
DEFAULT_MAX_BODY_BYTES = 32 * 2**20  # 5,000 rows of the 121 KDDI columns as row objects take ~30 MB
EXTRA_FIELDS = ("source", "timestamp")  # the only non-feature keys a row may carry
MAX_BATCH_ROWS = 8192  # rows of several requests identified together (one request may exceed it alone)
MAX_SOURCES = 10_000  # sources whose last status is remembered (least recently seen forgotten first)
MAX_NAME_CHARS = 128
MAX_SOURCE_CHARS = 256
THREAD_PARSE_BYTES = 256 * 2**10  # bodies past this are parsed off the event loop
FLOAT32_MAX = float(np.finfo(np.float32).max)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNKNOWN_RATE_WINDOW = 1000  # rows behind the unknown-rate gauge
LOCK_FILE = ".serve.lock"
ARROW_STREAM = "application/vnd.apache.arrow.stream"  # media type of an Arrow IPC stream body
ARROW_END_OF_STREAM = b"\xff\xff\xff\xff\x00\x00\x00\x00"  # the last 8 bytes of every IPC stream


# --------------------------------------------------------------------------- input


class BadRequest(ValueError):
    """A client error: ``status`` (400 malformed, 422 invalid) and a message naming the problem."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class StorageError(RuntimeError):
    """A change that could not be written to the bundle (nothing was changed, on disk or in memory).

    ``status`` is 507 Insufficient Storage for a full disk or quota, 503 for any other write error.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclasses.dataclass
class Rows:
    """Validated request rows.

    Attributes:
        raw: (n, F) float32 in the model's feature order, NaN where a cell was null.
        sources: (n,) ``source`` per row (None where absent), or None when no row has one.
        timestamps: (n,) ``timestamp`` per row, or None when no row has one.
    """

    raw: np.ndarray
    sources: list | None = None
    timestamps: list | None = None


def read_token(token_file: str | Path | None = None, environ: dict | None = None) -> str | None:
    """The bearer token for changing endpoints: ``token_file``'s content, else ``$LOSSLESS_TRIPLET_TOKEN``.

    Surrounding whitespace is stripped. None when neither is given (changes are then disabled).

    Raises:
        FileNotFoundError: ``token_file`` does not exist.
        ValueError: the token is empty or holds whitespace or control characters.
    """
    environ = os.environ if environ is None else environ
    if token_file is not None:
        path = Path(token_file)
        if not path.is_file():
            raise FileNotFoundError(f"no such token file: {path}")
        token, where = path.read_text().strip(), f"token file {path}"
        if os.name == "posix" and path.stat().st_mode & 0o077:
            logger.warning("token file %s is readable by other users; chmod 600 it", path)
    elif environ.get(TOKEN_ENV) is not None:
        token, where = environ[TOKEN_ENV].strip(), f"${TOKEN_ENV}"
    else:
        return None
    if not token:
        raise ValueError(f"the bearer token from {where} is empty")
    if any(c.isspace() or not c.isprintable() for c in token):
        raise ValueError(f"the bearer token from {where} holds whitespace or control characters")
    if len(token) < 16:
        logger.warning("the bearer token is shorter than 16 characters; use a long random one")
    return token


def _reject_constant(name: str):
    raise BadRequest(422, f"non-finite number {name} is not allowed: send a finite number, or null for a "
                          "missing value")


def parse_json(body: bytes):
    """Decode a request body; NaN/Infinity literals are refused.

    Raises:
        BadRequest: an empty body or malformed JSON (400), a NaN/Infinity literal (422).
    """
    if not body.strip():
        raise BadRequest(400, "empty request body: send a JSON document")
    if orjson is not None:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # the json module below names the problem (and reads NaN literals, to refuse them by name)
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except UnicodeDecodeError as error:
        raise BadRequest(400, f"malformed JSON: the body is not UTF-8 ({error.reason}); send JSON, or for "
                              f"POST /v1/identify an Arrow IPC stream with Content-Type: {ARROW_STREAM}") from None
    except json.JSONDecodeError as error:
        raise BadRequest(400, f"malformed JSON: {error}") from None
    except RecursionError:
        raise BadRequest(400, "malformed JSON: nested too deeply") from None


def _json_type(value) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


def parse_rows(document, feature_names: Sequence[str], *, allowed_keys: Sequence[str] = ("rows", "columns")) -> Rows:
    """Validate a decoded JSON document holding rows and build the raw matrix.

    Accepted shapes: a bare array of row objects; ``{"rows": [{...}, ...]}``;
    ``{"columns": {"feature": [values...], ...}}``. Each row (or the columns)
    holds every feature name, and may hold ``source`` (string or null) and
    ``timestamp`` (number, string or null); values are numbers or null (missing).

    Args:
        document: the decoded JSON body.
        feature_names: the model's feature columns, in order.
        allowed_keys: top-level keys the endpoint accepts besides ``rows``/``columns``
            (e.g. ``name`` for ``POST /v1/faults``).

    Returns:
        :class:`Rows` with raw (n, F) float32, NaN for null.

    Raises:
        BadRequest (422): any misuse, named (missing/extra columns, bad values with
            row and column, an empty row list, a wrong shape).
    """
    names = list(feature_names)
    if isinstance(document, list):
        return _from_records(document, names)
    if not isinstance(document, dict):
        raise BadRequest(422, f"the body is {_json_type(document)}; send {{\"rows\": [{{feature: value, ...}}, ...]}} "
                              "or {\"columns\": {feature: [values], ...}}")
    unexpected = sorted(set(document) - set(allowed_keys) - {"rows", "columns"})
    if unexpected:
        expected = sorted({"rows", "columns", *allowed_keys})
        raise BadRequest(422, f"unexpected top-level key(s) {unexpected}; expected {expected}")
    if ("rows" in document) == ("columns" in document):
        raise BadRequest(422, "send exactly one of \"rows\" (an array of objects) and \"columns\" "
                              "(an object of arrays)")
    if "rows" in document:
        return _from_records(document["rows"], names)
    return _from_columns(document["columns"], names)


def _listed(names: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(repr(n) for n in list(names)[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _check_extras(extra: set, where: str) -> None:
    bad = sorted(extra - set(EXTRA_FIELDS))
    if bad:
        raise BadRequest(422, f"{where} has unexpected column(s) {_listed(bad)}: send the model's feature columns "
                              f"and optionally {' and '.join(EXTRA_FIELDS)} (GET /v1/model lists the features)")


def parse_arrow(body: bytes, feature_names: Sequence[str]) -> Rows:
    """Validate an Arrow IPC stream body (one table, one column per feature) and build the raw matrix.

    The binary alternative to JSON for bulk rows (``Content-Type:
    application/vnd.apache.arrow.stream``): no text to parse, so a 5,000-row body
    decodes in ~5 ms instead of ~80 ms of JSON decoding and validation. Columns: every
    feature (integer or floating point; null and NaN = missing, as an empty cell or a
    NaN in a ``detect`` table), optionally ``source``
    (string) and ``timestamp`` (integer, floating point or string); same meaning
    and limits as the JSON shapes of :func:`parse_rows`.

    Returns:
        :class:`Rows` with raw (n, F) float32, NaN for null.

    Raises:
        BadRequest: an empty or malformed stream, an Arrow *file*, bytes after the stream's
            end or a stream without its end marker (400); missing, repeated or extra
            columns, a column of another type, an infinite or beyond-float32 value
            (column and row named), no rows (422).
    """
    import pyarrow as pa
    import pyarrow.types as pat

    if not body:
        raise BadRequest(400, f"empty request body: send an Arrow IPC stream ({ARROW_STREAM})")
    if body.startswith(b"ARROW1"):
        raise BadRequest(400, "the body is an Arrow IPC *file* (Feather); send the stream format "
                              "(pyarrow.ipc.new_stream, not new_file)")
    source = pa.BufferReader(body)
    try:
        table = pa.ipc.open_stream(source).read_all()
    except (pa.ArrowException, OSError) as error:
        raise BadRequest(400, f"malformed Arrow IPC stream: {error}") from None
    # A stream ends with its end-of-stream marker and nothing after it; otherwise rows were cut off
    # (a sender that died mid-stream) or more follow that would be ignored (two streams back to back).
    if source.tell() != len(body):
        raise BadRequest(400, f"{len(body) - source.tell()} byte(s) after the end of the Arrow IPC stream: "
                              "send one stream per request")
    if not body.endswith(ARROW_END_OF_STREAM):
        raise BadRequest(400, "the Arrow IPC stream has no end-of-stream marker (cut short?): close the "
                              "stream writer before sending")
    names, columns = list(feature_names), table.column_names
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise BadRequest(422, f"the Arrow table repeats column(s) {_listed(repeated)}")
    missing = [n for n in names if n not in columns]
    if missing:
        raise BadRequest(422, f"the Arrow table lacks feature column(s) {_listed(missing)}; send every model "
                              "feature (null for a missing value)")
    _check_extras(set(columns) - set(names), "the Arrow table")
    if table.num_rows == 0:
        raise BadRequest(422, "the Arrow table has no rows: send at least one row")
    for name in names:
        kind = table.column(name).type
        if not (pat.is_integer(kind) or pat.is_floating(kind) or pat.is_null(kind)):
            raise BadRequest(422, f"column {name!r} has Arrow type {kind}: send integers or floating point "
                                  "numbers, null for a missing value")
    matrix = float32_matrix([table.column(name) for name in names])  # beyond float32 -> inf, refused below
    if np.isinf(matrix).any():
        i, j = (int(k) for k in np.argwhere(np.isinf(matrix))[0])
        raise BadRequest(422, f"column {names[j]!r} row {i} is infinite or beyond the float32 range (about "
                              "3.4e38): send a finite number, or null for a missing value")
    sources = timestamps = None
    if "source" in columns:
        if not (pat.is_string(table.column("source").type) or pat.is_large_string(table.column("source").type)):
            raise BadRequest(422, f"column 'source' has Arrow type {table.column('source').type}: send strings")
        sources = [_source(v, f"row {i}") for i, v in enumerate(table.column("source").to_pylist())]
    if "timestamp" in columns:
        kind = table.column("timestamp").type
        if not (pat.is_integer(kind) or pat.is_floating(kind) or pat.is_string(kind) or pat.is_large_string(kind)):
            raise BadRequest(422, f"column 'timestamp' has Arrow type {kind}: send numbers or strings")
        timestamps = table.column("timestamp").to_pylist()
    return Rows(matrix, sources, timestamps)


def _from_records(records, names: list[str]) -> Rows:
    if not isinstance(records, list):
        raise BadRequest(422, f"\"rows\" is {_json_type(records)}; send an array of objects keyed by feature name")
    if not records:
        raise BadRequest(422, "the row list is empty: send at least one row")
    get = operator.itemgetter(*names)
    single = len(names) == 1
    name_set = set(names)
    values, sources, timestamps = [], None, None
    for i, row in enumerate(records):
        if type(row) is not dict:
            raise BadRequest(422, f"rows[{i}] is {_json_type(row)}, not an object keyed by feature name")
        try:
            values.append((get(row),) if single else get(row))
        except KeyError:
            missing = [n for n in names if n not in row]
            raise BadRequest(422, f"rows[{i}] lacks feature column(s) {_listed(missing)}; send every model "
                                  "feature (null for a missing value)") from None
        if len(row) != len(names):  # only then can it carry source/timestamp or an extra key
            _check_extras(set(row) - name_set, f"rows[{i}]")
            if "source" in row:
                sources = sources or [None] * len(records)
                sources[i] = _source(row["source"], f"rows[{i}]")
            if "timestamp" in row:
                timestamps = timestamps or [None] * len(records)
                timestamps[i] = _timestamp(row["timestamp"], f"rows[{i}]")
    return Rows(_matrix(values, names, lambda i, j: f"rows[{i}][{names[j]!r}]"), sources, timestamps)


def _from_columns(columns, names: list[str]) -> Rows:
    if not isinstance(columns, dict):
        raise BadRequest(422, f"\"columns\" is {_json_type(columns)}; send an object of arrays keyed by feature name")
    missing = [n for n in names if n not in columns]
    if missing:
        raise BadRequest(422, f"\"columns\" lacks feature column(s) {_listed(missing)}; send every model feature")
    _check_extras(set(columns) - set(names), "\"columns\"")
    lengths = {}
    for key, column in columns.items():
        if not isinstance(column, list):
            raise BadRequest(422, f"columns[{key!r}] is {_json_type(column)}, not an array")
        lengths.setdefault(len(column), key)
    if len(lengths) > 1:
        raise BadRequest(422, f"columns differ in length: {', '.join(f'{k!r} has {n}' for n, k in lengths.items())}")
    n = next(iter(lengths))
    if n == 0:
        raise BadRequest(422, "the columns are empty: send at least one row")
    sources = timestamps = None
    if "source" in columns:
        sources = [_source(s, f"columns['source'][{i}]") for i, s in enumerate(columns["source"])]
    if "timestamp" in columns:
        timestamps = [_timestamp(t, f"columns['timestamp'][{i}]") for i, t in enumerate(columns["timestamp"])]
    values = [columns[name] for name in names]
    matrix = _matrix(values, names, lambda j, i: f"columns[{names[j]!r}][{i}]")
    return Rows(np.ascontiguousarray(matrix.T), sources, timestamps)


_NUMERIC = frozenset({int, float, type(None)})


def _matrix(values: list, names: list[str], where: Callable[[int, int], str]) -> np.ndarray:
    """Nested lists of numbers/None -> float32 matrix; ``where(i, j)`` names a cell in errors."""
    if not set(map(type, itertools.chain.from_iterable(values))) <= _NUMERIC:
        for i, row in enumerate(values):
            for j, value in enumerate(row):
                if type(value) not in _NUMERIC:
                    raise BadRequest(422, f"{where(i, j)} is {_json_type(value)} ({json.dumps(value)[:40]}), not a "
                                          "number: send a number, or null for a missing value")
    try:
        matrix = np.array(values, dtype=np.float64)
    except OverflowError:
        matrix = np.array([[float(v) if v is not None and abs(v) < 2**1024 else np.inf for v in row]
                           for row in values], dtype=np.float64)
    over = np.abs(matrix) > FLOAT32_MAX  # NaN (null) compares False
    if over.any():
        i, j = np.argwhere(over)[0]
        raise BadRequest(422, f"{where(int(i), int(j))} is infinite or beyond the float32 range (about 3.4e38): "
                              "send a finite number, or null for a missing value")
    return matrix.astype(np.float32)


def _source(value, where: str):
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_SOURCE_CHARS:
        got = _json_type(value) if not isinstance(value, str) else f"a string of {len(value)} characters"
        raise BadRequest(422, f"{where}['source'] must be a non-empty string of at most {MAX_SOURCE_CHARS} "
                              f"characters (or null), got {got}")
    return value


def _timestamp(value, where: str):
    if value is None or type(value) in (int, float, str):
        return value
    raise BadRequest(422, f"{where}['timestamp'] must be a number, a string or null, got {_json_type(value)}")


def _fault_name(document) -> str:
    name = document.get("name") if isinstance(document, dict) else None
    if not isinstance(name, str):
        raise BadRequest(422, "send {\"name\": FAULT_NAME, \"rows\": [...]} (or \"columns\"); "
                              "\"name\" must be a string")
    name = name.strip()
    if not name or is_reserved(name) or len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise BadRequest(422, f"fault name {name[:MAX_NAME_CHARS]!r} is not allowed: use 1 to {MAX_NAME_CHARS} "
                              f"printable characters, not {UNKNOWN!r}")
    return name


# --------------------------------------------------------------------------- identification


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


class _Batcher:
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


# --------------------------------------------------------------------------- events


class EventNotifier:
    """POSTs JSON events to a webhook from one background thread, with retries and exponential backoff.

    :meth:`submit` never blocks: the queue is bounded and a full one drops the
    event (counted, logged). A delivery is retried on a connection error, a
    timeout, HTTP 429 or 5xx, up to ``attempts`` tries, waiting
    ``backoff * 2**k`` seconds (capped at ``max_backoff``, with up to 10 % jitter)
    between tries; other answers end it. Events are delivered in order.

    Args:
        url: ``http://`` or ``https://`` URL.
        attempts: tries per event (>= 1).
        backoff: first wait between tries, seconds.
        max_backoff: longest wait, seconds.
        timeout: per-try HTTP timeout, seconds.
        queue_size: events waiting at most.
        on_outcome: called with ``"delivered"``, ``"failed"`` or ``"dropped"``.

    Raises:
        ValueError: a URL that is not http(s) or a bad number.
    """

    def __init__(self, url: str, *, attempts: int = 5, backoff: float = 0.5, max_backoff: float = 10.0,
                 timeout: float = 2.0, queue_size: int = 1000,
                 on_outcome: Callable[[str], None] | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook URL {url!r} must start with http:// or https://")
        if attempts < 1 or backoff < 0 or max_backoff < 0 or timeout <= 0 or queue_size < 1:
            raise ValueError("webhook attempts, queue_size must be >= 1; backoff, max_backoff >= 0; timeout > 0")
        self.url, self.attempts, self.timeout = url, attempts, timeout
        self.backoff, self.max_backoff = backoff, max_backoff
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._on_outcome = on_outcome or (lambda outcome: None)
        self._thread = threading.Thread(target=self._run, name="webhook", daemon=True)
        # The policy engine usually sits on the operator's network: ignore proxy variables for it.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def start(self) -> EventNotifier:
        """Start the delivery thread; returns self."""
        self._thread.start()
        return self

    def submit(self, event: dict) -> bool:
        """Queue one JSON-safe event; False (and counted as dropped) when the queue is full."""
        try:
            self._queue.put_nowait(event)
            return True
        except queue.Full:
            logger.warning("webhook queue full: dropped event %s", event.get("id"))
            self._on_outcome("dropped")
            return False

    def close(self, timeout: float = 2.0) -> None:
        """Deliver what is queued for at most ``timeout`` seconds, then stop the thread."""
        deadline = time.monotonic() + timeout
        while not self._queue.empty() and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.02)
        self._stop.set()
        self._thread.join(max(0.0, deadline - time.monotonic()) + 0.1)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                event = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            self._on_outcome("delivered" if self._deliver(event) else "failed")

    def _deliver(self, event: dict) -> bool:
        body = json.dumps(event).encode()
        for attempt in range(self.attempts):
            retry, reason = self._post(body)
            if not retry:
                return reason is None
            if attempt + 1 < self.attempts:
                delay = min(self.max_backoff, self.backoff * 2**attempt) * (1 + random.random() / 10)
                if self._stop.wait(delay):
                    break
        logger.warning("webhook delivery of event %s failed after %d tries: %s", event.get("id"), attempt + 1, reason)
        return False

    def _post(self, body: bytes) -> tuple[bool, str | None]:
        """(retry?, failure reason or None)."""
        request = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": "application/json",
                                                  "User-Agent": "lossless-triplet-service"})
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                response.read()
            return False, None
        except urllib.error.HTTPError as error:
            return error.code == 429 or error.code >= 500, f"HTTP {error.code}"
        except (urllib.error.URLError, OSError, TimeoutError) as error:
            return True, str(getattr(error, "reason", error))


# --------------------------------------------------------------------------- metrics


class _Metrics:
    """Prometheus collectors of one app, in their own registry (several apps may share a process)."""

    def __init__(self, service: FaultService) -> None:
        self.registry = registry = CollectorRegistry()
        self.requests = Counter("lossless_triplet_http_requests", "HTTP requests answered",
                                ["method", "route", "code"], registry=registry)
        self.latency = Histogram("lossless_triplet_http_request_duration_seconds",
                                 "Time from the first body byte read to the response", ["method", "route"],
                                 buckets=LATENCY_BUCKETS, registry=registry)
        self.rows = Counter("lossless_triplet_rows_identified", "Rows identified", registry=registry)
        self.rows_unknown = Counter("lossless_triplet_rows_unknown", "Rows identified as unknown",
                                    registry=registry)
        self.faults_added = Counter("lossless_triplet_faults_added",
                                    "Accepted fault additions (a new signature or an extended one)",
                                    ["kind"], registry=registry)
        self.faults_removed = Counter("lossless_triplet_faults_removed", "Signatures removed", registry=registry)
        self.storage_errors = Counter("lossless_triplet_storage_errors",
                                      "Fault-memory changes refused because the bundle could not be written "
                                      "(reason: no_space or other; nothing was changed)", ["reason"],
                                      registry=registry)
        self.events = Counter("lossless_triplet_events", "Status-change events by outcome "
                              "(emitted, delivered, failed, dropped)", ["outcome"], registry=registry)
        Gauge("lossless_triplet_signatures", "Signatures in the fault memory",
              registry=registry).set_function(lambda: len(service.memory.names))
        Gauge("lossless_triplet_unknown_rate", f"Fraction of unknown rows among the last {UNKNOWN_RATE_WINDOW} "
              "rows identified", registry=registry).set_function(self.unknown_rate)
        self._window: deque = deque()  # (rows, unknown) per request, newest last
        self._window_rows = self._window_unknown = 0
        self._lock = threading.Lock()

    def observe_rows(self, n: int, unknown: int) -> None:
        """Count one request's ``n`` identified rows, ``unknown`` of them unknown."""
        self.rows.inc(n)
        self.rows_unknown.inc(unknown)
        with self._lock:
            self._window.append((n, unknown))
            self._window_rows += n
            self._window_unknown += unknown
            while len(self._window) > 1 and self._window_rows - self._window[0][0] >= UNKNOWN_RATE_WINDOW:
                old_n, old_unknown = self._window.popleft()
                self._window_rows -= old_n
                self._window_unknown -= old_unknown

    def unknown_rate(self) -> float:
        """Unknown fraction of the last ~``UNKNOWN_RATE_WINDOW`` rows (0 before any)."""
        with self._lock:
            return self._window_unknown / self._window_rows if self._window_rows else 0.0


# --------------------------------------------------------------------------- the service


class FaultService:
    """The state behind the HTTP app: the model, the current memory, per-source statuses, events.

    Args:
        model_dir: a model bundle directory (read now, rewritten on fault changes).
        token: bearer token for changing endpoints; None disables them.
        webhook: URL events are POSTed to, or None.
        normal_status: the status name meaning "no fault" (sets an event's ``kind``).
        webhook_options: keyword arguments for :class:`EventNotifier`.

    Raises:
        FileNotFoundError, ValueError: not a readable bundle (see :meth:`FaultModel.load`).
    """

    def __init__(self, model_dir: str | Path, *, token: str | None = None, webhook: str | None = None,
                 normal_status: str = "normal", webhook_options: dict | None = None) -> None:
        self.model_dir = Path(model_dir)
        self.model = FaultModel.load(self.model_dir)
        self.memory = self.model.memory  # replaced whole (never mutated) on every change
        self.normal_status = normal_status
        self._token = token
        self._change_lock = threading.Lock()
        self._sources: OrderedDict[str, str] = OrderedDict()
        self._sources_lock = threading.Lock()
        self.metrics = _Metrics(self)
        self.notifier = None
        if webhook:
            self.notifier = EventNotifier(webhook, on_outcome=lambda o: self.metrics.events.labels(o).inc(),
                                          **(webhook_options or {}))
        self._half_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="identify-half")
        self.batcher = _Batcher(self._identify_batch)
        self.model.encode(np.zeros((1, len(self.model.feature_names)), dtype=np.float32))  # warm up torch

    def __repr__(self) -> str:  # never shows the token
        return f"FaultService(model_dir={str(self.model_dir)!r}, signatures={len(self.memory.names)})"

    @property
    def changes_enabled(self) -> bool:
        """Whether a token was configured (changing endpoints refuse everything otherwise)."""
        return self._token is not None

    def check_token(self, presented: str | None) -> bool:
        """Constant-time comparison of a presented bearer token with the configured one."""
        if self._token is None or presented is None:
            return False
        return hmac.compare_digest(presented.encode(), self._token.encode())

    # ---------------------------------------------------------------- identify
    def _identify_batch(self, raws: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        return identify_many(self.model, self.memory, raws, pool=self._half_pool)

    async def identify(self, rows: Rows) -> list[dict]:
        """Identify validated rows (batched with concurrent requests); emits status-change events.

        Returns:
            one JSON-safe dict per row: status, nearest, distance, unknown, unknown_score
            (and source when given).
        """
        result = await self.batcher.submit(rows.raw)
        unknown = result["unknown"]
        self.metrics.observe_rows(len(unknown), int(unknown.sum()))
        if rows.sources is not None:
            self._track(rows, result)
        return _result_rows(result, rows.sources)

    def _track(self, rows: Rows, result: dict[str, np.ndarray]) -> None:
        events = []
        with self._sources_lock:
            for i, source in enumerate(rows.sources):
                if source is None:
                    continue
                status = str(result["status"][i])
                previous = self._sources.pop(source, None)
                self._sources[source] = status
                if status == previous or (previous is None and status == self.normal_status):
                    continue
                events.append(self._event(source, previous, status, result, i, rows.timestamps))
            while len(self._sources) > MAX_SOURCES:
                self._sources.popitem(last=False)
        for event in events:
            event_logger.info(json.dumps(event))
            self.metrics.events.labels("emitted").inc()
            if self.notifier is not None:
                self.notifier.submit(event)

    def _event(self, source: str, previous: str | None, status: str, result: dict, i: int,
               timestamps: list | None) -> dict:
        kind = UNKNOWN if status == UNKNOWN else "recovered" if status == self.normal_status else "fault"
        return {"event": "status_change", "id": str(uuid.uuid4()), "kind": kind, "source": source,
                "previous": previous, "status": status, "nearest": str(result["nearest"][i]),
                "distance": _finite(result["distance"][i]), "unknown_score": _finite(result["unknown_score"][i]),
                "element": str(result["element"][i]), "evidence": result["evidence"][i],
                "timestamp": None if timestamps is None else timestamps[i],
                "observed_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}

    # ---------------------------------------------------------------- changes
    def add_fault(self, name: str, raw: np.ndarray) -> dict:
        """Create or extend the signature ``name`` from raw rows; persisted before it is served.

        Returns:
            ``describe()`` row of the signature plus ``created`` (bool) and ``rows_added``.

        Raises:
            ValueError: as :meth:`FaultMemory.add`.
            StorageError: the bundle could not be written (nothing changed; see :meth:`_publish`).
        """
        codes = self.model.represent(raw)
        with self._change_lock:
            memory = copy.deepcopy(self.memory)
            created = name not in memory.names
            memory.add(name, codes)
            self._publish(memory)
        self.metrics.faults_added.labels("created" if created else "extended").inc()
        row = next(r for r in memory.describe() if r["name"] == name)
        return {**row, "created": created, "rows_added": len(raw)}

    def remove_fault(self, name: str) -> None:
        """Forget the signature ``name``; persisted before it is served.

        Raises:
            KeyError: no such signature.
            ValueError: it is the last one (identify would have nothing to match).
            StorageError: the bundle could not be written (nothing changed; see :meth:`_publish`).
        """
        with self._change_lock:
            if name not in self.memory.names:
                raise KeyError(name)
            if len(self.memory.names) == 1:
                raise ValueError(f"{name!r} is the last signature; add another before removing it")
            memory = copy.deepcopy(self.memory)
            memory.remove(name)
            self._publish(memory)
        self.metrics.faults_removed.inc()

    def _publish(self, memory) -> None:
        """Write ``memory`` atomically into the bundle, then serve it (caller holds the change lock).

        Raises:
            StorageError: the write failed (507 for a full disk or quota, else 503); the bundle and the
                served memory are unchanged, the failure is logged with the path and counted.
        """
        try:
            dataclasses.replace(self.model, memory=memory).save_signatures(self.model_dir)
        except OSError as error:
            no_space = error.errno in NO_SPACE
            self.metrics.storage_errors.labels("no_space" if no_space else "other").inc()
            logger.error("fault memory not saved: %s", error)
            cause = "no space left on device" if no_space else (error.strerror or str(error))
            raise StorageError(507 if no_space else 503,
                               f"{cause} while saving {SIGNATURES_FILE} in {self.model_dir}; nothing was changed "
                               "(the served fault memory is the one before this request)") from None
        self.memory = memory

    def close(self) -> None:
        """Stop the worker threads (queued events get a short chance to go out)."""
        if self.notifier is not None:
            self.notifier.close()
        self.batcher.close()
        self._half_pool.shutdown(wait=True)


def _finite(value) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def _result_rows(result: dict[str, np.ndarray], sources: list | None) -> list[dict]:
    distance, score = result["distance"].tolist(), result["unknown_score"].tolist()
    if not (np.isfinite(result["distance"]).all() and np.isfinite(result["unknown_score"]).all()):
        distance, score = [_finite(v) for v in distance], [_finite(v) for v in score]
    rows = [{"status": s, "nearest": n, "distance": d, "unknown": u, "unknown_score": c, "element": e,
             "evidence": v}
            for s, n, d, u, c, e, v in zip(result["status"].tolist(), result["nearest"].tolist(), distance,
                                           result["unknown"].tolist(), score, result["element"].tolist(),
                                           result["evidence"])]
    if sources is not None:
        for row, source in zip(rows, sources):
            row["source"] = source
    return rows


def _lock_bundle(model_dir: Path):
    """Hold an exclusive lock on the bundle so two servers never rewrite one memory; None where unsupported."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        return None
    handle = open(model_dir / LOCK_FILE, "a")  # noqa: SIM115 - held for the app's lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise ValueError(f"another `lossless-triplet serve` holds {model_dir}: one server per model bundle") from None
    return handle


# --------------------------------------------------------------------------- HTTP


_DISCONNECTED = object()


class _Guard:
    """ASGI middleware: body size limit (413) and per-route request metrics."""

    def __init__(self, app, *, max_body_bytes: int, metrics: _Metrics) -> None:
        self.app, self.max_body_bytes, self.metrics = app, max_body_bytes, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        code = 500

        async def send_and_record(message):
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
            await send(message)

        try:
            body = await self._read_body(scope, receive)
            if body is _DISCONNECTED:
                code = 499  # the client left before its body arrived: nobody to answer
                return
            if body is None:
                await _send_json(send_and_record, 413, {"detail": f"request body over {self.max_body_bytes} bytes "
                                                        "(--max-body-bytes): send fewer rows per request"})
                return
            delivered = False

            async def replay():
                nonlocal delivered
                if delivered:
                    return await receive()
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}

            await self.app(scope, replay, send_and_record)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(scope["method"], route, str(code)).inc()
            self.metrics.latency.labels(scope["method"], route).observe(time.perf_counter() - started)

    async def _read_body(self, scope, receive) -> bytes | None:
        """The whole body; None past the limit (read no further: the 413 closes the connection);
        ``_DISCONNECTED`` when the client went away."""
        declared = dict(scope["headers"]).get(b"content-length")
        too_big = declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes
        chunks, size, more = [], 0, not too_big
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return _DISCONNECTED
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                too_big = True
                break
            chunks.append(chunk)
            more = message.get("more_body", False)
        return None if too_big else b"".join(chunks)


async def _send_json(send, status: int, document: dict) -> None:
    body = json.dumps(document).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def _json_response(document, status: int = 200) -> Response:
    """``document`` holds no NaN or infinity (see :func:`_finite`)."""
    if orjson is not None:
        body = orjson.dumps(document)
    else:
        body = json.dumps(document, allow_nan=False, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type="application/json")


_ROWS_SCHEMA = {
    "oneOf": [
        {"type": "object", "title": "rows", "required": ["rows"], "properties": {"rows": {
            "type": "array", "minItems": 1, "items": {
                "type": "object", "description": "every feature name -> number or null (missing); optional "
                "\"source\" (string) and \"timestamp\" (number or string)",
                "additionalProperties": {"type": ["number", "string", "null"]}}}}},
        {"type": "object", "title": "columns", "required": ["columns"], "properties": {"columns": {
            "type": "object", "description": "every feature name -> array of numbers or nulls, equal lengths; "
            "optional \"source\" and \"timestamp\" arrays",
            "additionalProperties": {"type": "array"}}}},
    ],
}
_IDENTIFY_EXAMPLE = {"rows": [{"FEATURE_1": 0.5, "FEATURE_2": None, "source": "vnf-7"}]}


def _body_doc(schema: dict, example: dict) -> dict:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema,
                                                                                "example": example}}}}


def create_app(model_dir: str | Path, *, token: str | None = None, webhook: str | None = None,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, normal_status: str = "normal",
               webhook_options: dict | None = None, lock: bool = True) -> FastAPI:
    """The detection service as an ASGI app (serve it with uvicorn); OpenAPI docs at ``/docs``.

    Args:
        model_dir: a model bundle directory; fault changes rewrite its ``signatures.safetensors``.
        token: bearer token required by ``POST``/``DELETE /v1/faults``; None disables them (403).
            See :func:`read_token`.
        webhook: URL that receives status-change events (JSON POST), or None.
        max_body_bytes: larger request bodies get 413.
        normal_status: the status meaning "no fault".
        webhook_options: keyword arguments for :class:`EventNotifier` (attempts, backoff, ...).
        lock: hold an exclusive lock on the bundle while the app runs (one server per bundle).

    While the app runs, the objects that exist at start-up are moved out of the garbage
    collector's reach (``gc.freeze()``, undone at shutdown): full collections no longer walk
    them, which removed 170 ms latency spikes; it affects the whole process.

    Raises:
        FileNotFoundError, ValueError: not a readable model bundle; a bad webhook URL;
            max_body_bytes < 1.
    """
    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes={max_body_bytes} must be >= 1")
    service = FaultService(model_dir, token=token, webhook=webhook, normal_status=normal_status,
                           webhook_options=webhook_options)
    feature_names = list(service.model.feature_names)
    bearer = HTTPBearer(auto_error=False, description="the token of --token-file or $LOSSLESS_TRIPLET_TOKEN")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        handle = _lock_bundle(service.model_dir) if lock else None
        # torch, pandas and FastAPI leave ~10^5 long-lived objects; without this every full
        # garbage collection walks them all and stalls requests (measured: p99 188 -> 22 ms).
        gc.collect()
        gc.freeze()
        if service.notifier is not None:
            service.notifier.start()
        try:
            yield
        finally:
            service.close()
            gc.unfreeze()
            if handle is not None:
                handle.close()

    app = FastAPI(title="lossless-triplet detection service", version=_version(), lifespan=lifespan,
                  description="Identify the status of network telemetry rows (normal, a known fault, or unknown), "
                  "add fault types from one example, and follow status changes per source.")
    app.state.service = service

    async def rows_from(request: Request, allowed_keys: Sequence[str] = (), arrow: bool = False
                        ) -> tuple[dict | list | None, Rows]:
        body = await request.body()
        if request.headers.get("content-type", "").split(";")[0].strip().lower() == ARROW_STREAM:
            if not arrow:
                raise HTTPException(415, f"{request.url.path} takes JSON only ({ARROW_STREAM} is for "
                                         "POST /v1/identify)")
            work = lambda: (None, parse_arrow(body, feature_names))  # noqa: E731
        else:
            work = lambda: _parse(body, feature_names, allowed_keys)  # noqa: E731
        try:
            if len(body) > THREAD_PARSE_BYTES:
                return await asyncio.get_running_loop().run_in_executor(None, work)
            return work()
        except BadRequest as error:
            raise HTTPException(error.status, str(error)) from None

    def authorize(credentials: HTTPAuthorizationCredentials | None) -> None:
        if not service.changes_enabled:
            raise HTTPException(403, "changing the fault memory is disabled on this server: start `lossless-triplet "
                                     f"serve` with --token-file FILE or ${TOKEN_ENV} set")
        if credentials is None or not service.check_token(credentials.credentials):
            raise HTTPException(401, "missing or wrong bearer token: send the header 'Authorization: Bearer TOKEN'",
                                headers={"WWW-Authenticate": "Bearer"})

    identify_doc = _body_doc(_ROWS_SCHEMA, _IDENTIFY_EXAMPLE)
    identify_doc["requestBody"]["content"][ARROW_STREAM] = {"schema": {
        "type": "string", "format": "binary", "description": "an Arrow IPC stream: one column per feature "
        "(integers or floats, null = missing), optional source (strings) and timestamp"}}

    @app.post("/v1/identify", tags=["identify"], openapi_extra=identify_doc,
              summary="Identify rows: normal, a known fault, or unknown")
    async def identify(request: Request):
        """Per row, in order: ``status`` (a known status or ``unknown``), ``nearest`` (nearest signature),
        ``distance`` (Euclidean, code space), ``unknown`` (bool), ``unknown_score`` (distance / radius; > 1 is
        unknown) and ``source`` when given. Same as ``lossless-triplet detect`` on a table of these rows.
        Bulk rows are fastest as an Arrow IPC stream (``Content-Type: application/vnd.apache.arrow.stream``)."""
        _, rows = await rows_from(request, arrow=True)
        return _json_response({"n_rows": len(rows.raw), "results": await service.identify(rows)})

    @app.get("/v1/faults", tags=["faults"], summary="List the fault signatures")
    async def list_faults():
        """One entry per signature: name, count (member rows), radius, learned_radius."""
        return _json_response({"faults": service.memory.describe()})

    fault_schema = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}},
                    "oneOf": _ROWS_SCHEMA["oneOf"]}

    @app.post("/v1/faults", tags=["faults"], status_code=201,
              openapi_extra=_body_doc(fault_schema, {"name": "interface-down", **_IDENTIFY_EXAMPLE}),
              summary="Add a fault signature from example rows, or extend one (needs the token)")
    async def add_fault(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)):
        """Encodes the rows (one is enough) and adds them to signature ``name``, created if new (201) or
        extended (200). The change is written to the bundle before this answers."""
        authorize(credentials)
        document, rows = await rows_from(request, allowed_keys=("name",))
        try:
            name = _fault_name(document)
        except BadRequest as error:
            raise HTTPException(error.status, str(error)) from None
        try:
            row = await asyncio.get_running_loop().run_in_executor(None, service.add_fault, name, rows.raw)
        except ValueError as error:
            raise HTTPException(422, str(error)) from None
        except StorageError as error:
            raise HTTPException(error.status, str(error)) from None
        return _json_response(row, 201 if row["created"] else 200)

    @app.delete("/v1/faults/{name:path}", tags=["faults"], summary="Remove a fault signature (needs the token)")
    async def remove_fault(name: str, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)):
        """Forgets signature ``name``; written to the bundle before this answers. The last one cannot go."""
        authorize(credentials)
        try:
            await asyncio.get_running_loop().run_in_executor(None, service.remove_fault, name)
        except KeyError:
            raise HTTPException(404, f"no fault signature named {name!r}; known: {service.memory.names}") from None
        except ValueError as error:
            raise HTTPException(409, str(error)) from None
        except StorageError as error:
            raise HTTPException(error.status, str(error)) from None
        return _json_response({"removed": name, "faults": service.memory.names})

    @app.get("/v1/model", tags=["model"], summary="What the model expects")
    async def model_info():
        """Feature columns (in order), accepted extra fields, code width, view, loss, signatures."""
        info = service.model.info
        return _json_response({"feature_names": feature_names, "extra_fields": list(EXTRA_FIELDS),
                               "embedding_dim": service.memory.embedding_dim_, "view": service.model.view.name,
                               "loss": info.get("loss"), "signatures": service.memory.names,
                               "normal_status": service.normal_status, "changes_enabled": service.changes_enabled})

    @app.get("/healthz", tags=["operations"], summary="Liveness and readiness")
    async def healthz():
        return _json_response({"status": "ok", "signatures": len(service.memory.names)})

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    async def metrics():
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # Around routing, so 413 is answered before any endpoint runs and every request is timed.
    app.add_middleware(_Guard, max_body_bytes=max_body_bytes, metrics=service.metrics)
    return app


def _parse(body: bytes, feature_names: list[str], allowed_keys: Sequence[str]):
    document = parse_json(body)
    return document, parse_rows(document, feature_names, allowed_keys=allowed_keys)


def _version() -> str:
    from . import __version__

    return __version__
