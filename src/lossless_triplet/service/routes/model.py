"""``GET /v1/model``: what the model expects."""

from __future__ import annotations

from fastapi import APIRouter

from ..bodies import EXTRA_FIELDS
from ..deps import ServiceDep
from ..http import json_response
from ..models import ModelInfo

router = APIRouter(prefix="/v1", tags=["model"])


@router.get("/model", summary="What the model expects", responses={200: {"model": ModelInfo}})
async def model_info(service: ServiceDep):
    """Feature columns (in order), accepted extra fields, code width, view, loss, signatures."""
    return json_response({"feature_names": service.feature_names, "extra_fields": list(EXTRA_FIELDS),
                          "embedding_dim": service.memory.embedding_dim_, "view": service.model.view.name,
                          "loss": service.model.info.get("loss"), "signatures": service.memory.names,
                          "normal_status": service.normal_status, "changes_enabled": service.changes_enabled})
