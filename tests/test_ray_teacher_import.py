"""An imported teacher on the Ray executor: the upload travels to the node through the object store, the
checkpoint the node writes comes back into the server's runs directory (there are no epochs to carry it), and
the worker's writer records its checksum, as on the local pool (tests/test_teacher_import_api.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")

from kdcore.data.catalog import file_sha256  # noqa: E402
from kdcore.training.run_files import CHECKPOINT  # noqa: E402
from tests.app_fixtures import app, app_settings, client  # noqa: E402,F401
from tests.test_ray_executor import executor, local_ray, ray_session  # noqa: E402,F401
from tests.test_teacher_import_api import post_import, state_dict_file  # noqa: E402
from tests.test_worker import wait_finished  # noqa: E402


def test_an_import_completes_on_ray_with_its_checkpoint_back(client, executor, app_settings):
    content, _ = state_dict_file("tutorial_student")
    response = post_import(client, content, "ray teacher.pth")
    assert response.status_code == 201, response.text
    run = wait_finished(client, response.json()["id"], timeout=150)
    assert run["status"] == "completed", run["error"]
    assert run["worker"].startswith("ray:") and 0 <= run["final_accuracy"] <= 1
    checkpoint = app_settings.runs_dir / str(run["id"]) / CHECKPOINT
    assert run["checkpoint_sha256"] == file_sha256(checkpoint)
    assert not (checkpoint.parent / "upload").exists()
