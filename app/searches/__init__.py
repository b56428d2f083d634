"""Hyperparameter searches: Optuna asks for trials, each an ordinary run of the queue; then a study confirms the best."""
