"""Channels-last against NCHW on this device, per architecture, side by side in one process.

    python bench/bench_layout.py                                   # every architecture, synthetic data, CPU
    python bench/bench_layout.py --architectures seed_student,resnet20 --repeats 3

Each architecture trains a student run (``engine.train``) on the same synthetic images with
``channels_last`` on and off, alternately (``--repeats``), from the same seed; printed: the median
training images per second of each layout (the epochs' own figure: test pass and checkpoint left out)
and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kdcore.architectures import catalog  # noqa: E402
from kdcore.config import RunConfig  # noqa: E402
from kdcore.training.engine import resolve_device, train  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--architectures", default=None, help="comma-separated (default: every one)")
    parser.add_argument("--subset", type=int, default=320, help="synthetic training images per run")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    device = resolve_device(args.device)
    names = args.architectures.split(",") if args.architectures else list(catalog(10))
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; synthetic, {args.subset} images, batch 32, one epoch per run, {args.repeats} repeats")
    print(f"{'architecture':>14} {'NCHW img/s':>11} {'NHWC img/s':>11} {'ratio':>6}")
    out = Path(tempfile.mkdtemp(prefix="kd-bench-layout-"))
    for architecture in names:
        rates = {False: [], True: []}
        for repeat in range(args.repeats):
            for channels_last in (False, True):
                config = RunConfig(kind="student", architecture=architecture, dataset="synthetic", subset=args.subset,
                                   epochs=1, device=device.type, seed=1, channels_last=channels_last)
                result = train(config, out_dir=out / f"{architecture}-{channels_last}-{repeat}")
                rates[channels_last].append(result.epochs[0].images_per_sec)
        nchw, nhwc = statistics.median(rates[False]), statistics.median(rates[True])
        print(f"{architecture:>14} {nchw:>11.0f} {nhwc:>11.0f} {nhwc / nchw:>5.2f}×", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
