"""Server time of the dashboard's pages with many stored runs (target: home under 100 ms with 1,000 runs).

    python bench/bench_pages.py [--runs 1000] [--repeat 30]

Times each request inside the ASGI app, from the call to the last body byte, so the test
client's own overhead is left out. Uses a temporary SQLite database; nothing is trained.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fastapi.testclient import TestClient  # noqa: E402
from page_fixtures import make_settings  # noqa: E402

from app.leaderboard import views as view_models  # noqa: E402
from app.main import create_app  # noqa: E402
from app.store.models import Epoch, Run, utcnow  # noqa: E402
from kdcore.config import RunConfig  # noqa: E402
from kdcore.registry import EXPERIMENT_KINDS, METHODS  # noqa: E402


class Timed:
    """ASGI wrapper recording how long each HTTP request takes inside the app."""

    def __init__(self, app):
        self.app, self.samples = app, []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()

        async def timed_send(message):
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.samples.append(time.perf_counter() - start)

        await self.app(scope, receive, timed_send)


def fill(app, runs: int, epochs_per_run: int) -> dict[str, int]:
    """Store ``runs`` finished runs: experiments of a teacher and the kinds distilled from it, plus a queue."""
    from app.store.db import new_session

    with new_session(app.state.engine, app.state.settings) as session:
        teacher_id, count, last = None, 0, {}
        while count < runs:
            for kind in EXPERIMENT_KINDS:
                if count >= runs:
                    break
                method = METHODS[kind]
                config = RunConfig(kind=kind, dataset="synthetic", subset=200, epochs=epochs_per_run).to_json_dict()
                run = Run(kind=kind, status="completed", config=config, num_classes=10, dataset=config["dataset"],
                          epochs=config["epochs"],
                          teacher_run_id=teacher_id if method.needs_teacher else None,
                          parameters=1_190_000 if method.teaches else 268_000,
                          final_accuracy=0.5 + (count % 97) / 250, best_accuracy=0.6, best_epoch=epochs_per_run,
                          train_seconds=30.0 + count % 13, started_at=utcnow(), finished_at=utcnow(),
                          checkpoint="/tmp/none.pt")
                session.add(run)
                session.flush()
                if method.teaches:
                    teacher_id = run.id
                for n in range(1, epochs_per_run + 1):
                    terms = {t: 1.0 / n for t in method.loss_terms}
                    session.add(Epoch(run_id=run.id, epoch=n, train_loss=sum(terms.values()), train_terms=terms,
                                      test_loss=1.0 / n, test_accuracy=0.5, seconds=1.0, images_per_sec=1000.0))
                last[kind] = run.id
                count += 1
        for status in ("running", "queued", "queued"):
            config = RunConfig(kind=EXPERIMENT_KINDS[1], dataset="synthetic").to_json_dict()
            session.add(Run(kind=EXPERIMENT_KINDS[1], status=status, config=config, progress_epoch=2,
                            progress_epochs=20, progress_step=10, progress_steps=50, progress_at=utcnow(),
                            eta_seconds=100.0))
        session.commit()
    return last


def measure(client: TestClient, timed: Timed, url: str, repeat: int, before=lambda: None) -> list[float]:
    assert client.get(url).status_code == 200, url  # warm-up: template compilation, caches
    timed.samples.clear()
    for _ in range(repeat):
        before()
        response = client.get(url)
        assert response.status_code == 200, url
    return [s * 1000 for s in timed.samples]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=20, help="epoch rows stored per run")
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(make_settings(Path(tmp)))
        started = time.perf_counter()
        last = fill(app, args.runs, args.epochs)
        print(f"stored {args.runs} runs x {args.epochs} epochs in {time.perf_counter() - started:.1f} s")
        print(f"machine: {platform.processor() or platform.machine()}, {platform.python_implementation()} "
              f"{platform.python_version()}, {len(__import__('os').sched_getaffinity(0))} CPUs")
        timed = Timed(app)
        compare = "&".join(f"run={run_id}" for run_id in last.values())
        pages = {"home /": "/", "home / (cold: leaderboard recomputed)": "/", "home queue fragment": "/fragments/active?done=0",
                 "leaderboard fragment (all rows)": "/fragments/leaderboard?all=true",
                 "launch form": f"/launch?kind={EXPERIMENT_KINDS[2]}",
                 f"run page ({args.epochs} epochs)": f"/runs/{last[EXPERIMENT_KINDS[2]]}",
                 f"compare {len(last)} runs": f"/compare?{compare}"}
        with TestClient(timed) as client:
            print(f"{'page':40} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}")
            results = {}
            for name, url in pages.items():
                # The cold case empties the pages' leaderboard cache, as a run finishing would.
                cold = view_models.forget_leaderboards if "cold" in name else (lambda: None)
                samples = sorted(measure(client, timed, url, args.repeat, cold))
                p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
                results[name] = statistics.median(samples)
                print(f"{name:40} {results[name]:10.1f} {p95:8.1f} {samples[-1]:8.1f}")
        target = results["home /"] < 100
        print(f"home with {args.runs} runs: {'within' if target else 'OVER'} the 100 ms target")
        return 0 if target else 1


if __name__ == "__main__":
    sys.exit(main())
