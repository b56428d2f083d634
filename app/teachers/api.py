"""The teachers API under /api: import a checkpoint from elsewhere as a teacher run, and list the teacher
registry (app.runs.teachers)."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Depends, Request

from app.access.auth import require_token
from app.runs import service as runs
from app.runs.responses import RunOut
from app.runs.teachers import teacher_entry
from app.teachers import service
from app.teachers.responses import TeacherListOut
from app.teachers.service import FORMATS
from app.teachers.uploads import API_PATH
from app.web.api import SessionDep, error_responses
from kdcore.presets import PRESETS

router = APIRouter(prefix="/api", tags=["api"])
writes = APIRouter(tags=["api"], dependencies=[Depends(require_token)])

IMPORT_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "title": "TeacherImport", "type": "object", "required": ["file", "architecture", "dataset", "format"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "The checkpoint (.pth); at most KD_MAX_UPLOAD "
                 "bytes (the whole body)"},
        "architecture": {"type": "string", "description": "The network it holds: a name or alias of GET "
                         "/api/architectures (e.g. resnet32x4, MobileNetV2)"},
        "dataset": {"type": "string", "description": "The dataset it was trained on (GET /api/datasets); it is "
                    "evaluated on that dataset's test split here"},
        "format": {"type": "string", "enum": list(FORMATS), "description": "The checkpoint's layout"},
        "num_classes": {"type": "integer", "description": "Optional: checked against the dataset's class count"},
        "preset": {"type": "string", "enum": list(PRESETS), "description": "The recipe it was trained with, as its "
                   "source states; mdistiller and repdistiller imports default to crd-cifar, state_dict ones to "
                   "none (recipe not stated)"}}}}}}}


@writes.post(API_PATH, status_code=201, summary="Import a teacher checkpoint: the worker maps it and evaluates it "
             "on the dataset's test split", response_model=RunOut, responses=error_responses(401, 429),
             openapi_extra=IMPORT_BODY)
async def import_teacher(request: Request, session: SessionDep) -> dict:
    form = await request.form(max_files=1, max_fields=20)
    upload = form.get("file")
    fields = {name: form.get(name) for name in service.FIELDS}
    has_file = upload is not None and not isinstance(upload, str)
    run = await anyio.to_thread.run_sync(
        service.import_teacher, session, fields, upload.file if has_file else None,
        upload.filename if has_file else None)
    return runs.run_to_dict(run)


@router.get("/teachers", summary="The teacher registry: each teacher with its checksum, accuracy here, recipe and "
            "origin", response_model=TeacherListOut)
def list_teachers(session: SessionDep) -> dict:
    return {"items": [teacher_entry(run) for run in runs.teacher_choices(session)]}
