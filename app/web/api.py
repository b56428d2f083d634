"""What every REST router shares: the database session dependency, the documented JSON body, the
error answers, and the base of the response models with the field types they reuse.

Response models declare what each /api endpoint returns, so that /openapi.json (and /docs) describe
every response. The services build the dictionaries; FastAPI checks each against its model on the way
out, and ``extra="forbid"`` turns a field added there but not in its model into a failing test rather
than a silent gap.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Depends
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from app.store.db import get_session

SessionDep = Annotated[Session, Depends(get_session)]
JsonObject = Annotated[dict[str, Any], Body()]

Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"}, description="UTC, ISO 8601")]
# Non-finite numbers (a diverged loss) are reported as null: JSON has no NaN.
Figure = Annotated[float | None, Field(description="null when unknown or not finite")]
Fraction = Annotated[float | None, Field(description="Accuracy as a fraction; null without completed runs")]
Interval = Annotated[list[float] | None, Field(description="[low, high], 95 % Student t; null below two values")]


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorOut(ApiModel):
    detail: str


def documented_body(model) -> dict:
    # The body is validated once, by the service layer (which also serves the HTML forms), so that one
    # response lists every problem; the model only documents its shape in the OpenAPI schema. JSON
    # bodies are validated strictly: a value of the wrong type is an error, not coerced as a form's is.
    return {"requestBody": {"required": True,
                            "content": {"application/json": {"schema": model.model_json_schema()}}}}


def error_responses(*codes: int) -> dict:
    # Every error is {"detail": message}, except 422 (FastAPI documents that one itself).
    why = {401: "Missing or wrong API token", 404: "No such run or experiment", 409: "The run's state forbids it",
           429: "The queue is full", 503: "This server lacks an optional package the request needs"}
    return {code: {"model": ErrorOut, "description": why[code]} for code in codes}
