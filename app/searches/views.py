"""What the search page and the API show of a search: its request, both phases' progress with an ETA, the trial
table, the charts, and the confirmation study's results with whether the search's winner held up."""

from __future__ import annotations

import statistics
from typing import Any

from sqlmodel import Session

from app.runs.service import iso
from app.searches import charts, optuna_state
from app.searches.confirmation import held_up
from app.searches.service import plan_of, trial_rows, trial_runs
from app.store.errors import InputError, NotFound
from app.store.models import Search
from app.studies import service as studies
from app.studies import views as study_views
from kdcore.search.space import parse_space

PHASES = {"searching": "searching", "confirming": "confirming", "completed": "completed",
          "cancelled": "cancelled", "failed": "failed"}


def _eta(search: Search, rows: list[dict]) -> float | None:
    """The search phase's time left: the trials still to run at the mean duration of the finished ones (pruned
    ones count: they are part of what a trial costs), over the parallelism, after the running ones' own ETAs."""
    finished = [r["seconds"] for r in rows if r["status"] in ("completed", "pruned") and r["seconds"] is not None]
    if not finished:
        return None
    per_trial = statistics.fmean(finished)
    waiting = search.trials - len(rows) + sum(r["status"] == "queued" for r in rows)
    running = [r for r in rows if r["status"] == "running"]
    own = max((max(0.0, per_trial - (r["seconds"] or 0.0)) for r in running), default=0.0)
    if search.confirm_requested or search.cancel_requested:
        waiting = 0
    return own + waiting * per_trial / max(1, search.parallelism)


def search_summary(search: Search) -> dict[str, Any]:
    spec = search.spec
    return {"id": search.id, "name": search.name, "phase": search.phase, "dataset": search.dataset,
            "methods": spec.get("methods"), "space": spec.get("space"), "sampler": spec.get("sampler"),
            "pruner": spec.get("pruner"), "trials_budget": search.trials, "parallelism": search.parallelism,
            "top_k": spec.get("top_k"), "seeds": spec.get("seeds"), "teacher_run_id": search.teacher_run_id,
            "estimate": spec.get("estimate"), "max_runs": spec.get("max_runs"), "max_hours": spec.get("max_hours"),
            "confirmation_study_id": search.confirmation_study_id, "cancel_requested": search.cancel_requested,
            "confirm_requested": search.confirm_requested, "error": search.error,
            "created_at": iso(search.created_at), "finished_at": iso(search.finished_at)}


def _confirmation(session: Session, search: Search) -> dict | None:
    """The confirmation study's state, its groups (as kd sweep writes them) and whether the winner held up."""
    if search.confirmation_study_id is None:
        return None
    try:
        study = studies.get_study(session, search.confirmation_study_id)
    except NotFound:
        return {"study_id": search.confirmation_study_id, "deleted": True, "groups": [], "verdict": None}
    data = studies.study_to_dict(study, studies.study_runs(session, study.id))
    return {"study_id": study.id, "deleted": False, "status": data["status"], "progress": data["progress"],
            "groups": data["groups"], "verdict": held_up(session, search, data["groups"])}


def confirmation_results(session: Session, search: Search) -> dict:
    """The study page's results (its table, p-values and curves) for the search page's second phase."""
    if search.confirmation_study_id is None:
        return {}
    try:
        study = studies.get_study(session, search.confirmation_study_id)
    except NotFound:
        return {}
    runs = studies.study_runs(session, study.id)
    return study_views.results_view(session, study, runs)


def _charts(session: Session, search: Search, runs) -> dict[str, Any]:
    try:
        space = plan_of(session, search).space
    except InputError:  # the stored request no longer validates (its teacher deleted): read the space alone
        space = parse_space(search.spec["methods"], search.spec["space"])
    study = optuna_state.finished_study(search, space, runs)
    return {"history": charts.history_chart(study), "parallel": charts.parallel_chart(study),
            "importance": charts.importance_chart(study), "slices": charts.slice_charts(study)}


def search_view(session: Session, search: Search, *, with_charts: bool = True) -> dict[str, Any]:
    runs = trial_runs(session, search.id)
    rows = trial_rows(session, runs)
    counts = {status: sum(r["status"] == status for r in rows)
              for status in ("completed", "pruned", "failed", "cancelled", "running", "queued")}
    done = sum(counts[s] for s in ("completed", "pruned", "failed", "cancelled"))
    best = max((r for r in rows if r["status"] == "completed" and r["val_accuracy"] is not None),
               key=lambda r: r["val_accuracy"], default=None)
    confirmation = _confirmation(session, search)
    eta = _eta(search, rows) if search.phase == "searching" else \
        (confirmation or {}).get("progress", {}).get("eta_seconds") if search.phase == "confirming" else None
    data = {**search_summary(search), "trials": rows, "best": best, "confirmation": confirmation,
            "progress": {"asked": len(rows), "budget": search.trials, "done": done, **counts,
                         "fraction": done / search.trials if search.trials else 1.0, "eta_seconds": eta}}
    if with_charts:
        data["charts"] = _charts(session, search, runs)
    return data
