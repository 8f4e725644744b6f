"""The service's errors: each carries its HTTP status, and one exception handler answers them all."""

from __future__ import annotations

__all__ = ["BadRequest", "NotFound", "ServiceError", "StorageError", "Unauthorized"]


class ServiceError(Exception):
    """An error the client is told about: ``status`` (HTTP), ``message`` (names the problem and the
    fix) and optional response ``headers``. :func:`~lossless_triplet.service.app.create_app` turns
    every one into ``{"detail": message}`` with that status (one handler)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


class BadRequest(ServiceError, ValueError):
    """A client error: ``status`` 400 (malformed), 409 (conflicts with the state), 413, 415 or 422 (invalid)."""


class NotFound(ServiceError, KeyError):
    """No such resource (404); a ``KeyError`` for Python callers."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class Unauthorized(ServiceError, PermissionError):
    """A change without the right token (401), or on a server with changes disabled (403)."""


class StorageError(ServiceError, RuntimeError):
    """A change that could not be written to the bundle (nothing was changed, on disk or in memory).

    ``status`` is 507 Insufficient Storage for a full disk or quota, 503 for any other write error.
    """
