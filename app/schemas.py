"""Request bodies of the REST API, as pydantic models so that /docs and the fuzz tests know their shape.

The service layer validates the same dictionaries again (it also serves the HTML forms), so these
models carry no rules of their own beyond RunConfig's.
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

from pydantic import ConfigDict, Field, create_model

from app.models import MAX_ID
from kdcore.config import RunConfig


class RunCreate(RunConfig):
    """A RunConfig plus the teacher run to distil from (required by kinds that need a teacher)."""

    teacher_run_id: Annotated[int, Field(ge=1, le=MAX_ID)] | None = Field(
        None, description="Id of a completed, queued or running teacher run (KD kinds only)"
    )


# Every RunConfig field but kind, optional: omitted fields take each kind's seed default.
ExperimentCreate = create_model(
    "ExperimentCreate",
    __config__=ConfigDict(extra="forbid", allow_inf_nan=False),
    __doc__="The seed experiment (teacher, student, kd, cosine, fitnet) on one dataset. Shared fields apply "
    "to every kind that uses them; `kinds` overrides fields per kind, e.g. {\"teacher\": {\"epochs\": 5}}.",
    **{
        name: (Optional[field.annotation], Field(None, description=field.description))
        for name, field in RunConfig.model_fields.items()
        if name != "kind"
    },
    kinds=(Optional[dict[str, dict[str, Any]]], Field(None, description="Per-kind overrides")),
)
