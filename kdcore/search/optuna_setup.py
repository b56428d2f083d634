"""Optuna's samplers and pruners by the names a search is given. The pruners count epochs: a trial reports its
validation accuracy after each epoch as step = epoch. Torch-free."""

from __future__ import annotations

import warnings

from kdcore.errors import KDError

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("hyperband", "successive-halving", "none")
REDUCTION_FACTOR = 3  # Hyperband's and successive halving's: a third of the trials at a rung go on to the next


def make_sampler(name: str, seed: int | None, space=None):
    """TPE (the default), random, or grid over ``space``'s values (kdcore.search.space.SearchSpace.grid: the grid
    needs choices, or integer ranges)."""
    import optuna

    if name == "tpe":
        # multivariate: TPE models the hyperparameters jointly (temperature and weight interact);
        # group: with several methods each method's hyperparameters form their own group.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # stable since Optuna 2.2
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        if space is None:
            raise KDError("a grid search needs its search space")
        return optuna.samplers.GridSampler(space.grid(), seed=seed)
    raise KDError(f"unknown sampler {name!r}; choose one of: {', '.join(SAMPLERS)}")


def make_pruner(name: str, min_epochs: int, max_epochs: int):
    """Hyperband or successive halving on per-epoch validation accuracy, from ``min_epochs`` (no trial is stopped
    before it) to ``max_epochs`` (a trial's full length); or none."""
    import optuna

    if not 1 <= min_epochs <= max_epochs:
        raise KDError(f"the pruning schedule's first rung ({min_epochs} epochs) must be between 1 and the trials' "
                      f"epochs ({max_epochs})")
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=min_epochs, max_resource=max_epochs,
                                              reduction_factor=REDUCTION_FACTOR)
    if name == "successive-halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=min_epochs, reduction_factor=REDUCTION_FACTOR)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise KDError(f"unknown pruner {name!r}; choose one of: {', '.join(PRUNERS)}")
