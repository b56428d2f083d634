"""Training: the loop (engine), its steps and their speed paths, the data on the device, the recipe,
checkpoints and the files a run leaves, and packing (several runs trained as one).

This package's ``__init__`` imports nothing, so the torch-free modules in it (``run_files``,
``packing.key``) stay importable by the web process and the worker's supervisor.
"""
