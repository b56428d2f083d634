"""The search driver: a thread of the web process that moves every unfinished search on, about once a second.

Each pass, for each search: the epochs its trials stored since the last pass are reported to Optuna (their
validation accuracy, never the test set's) and a trial the pruner stops is asked to stop (its run ends
``pruned``, app.executors.records); finished trials are told; new trials are asked for while fewer than the
search's parallelism are queued or running, each queued as an ordinary run (any executor trains it, packed
with compatible runs where the executor packs); when the budget is spent and none is active, the confirmation
study is queued (app.searches.confirmation), and when that study is done the search is.

The Optuna study of a search is kept between passes and rebuilt from the runs table after a restart
(app.searches.optuna_state), so a server killed mid-search continues it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import optuna
from sqlalchemy import Engine, func, update
from sqlmodel import Session, select

from app.runs.service import new_run, settings_of
from app.searches import optuna_state
from app.searches.confirmation import confirm, confirmation_done
from app.searches.service import Plan, plan_of, trial_runs
from app.settings import Settings
from app.store.db import new_session
from app.store.errors import InputError, QueueFull
from app.store.migrations import teacher_key_of
from app.store.models import ACTIVE_STATUSES, Epoch, Run, Search, utcnow
from app.store.queue import admission

log = logging.getLogger("kd.search")
UNFINISHED = ("searching", "confirming")


@dataclass
class Tracked:
    """What the driver holds of one search between passes."""

    plan: Plan
    study: optuna.Study
    trials: int  # how many trials the study holds (a run each)
    last_epoch_id: int  # the newest epoch row already reported
    told: set[int] = field(default_factory=set)  # runs whose ending Optuna was told


def _reports(session: Session, run_ids: list[int], after_id: int = 0) -> list[tuple[int, int, int, float]]:
    """Epoch rows of these runs stored after ``after_id``: (row id, run id, epoch, validation accuracy)."""
    if not run_ids:
        return []
    rows = session.exec(select(Epoch.id, Epoch.run_id, Epoch.epoch, Epoch.val_accuracy)
                        .where(Epoch.run_id.in_(run_ids), Epoch.id > after_id).order_by(Epoch.id)).all()
    return [tuple(row) for row in rows]


def _track(session: Session, search: Search, runs: list[Run]) -> Tracked:
    plan = plan_of(session, search)
    epochs = max(config.epochs for config in plan.base.values())
    reports = _reports(session, [run.id for run in runs])
    study = optuna_state.rebuild(search, plan.space, epochs, runs,
                                 [(run_id, epoch, value) for _, run_id, epoch, value in reports if value is not None])
    told = {run.id for run in runs if run.status in optuna_state.STATES}
    return Tracked(plan, study, len(runs), max((r[0] for r in reports), default=0), told)


def _prune(session: Session, run: Run) -> None:
    """Ask the run's executor to stop it, as a cancel does; it ends ``pruned`` with the epochs it reached."""
    session.execute(update(Run).where(Run.id == run.id, Run.status == "running")
                    .values(prune_requested=True, cancel_requested=True))
    session.commit()


class SearchDriver:
    def __init__(self, engine: Engine, settings: Settings, interval_s: float = 1.0):
        self.engine, self.settings, self.interval_s = engine, settings, interval_s
        self.tracked: dict[int, Tracked] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="kd-search-driver", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(timeout=30)

    def _loop(self) -> None:
        while not self.stopping.is_set():
            try:
                self.tick()
            except Exception:  # a database hiccup: the next pass tries again
                log.exception("search driver pass failed")
            self.stopping.wait(self.interval_s)

    def tick(self) -> None:
        """One pass over the unfinished searches."""
        with new_session(self.engine, self.settings) as session:
            for search in session.exec(select(Search).where(Search.phase.in_(UNFINISHED)).order_by(Search.id)).all():
                self.advance(session, search)

    def advance(self, session: Session, search: Search) -> None:
        if search.phase == "confirming":
            if confirmation_done(session, search):
                self._finish(session, search, "cancelled" if search.cancel_requested else "completed")
            return
        runs = trial_runs(session, search.id)
        tracked = self.tracked.get(search.id)
        if tracked is None or tracked.trials != len(runs):
            try:
                tracked = self.tracked[search.id] = _track(session, search, runs)
            except InputError as exc:  # its teacher was deleted, say: the search cannot go on
                self._finish(session, search, "failed", "; ".join(e["msg"] for e in exc.errors))
                return
        self._report(session, tracked, runs)
        for run in runs:
            if run.status in optuna_state.STATES and run.id not in tracked.told:
                optuna_state.tell(tracked.study, run)
                tracked.told.add(run.id)
        active = sum(run.status in ACTIVE_STATUSES for run in runs)
        if search.cancel_requested:
            if not active:
                self._finish(session, search, "cancelled")
            return
        stop_asking = search.confirm_requested or len(runs) >= search.trials
        while not stop_asking and active < search.parallelism and tracked.trials < search.trials:
            if not self._ask(session, search, tracked):
                return
            active += 1
        if (search.confirm_requested or tracked.trials >= search.trials) and not active:
            self._confirm(session, search)

    def _report(self, session: Session, tracked: Tracked, runs: list[Run]) -> None:
        by_id = {run.id: run for run in runs}
        pruned: set[int] = set()
        for row_id, run_id, epoch, value in _reports(session, list(by_id), tracked.last_epoch_id):
            tracked.last_epoch_id = max(tracked.last_epoch_id, row_id)
            run = by_id[run_id]
            if value is None or run_id in pruned or run.id in tracked.told:
                continue
            if optuna_state.report(tracked.study, run.trial_number, epoch, value) and run.status == "running":
                _prune(session, run)
                pruned.add(run_id)

    def _ask(self, session: Session, search: Search, tracked: Tracked) -> bool:
        """Queue the next trial; False when the queue is full (the next pass tries again)."""
        plan = tracked.plan
        trial = tracked.study.ask()
        params = plan.space.suggest(trial)  # define-by-run: with several methods, only the chosen one's
        config = plan.space.config_for(params, plan.base[plan.space.method_of(params)])
        teacher_id = search.teacher_run_id if config.method.needs_teacher else None
        run = new_run(config, teacher_key_of(session, teacher_id), teacher_run_id=teacher_id,
                      num_classes=plan.num_classes, search_id=search.id, trial_number=trial.number,
                      trial_params=params)
        try:
            with admission(session, 1, settings_of(session).max_queued):
                # Under the admission lock: another server's driver may have queued a trial meanwhile, which
                # this study does not hold; then nothing is added and the study is rebuilt next pass.
                if session.exec(select(func.count()).select_from(Run).where(Run.search_id == search.id)).one() \
                        != tracked.trials:
                    raise QueueFull("the search's trials changed")
                session.add(run)
        except QueueFull:
            del self.tracked[search.id]  # the study holds a trial no run records: rebuild it next pass
            return False
        tracked.trials += 1
        return True

    def _confirm(self, session: Session, search: Search) -> None:
        try:
            study_id = confirm(session, search)
        except QueueFull:
            return  # room in the queue later
        except InputError as exc:
            self._finish(session, search, "failed", "the confirmation study was refused: "
                         + "; ".join(e["msg"] for e in exc.errors))
            return
        session.execute(update(Search).where(Search.id == search.id, Search.phase == "searching")
                        .values(phase="confirming", confirmation_study_id=study_id))
        session.commit()
        self.tracked.pop(search.id, None)

    def _finish(self, session: Session, search: Search, phase: str, error: str | None = None) -> None:
        session.execute(update(Search).where(Search.id == search.id, Search.phase.in_(UNFINISHED))
                        .values(phase=phase, finished_at=utcnow(), error=error))
        session.commit()
        self.tracked.pop(search.id, None)
