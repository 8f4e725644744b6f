"""The service's state: the model, the current fault memory, per-source statuses, events, the token.

Fault changes are serialised by a lock, applied to a *copy* of the memory, written to
``signatures.safetensors`` atomically and only then published by swapping one reference;
identify reads the reference once per batch, so it never sees a half-changed memory and a change
is on disk before its response leaves.
"""

from __future__ import annotations

import copy
import dataclasses
import hmac
import json
import logging
import os
import threading
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..bundle import SIGNATURES_FILE, FaultModel
from ..defaults import TOKEN_ENV
from ..io import NO_SPACE
from ..memory import UNKNOWN
from .batching import Batcher, identify_many
from .bodies import Rows
from .errors import BadRequest, NotFound, StorageError
from .events import EventNotifier, event_logger
from .metrics import ServiceMetrics

__all__ = ["FaultService", "LOCK_FILE", "MAX_SOURCES", "lock_bundle", "read_token"]

logger = logging.getLogger("lossless_triplet.service")

MAX_SOURCES = 10_000  # sources whose last status is remembered (least recently seen forgotten first)
LOCK_FILE = ".serve.lock"


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
        self.feature_names = list(self.model.feature_names)  # the columns a request must carry, in order
        self.normal_status = normal_status
        self._token = token
        self._change_lock = threading.Lock()
        self._sources: OrderedDict[str, str] = OrderedDict()
        self._sources_lock = threading.Lock()
        self.metrics = ServiceMetrics(self)
        self.notifier = None
        if webhook:
            self.notifier = EventNotifier(webhook, on_outcome=lambda o: self.metrics.events.labels(o).inc(),
                                          **(webhook_options or {}))
        self._half_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="identify-half")
        self.batcher = Batcher(self._identify_batch)
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
            BadRequest: 422, rows the memory refuses (see :meth:`FaultMemory.add`).
            StorageError: the bundle could not be written (nothing changed; see :meth:`_publish`).
        """
        codes = self.model.represent(raw)
        with self._change_lock:
            memory = copy.deepcopy(self.memory)
            created = name not in memory.names
            try:
                memory.add(name, codes)
            except ValueError as error:
                raise BadRequest(422, str(error)) from None
            self._publish(memory)
        self.metrics.faults_added.labels("created" if created else "extended").inc()
        return {**memory.entry(name), "created": created, "rows_added": len(raw)}

    def remove_fault(self, name: str) -> None:
        """Forget the signature ``name``; persisted before it is served.

        Raises:
            NotFound: 404, no such signature (a ``KeyError``).
            BadRequest: 409, it is the last one (:meth:`FaultMemory.remove`'s rule: identify would
                have nothing to match).
            StorageError: the bundle could not be written (nothing changed; see :meth:`_publish`).
        """
        name = name.strip()  # names are stored stripped (FaultMemory.add)
        with self._change_lock:
            if name not in self.memory.names:
                raise NotFound(404, f"no fault signature named {name!r}; known: {self.memory.names}")
            memory = copy.deepcopy(self.memory)
            try:
                memory.remove(name)
            except ValueError as error:
                raise BadRequest(409, str(error)) from None
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
            original = error.__cause__ if isinstance(error.__cause__, OSError) else error  # io names the file
            cause = "no space left on device" if no_space else (original.strerror or str(original))
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


def lock_bundle(model_dir: Path):
    """Hold an exclusive lock on the bundle so two servers never rewrite one memory; None where unsupported."""
    try:  # a local import: fcntl exists on POSIX only
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
