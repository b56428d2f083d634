"""A search's Optuna study, rebuilt from its trials' runs: the runs table is the one record of what was asked,
reached and decided, so a restarted server continues the search where it stood.

Optuna's RDB storage would put its own tables in the project's database, but one of them is named
``studies``, the name of the dashboard's table of studies; rebuilding from the runs keeps a single record and
needs no second schema. Each trial comes back with its parameters, its per-epoch validation accuracies (the
pruner's intermediate values, replayed in the order they came) and its state: queued and running runs as
running trials, to report to and tell.
"""

from __future__ import annotations

import optuna
from optuna.trial import TrialState, create_trial

from app.store.models import Run, Search
from kdcore.search.optuna_setup import make_pruner, make_sampler
from kdcore.search.space import SearchSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)

# How each finished status of a trial's run reads to Optuna.
STATES = {"completed": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "failed": TrialState.FAIL,
          "cancelled": TrialState.FAIL}


def objective(run: Run) -> float | None:
    """A completed trial's value: the validation accuracy at its validation-selected epoch (never the test set's)."""
    return run.best_val_accuracy


def new_study(search: Search, space: SearchSpace, max_epochs: int) -> optuna.Study:
    spec = search.spec
    # The study's name places each trial in its Hyperband bracket (a hash of it and the trial's number): the
    # same after a rebuild.
    return optuna.create_study(
        study_name=f"search-{search.id}", direction="maximize", storage=optuna.storages.InMemoryStorage(),
        sampler=make_sampler(spec["sampler"], spec["seed"], space), pruner=make_pruner(spec["pruner"], 1, max_epochs))


def tell(study: optuna.Study, run: Run) -> None:
    """Tell Optuna how a finished trial's run ended: completed with its objective, pruned, or failed."""
    state = STATES[run.status]
    value = objective(run) if state == TrialState.COMPLETE else None
    if state == TrialState.COMPLETE and value is None:
        state = TrialState.FAIL  # completed without a validation figure: nothing to rank it by
    study.tell(run.trial_number, value, state=state, skip_if_finished=True)


def report(study: optuna.Study, number: int, epoch: int, val_accuracy: float) -> bool:
    """Report one epoch's validation accuracy of a running trial; returns whether the pruner stops it there."""
    trial = trial_of(study, number)
    trial.report(val_accuracy, epoch)
    return trial.should_prune()


def rebuild(search: Search, space: SearchSpace, max_epochs: int, runs: list[Run],
            reports: list[tuple[int, int, float]]) -> optuna.Study:
    """The search's study as its runs (in trial-number order) record it. ``reports``: every epoch's (run id,
    epoch, validation accuracy) in the order they were stored; replayed through the pruner, they give it back
    the promotions it had recorded (successive halving's rungs), then each finished run is told its ending."""
    study = new_study(search, space, max_epochs)
    distributions = space.distributions()
    number_of = {}
    for run in runs:
        params = run.trial_params or {}  # a trial draws its own method's hyperparameters only
        study.add_trial(create_trial(params=params, distributions={k: distributions[k] for k in params},
                                     state=TrialState.RUNNING))
        number_of[run.id] = run.trial_number
    for run_id, epoch, value in reports:
        report(study, number_of[run_id], epoch, value)
    for run in runs:
        if run.status in STATES:
            tell(study, run)
    return study


def trial_of(study: optuna.Study, number: int) -> optuna.Trial:
    """The live handle of a running trial, to report epochs to and ask whether to prune."""
    return optuna.Trial(study, study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number))


def finished_study(search: Search, space: SearchSpace, runs: list[Run]) -> optuna.Study:
    """The search's completed trials alone, as the page's charts read them (no pruner to replay)."""
    study = optuna.create_study(study_name=f"search-{search.id}", direction="maximize",
                                storage=optuna.storages.InMemoryStorage())
    distributions = space.distributions()
    for run in runs:
        params, value = run.trial_params or {}, objective(run)
        if run.status == "completed" and value is not None:
            study.add_trial(create_trial(params=params, distributions={k: distributions[k] for k in params},
                                         value=value))
    return study
