"""Searches in the database: submit one (validated against each method's declared hyperparameters and the
runs it would queue, its cost said and held to the user's limit), read it with its trials, cancel it.

Like app.studies.service, each function takes a Session, commits its own transaction and raises app.store.errors.
The trials themselves are queued by the driver (app.searches.driver) as slots free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, update
from sqlmodel import Session, select

from app.runs.service import cancel_runs, iso, settings_of
from app.runs.validation import teacher_run, validate_run
from app.store.errors import Conflict, InputError, NotFound, field_error, unknown_fields
from app.studies import service as studies
from app.store.models import ACTIVE_STATUSES, Epoch, Run, Search, utcnow
from kdcore.config import RunConfig
from kdcore.errors import KDError
from kdcore.figures import finite_or_none
from kdcore.registry import METHODS
from kdcore.search.confirm import DEFAULT_SEEDS, DEFAULT_TOP_K
from kdcore.search.cost import Estimate, budget_error, estimate
from kdcore.search.optuna_setup import PRUNERS, SAMPLERS, make_pruner, make_sampler
from kdcore.search.space import SearchSpace, parse_space
from kdcore.studies.study import RECIPE_FIELDS

# What a search request may name besides its recipe (RunConfig's fields that every trial shares).
SEARCH_DEFAULTS: dict[str, Any] = {"name": None, "methods": None, "teacher_run_id": None, "space": None,
                                   "trials": 20, "parallelism": 2, "sampler": "tpe", "pruner": "hyperband",
                                   "top_k": DEFAULT_TOP_K, "seeds": DEFAULT_SEEDS, "seed": 0, "max_runs": None,
                                   "max_hours": None}
RUN_FIELDS = ("dataset", "subset", "epochs", "architecture", *RECIPE_FIELDS)
SEARCH_KEYS = frozenset((*SEARCH_DEFAULTS, *RUN_FIELDS))
# The references a confirmation study trains beside the winners, per seed: the baseline student and plain KD.
REFERENCES = 2


@dataclass(frozen=True)
class Plan:
    """A validated search: its space, one base configuration per method, and what it will cost in runs."""

    space: SearchSpace
    base: dict[str, RunConfig]
    num_classes: int
    cost: Estimate


def _int(payload: dict, name: str, low: int, high: int, errors: list[dict]) -> int:
    value = payload[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        errors.append(field_error([name], f"{name} must be a whole number from {low} to {high}"))
        return low
    return value


def seconds_per_epoch(session: Session, config: RunConfig) -> float | None:
    """An epoch's time on this installation for the trials' recipe: the mean of the latest epochs of completed
    runs of the same method, network, data and batch (None until one has finished)."""
    rows = session.exec(select(Epoch.seconds).join(Run, Run.id == Epoch.run_id)
                        .where(Run.status == "completed", Run.kind == config.kind, Run.dataset == config.dataset,
                               Run.architecture == config.architecture)
                        .order_by(Epoch.id.desc()).limit(20)).all()
    return sum(rows) / len(rows) if rows else None


def validate_search(session: Session, payload: Any) -> tuple[dict, Plan]:
    """The request with its defaults, and its plan; or InputError naming every problem (nothing stored)."""
    if not isinstance(payload, dict):
        raise InputError([field_error([], "expected a JSON object", "dict_type")])
    errors = unknown_fields(payload, SEARCH_KEYS)
    request = {**SEARCH_DEFAULTS, **{k: v for k, v in payload.items() if k in SEARCH_KEYS}}
    methods = request["methods"]
    if isinstance(methods, str):
        methods = request["methods"] = [methods]
    if not isinstance(methods, list) or not methods or not all(isinstance(m, str) for m in methods):
        errors.append(field_error(["methods"], "name one method or more, e.g. [\"kd\"]"))
        methods = []
    for name in methods:
        if name not in METHODS:
            errors.append(field_error(["methods"], f"unknown method {name!r}"))
    if request["name"] is not None and (not isinstance(request["name"], str) or len(request["name"]) > 200):
        errors.append(field_error(["name"], "name must be text of at most 200 characters"))
    space_items = request["space"]
    if not isinstance(space_items, list) or not space_items or not all(isinstance(s, str) for s in space_items):
        errors.append(field_error(["space"], "give the space as a list like [\"kd.temperature=log:1:16\"]"))
        space_items = []
    trials = _int(request, "trials", 1, 1000, errors)
    _int(request, "parallelism", 1, 64, errors)
    top_k = _int(request, "top_k", 1, 20, errors)
    seeds = _int(request, "seeds", 2, 50, errors)
    _int(request, "seed", 0, 2**31 - 1, errors)
    for name, choices in (("sampler", SAMPLERS), ("pruner", PRUNERS)):
        if request[name] not in choices:
            errors.append(field_error([name], f"{name} must be one of {', '.join(choices)}"))
    limits = {}
    for name, kinds, what in (("max_runs", int, "a whole number of runs"), ("max_hours", (int, float), "hours")):
        value = request[name]
        if value is not None and (isinstance(value, bool) or not isinstance(value, kinds) or value <= 0):
            errors.append(field_error([name], f"{name} must be {what}, above 0"))
        else:
            limits[name] = value
    teacher, teacher_errors = teacher_run(session, request["teacher_run_id"], True)
    errors += teacher_errors
    base: dict[str, RunConfig] = {}
    num_classes = 0
    fields = {k: request[k] for k in RUN_FIELDS if k in payload}
    for name in (m for m in methods if m in METHODS):
        run_payload = {**fields, "kind": name, "seed": request["seed"]}
        if METHODS[name].needs_teacher:
            run_payload["teacher_run_id"] = request["teacher_run_id"]
        try:
            valid = validate_run(session, run_payload, settings_of(session), strict=True)
            base[name], num_classes = valid.config, valid.num_classes
        except InputError as exc:
            errors += [e for e in exc.errors if e not in errors and e["loc"][:1] != ["teacher_run_id"]]
    if teacher is None and not teacher_errors and any(METHODS[m].needs_teacher for m in base):
        errors.append(field_error(["teacher_run_id"], "the methods distil from a teacher: name its run"))
    if base and next(iter(base.values())).validation <= 0:
        errors.append(field_error(["validation"], "a search chooses on validation accuracy, never the test "
                                  "set's: hold out a validation split (e.g. validation 0.1)"))
    space = None
    if methods and space_items:
        try:
            space = parse_space(methods, space_items)
        except KDError as exc:
            errors.append(field_error(["space"], str(exc)))
    for name, build in (("sampler", lambda: make_sampler(request["sampler"], 0, space)),
                        ("pruner", lambda: make_pruner(request["pruner"], 1, 2))):
        if not any(e["loc"] in ([name], ["space"]) for e in errors):
            try:
                build()
            except KDError as exc:
                errors.append(field_error([name], str(exc)))
    cost = None
    if base:
        first = next(iter(base.values()))
        cost = estimate(trials, first.epochs, min(top_k, trials), seeds, first.epochs, REFERENCES,
                        seconds_per_epoch(session, first))
        refusal = budget_error(cost, limits.get("max_runs"), limits.get("max_hours"))
        if not refusal and limits.get("max_hours") is not None and cost.hours is None:
            refusal = (f"no {first.kind} run on {first.architecture} and {first.dataset} has finished here, so the "
                       f"search's hours cannot be estimated (it takes {cost.text()}); limit it by max_runs instead")
        if refusal:
            over_runs = limits.get("max_runs") is not None and cost.runs > limits["max_runs"]
            errors.append(field_error(["max_runs" if over_runs else "max_hours"], refusal))
    if errors:
        raise InputError(errors)
    return request, Plan(space, base, num_classes, cost)


def create_search(session: Session, payload: Any) -> Search:
    """Store a validated search; its driver queues the trials (app.searches.driver)."""
    request, plan = validate_search(session, payload)
    first = next(iter(plan.base.values()))
    search = Search(name=request["name"], dataset=first.dataset, spec={**request, "estimate": {**plan.cost.to_json_dict(), "text": plan.cost.text()}},
                    teacher_run_id=request["teacher_run_id"], trials=request["trials"],
                    parallelism=request["parallelism"])
    session.add(search)
    session.commit()
    session.refresh(search)
    return search


def plan_of(session: Session, search: Search) -> Plan:
    """The stored request validated again (what the driver asks Optuna with)."""
    stored = {k: v for k, v in search.spec.items() if k != "estimate"}
    return validate_search(session, stored)[1]


def get_search(session: Session, search_id: int) -> Search:
    search = session.get(Search, search_id)
    if search is None:
        raise NotFound(f"search {search_id} does not exist")
    return search


def trial_runs(session: Session, search_id: int) -> list[Run]:
    return list(session.exec(select(Run).where(Run.search_id == search_id).order_by(Run.trial_number)).all())


def val_curves(session: Session, run_ids: list[int]) -> dict[int, dict[int, float]]:
    """Each run's validation accuracy by epoch: what the search's pruner and objective read, never the test set."""
    curves: dict[int, dict[int, float]] = {run_id: {} for run_id in run_ids}
    if run_ids:
        rows = session.exec(select(Epoch.run_id, Epoch.epoch, Epoch.val_accuracy).where(Epoch.run_id.in_(run_ids))
                            .order_by(Epoch.run_id, Epoch.epoch)).all()
        for run_id, epoch, value in rows:
            if value is not None:
                curves[run_id][epoch] = value
    return curves


def list_searches(session: Session, *, limit: int = 50, offset: int = 0) -> tuple[list[Search], int]:
    total = session.exec(select(func.count()).select_from(Search)).one()
    rows = session.exec(select(Search).order_by(Search.id.desc()).offset(offset).limit(limit)).all()
    return list(rows), total


def cancel_search(session: Session, search_id: int) -> Search:
    """Stop asking for trials, cancel the queued ones and stop the running ones; finished trials stay."""
    search = get_search(session, search_id)
    if search.phase not in ("searching", "confirming"):
        raise Conflict(f"search {search_id} is already {search.phase}")
    session.execute(update(Search).where(Search.id == search_id).values(cancel_requested=True))
    cancel_runs(session, Run.search_id == search_id, "search cancelled by user")
    session.commit()
    if search.confirmation_study_id is not None:
        try:
            studies.cancel_study(session, search.confirmation_study_id)
        except (Conflict, NotFound):  # finished meanwhile, or deleted
            pass
    session.refresh(search)
    return search


def trial_rows(session: Session, runs: list[Run]) -> list[dict[str, Any]]:
    """One row per trial: its number, parameters, status, the epoch it reached, its objective and duration."""
    reached = dict(session.exec(select(Epoch.run_id, func.max(Epoch.epoch))
                                .where(Epoch.run_id.in_([r.id for r in runs])).group_by(Epoch.run_id)).all()) \
        if runs else {}
    rows = []
    for run in runs:
        seconds = None
        if run.started_at is not None:
            end = run.finished_at or utcnow()
            start = run.started_at
            if (end.tzinfo is None) != (start.tzinfo is None):
                end, start = end.replace(tzinfo=None), start.replace(tzinfo=None)
            seconds = max(0.0, (end - start).total_seconds())
        rows.append({"number": run.trial_number, "run_id": run.id, "params": run.trial_params or {},
                     "status": run.status, "last_epoch": reached.get(run.id),
                     "val_accuracy": finite_or_none(run.best_val_accuracy), "seconds": seconds,
                     "active": run.status in ACTIVE_STATUSES, "started_at": iso(run.started_at),
                     "finished_at": iso(run.finished_at)})
    return rows


def request_confirmation(session: Session, search_id: int) -> Search:
    """Ask no more trials; the driver queues the confirmation once no trial is active."""
    search = get_search(session, search_id)
    if search.phase != "searching" or search.cancel_requested:
        raise Conflict(f"search {search_id} is {'cancelling' if search.cancel_requested else search.phase}; "
                       "only a search still searching can be confirmed early")
    session.execute(update(Search).where(Search.id == search_id).values(confirm_requested=True))
    session.commit()
    session.refresh(search)
    return search
