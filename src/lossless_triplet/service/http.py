"""HTTP plumbing below the routes: the body-size limit and request metrics (ASGI middleware), JSON answers."""

from __future__ import annotations

import json
import time

from fastapi.responses import Response

from .metrics import ServiceMetrics

try:  # optional: encodes answers ~10x faster than the json module
    import orjson
except ImportError:  # pragma: no cover - the stdlib path below is always correct, only slower
    orjson = None

__all__ = ["BodyLimit", "json_response"]


_DISCONNECTED = object()


class BodyLimit:
    """ASGI middleware: body size limit (413) and per-route request metrics."""

    def __init__(self, app, *, max_body_bytes: int, metrics: ServiceMetrics) -> None:
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


def json_response(document, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response encoded by orjson when installed (~10x the json module); ``document`` holds no
    NaN or infinity."""
    if orjson is not None:
        body = orjson.dumps(document)
    else:
        body = json.dumps(document, allow_nan=False, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)
