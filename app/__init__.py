"""The KD dashboard server: database, REST API, pages, the executors that train the queue, and the CLI.

One package per feature (runs, studies, experiments, leaderboard, compare, launch), each with its REST
API, pages and service; below them what they share (access, web, executors), the database (store) and
the settings. Imports go only downward (pyproject.toml's [tool.importlinter]; tests/test_layout.py).
The web process imports only torch-free modules; training happens in worker child processes started
with the "spawn" context (app.executors.local) or on Ray (app.executors.ray).
"""
