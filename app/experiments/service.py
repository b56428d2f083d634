"""The tutorial experiment in the database: queue one (a teacher, then the runs that train alone or distil
from it), or over several seeds a study of its methods (app.studies.service); read experiments back.

Like app.runs.service, each function takes a Session, commits its own transaction and raises
app.store.errors exceptions.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, func, select

from app.experiments.validation import experiment_seeds, experiment_study, validate_experiment
from app.runs.service import iso, new_run, queue_room, settings_of
from app.store.errors import InputError, NotFound, field_error
from app.store.models import Experiment, Run
from app.studies.service import create_study
from kdcore.figures import finite_or_none
from kdcore.registry import EXPERIMENT_KINDS, METHODS
from kdcore.studies.study import own_baselines


def create_experiment(session: Session, payload: dict, *, strict: bool = False) -> Experiment:
    """Queue the tutorial experiment: a teacher, then the runs that train alone or distil from it.

    ``seeds``: one seed is that seed for every run; two or more make the experiment a study (app.studies.service)
    of its methods, one teacher per seed, whose runs the experiment also lists."""
    if not isinstance(payload, dict):
        raise InputError([field_error([], "expected a JSON object", "dict_type")])
    seeds, errors = experiment_seeds(payload, strict)
    request = {k: v for k, v in payload.items() if k != "seeds"}
    if seeds is not None and len(seeds) == 1:
        request["seed"] = seeds[0]
    try:
        configs, info = validate_experiment(request, settings_of(session), strict=strict)
    except InputError as exc:
        raise InputError(errors + exc.errors) from None
    if errors:
        raise InputError(errors)
    overrides = {k: v for k, v in payload.items() if k not in ("dataset", "subset")}
    experiment = Experiment(dataset=info.name, subset=configs[EXPERIMENT_KINDS[0]].subset, overrides=overrides)
    if seeds is not None and len(seeds) > 1:
        create_study(session, experiment_study(request, seeds), strict=strict, experiment=experiment)
        return experiment
    with queue_room(session, len(configs)):  # all the experiment's runs, or none
        session.add(experiment)
        session.flush()
        teacher: Run | None = None
        # Its KD runs compare with its own student, as the tutorial does (fewer epochs than that student).
        baselines = own_baselines(list(configs.values()))
        for (kind, config), baseline in zip(configs.items(), baselines):
            needs_teacher = METHODS[kind].needs_teacher
            teacher_id = teacher.id if needs_teacher and teacher else None
            run = new_run(config, teacher.group_key if teacher_id else None, baseline=baseline,
                          experiment_id=experiment.id, num_classes=info.num_classes, teacher_run_id=teacher_id)
            session.add(run)
            session.flush()
            if teacher is None and METHODS[kind].teaches:
                teacher = run
    return experiment


def get_experiment(session: Session, experiment_id: int) -> Experiment:
    experiment = session.get(Experiment, experiment_id)
    if experiment is None:
        raise NotFound(f"experiment {experiment_id} does not exist")
    return experiment


def list_experiments(session: Session, *, limit: int = 50, offset: int = 0) -> tuple[list[Experiment], int]:
    total = session.exec(select(func.count()).select_from(Experiment)).one()
    rows = session.exec(select(Experiment).order_by(Experiment.id.desc()).offset(offset).limit(limit)).all()
    return list(rows), total


def experiment_study_id(session: Session, experiment_id: int) -> int | None:
    """The study of an experiment over several seeds (its runs carry it); None for one seed."""
    return session.exec(select(Run.study_id).where(Run.experiment_id == experiment_id, Run.study_id.is_not(None))
                        .limit(1)).first()


def experiment_runs(session: Session, experiment_id: int) -> list[Run]:
    return list(session.exec(select(Run).where(Run.experiment_id == experiment_id).order_by(Run.id)).all())


def experiment_to_dict(experiment: Experiment, runs: list[Run]) -> dict[str, Any]:
    first_by_kind: dict[str, int] = {}
    for run in runs:  # in id order: over several seeds, the first seed's run
        first_by_kind.setdefault(run.kind, run.id)
    return {
        "id": experiment.id, "dataset": experiment.dataset, "subset": experiment.subset,
        "overrides": experiment.overrides, "created_at": iso(experiment.created_at),
        "study_id": next((run.study_id for run in runs if run.study_id is not None), None),
        "run_ids": first_by_kind,
        "runs": [{"id": run.id, "kind": run.kind, "seed": run.seed, "status": run.status,
                  "teacher_run_id": run.teacher_run_id, "final_accuracy": finite_or_none(run.final_accuracy)}
                 for run in runs],
    }
