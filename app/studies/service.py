"""Studies in the database: submit one (validated and expanded by kdcore.studies.study, stored all or nothing),
read its progress and statistics, cancel it, and export it.

Like app.runs.service, each function takes a Session, commits its own transaction and raises app.store.errors.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, update
from sqlalchemy.orm import object_session
from sqlmodel import Session, select

from app.runs.annotations import annotate, clean_annotations, split_annotations, store_tags, tags_of
from app.runs.reproduction_facts import best_test_accuracies, may_match, teacher_networks
from app.runs.service import best_epoch_fields, cancel_runs, iso, new_run, remove_run_folders, settings_of
from app.runs.validation import (
    best_weights_errors,
    class_count_errors,
    dataset_info,
    split_errors,
    subset_errors,
    tap_errors,
    teacher_network,
    teacher_run,
)
from app.store.errors import Conflict, InputError, NotFound, field_error, unknown_fields
from app.store.models import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    Epoch,
    Experiment,
    Run,
    StageEpoch,
    Study,
    Tag,
    utcnow,
)
from app.store.queue import admission, cancel_orphans
from app.studies.eta import seconds_left
from kdcore.figures import finite_or_none
from kdcore.registry import METHODS
from kdcore.studies.groups import Outcome, labelled_groups
from kdcore.studies.reproduction import CSV_COLUMNS as REPRODUCTION_COLUMNS
from kdcore.studies.reproduction import reproduction_rows
from kdcore.studies.study import (
    RECIPE_FIELDS,
    StudyInputError,
    Plan,
    StudySpec,
    expand,
    own_baselines,
    paper_table,
    parse_spec,
)

# What a study request may name besides its tags, note and teacher_run_id (parse_spec's rule): checked here
# first, so that a body of thousands of unknown keys costs no more than one of a few (unknown_fields).
STUDY_KEYS = frozenset((*StudySpec.model_fields, *RECIPE_FIELDS, "preset"))


def study_tap_errors(plan, spec, teacher: Run | None, info) -> list[dict]:
    """Each network of the study that lacks a tap one of its methods reads, said once."""
    network = teacher_network(teacher) if teacher is not None else \
        plan.teachers[0].config.architecture if plan.teachers else None
    student_loc = ["architectures"] if spec.architectures else ["methods"]
    teacher_loc = ["teacher_run_id"] if teacher is not None else ["teacher_architecture"]
    label = f" (teacher run {teacher.id})" if teacher is not None else ""
    found = [e for member in plan.students
             for e in tap_errors(member.config, network, info, student_loc, teacher_loc, label)]
    return [e for index, e in enumerate(found) if e not in found[:index]]


@dataclass
class CheckedStudy:
    """A study request that passed every check, ready to be stored (store_study)."""

    spec: StudySpec
    plan: Plan
    teacher: Run | None
    num_classes: int
    annotations: dict[str, Any]


def check_study(session: Session, payload: Any, *, strict: bool = False, teacher_row: Run | None = None) -> CheckedStudy:
    """Validate the request and expand it to runs; InputError with every problem named. ``teacher_row``: the
    teacher its students distil from when the caller has it rather than the request (a benchmark's teacher,
    created in the same transaction as the study)."""
    if not isinstance(payload, dict):
        raise InputError([field_error([], "expected a JSON object", "dict_type")])
    settings = settings_of(session)
    payload, given = split_annotations(payload)
    annotations, errors = clean_annotations(given)
    raw_teacher = payload.pop("teacher_run_id", None)
    teacher, teacher_errors = (teacher_row, []) if teacher_row is not None else teacher_run(session, raw_teacher, strict)
    errors += teacher_errors
    if unknown := unknown_fields(payload, STUDY_KEYS):
        errors += unknown
        payload = {k: v for k, v in payload.items() if k in STUDY_KEYS}
    spec, plan = None, None
    try:
        spec = parse_spec(payload, strict=strict)
        plan = expand(spec, external_teacher=teacher is not None, max_runs=settings.max_study_runs, strict=strict)
    except StudyInputError as exc:
        errors += exc.errors
    info = None
    if not any(e["loc"][:1] == ["dataset"] for e in errors):
        info, dataset_errors = dataset_info(payload.get("dataset", "cifar10"), settings, ["dataset"])
        errors += dataset_errors
    errors += class_count_errors(info, teacher)
    errors += subset_errors(info, [(["subset"], payload.get("subset"))], errors, strict)
    if plan is not None:
        errors += best_weights_errors(teacher.config if teacher else None,
                                      [(["teacher_weights"], member.config) for member in plan.students])
        if not any(error["loc"][:1] == ["subset"] for error in errors):
            errors += split_errors(info, plan.members[0].config, ["validation"])
        errors += study_tap_errors(plan, spec, teacher, info)
    if teacher is not None and spec is not None and not any(METHODS[e.method].needs_teacher
                                                            for e in spec.entries() if e.method in METHODS):
        errors.append(field_error(["teacher_run_id"], "no method of this study distils from a teacher"))
    if errors:
        raise InputError(errors)
    return CheckedStudy(spec, plan, teacher, info.num_classes, annotations)


def create_study(session: Session, payload: Any, *, strict: bool = False,
                 experiment: Experiment | None = None) -> Study:
    """Validate the request, expand it to runs, and queue them all (or nothing, with every problem named).
    ``experiment``: stored with the study, its runs joined to it (the tutorial experiment over several seeds)."""
    checked = check_study(session, payload, strict=strict)
    with admission(session, len(checked.plan.members), settings_of(session).max_queued):
        return store_study(session, checked, experiment=experiment)


def store_study(session: Session, checked: CheckedStudy, *, experiment: Experiment | None = None,
                **fields: Any) -> Study:
    """Add a checked study and its runs to the caller's transaction (an admission); ``fields``: more columns
    of the study (its benchmark)."""
    spec, plan, teacher, annotations = checked.spec, checked.plan, checked.teacher, checked.annotations
    study = Study(name=spec.name, dataset=spec.dataset, subset=spec.subset,
                  spec=spec.model_dump(mode="json", exclude_defaults=True),
                  teacher_run_id=teacher.id if teacher else None, total_runs=len(plan.members), **annotations, **fields)
    session.add(study)
    if experiment is not None:
        session.add(experiment)
    session.flush()
    store_tags(session, annotations.get("tags", []), study_id=study.id)
    joined = {"experiment_id": experiment.id if experiment is not None else None}
    # Its runs compare with the baseline students it trains (kdcore.studies.study.own_baselines).
    baselines = own_baselines([member.config for member in plan.members])  # teachers first, as members
    own_teachers: dict[int, Run] = {}
    for member, baseline in zip(plan.teachers, baselines):
        run = new_run(member.config, None, baseline=baseline, study_id=study.id,
                      num_classes=checked.num_classes, **joined)
        session.add(run)
        session.flush()  # the students name its id
        own_teachers[member.config.seed] = run
    for member, baseline in zip(plan.students, baselines[len(plan.teachers):]):
        distils_from = None
        if member.config.method.needs_teacher:
            distils_from = teacher if teacher is not None else own_teachers[member.teacher_seed]
        session.add(new_run(member.config, distils_from.group_key if distils_from else None,
                            baseline=baseline, teacher_run_id=distils_from.id if distils_from else None,
                            study_id=study.id, num_classes=checked.num_classes, **joined))
    return study


def get_study(session: Session, study_id: int) -> Study:
    study = session.get(Study, study_id)
    if study is None:
        raise NotFound(f"study {study_id} does not exist")
    return study


def annotate_study(session: Session, study_id: int, payload: Any) -> Study:
    """Change a study's tags and note (app.runs.annotations.annotate); its tags also tag its runs for filters."""
    return annotate(session, get_study(session, study_id), payload)


def study_runs(session: Session, study_id: int) -> list[Run]:
    return list(session.exec(select(Run).where(Run.study_id == study_id).order_by(Run.id)).all())


def list_studies(session: Session, *, limit: int = 50, offset: int = 0) -> tuple[list[tuple[Study, Counter]], int]:
    """Studies newest first, each with its runs counted by status (one query for all of them)."""
    total = session.exec(select(func.count()).select_from(Study)).one()
    studies = list(session.exec(select(Study).order_by(Study.id.desc()).offset(offset).limit(limit)).all())
    counts: dict[int, Counter] = {study.id: Counter() for study in studies}
    if studies:
        rows = session.exec(select(Run.study_id, Run.status, func.count()).where(Run.study_id.in_(list(counts)))
                            .group_by(Run.study_id, Run.status)).all()
        for study_id, status, count in rows:
            counts[study_id][status] = count
    return [(study, counts[study.id]) for study in studies], total


def recent_studies(session: Session, limit: int = 200) -> list[tuple[int, str | None]]:
    """The newest studies' ids and names (what a filter by study offers)."""
    return [tuple(row) for row in session.exec(select(Study.id, Study.name).order_by(Study.id.desc()).limit(limit))]


def study_tags(session: Session, study_ids: set[int]) -> dict[int, list[str]]:
    """The tags of each study named (lists of runs show them beside their runs' own)."""
    if not study_ids:
        return {}
    rows = session.exec(select(Study.id, Study.tags).where(Study.id.in_(sorted(study_ids)))).all()
    return {study_id: list(tags or []) for study_id, tags in rows}


def status_of(study: Study, counts: Counter) -> str:
    """queued until a run starts, running while any run is active, then completed (or cancelled)."""
    active = sum(counts[s] for s in ACTIVE_STATUSES)
    if active:
        return "queued" if counts["queued"] == active and not sum(counts[s] for s in FINISHED_STATUSES) else "running"
    return "cancelled" if study.cancel_requested else "completed"


def cancel_study(session: Session, study_id: int) -> Study:
    """Cancel the study's queued runs now and ask the workers to stop its running ones; finished runs stay."""
    study = get_study(session, study_id)
    runs = study_runs(session, study_id)
    if not any(run.status in ACTIVE_STATUSES for run in runs):
        raise Conflict(f"study {study_id} has no queued or running run left")
    session.execute(update(Study).where(Study.id == study_id).values(cancel_requested=True))
    cancel_runs(session, Run.study_id == study_id, "study cancelled by user")
    session.commit()
    cancel_orphans(session)
    session.refresh(study)
    return study


def delete_study(session: Session, study_id: int) -> None:
    """Delete a study with its runs, their epochs and folders. Refused while any of its runs is running
    (cancel the study first), or while a run outside it waits to distil from one of its teachers."""
    get_study(session, study_id)
    runs = study_runs(session, study_id)
    running = [run.id for run in runs if run.status == "running"]
    if running:
        raise Conflict(f"study {study_id} has running runs ({', '.join(map(str, running))}); cancel the study first")
    run_ids = [run.id for run in runs]
    if run_ids:
        waiting = session.exec(select(Run.id).where(Run.teacher_run_id.in_(run_ids), Run.status.in_(ACTIVE_STATUSES),
                                                    or_(Run.study_id.is_(None), Run.study_id != study_id))).all()
        if waiting:
            raise Conflict(f"runs {', '.join(map(str, waiting))} outside study {study_id} distil from its teachers; "
                           "cancel them first")
    # One transaction: if a worker claimed one of the runs meanwhile, the rollback keeps everything.
    members = select(Run.id).where(Run.study_id == study_id)
    session.execute(delete(Epoch).where(Epoch.run_id.in_(members)))
    session.execute(delete(StageEpoch).where(StageEpoch.run_id.in_(members)))
    session.execute(delete(Tag).where(or_(Tag.run_id.in_(members), Tag.study_id == study_id)))
    removed = session.execute(delete(Run).where(Run.study_id == study_id, Run.status != "running"))
    if removed.rowcount != len(run_ids):
        session.rollback()
        raise Conflict(f"a run of study {study_id} started meanwhile; cancel the study first")
    # The tutorial experiment over several seeds stores an experiment beside the study: it goes with its runs.
    for experiment_id in {run.experiment_id for run in runs if run.experiment_id is not None}:
        if session.exec(select(Run.id).where(Run.experiment_id == experiment_id).limit(1)).first() is None:
            session.execute(delete(Experiment).where(Experiment.id == experiment_id))
    session.execute(delete(Study).where(Study.id == study_id))
    session.commit()
    remove_run_folders(session, run_ids)


def _role(kind: str) -> str:
    method = METHODS.get(kind)
    if method is not None and method.teaches:
        return "teacher"
    return "baseline" if method is not None and method.baseline else "method"


def _published_facts(runs: list[Run]) -> tuple[dict[int, str | None], dict[int, float]]:
    """Teachers' networks and best test epochs of the runs that may match a published result
    (app.runs.reproduction_facts), read through the session the runs came from."""
    candidates = [run for run in runs if may_match(run.dataset)]
    session = object_session(runs[0]) if candidates else None
    if session is None:
        return {}, {}
    networks = {run.id: run.architecture for run in runs}
    missing = {run.teacher_run_id for run in candidates if run.teacher_run_id is not None} - set(networks)
    networks.update(teacher_networks(session, missing))
    validated = [run.id for run in candidates if (run.config or {}).get("validation") and run.status == "completed"]
    return networks, best_test_accuracies(session, validated)


def outcomes(runs: list[Run]) -> list[Outcome]:
    """The runs as kdcore.studies.groups counts them (oldest first: a group's first run names its baseline)."""
    networks, best_tests = _published_facts(runs)
    return [Outcome(group=run.group_key or f"run {run.id}", kind=run.kind, role=_role(run.kind),
                    architecture=run.architecture, params=dict(run.config.get("params") or {}),
                    seed=run.seed if run.seed is not None else run.config.get("seed"), status=run.status,
                    final_accuracy=finite_or_none(run.final_accuracy), best_accuracy=finite_or_none(run.best_accuracy),
                    run_id=run.id, baseline=run.baseline_key, epochs=run.epochs, dataset=run.dataset,
                    subset=run.config.get("subset"), validation=run.config.get("validation"),
                    teacher_architecture=networks.get(run.teacher_run_id),
                    best_test_accuracy=finite_or_none(best_tests.get(run.id)))
            for run in runs]


def study_groups(runs: list[Run]) -> list[dict[str, Any]]:
    """The study's configurations with their statistics and labels (kdcore.studies.groups.labelled_groups)."""
    return labelled_groups(outcomes(runs))


def progress(runs: list[Run], now: datetime | None = None) -> dict[str, Any]:
    """How many runs are done, and an estimate of the time left (app.studies.eta)."""
    counts = Counter(run.status for run in runs)
    done = sum(counts[s] for s in FINISHED_STATUSES)
    return {"total": len(runs), "done": done, "completed": counts["completed"], "failed": counts["failed"],
            "cancelled": counts["cancelled"], "running": counts["running"], "queued": counts["queued"],
            "fraction": done / len(runs) if runs else 1.0, "eta_seconds": seconds_left(runs, now or utcnow())}


def study_to_dict(study: Study, runs: list[Run], *, with_groups: bool = True) -> dict[str, Any]:
    counts = Counter(run.status for run in runs)
    data = {
        "id": study.id, "name": study.name, "status": status_of(study, counts), "dataset": study.dataset,
        "subset": study.subset, "spec": study.spec, "teacher_run_id": study.teacher_run_id,
        "created_at": iso(study.created_at), "cancel_requested": study.cancel_requested,
        "progress": progress(runs), "run_ids": [run.id for run in runs], "tags": tags_of(study), "note": study.note,
    }
    if with_groups:
        data["groups"] = study_groups(runs)
    return data


def study_summary(study: Study, counts: Counter) -> dict[str, Any]:
    """A study in lists: its progress from status counts alone."""
    total = sum(counts.values())
    done = sum(counts[s] for s in FINISHED_STATUSES)
    return {"id": study.id, "name": study.name, "status": status_of(study, counts), "dataset": study.dataset,
            "subset": study.subset, "methods": [m if isinstance(m, str) else m.get("method")
                                                for m in study.spec.get("methods", [])],
            "seeds": study.spec.get("seeds", []), "created_at": iso(study.created_at),
            "total": total, "done": done, "completed": counts["completed"], "running": counts["running"],
            "queued": counts["queued"], "failed": counts["failed"], "cancelled": counts["cancelled"],
            "tags": tags_of(study), "note": study.note}


def group_runs(session: Session, keys: list[str], *, study_id: int | None = None, limit: int = 500) -> list[Run]:
    """The runs of the given configurations (group keys), oldest first: the compare page's groups.
    ``study_id`` keeps to one study's runs (a study page's heatmap links to its own replicates)."""
    if not keys:
        return []
    query = select(Run).where(Run.group_key.in_(keys))
    if study_id is not None:
        query = query.where(Run.study_id == study_id)
    return list(session.exec(query.order_by(Run.id).limit(limit)).all())


def epoch_metrics(session: Session, run_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """The runs' per-epoch test accuracy, train loss and test loss, by run id: what a group's mean curves
    need, read as plain columns (one query; no Epoch objects, no loss terms parsed)."""
    by_run: dict[int, list[dict[str, Any]]] = {run_id: [] for run_id in run_ids}
    if run_ids:
        rows = session.exec(select(Epoch.run_id, Epoch.epoch, Epoch.test_accuracy, Epoch.train_loss, Epoch.test_loss)
                            .where(Epoch.run_id.in_(run_ids)).order_by(Epoch.run_id, Epoch.epoch)).all()
        for run_id, epoch, test_accuracy, train_loss, test_loss in rows:
            by_run[run_id].append({"epoch": epoch, "test_accuracy": finite_or_none(test_accuracy),
                                   "train_loss": finite_or_none(train_loss), "test_loss": finite_or_none(test_loss)})
    return by_run


# ---------------------------------------------------------------- exports

RUN_COLUMNS = ("run_id", "method", "architecture", "seed", "params", "status", "final_accuracy", "best_epoch",
               "best_epoch_label", "test_accuracy_at_best", "best_val_accuracy", "best_accuracy", "train_seconds",
               "teacher_run_id", "group")
GROUP_COLUMNS = ("group", "label", "method", "architecture", "params", "n", "mean", "std", "ci95_low", "ci95_high",
                 "delta_vs_baseline", "delta_ci95_low", "delta_ci95_high", "p_value", "paired", "significant",
                 "baseline_group", "baseline_epochs", "baseline_n", "run_ids", "published", "published_inside")


def run_rows(runs: list[Run]) -> list[dict[str, Any]]:
    return [{"run_id": run.id, "method": run.kind, "architecture": run.architecture, "seed": run.seed,
             "params": run.config.get("params") or {}, "status": run.status,
             "final_accuracy": finite_or_none(run.final_accuracy), **best_epoch_fields(run),
             "train_seconds": finite_or_none(run.train_seconds),
             "teacher_run_id": run.teacher_run_id, "group": run.group_key} for run in runs]


def _csv(columns: tuple[str, ...], rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else
                         "" if v is None else v for k, v in row.items()})
    return out.getvalue()


def runs_csv(runs: list[Run]) -> str:
    return _csv(RUN_COLUMNS, run_rows(runs))


def groups_csv(groups: list[dict]) -> str:
    rows = []
    for g in groups:
        diff = g["vs_baseline"] or {}
        ci, dci = g["ci95"] or [None, None], diff.get("ci95") or [None, None]
        rows.append({"group": g["key"], "label": g["label"], "method": g["method"], "architecture": g["architecture"],
                     "params": g["params"], "n": g["n"], "mean": g["mean"], "std": g["std"], "ci95_low": ci[0],
                     "ci95_high": ci[1], "delta_vs_baseline": diff.get("mean"), "delta_ci95_low": dci[0],
                     "delta_ci95_high": dci[1], "p_value": diff.get("p_value"), "paired": diff.get("paired"),
                     "significant": diff.get("significant"), "baseline_group": diff.get("baseline_key"),
                     "baseline_epochs": diff.get("baseline_epochs"), "baseline_n": diff.get("baseline_n"),
                     "run_ids": g["run_ids"], **_published_columns(g.get("reproduction"))})
    return _csv(GROUP_COLUMNS, rows)


def _published_columns(shown: dict | None) -> dict[str, Any]:
    """A configuration's published values (percent) and whether each lies in our interval (null at n = 1);
    reproduction.csv has the rest."""
    if not shown:
        return {"published": None, "published_inside": None}
    return {"published": [row["value"] for row in shown["published"]],
            "published_inside": [row["inside"] for row in shown["published"]]}


def reproduction_csv(groups: list[dict]) -> str:
    """Reported vs reproduced, one row per configuration and published result it matches."""
    return _csv(REPRODUCTION_COLUMNS, reproduction_rows(groups))


def paper_tables(groups: list[dict]) -> dict[str, str]:
    return {"markdown": paper_table(groups, "markdown"), "latex": paper_table(groups, "latex")}
