"""Benchmarks in the database: the cifar100-benchmark preset (kdcore.studies.benchmark) submitted as its teachers
and studies, all or nothing, and read back as the paper's table (kdcore.studies.benchmark_table).

Each teacher network gets one teacher run (unless the request names one), outside any study; each study (a teacher
network's students at one learning rate) distils from it as a study distils from a given teacher_run_id, so its
page, statistics and exports are a study's. Like app.studies.service, each function takes a Session and commits
its own transaction.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlmodel import Session, select

from app.runs.service import iso, new_run, settings_of
from app.runs.validation import dataset_info, teacher_network, teacher_run
from app.store.errors import InputError, NotFound, field_error
from app.store.models import Benchmark, Run, Study
from app.store.queue import admission
from app.studies.service import check_study, status_of, store_study, study_groups, study_runs
from kdcore.architectures import canonical
from kdcore.studies.benchmark import (
    BenchmarkSpec,
    find_pair,
    parse_benchmark,
    plan,
    studies,
    study_loc,
    teacher_config,
)
from kdcore.studies.benchmark_table import benchmark_table, markdown
from kdcore.studies.study import StudyInputError


def checked_spec(session: Session, payload: Any) -> BenchmarkSpec:
    """The request checked as a benchmark (pairs, methods, seeds, epochs, teachers; at most the study limit of
    runs) before anything about its studies: InputError naming each problem."""
    try:
        spec = parse_benchmark(payload)
        plan(spec, settings_of(session).max_study_runs)
    except StudyInputError as exc:
        raise InputError(exc.errors) from None
    return spec


def _teachers(session: Session, spec: BenchmarkSpec, num_classes: int | None) -> tuple[dict[str, Run], list[dict]]:
    """By teacher network, the run its studies distil from: the one the request names (a teacher of that network,
    completed, queued or running), or a new queued one (not yet added to the session)."""
    found, errors = {}, []
    for network in spec.teacher_networks():
        given = spec.given_teacher(network)
        name = next((n for n in spec.teachers if canonical(n) == network), network)
        if given is None:
            found[network] = new_run(teacher_config(spec, network), None, num_classes=num_classes)
            continue
        run, problems = teacher_run(session, given, True)
        errors += [{**e, "loc": ["teachers", name]} for e in problems]
        if run is not None and canonical(teacher_network(run) or "") != network:
            errors.append(field_error(["teachers", name], f"run {run.id} is a {teacher_network(run)} teacher, "
                                      f"not a {network}"))
        elif run is not None:
            found[network] = run
    return found, errors


def create_benchmark(session: Session, payload: Any) -> Benchmark:
    """Check every study of the benchmark against its teacher, then queue the new teachers and every study in one
    admission: all of it, or nothing with every problem named."""
    spec = checked_spec(session, payload)
    settings = settings_of(session)
    info, errors = dataset_info(spec.dataset, settings, ["dataset"])
    teachers, teacher_errors = _teachers(session, spec, info.num_classes if info else None)
    errors += teacher_errors
    checked = []
    if not errors:
        for study in studies(spec):
            try:
                checked.append((study, check_study(session, dict(study.payload), teacher_row=teachers[study.teacher])))
            except InputError as exc:
                errors += [e for e in ({**e, "loc": study_loc(e["loc"])} for e in exc.errors) if e not in errors]
    if errors:
        raise InputError(errors)
    new_teachers = [run for run in teachers.values() if run.id is None]
    total = len(new_teachers) + sum(len(c.plan.members) for _, c in checked)
    benchmark = Benchmark(name=spec.name, dataset=spec.dataset, spec=spec.model_dump(mode="json"))
    with admission(session, total, settings.max_queued):
        session.add(benchmark)
        for run in new_teachers:
            session.add(run)
        session.flush()  # the studies name the teachers' ids, and the benchmark's
        layout = []
        for study, found in checked:
            stored = store_study(session, found, benchmark_id=benchmark.id)
            session.flush()
            layout.append({"study_id": stored.id, "teacher": study.teacher, "pairs": [p.key for p in study.pairs]})
        benchmark.teachers = {network: run.id for network, run in teachers.items()}
        benchmark.layout = layout
    session.refresh(benchmark)
    return benchmark


def get_benchmark(session: Session, benchmark_id: int) -> Benchmark:
    benchmark = session.get(Benchmark, benchmark_id)
    if benchmark is None:
        raise NotFound(f"benchmark {benchmark_id} does not exist")
    return benchmark


def list_benchmarks(session: Session, limit: int = 50) -> list[Benchmark]:
    return list(session.exec(select(Benchmark).order_by(Benchmark.id.desc()).limit(limit)).all())


def benchmark_to_dict(session: Session, benchmark: Benchmark) -> dict[str, Any]:
    """The benchmark with its studies' progress and the paper's table from their runs as they stand."""
    spec = BenchmarkSpec.model_validate(benchmark.spec)
    groups_by_pair: dict[str, list[dict]] = {}
    entries = []
    for entry in benchmark.layout:
        study = session.get(Study, entry["study_id"])
        if study is None:
            continue  # deleted since: its pairs show no figures
        runs = study_runs(session, study.id)
        teacher = session.get(Run, benchmark.teachers.get(entry["teacher"], -1))
        groups = study_groups(([teacher] if teacher is not None else []) + runs)
        for key in entry["pairs"]:
            groups_by_pair[key] = groups
        counts = Counter(run.status for run in runs)
        entries.append({"study_id": study.id, "name": study.name, "teacher": entry["teacher"],
                        "teacher_run_id": benchmark.teachers.get(entry["teacher"]), "pairs": entry["pairs"],
                        "status": status_of(study, counts), "runs": len(runs),
                        "completed": counts["completed"]})
    pairs = [pair for pair in (find_pair(key) for e in benchmark.layout for key in e["pairs"]) if pair]
    order = {p.key: i for i, p in enumerate(spec.chosen_pairs())}
    pairs.sort(key=lambda p: order.get(p.key, len(order)))
    table = benchmark_table(pairs, groups_by_pair, spec.methods, spec.dataset, spec.subset)
    return {"id": benchmark.id, "name": benchmark.name, "dataset": benchmark.dataset, "spec": benchmark.spec,
            "teachers": benchmark.teachers, "studies": entries, "created_at": iso(benchmark.created_at),
            "table": table, "markdown": markdown(table)}
