"""Studies: a request expanded to runs over seeds and grids (``study``), the statistics that compare
configurations (``stats``), ``kd sweep`` (``sweep``) and the tutorial experiment (``experiment``).

This package's ``__init__`` imports nothing; ``study`` and ``stats`` import no torch.
"""
