"""Route tests for the run page, its actions and event stream, and the compare page."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient
from page_fixtures import (  # noqa: F401  (client and db are fixtures)
    KD_KINDS,
    STUDENT_KIND,
    TEACHER_KIND,
    add_epoch,
    add_experiment,
    add_run,
    client,
    db,
    make_client,
    make_settings,
    read_events,
    read_until,
    session_of,
    well_formed,
)

from app.main import create_app
from app.runs import service as services
from app.store.models import Run
from kdcore.registry import METHODS

KD_KIND = KD_KINDS[0]


def chart_spec(doc, chart_id: str) -> dict:
    return json.loads(doc.by_id(f"{chart_id}-spec").text())


def test_a_run_with_a_validation_split_draws_its_validation_curves_beside_the_test_curves(client, db):
    run = add_run(db, STUDENT_KIND, validation=0.1)
    doc = well_formed(client.get(f"/runs/{run.id}").text)
    assert [s["key"] for s in chart_spec(doc, "accuracy-chart")["series"]] == ["test_accuracy", "val_accuracy"]
    assert chart_spec(doc, "loss-chart")["series"][-1]["key"] == "val_loss"
    plain = well_formed(client.get(f"/runs/{add_run(db, STUDENT_KIND).id}").text)
    assert [s["key"] for s in chart_spec(plain, "accuracy-chart")["series"]] == ["test_accuracy"]


def test_completed_run_page_shows_curves_results_and_downloads(client, db):
    teacher = add_run(db, TEACHER_KIND, parameters=1_000_000)
    run = add_run(db, KD_KIND, teacher=teacher.id, parameters=250_000, accuracy=0.8, epochs=4)
    doc = well_formed(client.get(f"/runs/{run.id}").text)
    loss = chart_spec(doc, "loss-chart")
    keys = [s["key"] for s in loss["series"]]
    assert keys == ["train_loss", *(f"train_terms.{t}" for t in METHODS[KD_KIND].loss_terms), "test_loss"]
    assert all(s["x"] == [1, 2, 3, 4] for s in loss["series"]) and loss["log"] is True
    accuracy = chart_spec(doc, "accuracy-chart")
    assert accuracy["series"][0]["y"][-1] == pytest.approx(0.8) and accuracy["yFormat"] == ".1%"
    assert "data-live" in doc.by_id("loss-chart").attrs
    assert "data-events" not in doc.by_id("run-live").attrs  # finished: nothing to stream
    summary = doc.by_id("run-summary")
    assert summary.find("span", class_="badge").attrs["data-status"] == "completed"
    stats = summary.find(class_="stats").text()
    assert "80.0%" in stats and "4.0×" in stats and "250k" in stats
    assert doc.by_id("teacher-link").attrs["href"] == f"/runs/{teacher.id}"
    hrefs = {a.attrs["href"] for a in summary.find_all("a")}
    assert {f"/api/runs/{run.id}/checkpoint", f"/api/runs/{run.id}/epochs.csv"} <= hrefs
    assert doc.find(id="cancel-run") is None
    config = doc.by_id("run-config").text()
    assert "Temperature" in config and "synthetic" in config


def test_teacher_page_offers_to_distil_from_it(client, db):
    teacher = add_run(db, TEACHER_KIND)
    doc = well_formed(client.get(f"/runs/{teacher.id}").text)
    links = [a.attrs["href"] for a in doc.by_id("run-summary").find_all("a")]
    assert f"/launch?kind={KD_KIND}&teacher_run_id={teacher.id}" in links
    form = well_formed(client.get(f"/launch?kind={KD_KIND}&teacher_run_id={teacher.id}").text)
    assert form.by_id("in-teacher_run_id").find("option", selected=True).attrs["value"] == str(teacher.id)


def test_running_run_page_streams_and_can_be_cancelled(client, db):
    run = add_run(db, STUDENT_KIND, status="running", epochs=5)
    doc = well_formed(client.get(f"/runs/{run.id}").text)
    assert doc.by_id("run-live").attrs["data-events"] == f"/runs/{run.id}/events?after=1"
    bars = doc.by_id("run-progress").find_all(role="progressbar")
    assert [b.attrs["aria-label"] for b in bars] == ["Run progress", "Progress within the epoch"]
    assert bars[1].attrs["aria-valuenow"] == "50"  # step 5 of 10
    button = doc.by_id("cancel-run")
    assert button.attrs["hx-post"] == f"/runs/{run.id}/cancel" and button.attrs["hx-target"] == "#run-summary"
    response = client.post(f"/runs/{run.id}/cancel", headers={"HX-Request": "true"})
    fragment = well_formed(response.text)
    assert response.status_code == 200 and fragment.find("html") is None
    assert fragment.find("span", class_="badge").text() == "cancelling…"
    assert fragment.find(id="cancel-run") is None


def test_cancel_queued_run_and_conflicts(client, db):
    run = add_run(db, STUDENT_KIND, status="queued")
    plain = client.post(f"/runs/{run.id}/cancel", follow_redirects=False)
    assert plain.status_code == 303 and plain.headers["location"] == f"/runs/{run.id}"
    db.refresh(run)
    assert run.status == "cancelled"
    again = well_formed(client.post(f"/runs/{run.id}/cancel", headers={"HX-Request": "true"}).text)
    assert "already cancelled" in again.find(class_="error", role="alert").text()
    assert again.find(id="retry-run").attrs["hx-post"] == f"/runs/{run.id}/retry"
    retried = client.post(f"/runs/{run.id}/retry", headers={"HX-Request": "true"})
    assert retried.headers["HX-Refresh"] == "true"
    db.refresh(run)
    assert run.status == "queued"


@pytest.mark.parametrize("refusal", ["teacher deleted", "queue full"])
def test_a_refused_retry_says_why_beside_the_buttons(tmp_path, refusal):
    with TestClient(create_app(replace(make_settings(tmp_path), max_queued=1))) as client, session_of(client) as db:
        teacher = add_run(db, TEACHER_KIND)
        run = add_run(db, KD_KIND, status="failed", teacher=teacher.id, error="worker lost")
        if refusal == "teacher deleted":
            services.delete_run(db, teacher.id)
            reason = f"its teacher run {teacher.id} no longer exists"
        else:
            add_run(db, STUDENT_KIND, status="queued")
            reason = "the queue holds 1 runs and its limit is 1"
        response = client.post(f"/runs/{run.id}/retry", headers={"HX-Request": "true"})
        # No reload (which would drop the message): the summary comes back with the reason beside Retry.
        assert response.status_code == 200 and "HX-Refresh" not in response.headers
        actions = well_formed(response.text).find(class_="actions")
        assert actions.find(class_="error", role="alert").text().startswith(f"Not retried: {reason}")
        assert actions.find(id="retry-run") is not None
        db.refresh(run)
        assert run.status == "failed"


def test_delete_goes_to_the_leaderboard_and_says_why_when_refused(client, db):
    running = add_run(db, STUDENT_KIND, status="running", epochs=5)
    assert well_formed(client.get(f"/runs/{running.id}").text).find(id="delete-run") is None  # cancel it first
    teacher = add_run(db, TEACHER_KIND)
    waiting = add_run(db, KD_KIND, status="queued", teacher=teacher.id)
    button = well_formed(client.get(f"/runs/{teacher.id}").text).by_id("delete-run")
    assert button.attrs["hx-post"] == f"/runs/{teacher.id}/delete" and button.attrs["hx-target"] == "#run-summary"
    assert button.attrs["hx-confirm"].startswith(f"Delete run #{teacher.id}")

    refused = client.post(f"/runs/{teacher.id}/delete", headers={"HX-Request": "true"})
    actions = well_formed(refused.text).find(class_="actions")
    assert actions.find(class_="error", role="alert").text() == \
        f"Not deleted: run {teacher.id} is the teacher of active runs {waiting.id}; cancel them first"
    assert "HX-Redirect" not in refused.headers and db.get(Run, teacher.id) is not None

    deleted = client.post(f"/runs/{waiting.id}/delete", headers={"HX-Request": "true"})
    assert deleted.status_code == 200 and deleted.headers["HX-Redirect"] == "/"
    plain = client.post(f"/runs/{teacher.id}/delete", follow_redirects=False)
    assert plain.status_code == 303 and plain.headers["location"] == "/"
    assert client.get(f"/runs/{teacher.id}").status_code == 404
    assert client.post(f"/runs/{teacher.id}/delete").status_code == 404


def test_failed_run_shows_its_error(client, db):
    run = add_run(db, STUDENT_KIND, status="failed", error="NonFiniteLoss: loss became nan at epoch 2")
    doc = well_formed(client.get(f"/runs/{run.id}").text)
    assert doc.by_id("run-error").text() == "NonFiniteLoss: loss became nan at epoch 2"
    assert doc.find(id="loss-chart")  # the empty chart says it waits for epochs
    assert doc.by_id("loss-chart").parent.find(class_="chart-empty").text().startswith("Waiting")


def test_missing_run_is_an_html_404(client):
    for url in ("/runs/999", "/runs/0", f"/runs/{2**63}"):
        response = client.get(url)
        assert response.status_code in (404, 422), url
    response = client.get("/runs/999")
    assert response.status_code == 404 and "text/html" in response.headers["content-type"]
    assert "does not exist" in well_formed(response.text).find("main").text()
    assert client.post("/runs/999/cancel").status_code == 404


def test_event_stream_of_a_finished_run_sends_the_missing_epochs_then_ends(client, db):
    run = add_run(db, STUDENT_KIND, epochs=3)
    with client.stream("GET", f"/runs/{run.id}/events?after=1") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = read_events(response.iter_lines())
    epochs = [(json.loads(data)["epoch"], event_id) for event, data, event_id in events if event == "epoch"]
    assert epochs == [(2, "2"), (3, "3")]
    # The first summary is always sent: the page may have been drawn before the run changed state.
    assert [event for event, _, _ in events].count("summary") == 1
    assert events[-1][:2] == ("end", "completed")
    with client.stream("GET", f"/runs/{run.id}/events", headers={"Last-Event-ID": "3"}) as response:
        assert [e for e in read_events(response.iter_lines()) if e[0] == "epoch"] == []  # a reconnect resumes after its last id


def test_event_stream_bounds_last_event_id_like_after(client, db):
    run = add_run(db, STUDENT_KIND, epochs=3)
    # 20 digits overflowed SQLite's integer mid-stream; 5,000 digits (past Python's int parsing limit) was a 500.
    for header in ("1" * 20, "9" * 5000, str(2**62 + 1), "-1", "3x"):
        response = client.get(f"/runs/{run.id}/events", headers={"Last-Event-ID": header})
        assert response.status_code == 422, header
        assert [e["loc"] for e in response.json()["detail"]] == [["header", "last-event-id"]], header
        assert len(response.content) < 1000  # the answer does not echo the 5,000 digits
        assert client.get(f"/runs/{run.id}/events?after={header}").status_code == 422, header
    with client.stream("GET", f"/runs/{run.id}/events", headers={"Last-Event-ID": str(2**62)}) as response:
        events = read_events(response.iter_lines())
    assert "epoch" not in [event for event, _, _ in events]  # the largest id is taken: no epoch after it
    assert events[-1][:2] == ("end", "completed")


def test_event_stream_follows_a_running_run_until_it_ends(client, db):
    run = add_run(db, STUDENT_KIND, status="running", epochs=2)
    finished = threading.Event()

    def finish_training():
        # Another session, as the worker would: one more epoch, then the run completes.
        with session_of(client) as worker_db:
            stored = worker_db.get(Run, run.id)
            add_epoch(worker_db, stored, 2, accuracy=0.9)
            stored.status, stored.final_accuracy, stored.parameters = "completed", 0.9, 1000
            worker_db.add(stored)
            worker_db.commit()
        finished.set()

    with client.stream("GET", f"/runs/{run.id}/events?after=1") as response:
        lines = response.iter_lines()
        progress = read_until(lines, "progress")
        assert "epoch 2/2" in progress and "step 5/10" in progress
        threading.Thread(target=finish_training).start()
        rest = read_events(lines)
    assert finished.is_set()
    kinds = [event for event, _, _ in rest]
    last_summary = max(i for i, kind in enumerate(kinds) if kind == "summary")
    assert kinds.index("epoch") < last_summary < kinds.index("end")
    summary = well_formed(rest[last_summary][1])
    assert summary.find("span", class_="badge").attrs["data-status"] == "completed"
    assert "90.0%" in summary.find(class_="stats").text()


def test_event_stream_of_a_missing_run(client):
    assert client.get("/runs/0/events").status_code in (404, 422)
    with client.stream("GET", "/runs/12345/events") as response:
        assert read_events(response.iter_lines()) == [("end", "gone", None)]


def test_compare_overlays_runs_and_lists_differing_fields(client, db):
    teacher = add_run(db, TEACHER_KIND, accuracy=0.7, lr=0.01)
    student = add_run(db, KD_KIND, accuracy=0.75, teacher=teacher.id)
    doc = well_formed(client.get(f"/compare?run={teacher.id}&run={student.id}&run=999").text)
    accuracy = next(json.loads(s.text()) for s in doc.find_all("script", type="application/json")
                    if json.loads(s.text()).get("title") == "Test accuracy")
    assert [s["name"] for s in accuracy["series"]] == [f"#{teacher.id} {TEACHER_KIND}", f"#{student.id} {KD_KIND}"]
    assert accuracy["series"][0]["color"] != accuracy["series"][1]["color"]
    diff_rows = {r.find("td").text(): [td.text() for td in r.find_all("td")[1:]]
                 for r in doc.by_id("config-diff").find("tbody").find_all("tr")}
    assert diff_rows["kind"] == [TEACHER_KIND, KD_KIND]
    assert diff_rows["Learning rate"] == ["0.01", "0.001"]
    assert diff_rows["teacher run"] == ["—", f"#{teacher.id}"]
    assert "Dataset" not in diff_rows  # same in both: folded away
    finals = chart_spec(doc, "finals-chart")["series"][0]
    assert finals["y"] == [pytest.approx(0.7), pytest.approx(0.75)]
    table = [tr.attrs["data-run-id"] for tr in doc.by_id("compare-runs").find("tbody").find_all("tr")]
    assert table == [str(teacher.id), str(student.id)]
    assert "run 999" in doc.find(class_="error", role="alert").text()
    ticked = [i.attrs["value"] for i in doc.by_id("pick-runs").find_all("input", checked=True)]
    assert sorted(ticked) == sorted([str(teacher.id), str(student.id)])
    assert "hx-trigger" not in doc.by_id("compare-body").attrs  # all finished: no refresh


def test_compare_an_experiment_refreshes_while_it_runs(client, db):
    experiment = add_experiment(db)
    add_run(db, TEACHER_KIND, experiment=experiment.id)
    add_run(db, STUDENT_KIND, status="running", experiment=experiment.id)
    add_run(db, STUDENT_KIND)  # not in the experiment
    doc = well_formed(client.get(f"/compare?experiment={experiment.id}").text)
    assert len(doc.by_id("compare-runs").find("tbody").find_all("tr")) == 2
    body = doc.by_id("compare-body")
    assert body.attrs["hx-select"] == "#compare-body" and body.attrs["hx-trigger"].startswith("every")
    # The refresh keeps each chart element (app.js redraws it in place), so a zoomed chart stays zoomed.
    charts = body.find_all(data_chart=True)
    assert charts and all("hx-preserve" in c.attrs and c.attrs.get("id") for c in charts)
    chosen = doc.by_id("in-experiment").find("option", selected=True)
    assert chosen.attrs["value"] == str(experiment.id)


def test_compare_empty_state(client):
    doc = well_formed(client.get("/compare").text)
    assert "Pick runs to compare" in doc.by_id("compare-empty").text()
    assert doc.find(id="config-diff") is None
    assert well_formed(client.get("/compare?experiment=77&run=abc").text).by_id("compare-empty")


def test_event_stream_of_a_long_run_ends_now_and_then_for_a_reconnect(client, db, monkeypatch):
    import app.runs.events as run_events

    monkeypatch.setattr(run_events, "STREAM_MAX_S", 1.0)
    run = add_run(db, STUDENT_KIND, status="running", epochs=5)
    started = time.monotonic()
    with client.stream("GET", f"/runs/{run.id}/events") as response:
        text = "".join(response.iter_text())
    assert time.monotonic() - started < 5  # a shutting-down server is not held open by the page
    assert text.startswith(f"retry: {run_events.RETRY_MS}")
    assert "event: end" not in text and "event: progress" in text  # the browser reconnects and resumes


def test_run_page_lists_the_recipe_and_the_methods_own_hyperparameters(client, db):
    run = add_run(db, "dkd", status="queued", schedule="step", milestones=(150, 180, 210), params={"beta": 6})
    doc = well_formed(client.get(f"/runs/{run.id}").text)
    text = doc.text()
    assert "Milestones 150, 180, 210" in text and "Beta 6" in text and "Architecture tutorial_student" in text
