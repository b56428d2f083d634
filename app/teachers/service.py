"""Importing a teacher: validate the request, store the upload under a new queued teacher run, and let the
worker map and evaluate it (app.executors.teacher_import). Shared by POST /api/teachers/import and the launch
page's form; both report the same errors, and a refused request stores nothing."""

from __future__ import annotations

from typing import Any, BinaryIO

from pydantic import ValidationError
from sqlmodel import Session

from app.executors.teacher_import import upload_path
from app.runs.service import new_run, queue_room, settings_of
from app.runs.validation import dataset_info
from app.store.errors import InputError, field_error, pydantic_errors
from app.store.models import Run
from app.teachers.uploads import file_name, move_into, stage
from kdcore.config import RunConfig
from kdcore.presets import PRESETS
from kdcore.registry import TEACHER_KINDS
from kdcore.training.run_files import IMPORT_FORMATS as FORMATS

# The recipe the reference frameworks train their CIFAR teachers with (RepDistiller's train_teacher.py, whose
# teachers mdistiller distributes): what an import of theirs states unless told otherwise.
FRAMEWORK_RECIPE = {"mdistiller": "crd-cifar", "repdistiller": "crd-cifar"}
FIELDS = ("architecture", "dataset", "format", "num_classes", "preset")


def _text(fields: dict[str, Any], name: str) -> str:
    value = fields.get(name)
    return value.strip() if isinstance(value, str) else ""


def import_teacher(session: Session, fields: dict[str, Any], upload: BinaryIO | None,
                   upload_name: str | None) -> Run:
    """Queue a teacher run for the uploaded checkpoint. ``fields``: architecture, dataset, format,
    num_classes (optional: checked against the dataset's), preset (the recipe its source states; optional)."""
    errors: list[dict] = []
    fmt, preset = _text(fields, "format"), _text(fields, "preset")
    if fmt not in FORMATS:
        errors.append(field_error(["format"], f"format must be one of: {', '.join(FORMATS)}", "format"))
    if preset and preset not in PRESETS:
        errors.append(field_error(["preset"], f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)} "
                                              "(or none: recipe not stated)", "unknown_preset"))
    recipe = preset or FRAMEWORK_RECIPE.get(fmt)
    config = None
    try:
        config = RunConfig.model_validate({"kind": TEACHER_KINDS[0], "architecture": _text(fields, "architecture"),
                                           "dataset": _text(fields, "dataset"),
                                           **({"preset": recipe} if recipe in PRESETS else {})})
    except ValidationError as exc:
        errors += [e for e in pydantic_errors(exc) if e["loc"][:1] != ["preset"]]
    info, dataset_errors = None, []
    if not any(e["loc"][:1] == ["dataset"] for e in errors):
        info, dataset_errors = dataset_info(_text(fields, "dataset"), settings_of(session), ["dataset"])
    errors += dataset_errors
    raw_classes = _text(fields, "num_classes")
    if raw_classes and info is not None and raw_classes != str(info.num_classes):
        errors.append(field_error(["num_classes"], f"dataset {info.name!r} has {info.num_classes} classes, not "
                                                   f"{raw_classes}", "class_count"))
    if upload is None or not upload_name:
        errors.append(field_error(["file"], "choose the checkpoint file (.pth) to import", "missing"))
    if errors:
        raise InputError(errors)
    runs_dir = settings_of(session).runs_dir
    staged, size, digest = stage(upload, runs_dir)
    try:
        if size == 0:
            raise InputError([field_error(["file"], "the uploaded file is empty", "empty")])
        name = file_name(upload_name)
        run = new_run(config, None, num_classes=info.num_classes,
                      origin={"file": name, "format": fmt, "file_sha256": digest, "bytes": size, "recipe": recipe})
        # Its own configuration: two files imported with the same choices are different teachers, and neither
        # replicates a teacher trained here (their students must not group together either).
        run.group_key = f"imported {digest}"
        with queue_room(session, 1):
            session.add(run)
            session.flush()  # its id: the upload moves under the run's folder before any worker can claim it
            move_into(staged, upload_path(runs_dir / str(run.id), name))
    finally:
        staged.unlink(missing_ok=True)
    return run
