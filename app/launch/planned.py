"""What each launch form would train, read from its fields as the submit reads them, for app.launch.estimates:
the run, the tutorial experiment's runs (over its seeds), the study's runs. A form that cannot be read yet
says why instead."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError
from sqlmodel import Session

from app.experiments import form as experiment_forms
from app.experiments.validation import experiment_seeds, experiment_study, validate_experiment
from app.launch.estimates import Planned
from app.runs import form as forms
from app.runs.validation import teacher_run
from app.settings import Settings
from app.store.errors import InputError
from app.studies import form as study_form
from kdcore.config import RunConfig
from kdcore.data.catalog import DatasetInfo
from kdcore.studies.study import StudyInputError, expand, parse_spec

Plan = tuple[list[Planned], str | None]
UNREADABLE = "fill in the form to see how long it takes"


def _planned(configs: list[RunConfig], datasets: list[DatasetInfo], flops: dict[str, int],
             teacher_architecture: str | None = None) -> Plan:
    """Each config with its data size (the subset, else the training split) and its teacher's FLOPs."""
    sizes = {d.name: d.train_size for d in datasets}
    planned = []
    for config in configs:
        images = config.subset or sizes.get(config.dataset)
        if images is None:
            return [], f"the size of {config.dataset} is not known until it has been loaded"
        distils = config.method.needs_teacher and teacher_architecture is not None
        planned.append(Planned(config, images, flops.get(teacher_architecture) if distils else None))
    return planned, None


def run_plan(values: Mapping[str, str], session: Session, datasets: list[DatasetInfo], flops: dict[str, int]) -> Plan:
    payload = forms.run_payload(dict(values))
    raw_teacher = payload.pop("teacher_run_id", None)
    try:
        config = RunConfig.model_validate(payload)
    except ValidationError:
        return [], UNREADABLE
    teacher, _ = teacher_run(session, raw_teacher, False) if config.method.needs_teacher else (None, [])
    return _planned([config], datasets, flops, teacher.architecture if teacher else None)


def experiment_plan(values: Mapping[str, str], settings: Settings, datasets: list[DatasetInfo],
                    flops: dict[str, int]) -> Plan:
    """The experiment's runs, once per seed when it has several (a teacher per seed)."""
    try:
        payload = experiment_forms.experiment_payload(dict(values))
        seeds, errors = experiment_seeds(payload, False)
        request = {k: v for k, v in payload.items() if k != "seeds"}
        if errors:
            return [], UNREADABLE
        if seeds is not None and len(seeds) > 1:
            plan = expand(parse_spec(experiment_study(request, seeds)))
            return _planned([m.config for m in plan.members], datasets, flops, plan.teachers[0].config.architecture)
        configs, _ = validate_experiment(request, settings)
    except (InputError, forms.FormError, StudyInputError):
        return [], UNREADABLE
    teacher = next((c.architecture for c in configs.values() if c.method.teaches), None)
    return _planned(list(configs.values()), datasets, flops, teacher)


def study_plan(values: Mapping[str, list[str]], session: Session, datasets: list[DatasetInfo],
               flops: dict[str, int], limit: int) -> Plan:
    try:
        payload = study_form.study_payload(values)
        raw_teacher = payload.pop("teacher_run_id", None)
        teacher, errors = teacher_run(session, raw_teacher, False)
        spec = parse_spec(payload)
        plan = expand(spec, external_teacher=teacher is not None, max_runs=limit)
    except (forms.FormError, StudyInputError):
        return [], UNREADABLE
    if errors:
        return [], UNREADABLE
    distilled_from = teacher.architecture if teacher else plan.teachers[0].config.architecture if plan.teachers else None
    return _planned([m.config for m in plan.members], datasets, flops, distilled_from)
