"""Many watchers of one training run (a script, not a timed test).

The server's embedded CPU worker trains a run over the 1,000 stored runs of bench_api.py. GET /api/runs is
timed at a steady pace (p50/p95) for SECONDS with no event stream open, then for SECONDS more while STREAMS
event streams watch that run, as that many open run pages would: each stream reconnects with its
Last-Event-ID when the server ends it, as EventSource does. The streams run in a child process; the
server's CPU time (its own process, not the worker's training child) is read from /proc.
Target: p95 with the streams under 3x the p95 without.

Loopback only (the server on 127.0.0.1, a free port); bounded: at most 2,000 streams and 600 s a phase.
Usage: python bench/bench_streams.py [--streams 500] [--seconds 60] [--repo PATH]
``--repo`` serves another checkout (``git archive COMMIT | tar -x -C DIR``) for a before/after figure.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import h11
import httpx

from bench_api import REPO, fill, start_server, start_training  # noqa: I001  (this folder, first on sys.path)

from app.settings import Settings  # noqa: E402

MAX_STREAMS, MAX_SECONDS = 2_000, 600
PACE_S = 0.2  # one timed request per PACE_S: the prober itself is not the load
RUN = {"kind": "student", "dataset": "synthetic", "epochs": 1000, "device": "cpu"}


class EventStream:
    """One run page's EventSource on one kept-alive connection, on h11 directly: httpx's layers cost more
    CPU than the server under test on this 2-core machine, and the load would not be delivered."""

    def __init__(self, host: str, port: int, path: str):
        self.host, self.port, self.path = host, port, path
        self.last_id, self.retry_s = None, 0.5
        self.connection, self.reader, self.writer = None, None, None

    async def follow(self, counts: dict, connected: asyncio.Event) -> None:
        """Read the stream, and reconnect after its retry with the last id seen, until cancelled."""
        while True:
            try:
                if await self._request(counts):
                    await self._read(counts, connected)
            except (OSError, asyncio.IncompleteReadError, h11.ProtocolError):
                counts["broken"] += 1
                if self.writer is not None:
                    self.writer.close()
                self.connection = None  # a new connection for the next try
            await asyncio.sleep(self.retry_s)

    async def _request(self, counts: dict) -> bool:
        if self.connection is None or self.connection.our_state is not h11.IDLE:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            self.connection = h11.Connection(h11.CLIENT)
        headers = [("Host", f"{self.host}:{self.port}"), ("Accept", "text/event-stream")]
        headers += [("Last-Event-ID", self.last_id)] if self.last_id else []
        self.writer.write(self.connection.send(h11.Request(method="GET", target=self.path, headers=headers)))
        self.writer.write(self.connection.send(h11.EndOfMessage()))
        response = await self._next_event()
        counts["connects" if response.status_code == 200 else "refused"] += 1
        return response.status_code == 200

    async def _read(self, counts: dict, connected: asyncio.Event) -> None:
        """The stream's messages to its end; ``connected`` is set at its first summary (what a page draws first)."""
        pending = b""
        while not isinstance(event := await self._next_event(), h11.EndOfMessage):
            *messages, pending = (pending + bytes(event.data)).split(b"\n\n")
            for message in messages:
                for line in message.decode().splitlines():
                    field, _, value = line.partition(": ")
                    if field == "id":
                        self.last_id = value
                    elif field == "event":
                        counts[value] = counts.get(value, 0) + 1
                        if value == "summary":
                            connected.set()
                    elif field == "retry":
                        self.retry_s = int(value) / 1000
        self.connection.start_next_cycle()

    async def _next_event(self):
        while (event := self.connection.next_event()) is h11.NEED_DATA:
            data = await self.reader.read(65536)
            if not data:
                raise OSError("the server closed the connection")
            self.connection.receive_data(data)
        return event


async def _watch_all(url: str, streams: int, ready, stop, results) -> None:
    counts = {"connects": 0, "refused": 0, "broken": 0}
    address = httpx.URL(url)
    connected = [asyncio.Event() for _ in range(streams)]
    watchers = [EventStream(address.host, address.port, address.raw_path.decode()) for _ in range(streams)]
    tasks = [asyncio.create_task(w.follow(counts, c)) for w, c in zip(watchers, connected)]
    await asyncio.gather(*(c.wait() for c in connected))
    ready.set()
    started = dict(counts)
    await asyncio.get_running_loop().run_in_executor(None, stop.wait)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    results.put({key: counts.get(key, 0) - started.get(key, 0) for key in counts})


def watchers(url: str, streams: int, ready, stop, results) -> None:
    """The child process: ``streams`` event streams on ``url`` until ``stop`` is set."""
    asyncio.run(_watch_all(url, streams, ready, stop, results))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def probe(client: httpx.Client, seconds: float, server_pid: int, watchers_pid: int | None = None) -> dict:
    """GET /api/runs once per PACE_S for ``seconds``: its latencies, and the CPU share of the server (and
    of the watchers) meanwhile."""
    times, start = [], time.monotonic()
    cpu_start = {pid: cpu_seconds(pid) for pid in (server_pid, watchers_pid) if pid}
    while (now := time.monotonic()) < start + seconds:
        began = time.perf_counter()
        response = client.get("/api/runs")
        times.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200, response.status_code
        time.sleep(max(0.0, now + PACE_S - time.monotonic()))
    ordered, elapsed = sorted(times), time.monotonic() - start
    cpu = {pid: (cpu_seconds(pid) - used) / elapsed for pid, used in cpu_start.items()}
    return {"p50": statistics.median(ordered), "p95": ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))],
            "n": len(times), "cpu": cpu[server_pid], "watchers_cpu": cpu.get(watchers_pid), "load": os.getloadavg()[0]}


def stored_epochs(client: httpx.Client, run_id: int) -> int:
    return len(client.get(f"/api/runs/{run_id}/epochs").json()["items"])


def line(label: str, figures: dict) -> str:
    return (f"  {label:<26} GET /api/runs p50 {figures['p50']:6.1f} ms  p95 {figures['p95']:6.1f} ms  "
            f"(n={figures['n']})  server CPU {figures['cpu']:.0%} of a core, load average {figures['load']:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=500, help=f"event streams, at most {MAX_STREAMS}")
    parser.add_argument("--seconds", type=float, default=60, help=f"seconds a phase, at most {MAX_SECONDS}")
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout to serve (default: this one)")
    args = parser.parse_args()
    if not (1 <= args.streams <= MAX_STREAMS and 1 <= args.seconds <= MAX_SECONDS):
        parser.error(f"--streams 1..{MAX_STREAMS} and --seconds 1..{MAX_SECONDS}")
    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}; serving {args.repo}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = Settings(db_url=f"sqlite:///{root / 'kd.sqlite'}", data_dir=root / "data", runs_dir=root / "runs")
        fill(settings)
        server, base = start_server(settings, repo=args.repo)
        try:
            with httpx.Client(base_url=base, timeout=30) as client:
                run = start_training(client, RUN)
                print(f"while run {run['id']} trains ({RUN['kind']}, {RUN['dataset']}, the server's CPU worker):")
                idle = probe(client, args.seconds, server.pid)
                print(line("no event stream", idle), flush=True)
                context = multiprocessing.get_context("spawn")
                ready, stop, results = context.Event(), context.Event(), context.Queue()
                url = f"{base}/runs/{run['id']}/events?after=0"
                child = context.Process(target=watchers, args=(url, args.streams, ready, stop, results), daemon=True)
                began = time.monotonic()
                child.start()
                try:
                    if not ready.wait(120):
                        raise SystemExit(f"{args.streams} streams did not all connect within 120 s")
                    print(f"  {args.streams} streams connected in {time.monotonic() - began:.1f} s", flush=True)
                    first = stored_epochs(client, run["id"])
                    busy = probe(client, args.seconds, server.pid, child.pid)
                    trained = stored_epochs(client, run["id"]) - first
                finally:
                    stop.set()
                counts = results.get(timeout=60)
                child.join(30)
                print(line(f"{args.streams} event streams", busy) + f"; the watchers {busy['watchers_cpu']:.0%}")
                print(f"  p95 ratio {busy['p95'] / idle['p95']:.2f} (target under 3); meanwhile the streams "
                      f"received {', '.join(f'{v} {k}' for k, v in sorted(counts.items()))}")
                print(f"  the run stored {trained} epochs meanwhile: {counts.get('epoch', 0) / args.streams:.1f} epoch "
                      "events a stream")
                assert client.get(f"/api/runs/{run['id']}").json()["status"] == "running", "the run stopped"
                client.post(f"/api/runs/{run['id']}/cancel")
        finally:
            server.terminate()
            server.wait(timeout=60)


if __name__ == "__main__":
    sys.exit(main())
