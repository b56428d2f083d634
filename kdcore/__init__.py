"""Training core for knowledge-distillation runs.

Importing the package (and ``kdcore.config``, ``kdcore.registry``, ``kdcore.errors``, ``kdcore.figures``,
``kdcore.run_files``, ``kdcore.data.catalog``) does not import torch, so a web process can validate run
configurations and list datasets without paying for it.
"""

__version__ = "0.1.0"
