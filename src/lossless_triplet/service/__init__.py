"""Real-time detection service (package): identify network status over HTTP, change faults live, notify a policy engine.

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

Layout (one concern a module): :mod:`.bodies` (rows as JSON or Arrow), :mod:`.batching` (requests
identified together), :mod:`.events` (webhook), :mod:`.metrics` (Prometheus), :mod:`.state` (the
model, the memory and its changes), :mod:`.deps` (the token and the rows as dependencies),
:mod:`.routes` (one router per resource), :mod:`.models` (the OpenAPI schema), :mod:`.http` (body
limit), :mod:`.app` (:func:`create_app`), :mod:`.server` (uvicorn with bounded request heads).
"""

from ..defaults import DEFAULT_MAX_BODY_BYTES, TOKEN_ENV
from ..memory import UNKNOWN
from .app import create_app
from .batching import identify_many
from .bodies import EXTRA_FIELDS, Rows, parse_arrow, parse_json, parse_rows
from .errors import BadRequest, NotFound, ServiceError, StorageError, Unauthorized
from .events import EventNotifier, event_logger
from .state import FaultService, lock_bundle, read_token

__all__ = ["DEFAULT_MAX_BODY_BYTES", "EXTRA_FIELDS", "TOKEN_ENV", "UNKNOWN", "BadRequest", "EventNotifier",
           "FaultService", "NotFound", "Rows", "ServiceError", "StorageError", "Unauthorized", "create_app",
           "event_logger", "identify_many", "lock_bundle", "parse_arrow", "parse_json", "parse_rows", "read_token"]
