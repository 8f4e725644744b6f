"""Status-change events: logged as JSON lines on the ``lossless_triplet.events`` logger and POSTed to a
webhook by one background thread with retries and exponential backoff; its queue is bounded and a
full queue drops (and counts) events, so a down webhook never slows identification."""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable

__all__ = ["EventNotifier", "event_logger"]

logger = logging.getLogger("lossless_triplet.service")
event_logger = logging.getLogger("lossless_triplet.events")


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
