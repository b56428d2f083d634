"""Server settings, read from environment variables once at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DB_PATH = Path("db") / "kd.sqlite"
EXECUTORS = ("local", "ray")


def _env_number(name: str, default: float, cast=float, minimum: float = 0) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = cast(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise SystemExit(f"{name}={raw!r} must be at least {minimum}")
    return value


def _env_flag(name: str) -> bool | None:
    raw = (os.environ.get(name) or "").strip().lower()
    if raw in ("", "auto"):
        return None
    return raw not in ("0", "false", "no", "off")


def _env_bool(name: str) -> bool:
    return (os.environ.get(name) or "").strip().lower() in ("1", "true", "yes", "on")


def _env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = (os.environ.get(name) or "").strip().lower() or default
    if raw not in choices:
        raise SystemExit(f"{name}={raw!r} must be one of: {', '.join(choices)}")
    return raw


def _env_list(name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in (os.environ.get(name) or "").split(",") if item.strip())


@dataclass(frozen=True)
class Settings:
    db_url: str = f"sqlite:///{DEFAULT_DB_PATH}"
    data_dir: Path = Path("data")
    runs_dir: Path = Path("runs")
    api_token: str | None = None
    # With a token, reads (GETs, downloads, event streams) are open without it (KD_PUBLIC_READ=1, kd serve
    # --public-read); writes always need it. See app.access.auth.
    public_read: bool = False
    # Host names (besides the loopback ones and the bound address) that requests may name in their
    # Host header; "*" accepts any. See app.access.cross_site.
    allowed_hosts: tuple[str, ...] = ()
    # The address the server listens on, as given to ``kd serve --host``.
    bind_host: str = "127.0.0.1"
    max_queued: int = 500
    # The largest request body accepted, in bytes (KD_MAX_BODY); larger ones get 413 before they are read.
    max_body: int = 1_000_000
    # The most runs one study may expand to (KD_MAX_STUDY_RUNS).
    max_study_runs: int = 500
    # The largest teacher checkpoint upload, in bytes (KD_MAX_UPLOAD): the import routes' bodies may be this
    # large instead of max_body (app.teachers.uploads.UPLOAD_PATHS); larger ones get 413 before they are read.
    max_upload: int = 500_000_000
    # Worker timing. A heartbeat older than stale_after_s means the worker holding the run is gone.
    heartbeat_s: float = 1.0
    stale_after_s: float = 60.0
    cancel_grace_s: float = 5.0
    poll_s: float = 1.0
    # Start the next training process (and its torch import) while the current run trains.
    # None: on GPU workers only.
    prestart_child: bool | None = None
    # Who trains the queued runs inside `kd serve`: "local" (worker slots on this machine) or "ray"
    # (one Ray task per run on the cluster at ray_address; None: a local Ray instance). See app.executors.ray.
    executor: str = "local"
    ray_address: str | None = None
    # Whether every Ray node sees runs_dir at the same path (shared storage). If not, checkpoints travel
    # through Ray's object store instead.
    shared_runs_dir: bool = False
    # The most compatible queued runs a worker slot trains together in one packed step (KD_PACK, kd worker
    # --pack). None: kdcore.training.packing.key.default_pack for the slot's device (1 on a CPU, 8 on a GPU).
    pack: int | None = None

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        values = dict(
            db_url=os.environ.get("KD_DB_URL") or cls.db_url,
            data_dir=Path(os.environ.get("KD_DATA_DIR") or "data"),
            runs_dir=Path(os.environ.get("KD_RUNS_DIR") or "runs"),
            api_token=os.environ.get("KD_API_TOKEN") or None,
            public_read=_env_bool("KD_PUBLIC_READ"),
            allowed_hosts=_env_list("KD_ALLOWED_HOSTS"),
            max_queued=int(_env_number("KD_MAX_QUEUED", cls.max_queued, int, 1)),
            max_body=int(_env_number("KD_MAX_BODY", cls.max_body, int, 1024)),
            max_study_runs=int(_env_number("KD_MAX_STUDY_RUNS", cls.max_study_runs, int, 1)),
            max_upload=int(_env_number("KD_MAX_UPLOAD", cls.max_upload, int, 1024)),
            stale_after_s=_env_number("KD_STALE_AFTER", cls.stale_after_s, float, 1),
            prestart_child=_env_flag("KD_PRESTART_CHILD"),
            executor=_env_choice("KD_EXECUTOR", cls.executor, EXECUTORS),
            ray_address=os.environ.get("KD_RAY_ADDRESS") or None,
            shared_runs_dir=_env_bool("KD_SHARED_RUNS_DIR"),
            pack=_env_number("KD_PACK", None, int, 1),
        )
        values.update(overrides)
        return cls(**values)
