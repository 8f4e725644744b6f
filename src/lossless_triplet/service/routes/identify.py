"""``POST /v1/identify``: rows -> status per row."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ..deps import ServiceDep, rows_of
from ..http import json_response
from ..models import BODY_ERRORS, ColumnsBody, IdentifyResult, RowsBody, request_body

router = APIRouter(prefix="/v1", tags=["identify"])

_EXAMPLE = {"rows": [{"FEATURE_1": 0.5, "FEATURE_2": None, "source": "vnf-7"}]}


@router.post("/identify", summary="Identify rows: normal, a known fault, or unknown",
             openapi_extra=request_body(RowsBody, ColumnsBody, example=_EXAMPLE, arrow=True),
             responses={200: {"model": IdentifyResult}, **BODY_ERRORS})
async def identify(request: Request, service: ServiceDep):
    """Per row, in order: ``status`` (a known status or ``unknown``), ``nearest`` (nearest signature),
    ``distance`` (Euclidean, code space), ``unknown`` (bool), ``unknown_score`` (distance / radius; > 1 is
    unknown), ``element``, ``evidence`` and ``source`` when given. Same as ``lossless-triplet detect`` on a
    table of these rows. Bulk rows are fastest as an Arrow IPC stream
    (``Content-Type: application/vnd.apache.arrow.stream``)."""
    _, rows = await rows_of(request, service, arrow=True)
    return json_response({"n_rows": len(rows.raw), "results": await service.identify(rows)})
