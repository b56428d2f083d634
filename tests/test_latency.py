"""Latency per network (kdcore.architectures.latency): timed with torch.utils.benchmark, keyed by device and
versions, measured by an idle worker slot on request (POST /api/latency, the networks page's button) and cached."""

from __future__ import annotations

import sys
import time

import pytest
import torch
from app_fixtures import app, app_settings, client, wait_for  # noqa: F401  (fixtures)
from torch import nn

from app.executors import latency as worker_latency
from app.executors.local.pool import WorkerPool
from kdcore.architectures.latency import measure


def tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 30 * 30, 10))


def test_cpu_rows_give_a_median_and_iqr_over_several_blocks():
    rows = measure(tiny(), min_run_time=0.05, cpu_batches=((1, 1), (4, None)), onnx=False)
    assert [(r["target"], r["device"], r["batch"], r["threads"]) for r in rows] == [
        ("cpu", "cpu", 1, 1), ("cpu", "cpu", 4, torch.get_num_threads())]
    for row in rows:
        assert row["median_s"] > 0 and row["iqr_s"] >= 0 and row["blocks"] >= 3 and row["unavailable"] is None
        assert row["calls"] >= row["blocks"]


class Slow(nn.Module):
    def forward(self, images):
        time.sleep(0.06)
        return images


def test_a_call_slower_than_the_budget_stops_early_and_claims_no_spread():
    # Past ten budgets of time no block is added: two calls of 60 ms for a 10 ms budget, too few for an IQR.
    row = measure(Slow(), min_run_time=0.01, cpu_batches=((1, 1),), onnx=False)[0]
    assert row["blocks"] == 2 and row["iqr_s"] is None and row["median_s"] >= 0.06


def test_without_onnxruntime_its_row_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    row = measure(tiny(), min_run_time=0.01, cpu_batches=(), onnx=True)[0]
    assert row["target"] == "onnxruntime-cpu" and row["median_s"] is None
    assert "onnxruntime is not installed" in row["unavailable"]


def test_onnxruntime_times_the_exported_network():
    pytest.importorskip("onnxruntime")  # the deploy extra
    row = measure(tiny(), min_run_time=0.01, cpu_batches=(), onnx=True)[0]
    assert (row["target"], row["batch"], row["threads"], row["unavailable"]) == ("onnxruntime-cpu", 1, 1, None)
    assert row["median_s"] > 0 and row["blocks"] >= 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU here: the CPU rows above are the fallback")
def test_the_gpu_rows_when_a_gpu_is_present():
    rows = measure(tiny(), device="cuda", min_run_time=0.01, cpu_batches=(), gpu_batches=(1, 64), onnx=False)
    assert [(r["target"], r["device"], r["batch"]) for r in rows] == [("cuda", "cuda", 1), ("cuda", "cuda", 64)]
    assert all(r["median_s"] > 0 for r in rows)


def test_bad_requests_are_refused_and_nothing_is_stored(client):
    for body, loc in (({"networks": ["resnet9000"]}, ["body", "networks", 0]),
                      ({"num_classes": 7}, ["body", "num_classes"]), ({"min_run_time": 0}, ["body", "min_run_time"]),
                      ({"min_run_time": "1"}, ["body", "min_run_time"])):
        refused = client.post("/api/latency", json=body)
        assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == loc, refused.json()
    assert client.get("/api/latency").json()["requests"] == []


def test_an_idle_worker_measures_on_request_and_a_new_measurement_replaces_the_old(client, app, app_settings,
                                                                                   monkeypatch):
    # The suite's budget: no ONNX export (tested above) and a batch of 8 for the all-threads row.
    command = worker_latency.measure_command
    monkeypatch.setattr(worker_latency, "measure_command",
                        lambda request, gpu: [*command(request, gpu), "--no-onnx", "--cpu-batch", "8"])
    body = {"networks": ["tutorial_student"], "min_run_time": 0.01}
    first = client.post("/api/latency", json=body)
    assert first.status_code == 202 and first.json()["status"] == "queued"
    assert client.post("/api/latency", json=body).status_code == 409  # one waits already
    pool = WorkerPool(app_settings, gpus=[], engine=app.state.engine)
    pool.start()
    try:
        def finished():
            latest = client.get("/api/latency").json()["requests"][0]
            return latest["status"] in ("completed", "failed") and latest

        assert wait_for(finished, timeout=120, what="the latency request")["status"] == "completed"
        measured = client.get("/api/latency").json()["items"]
        assert [(f["network"], f["target"], f["batch"], f["threads"]) for f in measured] == [
            ("tutorial_student", "cpu", 1, 1), ("tutorial_student", "cpu", 8, torch.get_num_threads())]
        key = measured[0]["key"]
        assert key["device"] == "cpu" and key["torch"] == torch.__version__ and key["device_model"]
        page = client.get("/networks").text
        assert 'data-network="tutorial_student"' in page and key["device_model"] in page
        row = page.split('data-network="tutorial_student"')[1].split("</tr>")[0]
        assert "µs" in row or "ms" in row
    finally:
        pool.stop()
    # Measured again under the same key (the worker stores what its subprocess printed): the figures are replaced,
    # not added to; under another device's key they are kept beside.
    again = client.post("/api/latency", json=body).json()
    request = worker_latency.claim_request(app.state.engine, app_settings, "test")
    assert request.id == again["id"]
    row = {"target": "cpu", "device": "cpu", "batch": 1, "threads": 1, "median_s": 0.5, "iqr_s": 0.1, "blocks": 5,
           "calls": 5, "unavailable": None}
    keys = {"cpu": {"device_model": key["device_model"], "torch": key["torch"], "onnxruntime": key["onnxruntime"]}}
    worker_latency.store(app.state.engine, app_settings, request, {"keys": keys, "networks": {"tutorial_student": [row]}})
    other = {"cpu": {**keys["cpu"], "device_model": "another CPU"}}
    worker_latency.store(app.state.engine, app_settings, request, {"keys": other, "networks": {"tutorial_student": [row]}})
    figures = client.get("/api/latency").json()["items"]
    assert sorted((f["batch"], f["median_s"], f["key"]["device_model"]) for f in figures) == sorted([
        (1, 0.5, key["device_model"]), (1, 0.5, "another CPU"), (8, measured[1]["median_s"], key["device_model"])])


def test_the_networks_page_lists_flops_and_its_button_asks_for_every_network(client):
    page = client.get("/networks").text
    assert "No latency measured here yet." in page and 'id="measure-latency"' in page
    assert client.post("/networks/latency", data={"num_classes": "10"}, follow_redirects=False).status_code == 303
    request = client.get("/api/latency").json()["requests"][0]
    assert (request["status"], request["networks"], request["min_run_time"]) == ("queued", [], 0.5)
    again = client.post("/networks/latency", data={"num_classes": "10"})
    assert again.status_code == 409 and f"latency request {request['id']} is queued already" in again.text
