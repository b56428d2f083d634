"""docs/ray.md, followed word for word: its marked blocks (``<!-- tested-by: tests/test_docs_ray.py … (ray-test: ROLE) -->`` before the
fence: the generic harness leaves them to this test) run in the page's order, one machine standing in for the
head and a node.

The generic harness (tests/test_docs.py) cannot hold a Ray head and a server running from one block to the
next, so this test does. It changes only what a shared test machine needs (the page says so): a home per
"machine" (the head's, where the page's first step saves the token, and the node's, with none), free ports
for 6379 and 8000, ``HEAD`` as 127.0.0.1, and a private ``--temp-dir``, one CPU and no usage stats for each
``ray start``. Ray is stopped by killing this test's own Ray process groups, never by ``ray stop``, which
would stop every other test's Ray on the machine.

Roles: ``token`` (its output is the token the ``node`` block is given), ``head``, ``serve`` (started in the
background and waited for), ``node`` (run in the node's home), ``launch`` (then every run must end
completed on Ray), ``check`` (prints one line per run).
"""

from __future__ import annotations

import os
import re
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

from tests.live_server import _free_port  # noqa: E402
# Every block runs as the generic harness runs one: bash -e, pipefail, and curl failing on an HTTP error.
from tests.test_docs import PRELUDE  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "ray.md"
BIN = Path(sys.executable).parent
# The generic harness's mark for a block it does not run, naming this test and the block's role.
BLOCK = re.compile(r"<!-- tested-by: tests/test_docs_ray.py[^\n]*?\(ray-test: (\w+)\) -->\n```bash\n(.*?)\n```", re.S)
TOKEN_PLACEHOLDER = "TOKEN_FROM_THE_HEAD"
ENDED = ("completed", "failed", "cancelled")


def page_blocks() -> list[tuple[str, str]]:
    return [(role, code) for role, code in BLOCK.findall(PAGE.read_text())]


def test_the_page_gives_the_token_before_anything_needs_it():
    roles = [role for role, _ in page_blocks()]
    assert roles[:4] == ["token", "head", "serve", "launch"], roles
    assert roles.index("node") > roles.index("token")
    node = next(code for role, code in page_blocks() if role == "node")
    # A node's `ray start --address` sends a token only when told to.
    assert "RAY_AUTH_MODE=token" in node and TOKEN_PLACEHOLDER in node
    assert node.index("RAY_AUTH_MODE") < node.index("ray start")


class Cluster:
    """What the page's blocks started: Ray's process groups (through --temp-dir) and the server."""

    def __init__(self, root: Path):
        self.root = root
        # Ray's socket paths must stay short: not under pytest's long temporary folders.
        self.temp_dir = tempfile.mkdtemp(prefix="kdrd-")
        self.ray_port, self.web_port = _free_port(), _free_port()
        self.homes = {"head": root / "head-home", "node": root / "node-home"}
        for home in self.homes.values():
            home.mkdir()
        self.token: str | None = None
        self.server: subprocess.Popen | None = None
        self.base = f"http://127.0.0.1:{self.web_port}"

    def env(self, machine: str) -> dict:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("RAY_") and k not in ("KD_API_TOKEN", "KD_EXECUTOR", "KD_RAY_ADDRESS", "KD_PACK")}
        env.update(HOME=str(self.homes[machine]), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
                   PYTHONPATH=str(REPO), KD_DB_URL=f"sqlite:///{self.root / 'kd.sqlite'}",
                   KD_RUNS_DIR=str(self.root / "runs"))
        return env

    def rewrite(self, code: str) -> str:
        code = code.replace("HEAD:6379", f"127.0.0.1:{self.ray_port}").replace(":6379", f":{self.ray_port}")
        code = code.replace("--port=6379", f"--port={self.ray_port}")
        code = code.replace("localhost:8000", f"127.0.0.1:{self.web_port}")
        if self.token is not None:
            code = code.replace(TOKEN_PLACEHOLDER, self.token)
        common = f"--temp-dir={self.temp_dir} --num-cpus=1 --disable-usage-stats"
        code = re.sub(r"^(ray start --head\b.*)$",
                      rf"\1 {common} --include-dashboard=false",
                      code, flags=re.M)
        code = re.sub(r"^(ray start --address\b.*)$", rf"\1 {common}", code, flags=re.M)
        return re.sub(r"^(kd serve\b.*)$", rf"\1 --port {self.web_port}", code, flags=re.M)

    def run(self, code: str, machine: str = "head") -> subprocess.CompletedProcess:
        done = subprocess.run(["bash", "-c", PRELUDE + self.rewrite(code)], cwd=self.root, env=self.env(machine),
                              capture_output=True, text=True, timeout=120, start_new_session=True)
        assert done.returncode == 0, f"{code}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
        return done

    def serve(self, code: str) -> None:
        self.server = subprocess.Popen(["bash", "-c", "exec " + self.rewrite(code)], cwd=self.root,
                                       env=self.env("head"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.server.poll() is None, f"kd serve exited: {self.server.communicate()[1][-3000:]}"
            try:
                if httpx.get(f"{self.base}/api/datasets", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise AssertionError("kd serve did not answer within 120 s")

    def runs(self) -> list[dict]:
        return httpx.get(f"{self.base}/api/runs", timeout=10).json()["items"]

    def wait_for_runs(self, timeout: float = 120) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.runs()
            if runs and all(run["status"] in ENDED for run in runs):
                return runs
            time.sleep(0.5)
        raise AssertionError(f"runs still going after {timeout} s: {self.runs()}")

    def wait_for_nodes(self, count: int, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            card = httpx.get(f"{self.base}/fragments/active", timeout=10).text
            found = re.search(r"Ray, (\d+) nodes?[^<]*", card)
            if found and int(found.group(1)) == count:
                return found.group(0)
            time.sleep(0.5)
        raise AssertionError(f"the queue card never counted {count} Ray nodes: {card}")

    def stop(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGINT)
            try:
                self.server.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.communicate()
        # Each block ran in a session (and process group) of its own, which its `ray start` daemons, their
        # agents and workers inherit; ours are the groups of the processes whose command names our temp dir.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for group in _groups_under(self.temp_dir):
                try:
                    os.killpg(group, sig)
                except ProcessLookupError:
                    pass
            time.sleep(1)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _groups_under(marker: str) -> set[int]:
    groups = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    groups.add(os.getpgid(int(entry.name)))
            except (OSError, ProcessLookupError):
                pass
    groups.discard(os.getpgid(0))  # never this test's own group
    return groups


@pytest.mark.timeout(300)
def test_the_ray_page_word_for_word_on_one_machine_then_with_a_second_node(tmp_path):
    if not (BIN / "ray").exists():
        pytest.skip(f"{BIN / 'ray'} is absent")
    cluster = Cluster(tmp_path)
    checked = 0
    try:
        for role, code in page_blocks():
            if role == "token":
                cluster.token = cluster.run(code).stdout.strip()
                assert re.fullmatch(r"[0-9a-f]{32,}", cluster.token), cluster.token
                assert (cluster.homes["head"] / ".ray" / "auth_token").read_text().strip() == cluster.token
            elif role == "head":
                said = cluster.run(code)
                assert "Token authentication is enabled" in said.stdout + said.stderr
            elif role == "serve":
                cluster.serve(code)
            elif role == "node":
                cluster.run(code, machine="node")
                assert not (cluster.homes["node"] / ".ray" / "auth_token").exists()  # another machine: none saved
                cluster.wait_for_nodes(2)
            elif role == "launch":
                before = {run["id"] for run in cluster.runs()}
                cluster.run(code)
                runs = cluster.wait_for_runs()
                new = [run for run in runs if run["id"] not in before]
                assert new and all(run["status"] == "completed" and run["worker"].startswith("ray:")
                                   for run in new), new
                if len(new) == 1:  # one machine: the queue card (shown once there are runs) counts one node
                    cluster.wait_for_nodes(1)
                else:  # the several-machines section: its runs trained side by side, one per node
                    assert len({run["worker"] for run in new}) == len(new), new
            elif role == "check":
                lines = cluster.run(code).stdout.splitlines()
                assert lines and all(re.fullmatch(r"\d+ completed ray:\S+:[0-9a-f]{8}:cpu \S+", line)
                                     for line in lines), lines
                checked += 1
            else:
                raise AssertionError(f"unknown role {role!r} in {PAGE}")
        assert checked == 2
    finally:
        cluster.stop()
