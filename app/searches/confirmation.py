"""A search's second phase: its top configurations by validation accuracy re-run as a study over fresh seeds at
the full epoch count, beside the baseline student and plain KD (kdcore.search.confirm), queued like any study;
then whether the search's winner held up on the test set, which the search never saw."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from app.searches.service import trial_runs
from app.store.errors import InputError, field_error
from app.store.models import ACTIVE_STATUSES, Run, Search
from app.studies import service as studies
from kdcore.config import RunConfig
from kdcore.errors import KDError
from kdcore.search.confirm import confirmation_seeds, confirmation_spec, top_configs, verdict


def _trials(runs: list[Run]) -> list[dict[str, Any]]:
    return [{"status": run.status, "val_accuracy": run.best_val_accuracy, "config": RunConfig.model_validate(run.config)}
            for run in runs]


def winner(session: Session, search: Search) -> RunConfig | None:
    """The search's best completed trial by validation accuracy."""
    best = top_configs(_trials(trial_runs(session, search.id)), 1)
    return best[0] if best else None


def confirm(session: Session, search: Search) -> int:
    """Queue the confirmation study of the search's top k; returns its id. InputError when there is nothing to
    confirm or the study is refused; QueueFull when the queue has no room for it yet."""
    configs = top_configs(_trials(trial_runs(session, search.id)), search.spec["top_k"])
    try:
        spec = confirmation_spec(configs, confirmation_seeds(search.spec["seeds"], search.spec["seed"]),
                                 name=f"Confirmation of search #{search.id}" + (f" ({search.name})" if search.name else ""))
    except KDError as exc:
        raise InputError([field_error([], str(exc))]) from None
    payload = spec.model_dump(mode="json", exclude_defaults=True)
    if search.teacher_run_id is not None:
        payload["teacher_run_id"] = search.teacher_run_id
    return studies.create_study(session, payload).id


def confirmation_done(session: Session, search: Search) -> bool:
    """Its study has no queued or running run left (or was deleted)."""
    if search.confirmation_study_id is None:
        return True
    return session.exec(select(Run.id).where(Run.study_id == search.confirmation_study_id,
                                             Run.status.in_(ACTIVE_STATUSES)).limit(1)).first() is None


def held_up(session: Session, search: Search, groups: list[dict]) -> dict[str, Any] | None:
    """kdcore.search.confirm.verdict over the confirmation study's groups and their runs' final test accuracies."""
    best = winner(session, search)
    if best is None or search.confirmation_study_id is None:
        return None
    finals: dict[str, dict[int, float]] = {}
    for run in studies.study_runs(session, search.confirmation_study_id):
        if run.status == "completed" and run.final_accuracy is not None and run.group_key is not None:
            finals.setdefault(run.group_key, {})[run.seed] = run.final_accuracy
    return verdict(groups, finals, best)
