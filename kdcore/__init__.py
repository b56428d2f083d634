"""Training core for knowledge-distillation runs.

``methods/`` and ``architectures/`` hold one file per method and per network family, ``data/`` the
datasets; ``config`` is a run's typed configuration over them. ``training/`` trains runs (the engine, its
steps, packing), ``studies/`` expands and compares many runs (studies, statistics, ``kd sweep``, the tutorial
experiment), and ``cli`` is the ``kd`` command. Imports go only downward in that order
(pyproject.toml's [tool.importlinter]).

Importing the package (and ``kdcore.config``, ``kdcore.registry``, ``kdcore.presets``, ``kdcore.methods``
and its method files, ``kdcore.architectures`` (not its model files), ``kdcore.errors``,
``kdcore.figures``, ``kdcore.data.catalog``, ``kdcore.training.run_files``, ``kdcore.training.recipe``,
``kdcore.training.packing.key``, ``kdcore.studies.study``, ``kdcore.studies.stats`` and ``kdcore.commands``) does
not import torch, so a web process can validate run configurations and list methods, architectures and datasets
without paying for it; ``load_model`` imports torch when it is called.
"""

__version__ = "0.1.0"


def load_model(path):
    """The network of a project checkpoint (``checkpoint.pt`` of a run trained here, or of a teacher imported by
    ``kd import-teacher``) with its weights, in eval mode, on the CPU: ``logits, taps = model(images)``."""
    from kdcore.training.checkpoint import load_model as load

    return load(path)
