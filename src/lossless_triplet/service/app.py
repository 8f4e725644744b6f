"""The ASGI app: the routers, one exception handler for every client error, the body limit, the lifespan."""

from __future__ import annotations

import gc
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request

from .. import __version__
from ..defaults import DEFAULT_MAX_BODY_BYTES
from .errors import ServiceError
from .http import BodyLimit, json_response
from .routes import faults, identify, model, operations
from .state import FaultService, lock_bundle

__all__ = ["create_app"]


def create_app(model_dir: str | Path, *, token: str | None = None, webhook: str | None = None,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, normal_status: str = "normal",
               webhook_options: dict | None = None, lock: bool = True) -> FastAPI:
    """The detection service as an ASGI app (serve it with uvicorn); OpenAPI docs at ``/docs``.

    Args:
        model_dir: a model bundle directory; fault changes rewrite its ``signatures.safetensors``.
        token: bearer token required by ``POST``/``DELETE /v1/faults``; None disables them (403).
            See :func:`~lossless_triplet.service.state.read_token`.
        webhook: URL that receives status-change events (JSON POST), or None.
        max_body_bytes: larger request bodies get 413.
        normal_status: the status meaning "no fault".
        webhook_options: keyword arguments for :class:`~lossless_triplet.service.events.EventNotifier` (attempts, backoff, ...).
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

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        handle = lock_bundle(service.model_dir) if lock else None
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

    app = FastAPI(title="lossless-triplet detection service", version=__version__, lifespan=lifespan,
                  description="Identify the status of network telemetry rows (normal, a known fault, or unknown), "
                  "add fault types from one example, and follow status changes per source.")
    app.state.service = service
    for resource in (identify, faults, model, operations):
        app.include_router(resource.router)

    @app.exception_handler(ServiceError)
    async def answer(request: Request, error: ServiceError):
        """Every client error, bad input first: its status and ``{"detail": message}``."""
        return json_response({"detail": error.message}, error.status, error.headers)

    # Around routing, so 413 is answered before any endpoint runs and every request is timed.
    app.add_middleware(BodyLimit, max_body_bytes=max_body_bytes, metrics=service.metrics)
    return app
