"""Bounded HTTP request heads for the detection service: size and time limits before the app runs.

uvicorn's httptools protocol reads a request line and headers of any size (a 100 MB
``Authorization`` header was read in 23 s, +180 MB of memory, and slowed every other client)
and waits for them forever. :class:`BoundedHttpToolsProtocol` adds the two limits every public
HTTP server has (nginx ``large_client_header_buffers`` / ``client_header_timeout``):

- the request line and headers of one request may hold at most ``MAX_HEAD_BYTES`` (16 KiB):
  past it the connection gets ``414 URI Too Long`` (the request line alone was too long) or
  ``431 Request Header Fields Too Large`` and is closed, without reading the rest;
- they must arrive within ``HEAD_TIMEOUT_SECONDS`` (10 s) of the connection opening or of the
  previous response: a slow sender gets ``408 Request Timeout`` and is closed.

Bytes are counted after each read (a read is at most 256 KiB), so memory stays bounded by the
limit plus one read. Neither limit needs a token: they apply before any routing.
Use :func:`server_config` to build the uvicorn ``Config`` with it (the ``serve`` command and the
tests do).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["MAX_HEAD_BYTES", "HEAD_TIMEOUT_SECONDS", "BoundedHttpToolsProtocol", "server_config"]

MAX_HEAD_BYTES = 16 * 2**10
HEAD_TIMEOUT_SECONDS = 10.0
_REASONS = {408: "Request Timeout", 414: "URI Too Long", 431: "Request Header Fields Too Large"}
log = logging.getLogger(__name__)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a size and a time limit on each request head (see the module).

    Class attributes ``max_head_bytes`` and ``head_timeout`` hold the limits (tests lower them
    on a subclass).
    """

    max_head_bytes: int = MAX_HEAD_BYTES
    head_timeout: float = HEAD_TIMEOUT_SECONDS

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False
        self._new_head()

    def _new_head(self) -> None:
        """Waiting for (or reading) a request head: both counters at 0, the timer running."""
        self._in_head, self._url_done = True, False
        self._read_bytes = 0  # bytes read while this head is incomplete (stops an endless head early)
        self._head_size = 0  # request line and header bytes as parsed (catches a head that came in one read)
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        if self._in_head and not self._refused and not self.transport.is_closing():
            self._read_bytes += len(data)
            if self._read_bytes > self.max_head_bytes:
                self._refuse(431 if self._url_done else 414)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._url_done, self._head_size = True, False, 0

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._url_done = True
        self._head_size += len(name) + len(value) + 4  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        if self._head_size > self.max_head_bytes:
            self._refuse(431 if self._url_done else 414)
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._new_head()

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head and not self._refused and not self.transport.is_closing():
            self._refuse(408)

    def _refuse(self, status: int) -> None:
        """Answer ``status`` as plain text naming the limit, and close, whatever the parser holds."""
        message = (f"the request line and headers did not arrive within {self.head_timeout:g} s" if status == 408
                   else f"the request line and headers exceed {self.max_head_bytes} bytes")
        log.warning("refused a request from %s: %d %s", self.client, status, message)
        body = f"{status} {_REASONS[status]}: {message}\n".encode()
        head = (f"HTTP/1.1 {status} {_REASONS[status]}\r\ncontent-type: text/plain; charset=utf-8\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode()
        self._refused, self._in_head = True, False
        self._cancel_head_timer()
        self.transport.write(head + body)
        self.transport.close()


def server_config(app, **kwargs: Any) -> Config:
    """A uvicorn ``Config`` serving ``app`` with :class:`BoundedHttpToolsProtocol` (other keyword
    arguments go to ``uvicorn.Config``: host, port, log_level, ...).

    Raises:
        ValueError: ``http=`` given (this function exists to choose it).
    """
    if "http" in kwargs:
        raise ValueError("server_config chooses the HTTP protocol (bounded httptools); do not pass http=")
    return Config(app, http=BoundedHttpToolsProtocol, **kwargs)
