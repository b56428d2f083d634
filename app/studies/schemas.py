"""The body of POST /api/studies, as a pydantic model that documents it (see app.runs.schemas)."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import ConfigDict, Field, create_model

from app.runs.annotations import NOTE_HELP, TAGS_HELP, Note, TagList
from app.store.models import MAX_ID
from kdcore.config import RunConfig
from kdcore.presets import PRESETS
from kdcore.studies.study import RECIPE_FIELDS, StudySpec


def optional_run_field(name: str):
    """A RunConfig field as an optional request field with its description (studies' and searches' recipes)."""
    field = RunConfig.model_fields[name]
    return Optional[field.annotation], Field(None, description=field.description)


# kdcore.studies.study.StudySpec, the recipe fields it passes to every run, and the teacher run to distil from.
StudyCreate = create_model(
    "StudyCreate",
    __config__=ConfigDict(extra="forbid", allow_inf_nan=False),
    __doc__="A study: methods (each fixed, or swept by `grid`) × student networks × seeds, on one dataset with one "
    "recipe, against one teacher (teacher_run_id, or one the study trains first). Accuracies come back as fractions.",
    **{name: (field.annotation, field) for name, field in StudySpec.model_fields.items()},
    **{name: optional_run_field(name) for name in RECIPE_FIELDS},
    preset=(Optional[Literal[tuple(PRESETS)]], Field(None, description="Start from a named recipe")),  # type: ignore[valid-type]
    teacher_run_id=(Annotated[int, Field(ge=1, le=MAX_ID)] | None,
                    Field(None, description="Distil from this teacher run instead of training one")),
    tags=(TagList | None, Field(None, description=f"{TAGS_HELP}. They also tag the study's runs for filtering")),
    note=(Note, Field(None, description=NOTE_HELP)),
)
