"""A learnt distillation hyperparameter in the run page's curves, as a person watches it: CTKD's
temperature gets a chart of its own, drawn live as the epochs arrive, and stays out of the losses."""

from __future__ import annotations

from browser_support import DRAWN_POINTS

EPOCHS = 3


def test_ctkds_temperature_is_drawn_live_on_a_chart_of_its_own(page, live_server, trained_pair):
    run_id = live_server.api.post("/api/runs", json={
        "kind": "ctkd", "teacher_run_id": trained_pair["teacher"], "dataset": "synthetic", "subset": 200,
        "epochs": EPOCHS, "device": "cpu", "params": {"reversal_epochs": 2}}).json()["id"]
    page.goto(f"{live_server.url}/runs/{run_id}")
    assert page.locator("#reported-chart").count() == 1
    assert live_server.wait_for(run_id, timeout=240)["status"] == "completed"
    # The open page received the epochs through its event stream: the curve holds every one.
    page.wait_for_function(f"() => ({DRAWN_POINTS})('reported-chart')[0] === {EPOCHS}", timeout=15_000)
    assert "Temperature (epoch mean)" in page.locator(".chart-box", has=page.locator("#reported-chart")).text_content()
    legend = [text.text_content() for text in page.locator("#loss-chart .legendtext").all()]
    assert legend == ["train loss (weighted)", "train ce", "train kd", "test loss"]
    assert page.evaluate(DRAWN_POINTS, "loss-chart") == [EPOCHS] * 4
