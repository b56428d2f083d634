"""The live server and browser settings shared by the browser tests and their fixtures."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from kdcore.registry import METHODS

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-output" / "screenshots"
TEACHER_KIND = next(k for k, m in METHODS.items() if m.teaches)
# A KD kind with a temperature: the launch tests exercise a kind-specific field.
KD_KIND = next(k for k, m in METHODS.items() if m.needs_teacher and "temperature" in m.param_names())
LAPTOP = {"width": 1366, "height": 860}
PHONE = {"width": 390, "height": 844}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    def __init__(self, root: Path, *, worker: bool, token: str | None = None):
        self.root, self.port = root, _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "KD_DB_URL": f"sqlite:///{root / 'kd.sqlite'}", "KD_DATA_DIR": str(root / "data"),
               "KD_RUNS_DIR": str(root / "runs"), "KD_CACHE_DIR": str(root / "cache"), "CUDA_VISIBLE_DEVICES": ""}
        env.pop("KD_API_TOKEN", None)
        if token:
            env["KD_API_TOKEN"] = token
        command = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--gpus", ""] if worker else ["--no-worker"]
        self.log = (root / "server.log").open("w")
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.api = httpx.Client(base_url=self.url, timeout=10)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {(root / 'server.log').read_text()[-3000:]}")
            try:
                if self.api.get("/api/datasets").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError("server did not start within 60 s")

    def run(self, run_id: int) -> dict:
        return self.api.get(f"/api/runs/{run_id}").json()

    def wait_for(self, run_id: int, statuses=("completed", "failed", "cancelled"), timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.run(run_id)
            if run["status"] in statuses:
                return run
            time.sleep(0.25)
        raise AssertionError(f"run {run_id} still {run['status']} after {timeout} s")

    def stop(self) -> None:
        self.api.close()
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.log.close()
