"""``GET /healthz`` and ``GET /metrics`` (Prometheus text)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..deps import ServiceDep
from ..http import json_response
from ..models import Health

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness and readiness", responses={200: {"model": Health}})
async def healthz(service: ServiceDep):
    """``{"status": "ok", "signatures": n}`` once the model is loaded."""
    return json_response({"status": "ok", "signatures": len(service.memory.names)})


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
async def metrics(service: ServiceDep):
    """Requests, latency, rows, unknown rate, fault changes, storage errors and events (Prometheus text)."""
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)
