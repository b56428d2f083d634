"""Selection without peeking, as a person does it: train a teacher with a validation split from the launch form,
read its best validation epoch on its page, pick it in the teacher picker, and be told why a teacher without a
split offers no "best" weights."""

from __future__ import annotations

import re

from browser_support import KD_KIND, SCREENSHOTS, TEACHER_KIND, choose_kind


def test_best_weights_need_a_teacher_trained_with_a_validation_split(page, live_server, trained_pair):
    page.goto(f"{live_server.url}/launch")
    choose_kind(page, TEACHER_KIND)
    page.select_option("#in-dataset", "synthetic")
    page.fill("#in-subset", "200")
    page.fill("#in-epochs", "2")
    page.fill("#in-validation", "0.1")
    page.select_option("#in-device", "cpu")
    page.click("#launch-form button[type=submit]")
    page.wait_for_url(re.compile(r"/runs/\d+$"))
    teacher = int(re.search(r"/runs/(\d+)$", page.url).group(1))
    page.wait_for_selector("#run-summary .badge[data-status=completed]", timeout=240_000)
    assert page.locator("#run-best span").first.text_content() == "Test accuracy at best validation epoch"
    assert re.fullmatch(r"\d+\.\d%", page.locator("#run-best-val strong").inner_text())
    assert live_server.run(teacher)["best_val_accuracy"] is not None
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "run-best-validation-epoch-laptop-light.png"))
    # The teacher trained without a split says its best figure is the optimistic best test epoch.
    page.goto(f"{live_server.url}/runs/{trained_pair['teacher']}")
    assert page.locator("#run-best span").first.text_content() == "Best test epoch (optimistic)"
    assert page.locator("#run-best-val").count() == 0

    page.goto(f"{live_server.url}/launch")
    page.select_option("#in-kind", KD_KIND)
    page.wait_for_selector("#in-teacher_weights")
    options = dict(page.eval_on_selector_all("#in-teacher_run_id option", "os => os.map(o => [o.value, o.text])"))
    assert "best val" in options[str(teacher)] and "200 images" in options[str(teacher)]
    assert "2 epochs" in options[str(teacher)]
    assert "no validation split" in options[str(trained_pair["teacher"])]

    page.select_option("#in-teacher_run_id", str(trained_pair["teacher"]))
    page.select_option("#in-teacher_weights", "best")
    page.select_option("#in-dataset", "synthetic")
    page.fill("#in-subset", "200")
    page.fill("#in-epochs", "1")
    page.select_option("#in-device", "cpu")
    page.click("#launch-form button[type=submit]")
    error = page.wait_for_selector("#err-teacher_weights")
    assert page.url.endswith("/launch") and "validation split" in error.inner_text()
    assert page.input_value("#in-teacher_weights") == "best"
    page.screenshot(path=str(SCREENSHOTS / "launch-best-weights-refused-laptop-light.png"))

    page.select_option("#in-teacher_run_id", str(teacher))
    page.click("#launch-form button[type=submit]")
    page.wait_for_url(re.compile(r"/runs/\d+$"))
    student = int(re.search(r"/runs/(\d+)$", page.url).group(1))
    run = live_server.wait_for(student, timeout=240)
    assert run["status"] == "completed", run["error"]
    assert run["config"]["teacher_weights"] == "best" and run["teacher_run_id"] == teacher
