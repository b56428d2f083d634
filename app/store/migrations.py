"""Data migrations run at start-up, after the schema upgrade (app.store.db). Each is idempotent.

Runs stored before methods and architectures became plugins hold flat configs (``temperature``,
``ce_weight`` and ``distill_weight`` beside the other fields, no ``architecture``). RunConfig reads them
still; rewriting them once in today's shape keeps every reader (pages, exports, the worker) on one form.

Baseline keys stored before they named the epochs matched a student of any epochs; they are recomputed
once (recorded in the data_migrations table).

Completed teachers stored before the teacher registry get their checkpoint's sha256 recorded at start-up,
as the worker records it when a teacher completes: later changes to the file are then caught (app.executors.checksums).

Runs stored under a network's former name (kdcore.architectures.ALIASES) are given its current one; their
group and baseline keys stay as they are (kdcore.studies.study.group_key keys a renamed network by its
first name).
"""

from __future__ import annotations

import logging

from pydantic import ValidationError
from sqlalchemy import Engine, bindparam, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from app.store.models import DataMigration, Run
from kdcore.architectures import ALIASES
from kdcore.data.catalog import file_sha256
from kdcore.config import RunConfig
from kdcore.registry import BASELINE_KIND, TEACHER_KINDS
from kdcore.studies.study import baseline_key, group_key, own_baseline

log = logging.getLogger(__name__)
BATCH = 500


def migrate_run_configs(engine: Engine) -> int:
    """Rewrite the configs of runs that have no ``architecture`` column yet. Returns how many changed."""
    changed, after = 0, 0
    with Session(engine) as session:
        while True:
            # By id, so that a row left as it was (a method no longer installed) is not fetched again.
            rows = session.exec(select(Run.id, Run.config).where(Run.architecture.is_(None), Run.id > after)
                                .order_by(Run.id).limit(BATCH)).all()
            if not rows:
                return changed
            for run_id, stored in rows:
                after = run_id
                try:
                    config = RunConfig.model_validate(stored)
                except ValidationError as exc:
                    log.warning("run %s keeps its stored config, which no longer validates: %s", run_id,
                                exc.errors()[0]["msg"])
                    continue
                session.execute(update(Run).where(Run.id == run_id)
                                .values(config=config.to_json_dict(), architecture=config.architecture))
                changed += 1
            session.commit()


def teacher_key_of(session: Session, teacher_run_id: int | None) -> str | None:
    """What a student's group key says of its teacher: the teacher's own group key (so students of
    replicate teachers group together), or the run id when that teacher is gone or has none."""
    if teacher_run_id is None:
        return None
    key = session.exec(select(Run.group_key).where(Run.id == teacher_run_id)).first()
    return key or f"run {teacher_run_id}"


def fill_group_keys(engine: Engine) -> int:
    """Give runs stored before studies existed their group key, baseline key and seed. Returns how many."""
    changed, after = 0, 0
    with Session(engine) as session:
        while True:
            rows = session.exec(select(Run.id, Run.config, Run.teacher_run_id)
                                .where(Run.group_key.is_(None), Run.id > after).order_by(Run.id).limit(BATCH)).all()
            if not rows:
                return changed
            for run_id, stored, teacher_run_id in rows:
                after = run_id
                try:
                    config = RunConfig.model_validate(stored)
                except ValidationError:
                    continue  # logged by migrate_run_configs
                # Teachers have smaller ids than their students, so theirs is already filled in.
                session.execute(update(Run).where(Run.id == run_id).values(
                    group_key=group_key(config, teacher_key_of(session, teacher_run_id)),
                    baseline_key=baseline_key(config), seed=config.seed))
                changed += 1
            session.commit()


BASELINE_KEYS = "baseline-keys-with-epochs"
RUNS = Run.__table__


def recompute_baseline_keys(engine: Engine) -> int:
    """Store every run's baseline key as it is computed now: the baseline student of the same network,
    data, recipe and epochs, or, for a run of an experiment or study that trained its own, that one
    (kdcore.studies.study.own_baseline). Once per database; a second pass would change nothing.
    Returns how many runs changed."""
    changed, after = 0, 0
    with Session(engine) as session:
        if session.get(DataMigration, BASELINE_KEYS) is not None:
            return 0
        students: dict[tuple, dict[str, RunConfig]] = {}  # each submission's baseline students, by group key
        # By configuration and the students trained beside it: its seeds share the key, and so do the
        # same configurations of experiments that trained the same student.
        chosen: dict[tuple, str | None] = {}
        while True:
            rows = session.exec(select(Run.id, Run.config, Run.group_key, Run.baseline_key, Run.experiment_id,
                                       Run.study_id).where(Run.id > after).order_by(Run.id).limit(BATCH)).all()
            if not rows:
                break
            moved = []
            for run_id, stored, configuration, old, experiment_id, study_id in rows:
                after = run_id
                submission = ("study", study_id) if study_id is not None else \
                    ("experiment", experiment_id) if experiment_id is not None else None
                trained = _students(session, students, submission) if submission is not None else {}
                memo = (configuration or run_id, frozenset(trained))
                if memo not in chosen:
                    try:
                        config = RunConfig.model_validate(stored)
                    except ValidationError:
                        continue  # logged by migrate_run_configs
                    chosen[memo] = own_baseline(config, list(trained.values()))
                if chosen[memo] != old:
                    moved.append({"run_id": run_id, "key": chosen[memo]})
            if moved:  # one statement for the batch: 100,000 single updates took half a minute
                session.execute(RUNS.update().where(RUNS.c.id == bindparam("run_id"))
                                .values(baseline_key=bindparam("key")), moved)
                changed += len(moved)
            session.commit()
        session.add(DataMigration(name=BASELINE_KEYS))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()  # another process starting at the same moment finished it too
    return changed


def _students(session: Session, found: dict[tuple, dict[str, RunConfig]], submission: tuple) -> dict[str, RunConfig]:
    """The baseline students an experiment or a study trained (its runs of the baseline method), by group key."""
    if submission not in found:
        column = Run.study_id if submission[0] == "study" else Run.experiment_id
        rows = session.exec(select(Run.group_key, Run.config)
                            .where(column == submission[1], Run.kind == BASELINE_KIND)).all()
        found[submission] = {}
        for key, stored in rows:
            if key is not None and key not in found[submission]:
                try:
                    found[submission][key] = RunConfig.model_validate(stored)
                except ValidationError:
                    pass
    return found[submission]


def rename_architectures(engine: Engine) -> int:
    """Give runs stored under a network's former name its current name, in the column and the config (which
    names it either way). Their keys do not change. Returns how many runs changed."""
    changed = 0
    with Session(engine) as session:
        while True:
            rows = session.exec(select(Run.id, Run.config).where(Run.architecture.in_(list(ALIASES)))
                                .order_by(Run.id).limit(BATCH)).all()
            if not rows:
                return changed
            renamed = []
            for run_id, stored in rows:
                config = dict(stored)
                config["architecture"] = ALIASES.get(config.get("architecture"), config.get("architecture"))
                renamed.append({"run_id": run_id, "config": config, "name": config["architecture"]})
            session.execute(RUNS.update().where(RUNS.c.id == bindparam("run_id"))
                            .values(config=bindparam("config"), architecture=bindparam("name")), renamed)
            changed += len(renamed)
            session.commit()


def record_teacher_checksums(engine: Engine) -> int:
    """Record the checkpoint sha256 of completed teachers that have none (stored before the registry) and whose
    file is there. Returns how many were recorded."""
    changed = 0
    with Session(engine) as session:
        rows = session.exec(select(Run.id, Run.checkpoint).where(
            Run.kind.in_(TEACHER_KINDS), Run.status == "completed", Run.checkpoint_sha256.is_(None),
            Run.checkpoint.is_not(None))).all()
        for run_id, checkpoint in rows:
            try:
                digest = file_sha256(checkpoint)
            except OSError:
                continue  # gone: nothing to record; the run stays without a checksum
            session.execute(update(Run).where(Run.id == run_id, Run.checkpoint_sha256.is_(None))
                            .values(checkpoint_sha256=digest))
            changed += 1
        session.commit()
    return changed
