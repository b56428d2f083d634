"""A run's fallbacks from its speed paths (kdcore.training.fallback) as the worker records them and the run's
page and the API show them."""

from __future__ import annotations

import queue
import threading

from page_fixtures import STUDENT_KIND, add_run, client, db, well_formed  # noqa: F401  (client, db: fixtures)

from app.executors.records import finish_run
from app.executors.training import train_job
from kdcore.config import RunConfig
from kdcore.training.fallback import FUSED
from tests.test_fallback import BASE, break_fused
from tests.torch_threads import one_thread  # noqa: F401  (autouse: one thread here)


def test_the_worker_records_a_fallback_and_the_run_page_and_api_show_it(tmp_path, monkeypatch, client, db):
    """The chain a worker runs (app.executors.training.train_job's ending message, then
    app.executors.records.finish_run), with the fused optimiser broken in the trainer."""
    break_fused(monkeypatch, "cpu")
    messages = queue.Queue()
    job = {"config": RunConfig(kind="student", **{**BASE, "epochs": 1}, device="cpu").to_json_dict(),
           "out_dir": str(tmp_path / "run"), "data_root": None, "teacher_checkpoint": None, "resume": False}
    (tmp_path / "run").mkdir()
    train_job(job, messages, threading.Event())
    ending = [m for m in messages.queue if m[0] in ("completed", "failed", "cancelled")]
    assert [kind for kind, _ in ending] == ["completed"], ending
    run = add_run(db, STUDENT_KIND, status="running")
    assert finish_run(db, run.id, run.worker, "completed", result=ending[0][1])

    notes = client.get(f"/api/runs/{run.id}").json()["notes"]
    assert notes == [f"fallback: {FUSED} raised RuntimeError: `fused=True` requires all the params to be floating "
                     "point Tensors of supported devices; the optimiser uses torch's default kernels"]
    page = well_formed(client.get(f"/runs/{run.id}").text)
    (item,) = page.by_id("run-notes").find_all("li")
    assert "fallback" in item.classes and item.text() == notes[0]
    plain = well_formed(client.get(f"/runs/{add_run(db, STUDENT_KIND).id}").text)
    assert plain.find(id="run-notes") is None
