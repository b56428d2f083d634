"""Every page, fragment and API answer of one fixed database, written to a folder, so that a refactor can
be checked for changed behaviour with ``diff -r`` (apart from clocks).

    python bench/page_snapshot.py OUT_DIR          # before the change
    python bench/page_snapshot.py OUT_DIR2         # after it
    diff -r OUT_DIR OUT_DIR2

It goes through the application's public doors only (``app.main.create_app``, ``app.settings.Settings``,
HTTP, and plain SQL on the tables), so the same script runs on both sides of a move of modules. The
database is filled through the API (an experiment, a study with a grid, single runs, refused requests),
then given finished states, epochs and fixed timestamps in SQL, as a worker would have left them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tempfile
from pathlib import Path

FIXED_TIME = "2026-11-30 12:00:00.000000"
# Final accuracies by (kind, seed): the same numbers on both sides of a diff.
ACCURACY = {"teacher": 0.71, "student": 0.60, "kd": 0.63, "cosine": 0.61, "fitnet": 0.59, "dkd": 0.64}


CLOCK = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)?")


def _name(method: str, path: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._=-]+", "_", path.strip("/")) or "root"
    return f"{method}_{slug}"[:150]


def _fill(client, engine) -> dict:
    """Runs in every state the pages show, an experiment, a study over a grid, and their epochs."""
    from sqlalchemy import text

    ids = {}
    experiment = client.post("/api/experiments", json={"dataset": "synthetic", "subset": 200, "device": "cpu"})
    ids["experiment"] = experiment.json()["id"]
    study = client.post("/api/studies", json={
        "dataset": "synthetic", "subset": 200, "methods": ["student", "kd"], "seeds": [1, 2, 3], "epochs": 2,
        "teacher_epochs": 2, "device": "cpu", "grid": {"kd.temperature": [2, 4]}, "name": "snapshot study"})
    ids["study"] = study.json()["id"]
    study2 = client.post("/api/studies", json={
        "dataset": "synthetic", "subset": 200, "methods": ["student", "kd"], "seeds": [1, 2], "epochs": 2,
        "teacher_epochs": 2, "device": "cpu",
        "grid": {"kd.temperature": [2, 4], "kd.distill_weight": [0.25, 0.5]}})
    ids["study2"] = study2.json()["id"]
    single = client.post("/api/runs", json={"kind": "student", "dataset": "synthetic", "subset": 200,
                                            "epochs": 3, "device": "cpu"})
    ids["single"] = single.json()["id"]
    with engine.begin() as db:
        runs = db.execute(text("SELECT id, kind, seed, epochs FROM runs ORDER BY id")).all()
        for number, (run_id, kind, seed, epochs) in enumerate(runs):
            # Every fifth run stays queued, one runs, one failed, one cancelled; the rest completed.
            status = ("queued" if number % 5 == 4 else "running" if number == 3 else "failed" if number == 7
                      else "cancelled" if number == 8 else "completed")
            if kind == "teacher":
                status = "completed"
            accuracy = ACCURACY.get(kind, 0.5) + 0.01 * ((seed or 1) % 3) + 0.001 * number
            done = epochs if status == "completed" else 1 if status != "queued" else 0
            for epoch in range(1, done + 1):
                db.execute(text(
                    "INSERT INTO epochs (run_id, epoch, train_loss, train_terms, test_loss, test_accuracy, "
                    "seconds, images_per_sec) VALUES (:run, :epoch, :loss, :terms, :test_loss, :acc, 1.5, 120.0)"),
                    {"run": run_id, "epoch": epoch, "loss": 2.0 / epoch, "terms": json.dumps({"ce": 2.0 / epoch}),
                     "test_loss": 2.1 / epoch, "acc": accuracy * epoch / epochs})
            fields = {"status": status, "created_at": FIXED_TIME, "id": run_id}
            if status != "queued":
                fields.update(started_at=FIXED_TIME, worker="snapshot:1:cpu", heartbeat_at=FIXED_TIME)
            if status == "completed":
                fields.update(finished_at=FIXED_TIME, final_accuracy=accuracy, best_accuracy=accuracy + 0.01,
                              best_epoch=epochs, train_seconds=12.5, parameters=267738)
            if status == "running":
                fields.update(progress_epoch=1, progress_epochs=epochs, progress_step=3, progress_steps=7,
                              progress_at=FIXED_TIME, eta_seconds=42.0)
            if status in ("failed", "cancelled"):
                fields.update(finished_at=FIXED_TIME, error="snapshot failure" if status == "failed" else None)
            assignments = ", ".join(f"{name} = :{name}" for name in fields if name != "id")
            db.execute(text(f"UPDATE runs SET {assignments} WHERE id = :id"), fields)
        db.execute(text("UPDATE studies SET created_at = :t"), {"t": FIXED_TIME})
        db.execute(text("UPDATE experiments SET created_at = :t"), {"t": FIXED_TIME})
        ids["runs"] = [row[0] for row in runs]
        ids["group"] = db.execute(text("SELECT group_key FROM runs WHERE kind = 'kd' AND status = 'completed' "
                                       "ORDER BY id LIMIT 1")).scalar()
        ids["teacher"] = db.execute(text("SELECT id FROM runs WHERE kind = 'teacher' ORDER BY id LIMIT 1")).scalar()
    return ids


def _requests(ids: dict) -> list[tuple[str, str, dict | None]]:
    run_ids, study, teacher = ids["runs"], ids["study"], ids["teacher"]
    gets = ["/", "/?view=runs", "/fragments/leaderboard", "/fragments/leaderboard?limit=3&offset=3",
            "/fragments/leaderboard?view=runs", f"/fragments/leaderboard/group/{ids['group']}",
            "/?kind=kd&epochs=1", f"/?study_id={study}", "/?view=runs&kind=student&limit=2",
            "/fragments/active", "/launch", "/launch?kind=kd", f"/launch?kind=kd&teacher_run_id={teacher}",
            "/launch?kind=dkd&architecture=resnet8x4", "/fragments/launch-fields?kind=kd",
            "/fragments/launch-fields?kind=fitnet", "/fragments/launch-recipe?preset=crd-cifar",
            "/fragments/launch-recipe?preset=", "/fragments/study-count?methods=student&methods=kd&seeds=1,2,3",
            "/fragments/study-count?methods=kd&seeds=1,2&grid=kd.temperature%3D1,2,4",
            f"/compare?experiment={ids['experiment']}", f"/compare?run={run_ids[0]}&run={run_ids[1]}",
            f"/compare?study={study}", f"/compare?group={ids['group']}", "/compare", "/compare?run=abc",
            "/studies", f"/studies/{study}", f"/studies/{ids['study2']}", "/studies/999",
            f"/fragments/studies/{study}/progress", f"/fragments/studies/{study}/results", "/signin",
            "/runs/999", "/runs/abc",
            "/api/runs", "/api/runs?status=completed", "/api/runs?kind=kd&limit=3&offset=1",
            f"/api/experiments/{ids['experiment']}", "/api/experiments", "/api/leaderboard",
            "/api/leaderboard?limit=5&offset=2", "/api/leaderboard/groups", "/api/leaderboard/groups?limit=2",
            "/api/methods", "/api/architectures", "/api/architectures?num_classes=100", "/api/datasets",
            "/api/studies", f"/api/studies/{study}", f"/api/studies/{ids['study2']}",
            f"/api/studies/{study}/export.json", f"/api/studies/{study}/runs.csv",
            f"/api/studies/{study}/groups.csv", f"/api/studies/{study}/table.md", f"/api/studies/{study}/table.tex",
            "/api/studies/999", "/api/runs/999", "/api/runs/abc", "/openapi.json", "/docs", "/redoc",
            "/static/app.js", "/static/app.css", "/static/vendor/plotly-cartesian.min.js", "/nosuch"]
    for run_id in run_ids:
        gets += [f"/runs/{run_id}", f"/api/runs/{run_id}", f"/api/runs/{run_id}/epochs",
                 f"/api/runs/{run_id}/epochs?after=1", f"/api/runs/{run_id}/epochs.csv",
                 f"/api/runs/{run_id}/checkpoint"]
    # Event streams of finished runs end by themselves.
    gets += [f"/runs/{run_ids[0]}/events", f"/runs/{run_ids[7]}/events?after=1", "/runs/999/events"]
    requests = [("GET", path, None) for path in gets]
    posts = [
        ("/api/runs", {"kind": "kd", "dataset": "synthetic"}),
        ("/api/runs", {"kind": "nosuch", "dataset": "synthetic"}),
        ("/api/runs", {"kind": "student", "dataset": "synthetic", "epochs": 0, "lr": -1}),
        ("/api/runs", {"kind": "kd", "dataset": "synthetic", "teacher_run_id": teacher, "subset": 200,
                       "params": {"temperature": 3}}),
        ("/api/experiments", {"dataset": "nosuch"}),
        ("/api/studies", {"dataset": "synthetic", "methods": []}),
        ("/api/studies", {"dataset": "synthetic", "methods": ["kd"], "seeds": [1], "grid": {"kd.nosuch": [1]}}),
        (f"/api/runs/{run_ids[-1]}/cancel", None), (f"/api/runs/{run_ids[7]}/retry", None),
        (f"/api/runs/{run_ids[2]}/retry", None), ("/api/runs/999/cancel", None),
        (f"/api/studies/{ids['study2']}/cancel", None),
        ("/launch", {"form": {"kind": "student", "dataset": "synthetic", "epochs": "0"}}),
        ("/launch", {"form": {"kind": "student", "dataset": "synthetic", "subset": "200", "epochs": "1"}}),
        ("/launch/experiment", {"form": {"dataset": "nosuch"}}),
        ("/launch/study", {"form": {"dataset": "synthetic", "methods": "kd", "seeds": "1,2", "grid": "kd.nosuch=1"}}),
        (f"/runs/{run_ids[5]}/cancel", {"form": {}}), (f"/runs/{run_ids[8]}/retry", {"form": {}}),
        ("/signin", {"form": {"token": "wrong"}}),
    ]
    for path, body in posts:
        requests.append(("POST", path, body))
    requests += [("DELETE", f"/api/runs/{run_ids[-2]}", None), ("DELETE", "/api/runs/999", None),
                 ("GET", "/", None), ("GET", "/api/runs", None), ("GET", "/api/leaderboard/groups", None)]
    return requests


def _body(method: str, path: str, response) -> bytes:
    head = f"{method} {path}\n{response.status_code}\n"
    for name in sorted(response.headers):
        if name not in ("date", "content-length", "etag", "last-modified", "set-cookie"):
            head += f"{name}: {response.headers[name]}\n"
    content = response.content
    if len(content) > 200_000 or path.endswith("/checkpoint") and response.status_code == 200:
        content = f"sha256 {hashlib.sha256(content).hexdigest()} ({len(content)} bytes)\n".encode()
    # Clocks: times written at request time (a cancel's finish, a new run's creation) differ run to run.
    content = CLOCK.sub(lambda m: m.group(0) if m.group(0).startswith(FIXED_TIME[:10]) else "<clock>",
                        content.decode("utf-8", "replace")).encode()
    return head.encode() + b"\n" + content


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        settings = Settings(db_url=f"sqlite:///{root / 'kd.sqlite'}", data_dir=root / "data", runs_dir=root / "runs",
                            max_queued=500, allowed_hosts=("testserver",))
        app = create_app(settings)
        with TestClient(app) as client:
            ids = _fill(client, app.state.engine)
            for number, (method, path, body) in enumerate(_requests(ids)):
                kwargs = {}
                if isinstance(body, dict) and "form" in body:
                    kwargs["data"] = body["form"]
                elif body is not None:
                    kwargs["json"] = body
                response = client.request(method, path, follow_redirects=False, **kwargs)
                (args.out / f"{number:03d}_{_name(method, path)}").write_bytes(_body(method, path, response))
    print(f"wrote {number + 1} answers to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
