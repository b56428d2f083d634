"""The body of POST /api/runs, as a pydantic model so that /docs and the fuzz tests know its shape.

The service layer validates the same dictionaries again (it also serves the HTML forms), so the request
models carry no rules of their own beyond RunConfig's.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from app.runs.annotations import NOTE_HELP, TAGS_HELP, Note, TagList
from app.store.models import MAX_ID
from kdcore.config import RunConfig
from kdcore.presets import PRESETS


class RunCreate(RunConfig):
    """A RunConfig plus the teacher run to distil from (required by kinds that need a teacher)."""

    teacher_run_id: Annotated[int, Field(ge=1, le=MAX_ID)] | None = Field(
        None, description="Id of a completed, queued or running teacher run (KD kinds only)"
    )
    preset: Literal[tuple(PRESETS)] | None = Field(  # type: ignore[valid-type]
        None, description="Start from a named recipe; fields given beside it win"
    )
    # Not part of the configuration: runs that differ only in these replicate each other.
    tags: TagList | None = Field(None, description=TAGS_HELP)
    note: Note = Field(None, description=NOTE_HELP)
