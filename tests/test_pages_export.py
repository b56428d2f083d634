"""The run page's Deploy card without a browser: what its buttons post, and the card they get back (the ONNX
export already made for the run's checkpoint, so that no exporter runs here; tests/browser/test_export_browser.py
clicks through a real one)."""

from __future__ import annotations

import shutil

from tests.app_fixtures import SYNTHETIC_RUN, app, app_settings, client, session, set_run  # noqa: F401
from tests.page_fixtures import well_formed

HTMX = {"HX-Request": "true"}


def test_the_deploy_card_offers_each_format_and_shows_an_exports_card_with_its_snippets(
        client, session, app_settings, resnet8x4_run, resnet8x4_onnx):
    card, exported = resnet8x4_onnx
    run_id = client.post("/api/runs", json={"kind": "student", "architecture": "resnet8x4", **SYNTHETIC_RUN}).json()["id"]
    page = well_formed(client.get(f"/runs/{run_id}").text)
    assert page.by_id("run-export").find("button") is None  # a queued run has nothing to export
    folder = app_settings.runs_dir / str(run_id)
    folder.mkdir(parents=True)
    shutil.copy(resnet8x4_run[1] / "checkpoint.pt", folder / "checkpoint.pt")
    shutil.copytree(exported, folder / "export" / "onnx")
    set_run(session, run_id, status="completed", checkpoint=str(folder / "checkpoint.pt"),
            final_accuracy=resnet8x4_run[0].final_accuracy)
    buttons = well_formed(client.get(f"/runs/{run_id}").text).by_id("export-buttons").find_all("button")
    assert [b.attrs["value"] for b in buttons] == ["weights", "onnx", "pt2"]
    assert all(b.attrs["hx-post"] == f"/runs/{run_id}/export" for b in buttons)

    fragment = well_formed(client.post(f"/runs/{run_id}/export", data={"format": "onnx"}, headers=HTMX).text)
    shown = fragment.by_id("export-card")
    assert shown.attrs["data-format"] == "onnx"
    assert fragment.by_id("export-download").attrs["href"] == f"/api/runs/{run_id}/export?format=onnx"
    assert fragment.by_id("export-accuracy").text().strip() == fragment.by_id("export-run-accuracy").text().strip()
    snippets = [node.text() for node in fragment.find_all("div", class_="export-snippet")]
    assert "onnxruntime.InferenceSession(\"model.onnx\"" in snippets[0] and "(pixels" not in snippets[0]
    assert "/ 255 - mean) / std" in snippets[0] and "torch.export.load(\"model.pt2\")" in snippets[1]
    assert card["files"]["model.onnx"]["sha256"] in shown.text()

    refused = well_formed(client.post(f"/runs/{run_id}/export", data={"format": "tflite"}, headers=HTMX).text)
    assert "unknown format 'tflite'" in refused.by_id("export-error").text()
