"""Training core for knowledge-distillation runs.

Importing the package (and ``kdcore.config``, ``kdcore.registry``, ``kdcore.methods`` and its method files,
``kdcore.architectures`` (not its model files), ``kdcore.recipe``, ``kdcore.errors``, ``kdcore.figures``,
``kdcore.run_files``, ``kdcore.data.catalog``) does not import torch, so a web process can validate run
configurations and list methods, architectures and datasets without paying for it.
"""

__version__ = "0.1.0"
