"""``/v1/faults``: list, add (or extend) and remove fault signatures; the changing two need the token."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request

from ..bodies import fault_name
from ..deps import ServiceDep, require_token, rows_of
from ..http import json_response
from ..models import BODY_ERRORS, Error, FaultChange, FaultColumnsBody, FaultRowsBody, Faults, Removed, request_body

router = APIRouter(prefix="/v1/faults", tags=["faults"])

_EXAMPLE = {"name": "interface-down", "rows": [{"FEATURE_1": 0.5, "FEATURE_2": None, "source": "vnf-7"}]}
_CHANGE_ERRORS = {401: {"model": Error}, 403: {"model": Error}, 503: {"model": Error}, 507: {"model": Error}}


@router.get("", summary="List the fault signatures", responses={200: {"model": Faults}})
async def list_faults(service: ServiceDep):
    """One entry per signature: name, count (member rows), radius, learned_radius."""
    return json_response({"faults": service.memory.describe()})


@router.post("", status_code=201, dependencies=[Depends(require_token)],
             summary="Add a fault signature from example rows, or extend one (needs the token)",
             openapi_extra=request_body(FaultRowsBody, FaultColumnsBody, example=_EXAMPLE),
             responses={200: {"model": FaultChange}, 201: {"model": FaultChange}, **BODY_ERRORS,
                        415: {"model": Error, "description": "an Arrow body (this route takes JSON only)"},
                        **_CHANGE_ERRORS})
async def add_fault(request: Request, service: ServiceDep):
    """Encodes the rows (one is enough) and adds them to signature ``name``, created if new (201) or
    extended (200). The change is written to the bundle before this answers."""
    document, rows = await rows_of(request, service, allowed_keys=("name",))
    name = fault_name(document)
    row = await asyncio.get_running_loop().run_in_executor(None, service.add_fault, name, rows.raw)
    return json_response(row, 201 if row["created"] else 200)


@router.delete("/{name:path}", dependencies=[Depends(require_token)],
               summary="Remove a fault signature (needs the token)",
               responses={200: {"model": Removed}, 404: {"model": Error}, 409: {"model": Error}, **_CHANGE_ERRORS})
async def remove_fault(name: str, service: ServiceDep):
    """Forgets signature ``name``; written to the bundle before this answers. The last one cannot go (409)."""
    await asyncio.get_running_loop().run_in_executor(None, service.remove_fault, name)
    return json_response({"removed": name, "faults": service.memory.names})
