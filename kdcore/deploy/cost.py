"""What the exported network costs, with the functions the architecture catalog uses (issue 22): FLOPs and
multiply-accumulates of one image's forward pass (``kdcore.architectures.cost.count_flops``, FlopCounterMode: a
multiply-accumulate is 2 FLOPs) and its latency on this CPU (``kdcore.architectures.latency``: median and IQR of
``torch.utils.benchmark`` blocks, keyed by the device, its model and the library versions): PyTorch at batch 1 on
one thread, and for an ONNX export the written file itself in onnxruntime, likewise."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.utils.benchmark import Timer

from kdcore.architectures.cost import count_flops
from kdcore.architectures.latency import device_key, measure, timed
from kdcore.deploy.files import INPUT_NAME, OUTPUT_NAME

# Seconds per latency row: an export is something a person waits for; the median over the blocks damps the noise.
MIN_RUN_TIME = 0.2


def network_cost(network: nn.Module, input_shape: tuple[int, ...], onnx_file: Path | None = None) -> dict:
    counted = count_flops(network, input_shape, batch=1)
    rows = measure(network, input_shape, "cpu", min_run_time=MIN_RUN_TIME, cpu_batches=((1, 1),), onnx=False)
    if onnx_file is not None:
        rows.append(onnxruntime_row(onnx_file, input_shape))
    return {"flops": counted["flops"], "macs": counted["macs"], "batch": 1, "input_shape": list(input_shape),
            "counted_with": "torch.utils.flop_counter.FlopCounterMode (a multiply-accumulate is 2 FLOPs)",
            "latency": {"key": device_key("cpu"), "rows": rows}}


def onnxruntime_row(path: Path, input_shape: tuple[int, ...]) -> dict:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {INPUT_NAME: torch.zeros(1, *input_shape).numpy()}
    measured = timed(Timer(stmt="session.run([name], feed)", globals={"session": session, "feed": feed,
                                                                      "name": OUTPUT_NAME}, num_threads=1), MIN_RUN_TIME)
    blocks = len(measured.times)
    return {"target": "onnxruntime-cpu (this file)", "batch": 1, "threads": 1, "median_s": measured.median,
            "iqr_s": measured.iqr, "blocks": blocks, "calls": blocks * measured.number_per_run, "unavailable": None}
