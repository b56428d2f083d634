"""The launch forms say how long what they would train takes: measured from completed runs of the same
method, network, batch and precision on the same kind of device, scaled to the data size, or an estimate that
says it is one; on a CPU the tutorial experiment's form offers a small subset and says what the whole
dataset would take."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select
from page_fixtures import add_run, client, db, make_settings, well_formed  # noqa: F401  (fixtures)

from app.launch.estimates import PRIOR, Estimator, Planned
from app.launch.pages import CPU_SUBSET
from app.launch.timings import Measured, device_kind
from app.main import create_app
from app.store.models import Epoch
from kdcore.architectures import catalog
from kdcore.config import RunConfig
from tests.app_fixtures import set_run

FLOPS = {name: info["flops"] for name, info in catalog(10).items()}
STUDENT = dict(kind="student", architecture="tutorial_student", batch_size=32, precision="float32")


def measured(images=2000, seconds=3.0, device="cpu", **fields) -> Measured:
    return Measured(**{**STUDENT, **fields}, device=device, images=images, epoch_seconds=seconds)


def planned(images=2000, **fields) -> Planned:
    config = RunConfig(**{"kind": "student", "dataset": "synthetic", "epochs": 5, **fields})
    return Planned(config, images)


@pytest.mark.parametrize("worker, configured, kind", [
    ("host:12:cpu", "auto", "cpu"), ("host:12:gpu0", "auto", "cuda"), ("host:12:gpu1.2", None, "cuda"),
    ("ray:10.0.0.5:3fa2b1c4:gpu0", "auto", "cuda"), ("host:12:gpu0", "cpu", "cpu"), (None, "auto", None)])
def test_the_device_a_run_trained_on(worker, configured, kind):
    assert device_kind(worker, configured) == kind


def test_a_measured_pace_gives_the_time_scaled_to_the_data():
    runs = [measured(seconds=3.0), measured(seconds=3.4), measured(seconds=2.6)]
    estimator = Estimator(runs, "cpu", FLOPS)
    same = estimator.run(planned())
    assert (same.seconds, same.basis) == (pytest.approx(5 * 3.0), "measured")
    assert "3 student runs of tutorial_student at batch 32 on a CPU worker" in same.how
    bigger = estimator.run(planned(images=8000))
    assert (bigger.seconds, bigger.basis) == (pytest.approx(4 * 5 * 3.0), "scaled")
    assert "scaled from 2,000 images" in bigger.how
    # Another method on the same network is timed by those runs, and says so.
    cosine = estimator.run(Planned(RunConfig(kind="cosine", dataset="synthetic", epochs=10), 2000))
    assert cosine.basis == "scaled" and cosine.seconds == pytest.approx(10 * 3.0) and "other methods" in cosine.how

    # A method's pre-stage counts as that many more epochs.
    staged = RunConfig(kind="fsp", dataset="synthetic", epochs=10, params={"init_epochs": 3})
    fsp = estimator.run(Planned(staged, 2000))
    assert fsp.seconds == pytest.approx((10 + 3) * 3.0)


def test_paces_at_two_sizes_give_a_cost_per_epoch_and_one_per_image():
    # 200 images: 2 s an epoch, 2,000: 11 s; so 1 s an epoch and 5 ms an image, not 10 ms an image.
    estimator = Estimator([measured(images=200, seconds=2.0), measured(images=2000, seconds=11.0)], "cpu", FLOPS)
    full = estimator.run(planned(images=50_000))
    assert full.basis == "scaled" and full.seconds == pytest.approx(5 * (1.0 + 0.005 * 50_000))
    assert "scaled from 200 and 2,000 images" in full.how


def test_a_pace_of_another_batch_precision_or_device_is_no_measurement():
    for other in (measured(batch_size=64), measured(precision="bfloat16"), measured(device="cuda")):
        estimate = Estimator([other], "cpu", FLOPS).run(planned())
        assert estimate.basis in ("estimated", "rough") and "measured:" not in estimate.how


def test_without_a_measurement_the_network_size_at_this_machines_pace_is_an_estimate():
    # This CPU ran the student at twice the development machine's time: the teacher is estimated at that pace.
    reference = Estimator([], "cpu", FLOPS).run(planned())
    assert reference.basis == "rough" and "nothing has finished on a CPU worker here yet" in reference.how
    slow = Estimator([measured(seconds=2 * reference.seconds / 5)], "cpu", FLOPS)
    teacher = slow.run(planned(kind="teacher"))
    rough_teacher = Estimator([], "cpu", FLOPS).run(planned(kind="teacher"))
    assert teacher.basis == "estimated" and teacher.seconds == pytest.approx(2 * rough_teacher.seconds)
    assert "tutorial_teacher's size and the pace of 1 runs measured on a CPU worker" in teacher.how
    # The development machine's pace: the tutorial experiment on 5,000 images, as measured there (379.8 s).
    configs = [RunConfig(kind=k, dataset="cifar10", subset=5000) for k in ("teacher", "student", "kd", "cosine", "fitnet")]
    experiment = Estimator([], "cpu", FLOPS).total(
        Planned(c, 5000, FLOPS["tutorial_teacher"] if c.method.needs_teacher else None) for c in configs)
    assert experiment.seconds == pytest.approx(379.8, rel=0.05) and PRIOR["cpu"].flops_per_second > 0


def test_the_run_form_says_the_time_measured_here_and_follows_the_form(client, db):
    done = [add_run(db, "student", accuracy=0.5, epochs=3, seed=seed) for seed in (1, 2)]
    for run in done:
        set_run(db, run.id, worker="test:0:cpu")
        for epoch in db.exec(select(Epoch).where(Epoch.run_id == run.id)).all():
            epoch.seconds = 2.0
            db.add(epoch)
    db.commit()
    form = {"kind": "student", "dataset": "synthetic", "subset": "200", "epochs": "4", "device": "cpu"}
    page = well_formed(client.get("/launch", params=form).text)
    text = page.by_id("run-estimate-text")
    assert text.attrs["data-basis"] == "measured" and text.attrs["data-seconds"] == "8"
    assert "Expected training time: about 8s on a CPU worker" in text.text()
    assert page.by_id("run-estimate").attrs["hx-get"] == "/fragments/launch-estimate?form=run"
    longer = well_formed(client.get("/fragments/launch-estimate", params={"form": "run", **form, "epochs": "10",
                                                                          "subset": "400"}).text)
    assert longer.by_id("run-estimate-text").attrs["data-seconds"] == "40"
    assert longer.by_id("run-estimate-text").attrs["data-basis"] == "scaled"
    unreadable = well_formed(client.get("/fragments/launch-estimate", params={"form": "run", **form, "epochs": "0"}).text)
    assert "fill in the form" in unreadable.by_id("run-estimate-text").text()


def test_the_study_form_adds_up_its_runs(client, db):
    page = well_formed(client.get("/launch").text)
    study = page.by_id("study-estimate-text")
    assert study.attrs["data-basis"] == "rough" and "for its 7 runs one after another" in study.text()
    assert "Estimated training time" in study.text()
    fewer = well_formed(client.get("/fragments/launch-estimate", params=[
        ("form", "study"), ("methods", "student"), ("seeds", "1"), ("dataset", "synthetic"), ("epochs", "2")]).text)
    assert "for its" not in fewer.by_id("study-estimate-text").text()
    assert int(fewer.by_id("study-estimate-text").attrs["data-seconds"]) < int(study.attrs["data-seconds"])


def test_on_a_cpu_the_tutorial_experiment_form_offers_a_subset_and_says_what_all_the_data_takes(tmp_path):
    pool = SimpleNamespace(slots=[SimpleNamespace(gpu=None)], start=lambda: None, stop=lambda: None)
    with TestClient(create_app(make_settings(tmp_path), worker_pool=pool)) as cpu:
        page = well_formed(cpu.get("/launch").text)
    assert page.by_id("exp-in-dataset").find("option", selected=True).attrs["value"] == "cifar10"
    assert page.by_id("exp-in-subset").attrs["value"] == str(CPU_SUBSET)
    small = page.by_id("experiment-estimate-text")
    assert "for its 5 runs one after another on a CPU worker" in small.text()
    full = page.by_id("experiment-estimate-full")
    assert "all 50,000 images take about" in full.text()
    hours = full.find("strong").text()
    assert hours.startswith("about ") and "h" in hours  # hours on a CPU
    assert int(small.attrs["data-seconds"]) < 3600 / 2


def test_on_a_gpu_the_tutorial_experiment_form_keeps_the_whole_dataset(tmp_path):
    pool = SimpleNamespace(slots=[SimpleNamespace(gpu="0")], start=lambda: None, stop=lambda: None)
    with TestClient(create_app(make_settings(tmp_path), worker_pool=pool)) as gpu:
        page = well_formed(gpu.get("/launch").text)
    assert page.by_id("exp-in-subset").attrs["value"] == ""
    assert page.find(id="experiment-estimate-full") is None
    assert "on a GPU worker" in page.by_id("experiment-estimate-text").text()
