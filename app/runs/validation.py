"""Turn a client's run request into a RunConfig, or into field errors.

Checks that need the database or the data directory (the teacher run, the dataset, the
class count) live here too, so the REST API and the HTML forms report the same errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError
from sqlmodel import Session

from app.executors.checksums import checksum_problem
from app.settings import Settings
from app.store.errors import InputError, field_error, pydantic_errors, unknown_fields
from app.store.models import ACTIVE_STATUSES, MAX_ID, Run
from kdcore.config import METHOD_PARAMS, RunConfig, best_teacher_weights_error
from kdcore.data.catalog import DatasetInfo, list_datasets, validation_error
from kdcore.registry import METHODS
from kdcore.taps import tap_problems

DEFAULT_DATASET = RunConfig.model_fields["dataset"].default
TEACHER_STATUSES = ("completed", *ACTIVE_STATUSES)
RUN_ID = TypeAdapter(Annotated[int, Field(ge=1, le=MAX_ID)] | None)
_SUBSET = TypeAdapter(int | None)
KINDS_NEEDING_TEACHER = tuple(kind for kind, method in METHODS.items() if method.needs_teacher)
# What a run request may name besides teacher_run_id: RunConfig's fields, a preset, and hyperparameters by
# their plain names (RunConfig moves them under params).
RUN_KEYS = frozenset((*RunConfig.model_fields, *METHOD_PARAMS, "preset"))


@dataclass(frozen=True)
class ValidRun:
    config: RunConfig
    teacher_run_id: int | None
    num_classes: int


def dataset_info(name: Any, settings: Settings, loc: list) -> tuple[DatasetInfo | None, list[dict]]:
    if not isinstance(name, str):
        return None, []  # RunConfig reports the type error
    infos = {info.name: info for info in list_datasets(settings.data_dir)}
    info = infos.get(name)
    if info is None:
        available = ", ".join(name for name, info in infos.items() if not info.problem)
        return None, [field_error(loc, f"unknown dataset {name!r}; available: {available}", "dataset")]
    if info.problem:
        return None, [field_error(loc, f"dataset {name!r} cannot be used: {info.problem}", "dataset")]
    return info, []


def subset_errors(info: DatasetInfo | None, candidates: list[tuple[list, Any]], errors: list[dict],
                   strict: bool) -> list[dict]:
    """Each ``(loc, raw subset)`` must leave an image per class and fit the training split, when its
    size is known: the loader would refuse it only once the run starts."""
    if info is None or info.train_size is None:
        return []
    found = []
    for loc, raw in candidates:
        if any(error["loc"] == loc for error in errors):
            continue  # already reported, e.g. as not an integer or below 1
        try:
            subset = _SUBSET.validate_python(raw, strict=strict)
        except ValidationError:
            continue  # RunConfig reports the type
        if subset is not None and subset > info.train_size:
            found.append(field_error(loc, f"subset must be at most {info.train_size}: dataset {info.name!r} "
                                          f"has {info.train_size} training images", "subset_too_large"))
        elif subset is not None and subset < info.num_classes:
            found.append(field_error(loc, f"subset must be at least {info.num_classes}: one training image "
                                          f"for each class of dataset {info.name!r}", "subset_too_small"))
    return found


def _teacher(session: Session, raw: Any, kind: Any, strict: bool) -> tuple[Run | None, list[dict]]:
    loc = ["teacher_run_id"]
    try:
        teacher_id = RUN_ID.validate_python(raw, strict=strict)
    except ValidationError as exc:
        return None, pydantic_errors(exc, tuple(loc))
    method = METHODS.get(kind) if isinstance(kind, str) else None
    if method is None:
        return None, []
    if not method.needs_teacher:
        if teacher_id is None:
            return None, []
        return None, [field_error(loc, f"teacher_run_id applies only to kinds: {', '.join(KINDS_NEEDING_TEACHER)}")]
    if teacher_id is None:
        return None, [field_error(loc, f"a {kind} run distils from a teacher: give teacher_run_id", "missing")]
    return _teacher_row(session, teacher_id)


def teacher_run(session: Session, raw: Any, strict: bool) -> tuple[Run | None, list[dict]]:
    """An optional teacher_run_id (a study's): None, or a teacher run that is completed, queued or running."""
    try:
        teacher_id = RUN_ID.validate_python(raw, strict=strict)
    except ValidationError as exc:
        return None, pydantic_errors(exc, ("teacher_run_id",))
    return (None, []) if teacher_id is None else _teacher_row(session, teacher_id)


def _teacher_row(session: Session, teacher_id: int) -> tuple[Run | None, list[dict]]:
    loc = ["teacher_run_id"]
    teacher = session.get(Run, teacher_id)
    if teacher is None:
        return None, [field_error(loc, f"run {teacher_id} does not exist")]
    teacher_method = METHODS.get(teacher.kind)
    if teacher_method is None or not teacher_method.teaches:
        return None, [field_error(loc, f"run {teacher_id} is a {teacher.kind} run, not a teacher")]
    if teacher.status not in TEACHER_STATUSES:
        return None, [field_error(loc, f"teacher run {teacher_id} is {teacher.status}; choose a completed, queued or running teacher")]
    problem = checksum_problem(teacher)
    if problem:
        return None, [field_error(loc, problem, "teacher_file_changed")]
    return teacher, []


def class_count_errors(info: DatasetInfo | None, teacher: Run | None) -> list[dict]:
    if info is None or teacher is None or teacher.num_classes in (None, info.num_classes):
        return []
    return [field_error(
        ["dataset"],
        f"dataset {info.name!r} has {info.num_classes} classes but teacher run {teacher.id} was trained on {teacher.num_classes}",
        "class_count",
    )]


def best_weights_errors(teacher_config: dict | None, students: list[tuple[list, RunConfig]]) -> list[dict]:
    """``teacher_weights: best`` (each ``(loc, config)`` of a student) needs a teacher trained with a validation
    split (``teacher_config``: its stored config; None when unknown): its best epoch would otherwise have been
    chosen on the test set. One error, at the first student that asks."""
    problem = best_teacher_weights_error(teacher_config.get("validation")) if teacher_config is not None else None
    return [field_error(loc, problem, "needs_validation") for loc, config in students
            if problem and config.method.needs_teacher and config.teacher_weights == "best"][:1]


def split_errors(info: DatasetInfo | None, config: RunConfig | None, loc: list) -> list[dict]:
    """A validation split the subset is too small to hold out (the loader would refuse it once the run starts)."""
    problem = validation_error(info, config.subset, config.validation) if info and config else None
    return [field_error(loc, problem, "validation_too_large")] if problem else []


def tap_errors(config: RunConfig | None, teacher_network: str | None, info: DatasetInfo | None,
               student_loc: list, teacher_loc: list, teacher_label: str = "") -> list[dict]:
    """The taps the method reads that the run's network (reported at ``student_loc``) or its teacher's
    (``teacher_network``, at ``teacher_loc``, ``teacher_label`` added to the message) lacks, each naming the
    network and the tap: the trainer would refuse them only once the run starts."""
    if config is None or info is None:
        return []
    problems = tap_problems(config.method, config.params, config.architecture, teacher_network, info.num_classes)
    return [field_error(student_loc, p.message, "missing_tap") if p.side == "student" else
            field_error(teacher_loc, p.message + teacher_label, "missing_tap") for p in problems]


def teacher_network(teacher: Run | None) -> str | None:
    return (teacher.architecture or (teacher.config or {}).get("architecture")) if teacher is not None else None


def where_given(loc: list, given: dict) -> list:
    """A hyperparameter's error where the client put it: ``params.temperature``, or plain ``temperature``."""
    if loc[:1] == ["params"] and len(loc) > 1 and not isinstance(given.get("params"), dict) and loc[1] in given:
        return loc[1:]
    return loc


def known_keys_only(payload: dict) -> tuple[dict, list[dict]]:
    """``payload`` without the keys a run cannot have (at the top, and under ``params`` of a known kind), and
    an error for each of them: pydantic would report them too, but a body of thousands costs it seconds."""
    errors = unknown_fields(payload, RUN_KEYS)
    kind, params = payload.get("kind"), payload.get("params")
    if isinstance(kind, str) and kind in METHODS and isinstance(params, dict):
        own = METHODS[kind].param_names()
        if params_errors := unknown_fields(params, own, ("params",)):
            errors += params_errors
            payload = {**payload, "params": {k: v for k, v in params.items() if k in own}}
    return ({k: v for k, v in payload.items() if k in RUN_KEYS} if errors else payload), errors


def validate_run(session: Session, payload: Any, settings: Settings, *, strict: bool = False) -> ValidRun:
    """``strict``: values must have their field's JSON type (the REST API); else strings are parsed (forms)."""
    if not isinstance(payload, dict):
        raise InputError([field_error([], "expected a JSON object", "dict_type")])
    payload = dict(payload)
    raw_teacher = payload.pop("teacher_run_id", None)
    payload, unknown = known_keys_only(payload)
    errors: list[dict] = []
    config = None
    if "kind" in payload and not isinstance(payload["kind"], str):
        # RunConfig's kind-defaults hook looks the kind up in a dict, which fails on unhashable input.
        errors.append(field_error(["kind"], "Input should be a valid string", "string_type"))
    else:
        try:
            config = RunConfig.model_validate(payload, strict=strict, context={"strict": strict})
        except ValidationError as exc:
            errors += [{**error, "loc": where_given(error["loc"], payload)} for error in pydantic_errors(exc)]
    teacher, teacher_errors = _teacher(session, raw_teacher, payload.get("kind"), strict)
    info, dataset_errors = None, []
    if not any(error["loc"][:1] == ["dataset"] for error in errors):
        info, dataset_errors = dataset_info(payload.get("dataset", DEFAULT_DATASET), settings, ["dataset"])
    errors += unknown + teacher_errors + dataset_errors + class_count_errors(info, teacher)
    errors += subset_errors(info, [(["subset"], payload.get("subset"))], errors, strict)
    if config is not None:
        errors += best_weights_errors(teacher.config if teacher else None, [(["teacher_weights"], config)])
        if not any(error["loc"][:1] == ["subset"] for error in errors):
            errors += split_errors(info, config, ["validation"])
        errors += tap_errors(config, teacher_network(teacher), info, ["architecture"], ["teacher_run_id"],
                             f" (teacher run {teacher.id})" if teacher else "")
    if errors:
        raise InputError(errors)
    return ValidRun(config, teacher.id if teacher else None, info.num_classes)
