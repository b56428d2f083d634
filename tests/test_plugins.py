"""Third parties add methods and architectures without forking: the example package in
tests/plugin_example is installed (into a folder of its own) and its method and network appear in the
CLI, the API and the launch form, and train."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.live_server import LiveServer

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "tests" / "plugin_example"


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> str:
    target, source = tmp_path_factory.mktemp("plugin-site"), tmp_path_factory.mktemp("plugin-src") / "example"
    shutil.copytree(EXAMPLE, source)  # setuptools builds in the source tree: keep its build/ out of the checkout
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), str(source)], capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        pytest.fail(f"installing the example plugin failed:\n{result.stderr[-3000:]}")
    return str(target)


def _env(plugin_path: str, tmp_path: Path) -> dict[str, str]:
    # The package is installed beside, not into, this environment: PYTHONPATH puts it in reach, the way
    # `pip install kd-example-plugin` would. Its own cache folder keeps the architecture catalog apart.
    return {**os.environ, "PYTHONPATH": os.pathsep.join([plugin_path, os.environ.get("PYTHONPATH", "")]),
            "KD_CACHE_DIR": str(tmp_path / "cache"), "CUDA_VISIBLE_DEVICES": ""}


def _kd(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kdcore.cli", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600)


def test_the_plugin_method_and_architecture_reach_the_cli_and_train(plugin_path, tmp_path, teacher_checkpoint):
    env = _env(plugin_path, tmp_path)
    help_text = _kd(["train", "--help"], env).stdout
    assert "logit_mse" in help_text and "--weight" in help_text
    result = _kd(["train", "logit_mse", "--dataset", "synthetic", "--subset", "200", "--epochs", "1", "--device",
                  "cpu", "--arch", "tiny_cnn", "--weight", "0.25", "--teacher", str(teacher_checkpoint),
                  "--out", str(tmp_path / "run")], env)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["kind"] == "logit_mse" and summary["parameters"] == 8 * 27 + 8 + 16 * 72 + 16 + 2570
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(metrics[0]["train_terms"]) == {"ce", "logit_mse"}
    # Its method with an extra view and a learnt weight (the catalog is cached by now: a few seconds).
    result = _kd(["train", "strong_view_kd", "--dataset", "synthetic", "--subset", "40", "--epochs", "2",
                  "--batch-size", "20", "--device", "cpu", "--arch", "tiny_cnn", "--teacher", str(teacher_checkpoint),
                  "--out", str(tmp_path / "viewed")], env)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "viewed" / "metrics.json").read_text())
    assert set(metrics[0]["train_terms"]) == {"ce", "strong_kd", "kd_weight"}
    # The learnt weight moved, and the strong view was trained on (its KD term is not zero).
    assert metrics[0]["train_terms"]["kd_weight"] != metrics[1]["train_terms"]["kd_weight"]
    assert metrics[0]["train_terms"]["strong_kd"] > 0
    # Without the package, the method is unknown and nothing is written.
    plain = {**env, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    missing = _kd(["train", "logit_mse", "--dataset", "synthetic", "--out", str(tmp_path / "x")], plain)
    assert missing.returncode != 0 and not (tmp_path / "x").exists()


def test_a_plugin_method_with_a_pre_stage_trains_it_first_from_the_cli(plugin_path, tmp_path, teacher_checkpoint):
    env = _env(plugin_path, tmp_path)
    result = _kd(["train", "warm_projector", "--dataset", "synthetic", "--subset", "100", "--epochs", "1",
                  "--device", "cpu", "--projector-epochs", "2", "--teacher", str(teacher_checkpoint),
                  "--out", str(tmp_path / "run")], env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [m["epoch"] for m in json.loads((tmp_path / "run" / "metrics.json").read_text())] == [1]
    probe = ("import json, sys; from kdcore.training.checkpoint import load_checkpoint; "
             "stage = load_checkpoint(sys.argv[1])['stage']; "
             "print(json.dumps([stage['name'], [m['epoch'] for m in stage['metrics']], "
             "sorted(stage['metrics'][0]['train_terms'])]))")
    found = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "run" / "checkpoint.pt")], capture_output=True,
                           text=True, env=env, cwd=ROOT, timeout=120)
    assert json.loads(found.stdout) == ["warmup", [1, 2], ["hint"]], found.stderr[-2000:]


def test_the_plugin_method_reaches_the_api_and_the_launch_form(plugin_path, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", _env(plugin_path, tmp_path)["PYTHONPATH"])
    monkeypatch.setenv("KD_CACHE_DIR", str(tmp_path / "cache"))
    server = LiveServer(tmp_path, worker=False)
    try:
        methods = {m["name"]: m for m in server.api.get("/api/methods").json()["items"]}
        assert methods["logit_mse"]["params"]["properties"]["weight"]["default"] == 0.5
        assert methods["strong_view_kd"]["views"] == ["strong"] and methods["strong_view_kd"]["reported"] == ["kd_weight"]
        architectures = {a["name"] for a in server.api.get("/api/architectures").json()["items"]}
        assert "tiny_cnn" in architectures
        form = server.api.get("/launch?kind=logit_mse").text
        assert 'id="in-weight"' in form and '<option value="tiny_cnn"' in form
        teacher = server.api.post("/api/runs", json={"kind": "teacher", "dataset": "synthetic"}).json()
        run = server.api.post("/api/runs", json={"kind": "logit_mse", "dataset": "synthetic", "architecture": "tiny_cnn",
                                                 "teacher_run_id": teacher["id"], "params": {"weight": 2.0}})
        assert run.status_code == 201, run.text
        assert run.json()["config"]["params"] == {"ce_weight": 1.0, "weight": 2.0}
        bad = server.api.post("/api/runs", json={"kind": "logit_mse", "dataset": "synthetic",
                                                 "teacher_run_id": teacher["id"], "params": {"weight": -1}})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "params", "weight"]
    finally:
        server.stop()


def test_a_plugin_method_with_per_image_buffers_trains_and_keeps_them(plugin_path, tmp_path):
    """temporal_ensemble (Method.indexed) gets each batch's dataset indices and keeps one ensemble row per image:
    after two epochs every image was visited twice, and its row is a probability vector."""
    import torch

    from kdcore.training.checkpoint import load_checkpoint

    env = _env(plugin_path, tmp_path)
    result = _kd(["train", "temporal_ensemble", "--dataset", "synthetic", "--subset", "100", "--epochs", "2",
                  "--batch-size", "25", "--device", "cpu", "--out", str(tmp_path / "run")], env)
    assert result.returncode == 0, result.stderr[-3000:]
    modules = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["modules"]
    assert modules["ensemble"].shape == (100, 10) and torch.equal(modules["visits"], torch.full((100,), 2.0))
    # Two visits at α 0.6: the rows sum to 1 − 0.6², the bias the loss corrects.
    torch.testing.assert_close(modules["ensemble"].sum(1), torch.full((100,), 1 - 0.6**2))


def test_plugin_teacher_parts_and_pre_activation_taps(plugin_path, tmp_path, teacher_checkpoint):
    """A plugin method that reuses the teacher's head ships it (its parameter count says so), and a plugin network
    with pre-activation taps and batch norms before its ReLUs is one OFD distils into."""
    env = _env(plugin_path, tmp_path)
    common = ["--dataset", "synthetic", "--subset", "100", "--epochs", "1", "--device", "cpu", "--teacher",
              str(teacher_checkpoint)]
    reused = _kd(["train", "reused_head", "--arch", "tiny_cnn", *common, "--out", str(tmp_path / "reused")], env)
    assert reused.returncode == 0, reused.stderr[-3000:]
    tiny_cnn = 8 * 27 + 8 + 16 * 72 + 16 + 2570
    projector = 16 * 32 + 32  # a 1×1 conv onto the tutorial teacher's 32 channels
    head = 2048 * 512 + 512 + 512 * 10 + 10  # the tutorial teacher's classifier
    assert json.loads(reused.stdout.strip().splitlines()[-1])["parameters"] == tiny_cnn + projector + head
    ofd = _kd(["train", "ofd", "--arch", "tiny_preact_cnn", *common, "--out", str(tmp_path / "ofd")], env)
    assert ofd.returncode == 0, ofd.stderr[-3000:]
    assert set(json.loads((tmp_path / "ofd" / "metrics.json").read_text())[0]["train_terms"]) == {"ce", "ofd"}
