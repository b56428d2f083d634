"""Turn a client's request for the tutorial experiment into one RunConfig per kind, or into field errors;
and, over several seeds, into a study request (app.studies.service).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from app.runs.validation import (
    DEFAULT_DATASET,
    RUN_KEYS,
    best_weights_errors,
    dataset_info,
    split_errors,
    subset_errors,
    where_given,
)
from app.settings import Settings
from app.store.errors import InputError, field_error, pydantic_errors, unknown_fields
from kdcore.config import METHOD_PARAMS, RunConfig
from kdcore.data.catalog import DatasetInfo
from kdcore.registry import EXPERIMENT_KINDS, METHODS
from kdcore.studies.study import RECIPE_FIELDS as STUDY_RECIPE_FIELDS

_SEEDS = TypeAdapter(Annotated[list[Annotated[int, Field(ge=0, le=2**63 - 1)]], Field(min_length=1, max_length=100)]
                     | None)
# Fields an experiment request may set for all its runs; each applies only to kinds that use it.
# An experiment's shared fields: RunConfig's, and each method hyperparameter by its plain name, which
# applies to every kind of the experiment that has it.
EXPERIMENT_SHARED_FIELDS = (*(name for name in RunConfig.model_fields if name not in ("kind", "params")),
                            *METHOD_PARAMS)
EXPERIMENT_KEYS = frozenset((*EXPERIMENT_SHARED_FIELDS, "kinds"))


def validate_experiment(payload: Any, settings: Settings, *,
                        strict: bool = False) -> tuple[dict[str, RunConfig], DatasetInfo]:
    """Validate an experiment request: ``dataset``, ``subset`` and any other RunConfig field shared by
    the runs (each applied only to the kinds that use it), plus ``kinds: {kind: {field: value}}`` for
    per-kind overrides. Returns one config per experiment kind, in launch order. ``strict`` as in validate_run."""
    if not isinstance(payload, dict):
        raise InputError([field_error([], "expected a JSON object", "dict_type")])
    shared = {k: v for k, v in payload.items() if k in EXPERIMENT_SHARED_FIELDS and v is not None}
    errors = unknown_fields(payload, EXPERIMENT_KEYS)
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
        if own_unknown := unknown_fields(own, RUN_KEYS, ("kinds", kind)):
            errors += own_unknown
            own = {k: v for k, v in own.items() if k in RUN_KEYS}
        names = METHODS[kind].param_names()
        applicable = {k: v for k, v in shared.items() if k not in METHOD_PARAMS or k in names}
        try:
            configs[kind] = RunConfig.model_validate({**applicable, **own, "kind": kind}, strict=strict,
                                                     context={"strict": strict})
        except ValidationError as exc:
            for error in exc.errors(include_url=False, include_context=False, include_input=False):
                loc = where_given(list(error["loc"]), own)
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
        info, dataset_errors = dataset_info(shared.get("dataset", DEFAULT_DATASET), settings, ["dataset"])
        errors += dataset_errors
    subsets = [(["subset"], shared.get("subset"))] + [
        (["kinds", kind, "subset"], own["subset"]) for kind, own in per_kind.items()
        if kind in EXPERIMENT_KINDS and isinstance(own, dict) and "subset" in own
    ]
    errors += subset_errors(info, subsets, errors, strict)

    def given_at(kind: str, name: str) -> list:
        own = per_kind.get(kind)
        return ["kinds", kind, name] if isinstance(own, dict) and name in own else [name]

    teacher = next((config for config in configs.values() if config.method.teaches), None)
    errors += best_weights_errors(teacher.to_json_dict() if teacher else None,
                                  [(given_at(kind, "teacher_weights"), config) for kind, config in configs.items()])
    if not any(error["loc"][-1:] == ["subset"] for error in errors):
        split = [found for kind, config in configs.items() for found in split_errors(info, config, given_at(kind, "validation"))]
        errors += split[:1]
    if errors:
        raise InputError(errors)
    return configs, info


def experiment_seeds(payload: dict, strict: bool) -> tuple[list[int] | None, list[dict]]:
    """The tutorial experiment's optional ``seeds``: distinct seeds, one experiment's runs per seed. ``seed``
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
    """The tutorial experiment over several seeds as a study request (kdcore.studies.study): its methods without the
    teacher, one teacher per seed, each method's default epochs. ``payload`` passed validate_experiment.

    Shared fields keep their experiment meaning: ``epochs`` and ``architecture`` apply to the teachers too,
    a hyperparameter to every method that has it, the rest to every run's recipe. Per-kind overrides a study
    can express are the teacher's ``epochs`` and ``architecture`` and a student method's ``epochs`` and
    hyperparameters; any other is an InputError, since a study shares one recipe across its runs."""
    shared = {k: v for k, v in payload.items() if k in EXPERIMENT_SHARED_FIELDS and v is not None}
    per_kind = payload.get("kinds") or {}
    study: dict[str, Any] = {"name": f"Tutorial experiment over {len(seeds)} seeds", "seeds": seeds,
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
