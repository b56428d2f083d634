"""Every zoo network exported to ONNX (``kdcore.deploy``'s writer: ``torch.onnx.export(..., dynamo=True)``, a
dynamic batch dimension), checked as an export is (onnxruntime's logits against PyTorch's on 64 test images of
``synthetic100``, normalised as training does), with its FLOPs and MACs (``kdcore.architectures.cost``) and its
CPU latency (``kdcore.architectures.latency``: median and IQR of torch.utils.benchmark blocks): PyTorch at batch 1
on one thread, and the exported file in onnxruntime at batch 1 on one thread (the catalog's latency table has the
batch-256 figures).

The networks are built with seed 0 at 100 classes (the CIFAR-100 benchmark's), and their batch norms' running
statistics are estimated on 256 training images first, as training would leave them: with the initial statistics
(mean 0, variance 1) a deep residual network's activations grow block by block, its logits reach thousands, and
float32 rounding alone then differs by more than the 1e-4 an export allows. Prints a Markdown table
(bench/README.md holds one).

    python bench/bench_export.py [NAME ...] [--num-classes 100] [--min-run-time 0.5]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent)]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from kdcore.architectures import registry  # noqa: E402
from kdcore.architectures.cost import count_flops  # noqa: E402
from kdcore.architectures.latency import device_key, measure  # noqa: E402
from kdcore.data.loader import load_dataset  # noqa: E402
from kdcore.deploy.cost import onnxruntime_row  # noqa: E402
from kdcore.deploy.export import PARITY_IMAGES, TOLERANCE  # noqa: E402
from kdcore.deploy.formats import runner, write  # noqa: E402
from kdcore.deploy.source import LogitsOnly  # noqa: E402
from kdcore.training.device_data import normalize  # noqa: E402
from kdcore.training.networks import build_model  # noqa: E402


def _ms(row: dict) -> str:
    return f"{1000 * row['median_s']:.2f} ± {1000 * row['iqr_s']:.2f}" if row["median_s"] is not None else "—"


def calibrated(name: str, num_classes: int, train_images: torch.Tensor) -> LogitsOnly:
    """The network with batch-norm statistics of real images (a cumulative average over the batches)."""
    network = LogitsOnly(build_model(name, num_classes, 0))
    for module in network.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None
    network.train()
    with torch.no_grad():
        for batch in train_images.split(64):
            network(batch)
    return network.eval()


def bench(name: str, num_classes: int, images: torch.Tensor, train_images: torch.Tensor, min_run_time: float) -> dict:
    network = calibrated(name, num_classes, train_images)
    with torch.inference_mode():
        expected = network(images).numpy()
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        path = write("onnx", network, images, Path(folder))
        seconds = time.perf_counter() - started
        difference = float(np.max(np.abs(runner("onnx", path, network)(images.numpy()) - expected)))
        size = path.stat().st_size
        onnx_row = onnxruntime_row(path, tuple(images.shape[1:]))
    counted = count_flops(network.network, tuple(images.shape[1:]))
    rows = measure(network.network, tuple(images.shape[1:]), "cpu", min_run_time=min_run_time,
                   cpu_batches=((1, 1),), onnx=False)
    return {"name": name, "parameters": sum(p.numel() for p in network.parameters()), "flops": counted["flops"],
            "macs": counted["macs"], "export_s": seconds, "bytes": size, "difference": difference,
            "largest": float(np.max(np.abs(expected))), "torch_b1": rows[0], "onnx_b1": onnx_row}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="networks (default: every one in the registry)")
    parser.add_argument("--num-classes", type=int, default=100)
    parser.add_argument("--min-run-time", type=float, default=0.5)
    args = parser.parse_args()
    dataset = load_dataset("synthetic100" if args.num_classes == 100 else "synthetic")
    images = normalize(torch.from_numpy(dataset.test_x[:PARITY_IMAGES]))
    train_images = normalize(torch.from_numpy(dataset.train_x[:256]))
    key = device_key("cpu")
    print(f"{key['device_model']}, {key['threads_available']} threads, torch {key['torch']}, "
          f"onnxruntime {key['onnxruntime']}, {args.num_classes} classes, 64 images for parity (tolerance {TOLERANCE:g})\n")
    print("| network | parameters | MFLOPs | MMACs | export s | ONNX MB | max \\|logit\\| | max \\|Δ logit\\| "
          "| torch b1 1 thread ms | onnxruntime b1 1 thread ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    refused = []
    for name in args.names or list(registry()):
        with contextlib.redirect_stdout(sys.stderr):  # the exporter's progress
            row = bench(name, args.num_classes, images, train_images, args.min_run_time)
        if not row["difference"] < TOLERANCE:
            refused.append(name)
        print(f"| {name} | {row['parameters']:,} | {row['flops'] / 1e6:,.1f} | {row['macs'] / 1e6:,.1f} | "
              f"{row['export_s']:.1f} | {row['bytes'] / 2**20:.1f} | {row['largest']:.1f} | {row['difference']:.1e} | "
              f"{_ms(row['torch_b1'])} | {_ms(row['onnx_b1'])} |", flush=True)
    print(f"\n{'refused (parity): ' + ', '.join(refused) if refused else 'every network passed the parity check'}")


if __name__ == "__main__":
    main()
