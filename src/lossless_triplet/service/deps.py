"""What the routes depend on: the service state, the bearer token, the request's rows."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..defaults import TOKEN_ENV
from .bodies import ARROW_STREAM, Rows, parse_arrow, parse_json_rows
from .errors import BadRequest, Unauthorized
from .state import FaultService

__all__ = ["ServiceDep", "THREAD_PARSE_BYTES", "require_token", "rows_of"]

THREAD_PARSE_BYTES = 256 * 2**10  # bodies past this are parsed off the event loop

_bearer = HTTPBearer(auto_error=False, description=f"the token of --token-file or ${TOKEN_ENV}")


async def get_service(request: Request) -> FaultService:
    """The app's :class:`FaultService` (async: FastAPI runs a plain def dependency on a thread)."""
    return request.app.state.service


ServiceDep = Annotated[FaultService, Depends(get_service)]


async def require_token(service: ServiceDep,
                        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    """The dependency of every route that changes the fault memory.

    Raises:
        Unauthorized: 403 when the server has no token (changes disabled), 401 for a missing or
            wrong one."""
    if not service.changes_enabled:
        raise Unauthorized(403, "changing the fault memory is disabled on this server: start `lossless-triplet "
                                f"serve` with --token-file FILE or ${TOKEN_ENV} set")
    if credentials is None or not service.check_token(credentials.credentials):
        raise Unauthorized(401, "missing or wrong bearer token: send the header 'Authorization: Bearer TOKEN'",
                           headers={"WWW-Authenticate": "Bearer"})


async def rows_of(request: Request, service: FaultService, *, allowed_keys: Sequence[str] = (),
                  arrow: bool = False) -> tuple[dict | list | None, Rows]:
    """``(JSON document or None, rows)`` of a request body: JSON, or an Arrow IPC stream where ``arrow``.
    Bodies over :data:`THREAD_PARSE_BYTES` are parsed on a worker thread, off the event loop.

    Raises:
        BadRequest: 415 for an Arrow body where only JSON is taken; as :mod:`.bodies`."""
    body = await request.body()
    names = service.feature_names
    if request.headers.get("content-type", "").split(";")[0].strip().lower() == ARROW_STREAM:
        if not arrow:
            raise BadRequest(415, f"{request.url.path} takes JSON only ({ARROW_STREAM} is for POST /v1/identify)")
        work = lambda: (None, parse_arrow(body, names))  # noqa: E731
    else:
        work = lambda: parse_json_rows(body, names, allowed_keys)  # noqa: E731
    if len(body) > THREAD_PARSE_BYTES:
        return await asyncio.get_running_loop().run_in_executor(None, work)
    return work()
