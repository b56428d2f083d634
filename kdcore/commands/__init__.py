"""Subcommands of ``kd`` beyond training, one module each with a ``register(commands)`` that kdcore.cli calls.
Torch-free at import, as the parser is built for every command."""
