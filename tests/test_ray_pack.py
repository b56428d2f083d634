"""The Ray executor's packs: compatible queued runs train together as one Ray task (app.executors.ray.pack),
each with its own row, epochs, files and cancel. On a real local Ray (CPU, synthetic data)."""

from __future__ import annotations

from dataclasses import replace

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")

from app.executors.ray.executor import RayExecutor  # noqa: E402
from kdcore.training.run_files import CHECKPOINT  # noqa: E402
from tests.app_fixtures import app, app_settings, client, wait_for  # noqa: E402,F401
from tests.test_worker_pack import PACKED_RUN, _epochs, _queue, _run  # noqa: E402

FINISHED = ("completed", "failed", "cancelled")


@pytest.fixture
def local_ray():
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 1024 * 1024)
    yield
    if started:
        ray.shutdown()


def test_three_runs_train_as_one_task_and_one_is_cancelled_midway(local_ray, client, app, app_settings):
    ids = [_queue(client, seed=seed) for seed in (1, 2, 3)]
    executor = RayExecutor(replace(app_settings, executor="ray", pack=3), engine=app.state.engine)
    executor.start()
    try:
        assert executor.capacity.slots == 2 and executor.pack_size() == 3
        # Two slots: three runs running at once can only be one pack.
        wait_for(lambda: all(_run(client, i)["status"] == "running" for i in ids), 90, what="the pack to start")
        victim = ids[1]
        wait_for(lambda: _epochs(client, victim), 120, what="a first epoch of the run to cancel")
        assert client.post(f"/api/runs/{victim}/cancel").status_code in (200, 202)
        runs = {i: wait_for(lambda i=i: (r := _run(client, i))["status"] in FINISHED and r, 240,
                            what=f"run {i} to finish") for i in ids}
        assert executor.placement(ids[0]) is None  # forgotten once the pack ended
    finally:
        executor.stop()
    cancelled = runs[victim]
    assert cancelled["status"] == "cancelled" and cancelled["error"] == "cancelled by user", cancelled
    assert 1 <= len(_epochs(client, victim)) < PACKED_RUN["epochs"]
    for i in (ids[0], ids[2]):
        run = runs[i]
        assert run["status"] == "completed", (i, run["error"])
        assert run["worker"].startswith("ray:")
        assert _epochs(client, i) == list(range(1, PACKED_RUN["epochs"] + 1))
        # The checkpoint came back from the node's scratch folder into the server's runs directory.
        assert (app_settings.runs_dir / str(i) / CHECKPOINT).is_file()
