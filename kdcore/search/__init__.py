"""Hyperparameter search, then confirmation: a search space drawn from the methods' declared hyperparameters
(space), Optuna's samplers and pruners (optuna_setup), trials trained here with pruning on per-epoch validation
accuracy (local), the cost a search will take (cost), and the confirmation study of its best configurations over
seeds (confirm). Torch is imported only where a trial trains."""
