"""``kd serve`` and ``kd worker``: registered into kdcore's CLI through the "kdcore.commands" entry points.

``python -m app.cli serve|worker`` offers the same commands without the kd script.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import socket
import sys
from contextlib import contextmanager
from dataclasses import replace


def _gpu_list(text: str) -> list[str]:
    return [gpu.strip() for gpu in text.split(",") if gpu.strip()]


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _add_worker_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs-per-gpu", type=_positive_int, default=1, metavar="N",
                        help="concurrent runs per GPU (small models leave a GPU mostly idle); default 1")
    parser.add_argument("--gpus", type=_gpu_list, default=None, metavar="IDS",
                        help="comma-separated GPU ids to use (default: every visible GPU; none: one CPU worker)")
    parser.add_argument("--pack", type=_positive_int, default=None, metavar="N",
                        help="train up to N compatible queued runs (one network, data and recipe) together, one step "
                        "for all of them, each still its own run (or KD_PACK; default: 1 on a CPU worker, where "
                        "packing does not pay, 8 on a GPU worker)")


# Uvicorn waits for open responses before it exits; an open event stream (or a slow client) would
# otherwise hold Ctrl-C/SIGTERM for up to the stream's length. Past this, it closes them.
GRACEFUL_SHUTDOWN_S = 3


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


log = logging.getLogger("kd.serve")


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _sign_in_urls(host: str, port: int, token: str) -> list[str]:
    from app.access.cross_site import WILDCARD_BINDS

    hosts = [socket.gethostname(), "127.0.0.1"] if host in WILDCARD_BINDS else [host]
    return [f"http://{_url_host(name)}:{port}/signin?token={token}" for name in hosts]


def _guard_exposed_server(settings, host: str, port: int, no_auth: bool):
    """A server reachable from other machines needs a token: generate one when none is set, as Jupyter does."""
    from app.access.cross_site import is_loopback

    if settings.api_token is not None or is_loopback(host):
        return settings
    if no_auth:
        log.warning("serving %s without an API token (--no-auth): anyone who can reach port %d can launch, "
                    "cancel and delete runs", host, port)
        return settings
    token = secrets.token_urlsafe(24)
    lines = "\n".join(f"    {url}" for url in _sign_in_urls(host, port, token))
    # Printed, not only logged, so that `docker logs` and a terminal show it however logging is set up.
    print(f"{host} is reachable from other machines and KD_API_TOKEN is not set, so this server generated "
          f"a token and requires it. Sign in with:\n{lines}\nScripts send 'Authorization: Bearer {token}'. "
          "Set KD_API_TOKEN to choose the token, or pass --no-auth to serve without one.", flush=True)
    return replace(settings, api_token=token)


def _access_settings(settings, args: argparse.Namespace):
    """--public-read over KD_PUBLIC_READ, with a warning whenever a token's server leaves reads open."""
    if args.public_read:
        settings = replace(settings, public_read=True)
    if settings.public_read and settings.api_token is not None:
        log.warning("serving reads without the API token (--public-read / KD_PUBLIC_READ): anyone who can reach "
                    "port %d can list runs, read their curves and download checkpoints and exports; writes still "
                    "need the token", args.port)
    return settings


def _proxy_options(args: argparse.Namespace) -> dict:
    """uvicorn's X-Forwarded-For/-Proto handling, only for the proxies named: by default it trusts 127.0.0.1,
    so any local process (or a proxy passing the header through) could pick its client address and so
    escape the per-client limit on wrong tokens."""
    allowed = args.forwarded_allow_ips.strip()
    return {"proxy_headers": bool(allowed), "forwarded_allow_ips": allowed or None}


def _executor_settings(settings, args: argparse.Namespace):
    """--executor, --ray-address and --shared-runs-dir over KD_EXECUTOR, KD_RAY_ADDRESS and KD_SHARED_RUNS_DIR."""
    changes = {name: value for name, value in (("executor", args.executor), ("ray_address", args.ray_address))
               if value is not None}
    if args.shared_runs_dir:
        changes["shared_runs_dir"] = True
    if args.pack is not None:
        changes["pack"] = args.pack
    return replace(settings, **changes)


def _executor(settings, args: argparse.Namespace):
    """The embedded worker pool, or the Ray executor (Ray is imported only then); None with --no-worker."""
    if args.no_worker:
        return None
    if settings.executor == "ray":
        if args.gpus is not None:
            raise SystemExit("--gpus chooses the local pool's GPUs; with --executor ray, Ray assigns them")
        from app.executors.ray.connection import use_saved_token

        if settings.ray_address is not None:
            use_saved_token()  # before Ray is imported: it reads RAY_AUTH_MODE once
        try:
            from app.executors.ray.executor import RayExecutor
        except ImportError as exc:
            raise SystemExit(f"--executor ray needs Ray: pip install -e '.[ray]' ({exc})") from None
        return RayExecutor(settings, runs_per_gpu=args.runs_per_gpu)
    from app.executors.local.pool import WorkerPool

    return WorkerPool(settings, gpus=args.gpus, runs_per_gpu=args.runs_per_gpu)


@contextmanager
def _database_opened(settings, command: str):
    """A database that cannot be opened, created or upgraded at start-up (read-only, full, a folder that
    cannot be written, a server that is down) ends the command with one line naming it, not a traceback."""
    from sqlalchemy.exc import DBAPIError

    from app.store.storage import database_failure

    try:
        yield
    except (DBAPIError, OSError) as exc:
        raise SystemExit(f"{command}: {database_failure(exc, settings.db_url)}") from None


def _join_cluster(executor) -> None:
    """Join the Ray cluster before the server starts: one that refuses (its token) or does not answer ends
    kd serve with one line, not a retry log ending in "Application startup failed"."""
    from app.executors.ray.connection import ClusterUnreachable

    try:
        executor.connect()
    except ClusterUnreachable as exc:
        raise SystemExit(f"kd serve: {exc}") from None


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.main import create_app
    from app.settings import Settings

    _logging()
    settings = Settings.from_env(bind_host=args.host)
    settings = replace(settings, allowed_hosts=(*settings.allowed_hosts, *args.allowed_host))
    settings = _guard_exposed_server(settings, args.host, args.port, args.no_auth)
    settings = _access_settings(settings, args)
    settings = _executor_settings(settings, args)
    with _database_opened(settings, "kd serve"):
        executor = _executor(settings, args)
        app = create_app(settings, worker_pool=executor)
    if settings.executor == "ray" and executor is not None:
        _join_cluster(executor)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
                **_proxy_options(args))
    return 0


def worker(args: argparse.Namespace) -> int:
    from app.executors.local.pool import WorkerPool
    from app.settings import Settings

    _logging()
    settings = Settings.from_env(**({"pack": args.pack} if args.pack is not None else {}))
    with _database_opened(settings, "kd worker"):
        pool = WorkerPool(settings, gpus=args.gpus, runs_per_gpu=args.runs_per_gpu)

    def _interrupt(_signum, _frame):
        raise KeyboardInterrupt

    # SIGTERM (docker stop, systemd) gets the same graceful stop as Ctrl-C: running runs go back to the queue.
    signal.signal(signal.SIGTERM, _interrupt)
    pool.run_forever()
    return 0


def register_serve(subparsers) -> None:
    parser = subparsers.add_parser("serve", help="start the web server and its embedded worker",
                                   description="Start the dashboard and REST API (OpenAPI at /docs) with "
                                   "one embedded worker per visible GPU, else one CPU worker; or, with "
                                   "--executor ray, training the queue on a Ray cluster.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--no-worker", action="store_true", help="serve only; run `kd worker` separately")
    parser.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                        help="a host name this server answers to besides localhost and its address, e.g. the "
                        "name of a reverse proxy (repeatable; also KD_ALLOWED_HOSTS, comma-separated; * for any)")
    parser.add_argument("--no-auth", action="store_true",
                        help="on a non-loopback --host without KD_API_TOKEN, serve without a token instead of "
                        "generating one (anyone who reaches the port can launch runs)")
    parser.add_argument("--public-read", action="store_true",
                        help="with an API token, let anyone who reaches the port read runs, exports and event "
                        "streams without it (or KD_PUBLIC_READ=1); writes still need it. Default: everything "
                        "but sign-in needs the token")
    parser.add_argument("--forwarded-allow-ips", default=os.environ.get("KD_FORWARDED_ALLOW_IPS", ""), metavar="IPS",
                        help="comma-separated addresses (or networks) of reverse proxies whose X-Forwarded-For and "
                        "X-Forwarded-Proto headers are believed (or KD_FORWARDED_ALLOW_IPS; * for any). Default: "
                        "none, the connection's own address is the client's")
    _add_worker_options(parser)
    parser.add_argument("--executor", choices=("local", "ray"), default=None,
                        help="who trains the queued runs: local (worker slots on this machine; the default, "
                        "or KD_EXECUTOR) or ray (one Ray task per run on a cluster; pip install -e '.[ray]')")
    parser.add_argument("--ray-address", default=None, metavar="ADDR",
                        help="the Ray cluster's head, e.g. HEAD:6379 (or KD_RAY_ADDRESS; default: start a "
                        "local Ray instance)")
    parser.add_argument("--shared-runs-dir", action="store_true",
                        help="every Ray node sees KD_RUNS_DIR at the same path (or KD_SHARED_RUNS_DIR=1); "
                        "otherwise checkpoints travel through Ray's object store")
    parser.set_defaults(func=serve)


def register_worker(subparsers) -> None:
    parser = subparsers.add_parser("worker", help="start a worker alone, against the same database",
                                   description="Train queued runs from the database named by KD_DB_URL.")
    _add_worker_options(parser)
    parser.set_defaults(func=worker)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.cli")
    subparsers = parser.add_subparsers(dest="command", required=True)
    register_serve(subparsers)
    register_worker(subparsers)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
