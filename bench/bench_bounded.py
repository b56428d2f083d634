"""Bounded work per request, against the real server (a script, not a timed test).

1. Look-ups: twelve concurrent GET /api/architectures, each for another class count that a dataset here has
   (twelve ImageFolder datasets of 2 to 13 classes, so each count starts its own description subprocess),
   while a launch (POST /api/runs) is sent every half second: each launch's time, and the look-ups'.
   Target: no launch held for more than 3 s.
2. Bodies: a request declaring a 20 MB body (and sending none of it), with and without the token; a 1 MB body
   of 75,000 unknown keys. Targets: 413 or 401 at once, a short 422.

Usage: python bench/bench_bounded.py [--lookups 12]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.live_server import LiveServer  # noqa: E402

TOKEN = "bench-" + "t" * 26
BEARER = {"Authorization": f"Bearer {TOKEN}"}
LAUNCH = {"kind": "student", "dataset": "synthetic", "subset": 100, "epochs": 1, "device": "cpu"}


def image_folders(data: Path, counts: range) -> None:
    """One ImageFolder dataset per class count; listing reads only the folders, so the files may be empty."""
    for count in counts:
        for split in ("train", "test"):
            for label in range(count):
                folder = data / f"classes{count}" / split / f"c{label}"
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "0.png").write_bytes(b"")


def lookups_against_launches(server: LiveServer, counts: range) -> None:
    server.api.get("/api/architectures", timeout=300)  # the 10-class catalog, described at start
    lookups: dict[int, tuple[int, float]] = {}

    def look_up(count: int) -> None:
        started = time.perf_counter()
        status = server.api.get("/api/architectures", params={"num_classes": count}, timeout=600).status_code
        lookups[count] = (status, time.perf_counter() - started)

    threads = [threading.Thread(target=look_up, args=(count,)) for count in counts]
    for thread in threads:
        thread.start()
    launches, pages = [], []
    while any(thread.is_alive() for thread in threads):
        started = time.perf_counter()
        status = server.api.post("/api/runs", json=LAUNCH, headers=BEARER, timeout=600).status_code
        launches.append(time.perf_counter() - started)
        assert status == 201, status
        started = time.perf_counter()
        server.api.get("/", timeout=600)
        pages.append(time.perf_counter() - started)
        time.sleep(0.5)
    for thread in threads:
        thread.join()
    seconds = [s for _, s in lookups.values()]
    print(f"{len(counts)} concurrent look-ups (class counts {counts.start}-{counts.stop - 1}): statuses "
          f"{sorted({status for status, _ in lookups.values()})}, {min(seconds):.1f}-{max(seconds):.1f} s each")
    print(f"  {len(launches)} launches meanwhile: median {statistics.median(launches) * 1000:.0f} ms, "
          f"max {max(launches) * 1000:.0f} ms; GET / median {statistics.median(pages) * 1000:.0f} ms, "
          f"max {max(pages) * 1000:.0f} ms")
    junk = server.api.get("/api/architectures", params={"num_classes": 4567})
    print(f"  num_classes=4567 (no such dataset): {junk.status_code} {junk.json()['detail'][0]['msg'][:80]!r}")


def declared_only(server: LiveServer, length: int, headers: dict[str, str]) -> tuple[str, float]:
    lines = [f"POST /api/runs HTTP/1.1", f"Host: 127.0.0.1:{server.port}", "Content-Type: application/json",
             f"Content-Length: {length}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall("\r\n".join(lines).encode())
        try:
            status = sock.recv(65536).split(b"\r\n", 1)[0].decode()
        except TimeoutError:
            status = "no answer in 30 s"
    return status, time.perf_counter() - started


def sent_whole(server: LiveServer, length: int, headers: dict[str, str]) -> tuple[str, float]:
    """A body of ``length`` bytes sent in full (from a thread): how long until the answer's status line."""
    lines = [f"POST /api/runs HTTP/1.1", f"Host: 127.0.0.1:{server.port}", "Content-Type: application/json",
             f"Content-Length: {length}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    body = b'{"kind": "student", "padding": "' + b"x" * (length - 34) + b'"}'
    assert len(body) == length
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        def upload():
            try:
                sock.sendall("\r\n".join(lines).encode() + body)
            except OSError:
                pass  # the server answered and closed before taking it all
        started = time.perf_counter()
        threading.Thread(target=upload, daemon=True).start()
        try:
            status = sock.recv(65536).split(b"\r\n", 1)[0].decode()
        except TimeoutError:
            status = "no answer in 60 s"
        return status, time.perf_counter() - started


def bodies(server: LiveServer) -> None:
    for label, headers in (("right token", BEARER), ("wrong token", {"Authorization": "Bearer wrong"})):
        status, seconds = declared_only(server, 20_000_000, headers)
        print(f"20 MB body declared, {label}: {status!r} in {seconds * 1000:.0f} ms")
    status, seconds = sent_whole(server, 100_000_000, {"Authorization": "Bearer wrong"})
    print(f"100 MB body sent, wrong token: {status!r} in {seconds * 1000:.0f} ms")
    body = json.dumps({**LAUNCH, **{f"k{i}": 0 for i in range(75_000)}}).encode()
    started = time.perf_counter()
    response = server.api.post("/api/runs", content=body, headers={**BEARER, "Content-Type": "application/json"})
    print(f"{len(body):,}-byte body of 75,000 unknown keys: {response.status_code}, a {len(response.content):,}-byte "
          f"answer in {time.perf_counter() - started:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lookups", type=int, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        counts = range(2, 2 + args.lookups)
        image_folders(root / "data", counts)
        server = LiveServer(root, worker=False, token=TOKEN)
        try:
            lookups_against_launches(server, counts)
            bodies(server)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
