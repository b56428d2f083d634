"""Turn a client's run or experiment request into RunConfig objects, or into field errors.

Checks that need the database or the data directory (the teacher run, the dataset, the
class count) live here too, so the REST API and the HTML forms report the same errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError
from sqlmodel import Session

from app.errors import InputError, field_error, pydantic_errors
from app.models import ACTIVE_STATUSES, MAX_ID, Run
from app.settings import Settings
from kdcore.config import METHOD_PARAMS, RunConfig
from kdcore.data.catalog import DatasetInfo, find_dataset, list_datasets
from kdcore.errors import DatasetError
from kdcore.registry import EXPERIMENT_KINDS, METHODS
from kdcore.study import RECIPE_FIELDS as STUDY_RECIPE_FIELDS

_DEFAULT_DATASET = RunConfig.model_fields["dataset"].default
TEACHER_STATUSES = ("completed", *ACTIVE_STATUSES)
RUN_ID = TypeAdapter(Annotated[int, Field(ge=1, le=MAX_ID)] | None)
_SUBSET = TypeAdapter(int | None)
_SEEDS = TypeAdapter(Annotated[list[Annotated[int, Field(ge=0, le=2**63 - 1)]], Field(min_length=1, max_length=100)]
                     | None)
# Fields an experiment request may set for all its runs; each applies only to kinds that use it.
# An experiment's shared fields: RunConfig's, and each method hyperparameter by its plain name, which
# applies to every kind of the experiment that has it.
EXPERIMENT_SHARED_FIELDS = (*(name for name in RunConfig.model_fields if name not in ("kind", "params")),
                            *METHOD_PARAMS)
KINDS_NEEDING_TEACHER = tuple(kind for kind, method in METHODS.items() if method.needs_teacher)


@dataclass(frozen=True)
class ValidRun:
    config: RunConfig
    teacher_run_id: int | None
    num_classes: int


def dataset_info(name: Any, settings: Settings, loc: list) -> tuple[DatasetInfo | None, list[dict]]:
    if not isinstance(name, str):
        return None, []  # RunConfig reports the type error
    available = [info.name for info in list_datasets(settings.data_dir)]
    if name not in available:
        return None, [field_error(loc, f"unknown dataset {name!r}; available: {', '.join(available)}", "dataset")]
    try:
        return find_dataset(name, settings.data_dir), []
    except DatasetError as exc:
        return None, [field_error(loc, str(exc), "dataset")]


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
    return teacher, []


def class_count_errors(info: DatasetInfo | None, teacher: Run | None) -> list[dict]:
    if info is None or teacher is None or teacher.num_classes in (None, info.num_classes):
        return []
    return [field_error(
        ["dataset"],
        f"dataset {info.name!r} has {info.num_classes} classes but teacher run {teacher.id} was trained on {teacher.num_classes}",
        "class_count",
    )]


def _where_given(loc: list, given: dict) -> list:
    """A hyperparameter's error where the client put it: ``params.temperature``, or plain ``temperature``."""
    if loc[:1] == ["params"] and len(loc) > 1 and not isinstance(given.get("params"), dict) and loc[1] in given:
        return loc[1:]
    return loc


def validate_run(session: Session, payload: Any, settings: Settings, *, strict: bool = False) -> ValidRun:
    """``strict``: values must have their field's JSON type (the REST API); else strings are parsed (forms)."""
    if not isinstance(payload, dict):
        raise InputError([field_error([], "expected a JSON object", "dict_type")])
    payload = dict(payload)
    raw_teacher = payload.pop("teacher_run_id", None)
    errors: list[dict] = []
    config = None
    if "kind" in payload and not isinstance(payload["kind"], str):
        # RunConfig's kind-defaults hook looks the kind up in a dict, which fails on unhashable input.
        errors.append(field_error(["kind"], "Input should be a valid string", "string_type"))
    else:
        try:
            config = RunConfig.model_validate(payload, strict=strict, context={"strict": strict})
        except ValidationError as exc:
            errors += [{**error, "loc": _where_given(error["loc"], payload)} for error in pydantic_errors(exc)]
    teacher, teacher_errors = _teacher(session, raw_teacher, payload.get("kind"), strict)
    info, dataset_errors = None, []
    if not any(error["loc"][:1] == ["dataset"] for error in errors):
        info, dataset_errors = dataset_info(payload.get("dataset", _DEFAULT_DATASET), settings, ["dataset"])
    errors += teacher_errors + dataset_errors + class_count_errors(info, teacher)
    errors += subset_errors(info, [(["subset"], payload.get("subset"))], errors, strict)
    if errors:
        raise InputError(errors)
    return ValidRun(config, teacher.id if teacher else None, info.num_classes)


def validate_experiment(payload: Any, settings: Settings, *,
                        strict: bool = False) -> tuple[dict[str, RunConfig], DatasetInfo]:
    """Validate an experiment request: ``dataset``, ``subset`` and any other RunConfig field shared by
    the runs (each applied only to the kinds that use it), plus ``kinds: {kind: {field: value}}`` for
    per-kind overrides. Returns one config per experiment kind, in launch order. ``strict`` as in validate_run."""
    if not isinstance(payload, dict):
        raise InputError([field_error([], "expected a JSON object", "dict_type")])
    shared = {k: v for k, v in payload.items() if k in EXPERIMENT_SHARED_FIELDS and v is not None}
    errors = [field_error([k], "Extra inputs are not permitted", "extra_forbidden")
              for k in payload if k not in EXPERIMENT_SHARED_FIELDS and k != "kinds"]
    per_kind = payload.get("kinds") or {}
    if not isinstance(per_kind, dict):
        errors.append(field_error(["kinds"], "expected an object of {kind: {field: value}}", "dict_type"))
        per_kind = {}
    for kind, overrides in per_kind.items():
        if kind not in EXPERIMENT_KINDS:
            errors.append(field_error(["kinds", kind], f"not an experiment kind; choose from: {', '.join(EXPERIMENT_KINDS)}"))
        elif not isinstance(overrides, dict):
            errors.append(field_error(["kinds", kind], "expected an object of {field: value}", "dict_type"))
        elif "kind" in overrides:
            errors.append(field_error(["kinds", kind, "kind"], "the kind is set by the experiment", "extra_forbidden"))
        elif "dataset" in overrides:
            # One dataset for all: the students learn from the teacher's outputs on the same images.
            errors.append(field_error(["kinds", kind, "dataset"], "the experiment's runs share its dataset",
                                      "extra_forbidden"))
    configs: dict[str, RunConfig] = {}
    seen: set[tuple] = set()
    for kind in EXPERIMENT_KINDS:
        own = per_kind.get(kind) if isinstance(per_kind.get(kind), dict) else {}
        names = METHODS[kind].param_names()
        applicable = {k: v for k, v in shared.items() if k not in METHOD_PARAMS or k in names}
        try:
            configs[kind] = RunConfig.model_validate({**applicable, **own, "kind": kind}, strict=strict,
                                                     context={"strict": strict})
        except ValidationError as exc:
            for error in exc.errors():
                loc = _where_given(list(error["loc"]), own)
                if loc[:1] == ["params"] or (loc and (loc[0] in own or loc[0] == "kind")):
                    loc = ["kinds", kind, *loc]
                if (tuple(loc), error["msg"]) not in seen:
                    seen.add((tuple(loc), error["msg"]))
                    errors.append(field_error(loc, error["msg"], error["type"]))
    for name in METHOD_PARAMS:
        if name in shared and not any(name in METHODS[kind].param_names() for kind in EXPERIMENT_KINDS):
            errors.append(field_error([name], f"{name} applies to no kind of the experiment"))
    info = None
    if not any(error["loc"][:1] == ["dataset"] for error in errors):
        info, dataset_errors = dataset_info(shared.get("dataset", _DEFAULT_DATASET), settings, ["dataset"])
        errors += dataset_errors
    subsets = [(["subset"], shared.get("subset"))] + [
        (["kinds", kind, "subset"], own["subset"]) for kind, own in per_kind.items()
        if kind in EXPERIMENT_KINDS and isinstance(own, dict) and "subset" in own
    ]
    errors += subset_errors(info, subsets, errors, strict)
    if errors:
        raise InputError(errors)
    return configs, info


def experiment_seeds(payload: dict, strict: bool) -> tuple[list[int] | None, list[dict]]:
    """The seed experiment's optional ``seeds``: distinct seeds, one experiment's runs per seed. ``seed``
    beside them would say the same thing twice."""
    try:
        seeds = _SEEDS.validate_python(payload.get("seeds"), strict=strict)
    except ValidationError as exc:
        return None, pydantic_errors(exc, ("seeds",))
    if seeds is None:
        return None, []
    errors = []
    if len(set(seeds)) != len(seeds):
        errors.append(field_error(["seeds"], "seeds must be distinct: a repeated seed repeats the same runs"))
    if payload.get("seed") is not None:
        errors.append(field_error(["seed"], "give seeds or seed, not both", "extra_forbidden"))
    if errors:
        return None, errors
    return seeds, []


def experiment_study(payload: dict, seeds: list[int]) -> dict:
    """The seed experiment over several seeds as a study request (kdcore.study): its methods without the
    teacher, one teacher per seed, each method's default epochs. ``payload`` passed validate_experiment.

    Shared fields keep their experiment meaning: ``epochs`` and ``architecture`` apply to the teachers too,
    a hyperparameter to every method that has it, the rest to every run's recipe. Per-kind overrides a study
    can express are the teacher's ``epochs`` and ``architecture`` and a student method's ``epochs`` and
    hyperparameters; any other is an InputError, since a study shares one recipe across its runs."""
    shared = {k: v for k, v in payload.items() if k in EXPERIMENT_SHARED_FIELDS and v is not None}
    per_kind = payload.get("kinds") or {}
    study: dict[str, Any] = {"name": f"Seed experiment over {len(seeds)} seeds", "seeds": seeds,
                             "teacher_per_seed": True}
    study.update({k: shared[k] for k in ("dataset", "subset", "epochs") if k in shared})
    study.update({k: v for k, v in shared.items() if k in STUDY_RECIPE_FIELDS})
    if "epochs" in shared:
        study["teacher_epochs"] = shared["epochs"]
    if "architecture" in shared:
        study["architectures"] = [shared["architecture"]]
        study["teacher_architecture"] = shared["architecture"]
    errors: list[dict] = []
    methods: list[str | dict] = []
    for kind in EXPERIMENT_KINDS:
        own = {k: v for k, v in (per_kind.get(kind) or {}).items() if v is not None}
        if METHODS[kind].teaches:
            renamed = {"epochs": "teacher_epochs", "architecture": "teacher_architecture"}
            study.update({renamed[k]: v for k, v in own.items() if k in renamed})
            inexpressible = [k for k in own if k not in renamed]
        else:
            names = METHODS[kind].param_names()
            params = {k: v for k, v in shared.items() if k in names}
            params.update(own.get("params") or {})
            params.update({k: v for k, v in own.items() if k in names})
            entry = {"method": kind, **({"params": params} if params else {}),
                     **({"epochs": own["epochs"]} if "epochs" in own else {})}
            methods.append(entry if len(entry) > 1 else kind)
            inexpressible = [k for k in own if k not in (*names, "params", "epochs")]
        errors += [field_error(["kinds", kind, name], "seeds sets every run's seed" if name == "seed" else
                               f"with several seeds the experiment is a study, whose runs share one {name}: set "
                               "it for every kind, or use one seed", "not_in_study") for name in inexpressible]
    if errors:
        raise InputError(errors)
    return {**study, "methods": methods}
