"""How long a network's forward pass takes here: ``torch.utils.benchmark.Timer`` (its ``blocked_autorange``
warms up, repeats the statement in blocks until ``min_run_time`` has passed, and synchronises CUDA), reported
as the median and inter-quartile range of the per-call times over its blocks.

Per network (``measure``):

- the CPU at batch 1 on one thread, and at batch 256 on all of this process's threads;
- the GPU at batch 1 and 1024, when one is present (``device="cuda"``);
- onnxruntime's CPU provider at batch 1 on one thread (the network exported with ``torch.onnx.export(...,
  dynamo=True)``), when the ``deploy`` extra is installed; else that row says it is not.

Every figure holds only with its key (``device_key``): the device, its model, and the torch and onnxruntime
versions. ``python -m kdcore.architectures.latency`` prints the rows as JSON, so that a worker measures in a
process of its own and the web process never imports torch.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import torch
from torch import nn
from torch.utils.benchmark import Measurement, Timer

# Each row's budget: blocked_autorange stops after its first block past this many seconds. Small by default, so
# that a whole zoo is measured in minutes on a 2-core CPU; its median over the blocks still damps the noise.
MIN_RUN_TIME = 0.5
# blocked_autorange stops once a block passes the budget, which on a loaded machine or for a slow call can be its
# first: blocks are added up to this many, so that the median and IQR are over several blocks, while the time
# spent stays under EXTRA_BUDGET budgets (a call of seconds, resnet32x4 at batch 256 on 2 cores, stops sooner).
MIN_BLOCKS = 5
EXTRA_BUDGET = 10
# An inter-quartile range needs a few blocks: below this many the row gives none (null), rather than 0.
SPREAD_BLOCKS = 3
CPU_BATCHES = ((1, 1), (256, None))  # (batch, threads); None: all of them
GPU_BATCHES = (1, 1024)
ONNX_BATCH = 1


def onnxruntime_version() -> str | None:
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime.__version__


def _cpu_model() -> str:
    # /proc/cpuinfo names the model on Linux; platform.processor() is often empty there.
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def device_key(device: str) -> dict:
    """What a measurement on ``device`` ("cpu", "cuda") holds for: the device's model, its threads (CPU) and
    the library versions."""
    if device == "cuda":
        model, threads = torch.cuda.get_device_name(), None
    else:
        model, threads = _cpu_model(), torch.get_num_threads()
    return {"device": device, "device_model": model, "threads_available": threads, "torch": torch.__version__,
            "onnxruntime": onnxruntime_version()}


class Logits(nn.Module):
    """The zoo's networks answer (logits, taps): what ships, and what is timed, is the logits."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, images):
        out = self.network(images)
        return out[0] if isinstance(out, (tuple, list)) else out


def _row(target: str, batch: int, threads: int | None, measurement) -> dict:
    blocks = len(measurement.times)
    return {"target": target, "device": "cuda" if target == "cuda" else "cpu", "batch": batch, "threads": threads,
            "median_s": measurement.median, "iqr_s": measurement.iqr if blocks >= SPREAD_BLOCKS else None,
            "blocks": blocks, "calls": blocks * measurement.number_per_run, "unavailable": None}


def timed(timer: Timer, min_run_time: float) -> Measurement:
    """``timer.blocked_autorange(min_run_time)`` with at least MIN_BLOCKS blocks of its block size, where the
    extra budget allows."""
    measurement = timer.blocked_autorange(min_run_time=min_run_time)
    raw = list(measurement.raw_times)
    while len(raw) < MIN_BLOCKS and sum(raw) < EXTRA_BUDGET * min_run_time:
        raw += timer.timeit(measurement.number_per_run).raw_times
    return Measurement(measurement.number_per_run, raw, measurement.task_spec)


def time_forward(model: nn.Module, images: torch.Tensor, threads: int | None = None,
                 min_run_time: float = MIN_RUN_TIME):
    """A ``torch.utils.benchmark.Measurement`` of ``model(images)`` under inference mode."""

    def forward():
        with torch.inference_mode():
            return model(images)

    timer = Timer(stmt="forward()", globals={"forward": forward}, num_threads=threads or torch.get_num_threads())
    return timed(timer, min_run_time)


def _onnx_row(model: nn.Module, input_shape: Sequence[int], min_run_time: float) -> dict:
    unavailable = {"target": "onnxruntime-cpu", "device": "cpu", "batch": ONNX_BATCH, "threads": 1, "median_s": None,
                   "iqr_s": None, "blocks": 0, "calls": 0}
    try:
        import onnxruntime
    except ImportError:
        return {**unavailable, "unavailable": "onnxruntime is not installed (pip install 'kd-dashboard[deploy]')"}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        images = torch.zeros(ONNX_BATCH, *input_shape)
        try:
            torch.onnx.export(Logits(model).eval(), (images,), str(path), dynamo=True, input_names=["images"],
                              output_names=["logits"], dynamic_shapes=({0: torch.export.Dim("batch")},),
                              verbose=False)
        except Exception as exc:  # noqa: BLE001  (onnxscript missing, an operator the exporter lacks: said in the row)
            return {**unavailable, "unavailable": f"ONNX export failed: {type(exc).__name__}: {exc}"[:500]}
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {"images": images.numpy()}
    timer = Timer(stmt="session.run(None, feed)", globals={"session": session, "feed": feed}, num_threads=1)
    return _row("onnxruntime-cpu", ONNX_BATCH, 1, timed(timer, min_run_time))


def measure(model: nn.Module, input_shape: Sequence[int] = (3, 32, 32), device: str = "cpu",
            min_run_time: float = MIN_RUN_TIME, cpu_batches=CPU_BATCHES, gpu_batches=GPU_BATCHES,
            onnx: bool = True) -> list[dict]:
    """Latency rows of ``model`` (on the CPU, in float32): the CPU's, also the GPU's with ``device="cuda"``, then
    onnxruntime's CPU provider's. Each: ``target`` (cpu, cuda, onnxruntime-cpu), ``device`` (whose device_key it holds for),
    ``batch``, ``threads``, ``median_s`` and ``iqr_s`` (one call's seconds), ``blocks`` and ``calls`` timed, and
    ``unavailable`` (why a row has no figure, else None)."""
    model = model.eval()
    rows = []
    for batch, threads in cpu_batches:
        threads = threads or torch.get_num_threads()
        images = torch.zeros(batch, *input_shape)
        rows.append(_row("cpu", batch, threads, time_forward(model, images, threads, min_run_time)))
    if device == "cuda":
        model = model.to("cuda")
        for batch in gpu_batches:
            images = torch.zeros(batch, *input_shape, device="cuda")
            rows.append(_row("cuda", batch, None, time_forward(model, images, min_run_time=min_run_time)))
        model = model.to("cpu")
    if onnx:
        rows.append(_onnx_row(model, input_shape, min_run_time))
    return rows


def measure_networks(names: Sequence[str], num_classes: int, gpu: bool = False, min_run_time: float = MIN_RUN_TIME,
                     **options) -> dict:
    """``{"keys": {device: device_key(device)}, "networks": {name: rows}}`` for the zoo's networks ``names``, each
    built afresh with seed 0 (its weights change no timing, only its shapes do)."""
    from kdcore.architectures import build

    measured = {}
    for name in names:
        torch.manual_seed(0)
        started = time.perf_counter()
        measured[name] = measure(build(name, num_classes), device="cuda" if gpu else "cpu", min_run_time=min_run_time,
                                 **options)
        print(f"{name}: {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    keys = {"cpu": device_key("cpu"), **({"cuda": device_key("cuda")} if gpu else {})}
    return {"keys": keys, "networks": measured}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kdcore.architectures.latency", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="networks (default: every one in the catalog)")
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--gpu", action=argparse.BooleanOptionalAction, default=torch.cuda.is_available(),
                        help="also time the GPU (default: when one is present)")
    parser.add_argument("--min-run-time", type=float, default=MIN_RUN_TIME)
    parser.add_argument("--cpu-batch", type=int, default=None, help="the all-threads CPU batch (default 256)")
    parser.add_argument("--no-onnx", action="store_true")
    args = parser.parse_args(argv)
    from kdcore.architectures import registry

    names = args.names or list(registry())
    batches = CPU_BATCHES if args.cpu_batch is None else ((1, 1), (args.cpu_batch, None))
    # stdout carries the JSON alone: what libraries print on the way (the exporter's progress) goes to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        measured = measure_networks(names, args.num_classes, args.gpu, args.min_run_time, cpu_batches=batches,
                                    onnx=not args.no_onnx)
    print(json.dumps(measured))


if __name__ == "__main__":
    main()
