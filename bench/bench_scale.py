"""Server time of the API and the pages at 100 times today's scale: 100,000 runs and about 2,000,000
epoch rows (targets: API p50 under 50 ms; the home and study pages under 100 ms).

    python bench/bench_scale.py [--db PATH] [--reuse] [--repeat 30]

The database is filled directly with bulk inserts (no training, no ORM objects): about 190 studies of
~490 runs each (a teacher, the baseline student and a 96-configuration grid of one distilling method,
each over 5 seeds), the rest as seed experiments (teacher, student, kd, cosine, fitnet). Statuses are
mostly completed, with failures, cancellations, a few runs training and some queued. Accuracies follow
a per-study level, a per-configuration effect, a per-seed offset shared by the study's runs of that seed,
and noise, so that groups, paired differences and significance markers meet realistic data.

Each request is timed inside the ASGI app (from the call to the last body byte, as bench_pages.py does),
so the test client's own overhead is left out. ``--reuse`` keeps an existing ``--db`` file.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bench_pages import Timed, measure  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from app.leaderboard import views as view_models  # noqa: E402
from app.main import create_app  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.store.db import init_db  # noqa: E402
from kdcore.config import seed_config  # noqa: E402
from kdcore.registry import EXPERIMENT_KINDS, METHODS  # noqa: E402
from kdcore.studies.study import baseline_key, expand, group_key, own_baselines, parse_spec  # noqa: E402
from tests.app_fixtures import TEST_CLIENT_HOST  # noqa: E402

RUNS = 100_000
EPOCHS = 20
SEEDS = (1, 2, 3, 4, 5)
# Each study sweeps two hyperparameters of one distilling method: 8 × 12 = 96 configurations.
GRIDS = {"kd": ("temperature", "distill_weight"), "cosine": ("ce_weight", "distill_weight"),
         "fitnet": ("ce_weight", "distill_weight"), "at": ("weight", "p"), "dist": ("beta", "gamma"),
         "dkd": ("alpha", "beta"), "pkt": ("ce_weight", "weight"), "rkd": ("distance_weight", "angle_weight")}
FACTORS_A = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
FACTORS_B = tuple(round(0.2 * k, 1) for k in range(1, 13))
PARAMETERS = {"seed_teacher": 1_190_000, "seed_student": 268_000}
START = datetime(2026, 9, 1, tzinfo=timezone.utc)
# Every tenth study carries this tag (where the tree has tags), which tags its runs for the filters.
TAG = "ablation"


def _when(moment: datetime | None) -> str | None:
    # SQLAlchemy's SQLite DateTime format (naive UTC), so the app reads these rows as its own.
    return None if moment is None else moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


class Filler:
    """Builds the rows in memory, then writes each table with one executemany."""

    def __init__(self, seed: int = 0):
        self.rng = random.Random(seed)
        self.runs: list[dict] = []
        self.studies: list[dict] = []
        self.experiments: list[dict] = []
        self.clock = START

    def _tick(self) -> datetime:
        self.clock += timedelta(seconds=20)
        return self.clock

    def add_run(self, config: dict, status: str, accuracy: float | None, *, group: str, baseline: str,
                teacher_run_id: int | None = None, study_id: int | None = None,
                experiment_id: int | None = None) -> int:
        run_id = len(self.runs) + 1
        created = self._tick()
        started = created + timedelta(minutes=5) if status != "queued" else None
        finished = started + timedelta(seconds=90) if status in ("completed", "failed", "cancelled") else None
        done = status == "completed"
        running = status == "running"
        self.runs.append(dict(
            id=run_id, kind=config["kind"], status=status, config=json.dumps(config), dataset=config["dataset"],
            epochs=config["epochs"], architecture=config["architecture"], teacher_run_id=teacher_run_id,
            experiment_id=experiment_id, study_id=study_id, group_key=group, baseline_key=baseline,
            seed=config["seed"], num_classes=10, created_at=_when(created), started_at=_when(started),
            finished_at=_when(finished), worker="bench:0:cpu" if running else None,
            heartbeat_at=_when(started) if running else None, cancel_requested=False, resume=False,
            error={"failed": "RuntimeError: out of memory", "cancelled": "cancelled by user"}.get(status),
            checkpoint=f"/runs/{run_id}/last.pt" if done else None,
            parameters=PARAMETERS.get(config["architecture"], 500_000) if done else None,
            final_accuracy=accuracy if done else None,
            best_accuracy=min(1.0, accuracy + abs(self.rng.gauss(0, 0.004))) if done else None,
            best_epoch=config["epochs"] - self.rng.randrange(3) if done else None,
            train_seconds=90.0 + self.rng.random() * 20 if done else None,
            progress_epoch=self.rng.randrange(1, config["epochs"]) if running else None,
            progress_epochs=config["epochs"] if running else None, progress_step=10 if running else None,
            progress_steps=50 if running else None, progress_at=_when(started) if running else None,
            eta_seconds=60.0 if running else None))
        return run_id

    def _status(self) -> str:
        draw = self.rng.random()
        return "failed" if draw < 0.02 else "cancelled" if draw < 0.03 else "completed"

    def add_study(self, index: int, *, live: bool = False) -> None:
        method = list(GRIDS)[index % len(GRIDS)]
        a, b = GRIDS[method]
        defaults = METHODS[method].params().model_dump()
        # 95 subsets for ~190 studies: pairs of studies share a subset, so their teachers and baseline
        # students group together across studies (with repeated seeds) while their methods differ.
        subset = 1000 + 100 * (index % 95)
        spec = {"name": f"{method} sweep {index}", "dataset": "synthetic", "subset": subset,
                "methods": ["student", method], "seeds": list(SEEDS), "epochs": EPOCHS, "teacher_epochs": EPOCHS,
                "grid": {f"{method}.{a}": [defaults[a] * f for f in FACTORS_A],
                         f"{method}.{b}": [defaults[b] * f for f in FACTORS_B]}}
        plan = expand(parse_spec({**spec, "seeds": [SEEDS[0]]}), max_runs=10_000)
        study_id = len(self.studies) + 1
        self.studies.append(dict(id=study_id, name=spec["name"], dataset="synthetic", subset=subset,
                                 spec=json.dumps(spec), teacher_run_id=None, total_runs=0, cancel_requested=False,
                                 created_at=_when(self._tick())))
        level = 0.55 + 0.1 * self.rng.random()
        seed_offset = {seed: self.rng.gauss(0, 0.005) for seed in SEEDS}
        total = 0
        statuses = iter(self._live_statuses()) if live else None

        def status() -> str:
            return next(statuses, "queued") if statuses else self._status()

        teacher_config = plan.teachers[0].config.to_json_dict()
        teacher_key = group_key(teacher_config)
        # As app.studies.service stores them: each run against the study's own student.
        teacher_baseline, *baselines = own_baselines([member.config for member in plan.members])
        teacher_id = self.add_run(teacher_config, "completed", level + 0.03, group=teacher_key,
                                  baseline=teacher_baseline, study_id=study_id)
        total += 1
        for member, base in zip(plan.students, baselines):
            config = member.config.to_json_dict()
            distils = member.config.method.needs_teacher
            key = group_key(config, teacher_key if distils else None)
            effect = 0.0 if not distils else 0.012 * math.sin(3 * config["params"][a]) + 0.01 * config["params"][b] / (
                defaults[b] or 1) / 2.4 - 0.004
            for seed in SEEDS:
                accuracy = level + effect + seed_offset[seed] + self.rng.gauss(0, 0.006)
                self.add_run({**config, "seed": seed}, status(), round(accuracy, 4), group=key, baseline=base,
                             teacher_run_id=teacher_id if distils else None, study_id=study_id)
                total += 1
        self.studies[-1]["total_runs"] = total

    def _live_statuses(self) -> list[str]:
        # A study under way: most of it done, two runs training, the rest queued.
        return ["completed"] * 440 + ["running"] * 2

    def add_experiment(self) -> None:
        experiment_id = len(self.experiments) + 1
        subset = self.rng.choice((1000, 2000, 5000))
        self.experiments.append(dict(id=experiment_id, dataset="synthetic", subset=subset,
                                     overrides=json.dumps({}), created_at=_when(self._tick())))
        teacher_id = teacher_key = None
        configs = [seed_config(kind, dataset="synthetic", subset=subset, epochs=EPOCHS, seed=0)
                   for kind in EXPERIMENT_KINDS]
        for kind, config, base in zip(EXPERIMENT_KINDS, configs, own_baselines(configs)):
            method = METHODS[kind]
            config = config.to_json_dict()
            key = group_key(config, teacher_key if method.needs_teacher else None)
            accuracy = 0.6 + 0.01 * (EXPERIMENT_KINDS.index(kind) % 3) + self.rng.gauss(0, 0.008)
            run_id = self.add_run(config, self._status() if not method.teaches else "completed", round(accuracy, 4),
                                  group=key, baseline=base,
                                  teacher_run_id=teacher_id if method.needs_teacher else None,
                                  experiment_id=experiment_id)
            if method.teaches:
                teacher_id, teacher_key = run_id, key

    def add_single(self) -> None:
        config = seed_config(EXPERIMENT_KINDS[1], dataset="synthetic", epochs=EPOCHS, seed=0).to_json_dict()
        self.add_run(config, "completed", round(0.6 + self.rng.gauss(0, 0.008), 4), group=group_key(config),
                     baseline=baseline_key(config))

    def epoch_rows(self):
        """Each started run's epochs: 20 for a finished run, fewer for one still training."""
        terms_of = {kind: METHODS[kind].loss_terms for kind in METHODS}
        for run in self.runs:
            if run["status"] == "queued":
                continue
            count = run["progress_epoch"] - 1 if run["status"] == "running" else run["epochs"]
            final = run["final_accuracy"] or 0.5
            for n in range(1, count + 1):
                terms = {term: round(2.0 / n + 0.1 * i, 4) for i, term in enumerate(terms_of[run["kind"]])}
                yield (run["id"], n, sum(terms.values()), json.dumps(terms), round(2.1 / n, 4),
                       round(final * (0.6 + 0.4 * n / count), 4), 4.5, 2200.0)

    def write(self, path: Path) -> int:
        connection = sqlite3.connect(path)
        try:
            for table, rows in (("studies", self.studies), ("experiments", self.experiments), ("runs", self.runs)):
                columns = list(rows[0])
                connection.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                    [tuple(row[c] for c in columns) for row in rows])
            epochs = 0
            batch: list[tuple] = []
            insert = ("INSERT INTO epochs (run_id, epoch, train_loss, train_terms, test_loss, test_accuracy, seconds, "
                      "images_per_sec) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
            for row in self.epoch_rows():
                batch.append(row)
                if len(batch) == 100_000:
                    connection.executemany(insert, batch)
                    epochs += len(batch)
                    batch.clear()
            connection.executemany(insert, batch)
            epochs += len(batch)
            if connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'tags'").fetchone():
                tagged = [study["id"] for study in self.studies[::10]]
                connection.executemany("UPDATE studies SET tags = ? WHERE id = ?",
                                       [(json.dumps([TAG]), study_id) for study_id in tagged])
                connection.executemany("INSERT INTO tags (tag, study_id) VALUES (?, ?)",
                                       [(TAG, study_id) for study_id in tagged])
            connection.commit()  # no ANALYZE: a server's database has no planner statistics either
            return epochs
        finally:
            connection.close()


def fill(path: Path, runs: int = RUNS) -> None:
    started = time.perf_counter()
    # The app creates the schema (tables and indexes) exactly as a server would.
    init_db(Settings(db_url=f"sqlite:///{path}", data_dir=path.parent / "data", runs_dir=path.parent / "runs"))
    filler = Filler()
    studies = (runs * 92 // 100) // 486
    for index in range(studies):
        filler.add_study(index, live=index == studies - 1)
    while len(filler.runs) + len(EXPERIMENT_KINDS) <= runs:
        filler.add_experiment()
    while len(filler.runs) < runs:
        filler.add_single()
    built = time.perf_counter()
    epochs = filler.write(path)
    statuses: dict[str, int] = {}
    for run in filler.runs:
        statuses[run["status"]] = statuses.get(run["status"], 0) + 1
    print(f"stored {len(filler.runs):,} runs ({', '.join(f'{n:,} {s}' for s, n in sorted(statuses.items()))}), "
          f"{len(filler.studies)} studies, {len(filler.experiments):,} experiments and {epochs:,} epoch rows "
          f"in {time.perf_counter() - started:.1f} s (rows built in {built - started:.1f} s)")


def targets(client: TestClient) -> dict[str, tuple[str, float | None]]:
    """What to time: name -> (path, target ms or None)."""
    study = client.get("/api/studies?limit=500").json()["items"]
    big = max(study, key=lambda s: (s["total"], -s["id"]))  # a ~500-run study, finished
    runs = client.get("/api/runs?status=completed&limit=1&offset=5000").json()["items"]
    run_id = runs[0]["id"]
    groups = client.get("/api/leaderboard/groups?limit=1").json()["items"] if _has(client, "/api/leaderboard/groups") \
        else []
    paths = {
        "GET /api/runs": ("/api/runs", 50),
        "GET /api/runs?status=completed&kind=kd": ("/api/runs?status=completed&kind=kd", 50),
        "GET /api/runs/{id}": (f"/api/runs/{run_id}", 50),
        "GET /api/runs/{id}/epochs": (f"/api/runs/{run_id}/epochs", 50),
        "GET /api/leaderboard?limit=100": ("/api/leaderboard?limit=100", 50),
        "GET /api/leaderboard (default)": ("/api/leaderboard", 50),
    }
    if groups:
        paths["GET /api/leaderboard/groups"] = ("/api/leaderboard/groups", 50)
    paths.update({
        "GET /api/studies": ("/api/studies", 50),
        f"GET /api/studies/{{id}} ({big['total']} runs)": (f"/api/studies/{big['id']}", 50),
        "GET /api/experiments": ("/api/experiments", 50),
        "page / (home)": ("/", 100),
        # After a deletion or a restart the ranking is summed again: timed, the targets are for the others.
        "page / (cold: leaderboard recomputed)": ("/", None),
        "page / (after a run completes)": ("/", 100),
        "fragment /fragments/active": ("/fragments/active?done=0", 100),
    })
    if groups:
        paths["fragment leaderboard group runs"] = (f"/fragments/leaderboard/group/{groups[0]['key']}", 100)
    # Pages and filters, each timed as a first visit: the ranking kept, that page's rendering not.
    tag = _tag(client)
    paths.update({
        "page /?offset=10000 (first visit)": ("/?offset=10000", 100),
        "fragment single runs, offset 10,000 (first visit)": ("/fragments/leaderboard?view=runs&offset=10000", 100),
        "GET /api/leaderboard/groups?offset=10000": ("/api/leaderboard/groups?limit=100&offset=10000", 50),
        "GET /api/leaderboard?offset=10000": ("/api/leaderboard?offset=10000", 50),
        "page /?kind=kd (first visit)": ("/?kind=kd", 100),
        "page /?dataset=synthetic&epochs=20 (first visit)": ("/?dataset=synthetic&epochs=20", 100),
        f"page /?study_id={{id}} (first visit)": (f"/?study_id={big['id']}", 100),
        "page /?view=runs&kind=kd (first visit)": ("/?view=runs&kind=kd", 100),
        "GET /api/runs?architecture=seed_teacher": ("/api/runs?architecture=seed_teacher", 50),
    })
    if tag:
        paths.update({f"page /?tag={tag} (first visit)": (f"/?tag={tag}", 100),
                      f"GET /api/runs?tag={tag}": (f"/api/runs?tag={tag}", 50)})
    if _has(client, f"/studies/{big['id']}"):
        paths[f"page /studies/{{id}} ({big['total']} runs)"] = (f"/studies/{big['id']}", 100)
    else:
        print("(no /studies/{id} page in this tree: measure it after the study page is merged)")
    return paths


def complete_one(path: Path) -> None:
    """Finish the oldest queued or running run, as the worker would (the database then holds one more)."""
    connection = sqlite3.connect(path)
    try:
        row = connection.execute("SELECT id FROM runs WHERE status IN ('queued', 'running') ORDER BY id LIMIT 1"
                                 ).fetchone()
        if row is None:
            raise SystemExit("no queued run left to complete: refill the database (drop --reuse)")
        connection.execute("UPDATE runs SET status = 'completed', final_accuracy = 0.65, best_accuracy = 0.66, "
                           "parameters = 268000, finished_at = ? WHERE id = ?",
                           (_when(datetime.now(timezone.utc)), row[0]))
        connection.commit()
    finally:
        connection.close()


def _has(client: TestClient, path: str) -> bool:
    return client.get(path).status_code == 200


def _tag(client: TestClient) -> str | None:
    """A tag some studies carry (Filler.write tags every tenth), where this tree has tags."""
    return TAG if client.get("/api/runs", params={"tag": TAG, "limit": 1}).json().get("total") else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, help="database file (default: a temporary one)")
    parser.add_argument("--reuse", action="store_true", help="keep an existing --db file rather than refill it")
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--repeat", type=int, default=30, help="requests per endpoint")
    parser.add_argument("--only", help="time only the requests whose name holds this text")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "scale.sqlite"
        if not (args.reuse and path.exists()):
            for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                leftover.unlink(missing_ok=True)
            fill(path, args.runs)
        settings = Settings(db_url=f"sqlite:///{path}", data_dir=Path(tmp) / "data", runs_dir=Path(tmp) / "runs",
                            allowed_hosts=(TEST_CLIENT_HOST,))
        app = create_app(settings)
        timed = Timed(app)
        print(f"machine: {platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} CPUs, "
              f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
              f"load average {os.getloadavg()[0]:.1f}")
        failures = []
        # (The cache's name before this script existed, so that it can measure the tree it came from.)
        forget = getattr(view_models, "forget_leaderboards", None) or view_models._LEADERBOARD_CACHE.clear
        with TestClient(timed, base_url=f"http://{TEST_CLIENT_HOST}") as client:
            print(f"{'request':52} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}  target")
            for name, (url, target) in targets(client).items():
                if args.only and args.only not in name:
                    continue
                # The cold case empties the pages' leaderboard caches (a deletion does that); the other
                # completes a queued run before each request, as the worker does.
                before = (forget if "cold" in name else
                          (lambda: complete_one(path)) if "completes" in name else
                          view_models._LEADERBOARD_CACHE.clear if "first visit" in name else (lambda: None))
                samples = sorted(measure(client, timed, url, args.repeat if target or "cold:" in name else 3, before))
                p50 = statistics.median(samples)
                p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
                ok = target is None or p50 < target
                if not ok:
                    failures.append(name)
                verdict = "(no target)" if target is None else f"< {target} ms {'ok' if ok else 'OVER'}"
                print(f"{name:52} {p50:8.1f} {p95:8.1f} {samples[-1]:8.1f}  {verdict}")
        print("all p50 within their targets" if not failures else f"OVER target: {', '.join(failures)}")
        return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
