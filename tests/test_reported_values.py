"""A learnt distillation hyperparameter in the curves: CTKD's temperature, trained, stored through the
executors' write path, drawn on the run page on a chart of its own (not among the losses) and on the
compare page; /api/methods says which terms are reported values and which methods ask for views."""

from __future__ import annotations

import json

import pytest
from page_fixtures import add_run, client, db, well_formed  # noqa: F401  (client and db are fixtures)

from app.executors.records import _store_epoch_row
from kdcore.config import RunConfig
from kdcore.training.engine import train
from tests.torch_threads import one_thread  # noqa: F401  (autouse: one thread here)


def _spec(doc, chart_id):
    return json.loads(doc.by_id(f"{chart_id}-spec").text())


def test_ctkds_learnt_temperature_is_drawn_per_epoch_apart_from_the_losses(client, db, tmp_path, teacher_checkpoint):
    epochs = []
    train(RunConfig(kind="ctkd", dataset="synthetic", subset=40, epochs=2, batch_size=20, device="cpu"),
          out_dir=tmp_path, teacher_checkpoint=teacher_checkpoint, on_epoch=epochs.append)
    learnt = [m.train_terms["temperature"] for m in epochs]
    assert learnt[0] != learnt[1] and all(1 < t < 21 for t in learnt)
    teacher = add_run(db, "teacher")
    run = add_run(db, "ctkd", teacher=teacher.id, epochs=2)
    for metrics in epochs:
        _store_epoch_row(db, run.id, {"epoch": metrics.epoch, "train_loss": metrics.train_loss,
                                      "train_terms": metrics.train_terms, "test_loss": metrics.test_loss,
                                      "test_accuracy": metrics.test_accuracy, "seconds": metrics.seconds,
                                      "images_per_sec": metrics.images_per_sec})
    db.commit()

    doc = well_formed(client.get(f"/runs/{run.id}").text)
    reported = _spec(doc, "reported-chart")
    assert [s["key"] for s in reported["series"]] == ["train_terms.temperature"]
    assert reported["title"] == "Temperature (epoch mean)"  # one series has no legend: the title names it
    assert reported["series"][0]["x"] == [1, 2]
    assert reported["series"][0]["y"] == pytest.approx(learnt) and reported["log"] is False
    assert "data-live" in doc.by_id("reported-chart").attrs  # a running run's new epochs reach it too
    losses = [s["key"] for s in _spec(doc, "loss-chart")["series"]]
    assert losses == ["train_loss", "train_terms.ce", "train_terms.kd", "test_loss"]

    kd = add_run(db, "kd", teacher=teacher.id)
    compare = well_formed(client.get(f"/compare?run={run.id}&run={kd.id}").text)
    charts = {spec["title"]: spec for spec in (json.loads(s.text()) for s in
                                               compare.find_all("script", type="application/json")) if "title" in spec}
    assert "Train temperature" not in charts
    temperature = charts["Temperature (epoch mean)"]
    assert [s["name"] for s in temperature["series"]] == [f"#{run.id} ctkd"] and temperature["log"] is False
    assert temperature["series"][0]["y"] == pytest.approx(learnt)

    assert client.get(f"/api/runs/{run.id}/epochs").json()["items"][1]["train_terms"]["temperature"] == \
        pytest.approx(learnt[1])


def test_a_plain_run_page_has_no_reported_values_chart(client, db):
    doc = well_formed(client.get(f"/runs/{add_run(db, 'kd', teacher=add_run(db, 'teacher').id).id}").text)
    assert doc.find(id="reported-chart") is None and doc.find(id="loss-chart") is not None


def test_the_methods_api_lists_reported_values_and_views(client):
    methods = {m["name"]: m for m in client.get("/api/methods").json()["items"]}
    assert methods["ctkd"]["reported"] == ["temperature"] and methods["ctkd"]["views"] == []
    assert methods["mlkd"]["views"] == ["strong"] and methods["mlkd"]["reported"] == []
    assert methods["kd"]["reported"] == [] and methods["kd"]["views"] == []
