"""The KD dashboard server: database, REST API, background worker and CLI.

The web process imports only torch-free modules; training happens in worker child
processes started with the "spawn" context (see ``app.worker``).
"""
