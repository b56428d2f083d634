"""The run page's Deploy card, as a person uses it: a click exports the completed run to ONNX, and the card shows
the file's own test accuracy beside the run's, the parity figure, the snippets that run it, and a download."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

pytest.importorskip("onnxruntime", reason="the onnx format needs the deploy extra")


def test_export_onnx_from_the_run_page_shows_its_card_and_downloads_it(page, live_server, trained_pair, tmp_path):
    run_id = trained_pair["teacher"]
    run = live_server.api.get(f"/api/runs/{run_id}").json()
    page.goto(f"{live_server.url}/runs/{run_id}")
    assert page.locator("#export-none").is_visible()
    page.click("#export-onnx")
    page.wait_for_selector("#export-card", timeout=180_000)  # a subprocess: torch, the exporter, the check
    # The file's accuracy, shown as the run's final accuracy is shown at the top of the page.
    final = page.locator("#run-summary .stats > div", has_text="Final accuracy").locator("strong").text_content()
    assert page.text_content("#export-accuracy").strip() == final.strip() == page.text_content("#export-run-accuracy").strip()
    assert float(page.text_content("#export-parity")) < 1e-4
    snippets = page.locator(".export-snippet").all_text_contents()
    assert any("onnxruntime.InferenceSession(\"model.onnx\"" in text for text in snippets)
    assert any("torch.export.load(\"model.pt2\")" in text for text in snippets)
    page.screenshot(path=str(tmp_path / "export.png"), full_page=True)
    with page.expect_download() as download:
        page.click("#export-download")
    with zipfile.ZipFile(io.BytesIO(download.value.path().read_bytes())) as bundle:
        card = json.loads(bundle.read(f"run-{run_id}-onnx/card.json"))
        assert bundle.read(f"run-{run_id}-onnx/model.onnx")
    assert card["accuracy"]["test_accuracy"] == run["final_accuracy"] and card["run"]["run_id"] == run_id
