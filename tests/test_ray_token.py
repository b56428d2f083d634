"""`kd serve --executor ray` against a cluster that wants a token (app.executors.ray.connection): the token
saved on this machine is used, and a refusal is one line naming RAY_AUTH_TOKEN and `ray get-auth-token`."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")

from app.executors.ray.connection import AUTH_MODE, TOKEN, refusal_message, refused, use_saved_token  # noqa: E402
from tests.app_fixtures import SYNTHETIC_RUN  # noqa: E402
from tests.live_server import _free_port  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).with_name("ray")


@pytest.fixture
def clean_ray_env(monkeypatch, tmp_path):
    """No Ray token settings in the environment, and a home of our own (the session's local Ray may have
    set RAY_AUTH_MODE in this process)."""
    for name in (AUTH_MODE, TOKEN, "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def test_the_token_saved_on_this_machine_is_sent(clean_ray_env):
    assert use_saved_token() is None and AUTH_MODE not in os.environ  # none at hand: Ray's default stays
    saved = clean_ray_env / ".ray" / "auth_token"
    saved.parent.mkdir()
    saved.write_text("f" * 32)
    assert use_saved_token() == str(saved) and os.environ[AUTH_MODE] == "token"


def test_an_explicit_mode_or_token_wins(clean_ray_env, monkeypatch):
    monkeypatch.setenv(AUTH_MODE, "disabled")
    (clean_ray_env / ".ray").mkdir()
    (clean_ray_env / ".ray" / "auth_token").write_text("f" * 32)
    assert use_saved_token() is None and os.environ[AUTH_MODE] == "disabled"
    monkeypatch.delenv(AUTH_MODE)
    monkeypatch.setenv(TOKEN, "e" * 32)
    assert use_saved_token() == TOKEN and os.environ[AUTH_MODE] == "token"


def test_a_refusal_is_recognised_and_said_in_one_line(clean_ray_env):
    from ray.exceptions import AuthenticationError

    try:
        try:
            raise AuthenticationError("RPC error: InvalidAuthToken: Authentication token is missing or incorrect")
        except AuthenticationError as inner:
            raise RuntimeError("Failed to connect to GCS") from inner
    except RuntimeError as outer:
        assert refused(outer)
    assert not refused(ConnectionError("Failed to connect to Ray cluster at 10.0.0.5:6379"))
    message = refusal_message("127.0.0.1:6379")
    assert "\n" not in message and "RAY_AUTH_TOKEN" in message and "`ray get-auth-token`" in message


def _pids_under(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


@pytest.fixture
def token_head(tmp_path):
    """`ray start --head` with token authentication on (this machine's home holds a saved token, as after
    `ray get-auth-token --generate`), loopback only; stopped by its own processes' ids, never `ray stop`."""
    if not RAY.exists():
        pytest.skip(f"{RAY} is absent")
    home = tmp_path / "home-with-token"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text(os.urandom(16).hex())
    # Ray's socket paths must stay short: not under pytest's long temporary folders.
    temp_dir = tempfile.mkdtemp(prefix="kdray-")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in (AUTH_MODE, TOKEN, "RAY_ADDRESS")}
    env.update(HOME=str(home), PYTHONPATH=str(REPO))
    subprocess.run([str(RAY), "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                    f"--temp-dir={temp_dir}", "--num-cpus=1", "--include-dashboard=false",
                    "--disable-usage-stats"], env=env, check=True, capture_output=True, timeout=180)
    try:
        yield {"address": f"127.0.0.1:{port}", "home": home, "env": env}
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in _pids_under(temp_dir):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            time.sleep(3)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _serve(head: dict, home: Path, root: Path, port: int) -> subprocess.Popen:
    env = {**head["env"], "HOME": str(home), "KD_DB_URL": f"sqlite:///{root / 'kd.sqlite'}",
           "KD_RUNS_DIR": str(root / "runs")}
    return subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--executor", "ray",
                             "--ray-address", head["address"]], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_kd_serve_uses_the_saved_token_and_says_a_refusal_in_one_line(token_head, tmp_path):
    # Another machine's home: no token. One line, a non-zero exit.
    elsewhere = tmp_path / "home-without-token"
    elsewhere.mkdir()
    refused_server = _serve(token_head, elsewhere, tmp_path / "refused", _free_port())
    out, err = refused_server.communicate(timeout=180)
    assert refused_server.returncode != 0 and out == ""
    assert err.splitlines() == [f"kd serve: {_refusal(token_head['address'])}"]

    # The head's own machine: the saved token is used, and the README's command trains a run.
    port = _free_port()
    server = _serve(token_head, token_head["home"], tmp_path / "served", port)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and server.poll() is None:
            try:
                if httpx.get(f"{base}/api/datasets", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        assert server.poll() is None, server.communicate()[1][-3000:]
        run_id = httpx.post(f"{base}/api/runs", json={**SYNTHETIC_RUN, "kind": "student"}, timeout=60).json()["id"]
        while time.monotonic() < deadline + 120:
            run = httpx.get(f"{base}/api/runs/{run_id}", timeout=10).json()
            if run["status"] in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.5)
        assert run["status"] == "completed", run["error"]
        assert run["worker"].startswith("ray:")
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=60)


def _refusal(address: str) -> str:
    return (f"the Ray cluster at {address} requires a token and got none from this server: set RAY_AUTH_TOKEN "
            "to the cluster's token (`ray get-auth-token` on the head prints it) and start again")
