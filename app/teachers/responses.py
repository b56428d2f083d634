"""What the teachers API returns (see app.web.api for the shared base)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from app.store.models import STATUSES
from app.web.api import ApiModel, Figure


class TeacherOut(ApiModel):
    run_id: int
    status: Literal[STATUSES]
    architecture: str | None
    dataset: str | None
    num_classes: int | None
    sha256: str | None = Field(description="Its checkpoint file's sha256, recorded when the run completed; null "
                               "until then")
    checksum_ok: bool = Field(description="False when the file on disk is missing or no longer has that sha256: "
                              "KD runs and studies are then refused this teacher")
    problem: str | None = Field(description="Why checksum_ok is false")
    test_accuracy: Figure = Field(description="Its accuracy on the dataset's test split, as evaluated here")
    recipe: str = Field(description="The recipe in short; an imported teacher's as its source states, or "
                        "'not stated (imported)'")
    origin: str = Field(description="'trained here', or 'imported from FILE, FORMAT format'")
    imported: dict[str, Any] | None = Field(description="An imported teacher's upload: file, format, file_sha256, "
                                            "bytes, recipe; null when trained here")


class TeacherListOut(ApiModel):
    items: list[TeacherOut] = Field(description="Teacher runs a KD run may name: completed, queued or running; "
                                    "newest first")
