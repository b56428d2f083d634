"""``kd serve`` and ``kd worker``: registered into kdcore's CLI through the "kdcore.commands" entry points.

``python -m app.cli serve|worker`` offers the same commands without the kd script.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys


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


# Uvicorn waits for open responses before it exits; an open event stream (or a slow client) would
# otherwise hold Ctrl-C/SIGTERM for up to the stream's length. Past this, it closes them.
GRACEFUL_SHUTDOWN_S = 3


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.main import create_app
    from app.settings import Settings
    from app.worker.pool import WorkerPool

    _logging()
    settings = Settings.from_env()
    pool = None if args.no_worker else WorkerPool(settings, gpus=args.gpus, runs_per_gpu=args.runs_per_gpu)
    app = create_app(settings, worker_pool=pool)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    return 0


def worker(args: argparse.Namespace) -> int:
    from app.settings import Settings
    from app.worker.pool import WorkerPool

    _logging()
    pool = WorkerPool(Settings.from_env(), gpus=args.gpus, runs_per_gpu=args.runs_per_gpu)

    def _interrupt(_signum, _frame):
        raise KeyboardInterrupt

    # SIGTERM (docker stop, systemd) gets the same graceful stop as Ctrl-C: running runs go back to the queue.
    signal.signal(signal.SIGTERM, _interrupt)
    pool.run_forever()
    return 0


def register_serve(subparsers) -> None:
    parser = subparsers.add_parser("serve", help="start the web server and its embedded worker",
                                   description="Start the dashboard and REST API (OpenAPI at /docs) with "
                                   "one embedded worker per visible GPU, else one CPU worker.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--no-worker", action="store_true", help="serve only; run `kd worker` separately")
    _add_worker_options(parser)
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
