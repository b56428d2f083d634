"""Completed runs as the boards read them: the status test that walks the right index, the key that
changes whenever a board would, and the single-run ranking."""

from __future__ import annotations

from sqlmodel import Session, func, select

from app.runs.costs import network_cost
from app.runs.filters import RunFilter
from app.runs.service import title_of
from app.store.models import Run
from kdcore.figures import finite_or_none

# "Completed" written as an expression rather than a column comparison, so that no index on the status can
# serve it. Completed runs are most of the runs, but without planner statistics SQLite takes an equality
# on an indexed column for a match of about ten rows, and would read every completed run through
# ix_runs_status instead of walking the index the query needs (accuracy, group key, finish time).
# PostgreSQL, which keeps statistics, plans these queries alike either way.
IS_COMPLETED = Run.status.concat("") == "completed"


def leaderboard_version(session: Session) -> tuple:
    """A cheap key that changes whenever the leaderboards would: two small queries, no rows loaded.

    A completed run never changes, so the set of completed runs changes only when a run completes (which
    moves the latest finish time) or one is deleted (which lowers the count). The count (which the home
    page's queue also shows) is read from ix_runs_status; the latest finish from the top of
    ix_runs_finished_at, never from the 100,000 rows themselves.
    """
    count = session.exec(select(func.count()).select_from(Run).where(Run.status == "completed")).one()
    latest = session.exec(select(Run.finished_at).where(IS_COMPLETED, Run.finished_at.is_not(None))
                          .order_by(Run.finished_at.desc()).limit(1)).first()
    return count, latest


def single_runs(session: Session, limit: int | None = None, offset: int = 0,
                run_ids: list[int] | None = None, filters: RunFilter = RunFilter()) -> list[dict]:
    """Completed runs ranked by final test accuracy (ties: the earlier run first); ``run_ids``: only those;
    ``filters``: only the runs they match (each ranked among those)."""
    # Plain columns rather than Run objects: loading each run's whole config costs more than the rest (its
    # hyperparameters alone are read out of it in the database).
    columns = (Run.id, Run.kind, Run.architecture, Run.dataset, Run.epochs,
               Run.experiment_id, Run.teacher_run_id, Run.parameters, Run.final_accuracy, Run.best_accuracy,
               Run.best_epoch, Run.train_seconds, Run.seed, Run.study_id, Run.tags, Run.config["params"], Run.num_classes)
    # Walks ix_runs_final_accuracy from the top (see IS_COMPLETED): the first rows are the answer.
    query = (select(*columns).where(IS_COMPLETED, Run.final_accuracy.is_not(None), *filters.conditions())
             .order_by(Run.final_accuracy.desc(), Run.id).offset(offset))
    if run_ids is not None:
        query = query.where(Run.id.in_(run_ids))
    rows = session.exec(query.limit(limit) if limit else query).all()
    return [
        {
            "rank": rank, "run_id": run_id, "kind": kind, "title": title_of(kind), "architecture": architecture,
            "dataset": dataset,
            "experiment_id": experiment_id, "teacher_run_id": teacher_run_id, "parameters": parameters,
            "final_accuracy": finite_or_none(final), "best_accuracy": finite_or_none(best), "best_epoch": best_epoch,
            "epochs": epochs, "train_seconds": finite_or_none(seconds), "seed": seed, "study_id": study_id,
            "tags": list(tags or []), "params": params or {},
            **{name: (cost or {}).get(name) for name in ("flops", "macs")},
        }
        for rank, (run_id, kind, architecture, dataset, epochs, experiment_id, teacher_run_id, parameters, final, best,
                   best_epoch, seconds, seed, study_id, tags, params, num_classes) in enumerate(rows, start=offset + 1)
        for cost in [network_cost(architecture, num_classes)]
    ]
