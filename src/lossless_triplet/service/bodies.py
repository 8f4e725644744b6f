"""Request bodies: rows as JSON (records or columns) or as an Arrow IPC stream, validated into :class:`Rows`.

Rows are JSON objects keyed by feature name (``{"rows": [{...}, ...]}``, or the bare array) or
columns (``{"columns": {"name": [v0, v1, ...], ...}}``). Besides the model's feature columns a row
may carry ``source`` (string: which network function or probe it watches) and ``timestamp`` (number
or string, echoed in events); any other key is refused with 422 naming it, as is a missing feature
column, a non-numeric, boolean, infinite or beyond-float32 value, and an empty row list.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import operator
from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.types as pat

from ..data.tables import float32_matrix
from ..memory import UNKNOWN, is_reserved
from .errors import BadRequest

try:  # optional: decodes request bodies ~5x faster than the json module
    import orjson
except ImportError:  # pragma: no cover - the stdlib path below is always correct, only slower
    orjson = None

__all__ = ["ARROW_STREAM", "EXTRA_FIELDS", "Rows", "fault_name", "parse_arrow", "parse_json", "parse_rows",
           "parse_json_rows"]

EXTRA_FIELDS = ("source", "timestamp")  # the only non-feature keys a row may carry
MAX_NAME_CHARS = 128
MAX_SOURCE_CHARS = 256
ARROW_STREAM = "application/vnd.apache.arrow.stream"  # media type of an Arrow IPC stream body
FLOAT32_MAX = float(np.finfo(np.float32).max)
ARROW_END_OF_STREAM = b"\xff\xff\xff\xff\x00\x00\x00\x00"  # the last 8 bytes of every IPC stream


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
        if pat.is_floating(kind):
            for i, value in enumerate(timestamps):
                if value is not None and not np.isfinite(value):
                    raise BadRequest(422, f"column 'timestamp' row {i} is {value}: send a finite number, a string "
                                          "or null (events carry the timestamp as strict JSON)")
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


def fault_name(document) -> str:
    """The ``name`` of a ``POST /v1/faults`` body, stripped.

    Raises:
        BadRequest: 422 for a missing or non-string name, or one that is empty, reserved
            (``unknown`` in any case), longer than :data:`MAX_NAME_CHARS` or not printable.
    """
    name = document.get("name") if isinstance(document, dict) else None
    if not isinstance(name, str):
        raise BadRequest(422, "send {\"name\": FAULT_NAME, \"rows\": [...]} (or \"columns\"); "
                              "\"name\" must be a string")
    name = name.strip()
    if not name or is_reserved(name) or len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise BadRequest(422, f"fault name {name[:MAX_NAME_CHARS]!r} is not allowed: use 1 to {MAX_NAME_CHARS} "
                              f"printable characters, not {UNKNOWN!r}")
    return name



def parse_json_rows(body: bytes, feature_names: Sequence[str], allowed_keys: Sequence[str] = ()):
    """``(document, rows)`` of a JSON body: :func:`parse_json` then :func:`parse_rows`.

    Raises:
        BadRequest: as those two."""
    document = parse_json(body)
    return document, parse_rows(document, feature_names, allowed_keys=allowed_keys)
