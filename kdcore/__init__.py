"""Training core for knowledge-distillation runs.

``methods/`` and ``architectures/`` hold one file per method and per network family, ``data/`` the
datasets; ``config`` is a run's typed configuration over them. ``training/`` trains runs (the engine, its
steps, packing), ``studies/`` expands and compares many runs (studies, statistics, ``kd sweep``, the tutorial
experiment), and ``cli`` is the ``kd`` command. Imports go only downward in that order
(pyproject.toml's [tool.importlinter]).

Importing the package (and ``kdcore.config``, ``kdcore.registry``, ``kdcore.presets``, ``kdcore.methods``
and its method files, ``kdcore.architectures`` (not its model files), ``kdcore.errors``,
``kdcore.figures``, ``kdcore.data.catalog``, ``kdcore.training.run_files``, ``kdcore.training.recipe``,
``kdcore.training.packing.key``, ``kdcore.studies.study`` and ``kdcore.studies.stats``) does not import
torch, so a web process can validate run configurations and list methods, architectures and datasets
without paying for it.
"""

__version__ = "0.1.0"
