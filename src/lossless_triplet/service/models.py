"""Request and response models: the OpenAPI schema (``/docs``) is generated from them.

Request bodies are still read by the fast path (:mod:`.bodies`: orjson, or an Arrow IPC stream)
rather than by pydantic, which would cost more than the identification of a row; the request
models only document them (:func:`request_body`). Responses are documented by their models and
encoded by orjson (:func:`~lossless_triplet.service.http.json_response`).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from .bodies import ARROW_STREAM

__all__ = ["BODY_ERRORS", "ColumnsBody", "Error", "Evidence", "FaultChange", "FaultColumnsBody", "FaultEntry", "FaultRowsBody", "Faults",
           "Health", "IdentifyResult", "ModelInfo", "Removed", "RowResult", "RowsBody", "request_body"]

Cell = float | str | None  # a feature value (number, or null = missing); "source"/"timestamp" may be strings


class RowsBody(BaseModel):
    """Rows as objects (the bare array is accepted too)."""

    rows: list[dict[str, Cell]] = Field(min_length=1, description=(
        'every feature name -> number or null (missing); optional "source" (string) and "timestamp" '
        "(number or string)"))


class ColumnsBody(BaseModel):
    """Rows as columns of equal length."""

    columns: dict[str, list[Cell]] = Field(description=(
        'every feature name -> array of numbers or nulls, equal lengths; optional "source" and "timestamp" arrays'))


class FaultRowsBody(RowsBody):
    """A fault's example rows, as objects."""

    name: str = Field(description="the signature to create or extend")


class FaultColumnsBody(ColumnsBody):
    """A fault's example rows, as columns."""

    name: str = Field(description="the signature to create or extend")


class Evidence(BaseModel):
    """One of the columns that deviate most from normal traffic in a row."""

    column: str
    deviation: float | None = Field(description="signed deviation in robust units (null when the cell is missing)")
    missing: bool = Field(description="the cell stopped reporting")


class RowResult(BaseModel):
    """One identified row (what ``lossless-triplet detect`` writes for it)."""

    status: str = Field(description="a known status, or unknown")
    nearest: str = Field(description="the nearest signature")
    distance: float | None = Field(description="Euclidean distance to the nearest signature (what the memory compares)")
    unknown: bool
    unknown_score: float | None = Field(description="distance / radius; > 1 is unknown")
    element: str = Field(description="the network element most implicated")
    evidence: list[Evidence] = Field(description="the most deviant columns, most deviant first")
    source: str | None = Field(None, description="the row's source, when given")


class IdentifyResult(BaseModel):
    """The rows of a request, identified in order."""

    n_rows: int
    results: list[RowResult]


class FaultEntry(BaseModel):
    """One signature of the fault memory."""

    name: str
    count: int = Field(description="member rows ever added")
    radius: float = Field(description="Euclidean radius within which a row belongs to it")
    learned_radius: bool = Field(description="learned from its members (else the median of the learned radii)")


class Faults(BaseModel):
    """Every signature, in insertion order."""

    faults: list[FaultEntry]


class FaultChange(FaultEntry):
    """A signature after ``POST /v1/faults``."""

    created: bool = Field(description="a new signature (201), or an extended one (200)")
    rows_added: int


class Removed(BaseModel):
    """The answer to ``DELETE /v1/faults/{name}``."""

    removed: str
    faults: list[str] = Field(description="the signatures left")


class ModelInfo(BaseModel):
    """What the model expects."""

    feature_names: list[str]
    extra_fields: list[str]
    embedding_dim: int
    view: str
    loss: str | None
    signatures: list[str]
    normal_status: str
    changes_enabled: bool


class Health(BaseModel):
    """Liveness and readiness: ``ok`` and the number of signatures."""

    status: str
    signatures: int


class Error(BaseModel):
    """Every error answer: the problem and its fix."""

    detail: str


BODY_ERRORS = {  # the answers of a route that reads rows (documented once, used by identify and faults)
    400: {"model": Error, "description": "a body that is not one JSON document (or Arrow stream)"},
    413: {"model": Error, "description": "a body over --max-body-bytes"},
    422: {"model": Error, "description": "rows that are not valid: a missing or extra column, a value that is not a "
                                         "finite number or null, no rows (the message names the column and row)"},
}


def request_body(*models: type[BaseModel], example: dict, arrow: bool = False) -> dict:
    """``openapi_extra`` documenting a JSON body that is one of ``models`` (and, with ``arrow``, an
    Arrow IPC stream). The models are flat (no nested model), so their schemas hold no reference."""
    content = {"application/json": {"schema": {"oneOf": [m.model_json_schema() for m in models]},
                                     "example": example}}
    if arrow:
        content[ARROW_STREAM] = {"schema": {
            "type": "string", "format": "binary", "description": "an Arrow IPC stream: one column per feature "
            "(integers or floats, null = missing), optional source (strings) and timestamp"}}
    return {"requestBody": {"required": True, "content": content}}
