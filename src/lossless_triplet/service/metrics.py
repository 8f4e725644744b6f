"""Prometheus metrics of one app (``GET /metrics``), in their own registry."""

from __future__ import annotations

import threading
from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["LATENCY_BUCKETS", "ServiceMetrics", "UNKNOWN_RATE_WINDOW"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNKNOWN_RATE_WINDOW = 1000  # rows behind the unknown-rate gauge


class ServiceMetrics:
    """Prometheus collectors of one app, in their own registry (several apps may share a process)."""

    def __init__(self, service) -> None:
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
