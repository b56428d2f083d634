"""Packed training against one run after another, side by side in one process.

    python bench/bench_packed.py                          # 4 seeds of the baseline student, 2,000 CIFAR-10 images
    python bench/bench_packed.py --synthetic              # no archive needed
    python bench/bench_packed.py --step vmapped           # the GPU's step, here on the CPU
    python bench/bench_packed.py --precision bfloat16     # bfloat16 autocast on both sides
    python bench/bench_packed.py --device cuda --seeds 8 --subset 0 --epochs 10

The issue's CPU target: 4 seeds of the baseline student (seed_student) on a 2,000-image subset, packed
(kdcore.training.packing.trainer.train_packed, one call) against one by one (kdcore.training.engine.train
per seed), at least 1.3× faster end to end, each seed's final accuracy within 1 point of its unpacked
twin. Both sides are timed end to end (setup, every epoch with its test pass and checkpoint); the dataset
is loaded once before either, and both sides are repeated alternately (``--repeats``) so that a noisy machine shows itself.

The real data is the JPEG CIFAR-10 archive (``../shared/datasets/cifar10-jpg.tar.xz`` beside the
checkout, or ``--archive``), linked into a data folder (``--data-dir``) where its decoded copy is cached.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kdcore.config import RunConfig  # noqa: E402
from kdcore.data.loader import load_dataset  # noqa: E402
from kdcore.training.engine import resolve_device, train  # noqa: E402
from kdcore.training.packing.trainer import train_packed  # noqa: E402

ARCHIVE = ROOT.parent / "shared" / "datasets" / "cifar10-jpg.tar.xz"


def dataset_and_folder(args) -> tuple[str, str | None]:
    """The dataset name and the data folder that holds it."""
    if args.synthetic:
        return "synthetic", args.data_dir
    folder = Path(args.data_dir or Path(tempfile.gettempdir()) / "kd-packed-bench-data")
    link = folder / "cifar10-jpg.tar.xz"
    if not link.exists():
        archive = Path(args.archive)
        if not archive.is_file():
            sys.exit(f"{archive} is absent: give --archive, or run with --synthetic")
        folder.mkdir(parents=True, exist_ok=True)
        link.symlink_to(archive.resolve())
    return "cifar10-jpg", str(folder)


def add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch's CPU threads (default: torch's own)")
    parser.add_argument("--synthetic", action="store_true", help="generated data instead of the CIFAR-10 archive")
    parser.add_argument("--archive", default=str(ARCHIVE))
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", default=None, help="also write the figures here")


def prepare(args) -> tuple:
    """The threads set; the dataset's name and folder, the device, the subset, the data (decoded and cached
    once, outside the timings) and the device's name."""
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset, data_dir = dataset_and_folder(args)
    device = resolve_device(args.device)
    subset = args.subset or None
    data = load_dataset(dataset, data_dir, subset)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    return dataset, data_dir, device, subset, data, name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--kind", default="student", help="the method every seed trains (default: the baseline)")
    parser.add_argument("--architecture", default=None, help="default: the method's (seed_student)")
    parser.add_argument("--subset", type=int, default=2000, help="training images; 0 for the whole set")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1, help="alternate both sides this many times")
    parser.add_argument("--precision", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--step", default="default", choices=("default", "looped", "vmapped"),
                        help="the pack's step (default: train_packed's choice, looped on a CPU)")
    add_data_options(parser)
    parser.add_argument("--profile", action="store_true",
                        help="first profile one epoch of one run alone (torch.profiler): where a step's time goes")
    args = parser.parse_args()

    dataset, data_dir, device, subset, data, name = prepare(args)
    configs = [RunConfig(kind=args.kind, architecture=args.architecture, dataset=dataset, subset=subset,
                         epochs=args.epochs, batch_size=args.batch_size, device=device.type, seed=seed,
                         precision=args.precision)
               for seed in range(1, args.seeds + 1)]
    vectorised = {"default": None, "looped": False, "vmapped": True}[args.step]
    print(f"device: {name}; {dataset}, {len(data.train_y)} train / {len(data.test_y)} test images; "
          f"{args.seeds} seeds of {args.kind} ({configs[0].architecture}), {args.epochs} epochs, "
          f"batch {args.batch_size}, {configs[0].optimizer} {configs[0].lr}, {args.precision}, "
          f"{args.step} pack step", flush=True)
    out = Path(tempfile.mkdtemp(prefix="kd-bench-packed-"))
    if args.profile:
        _profile(configs[0].model_copy(update={"epochs": 1}), out / "profiled", data_dir)

    alone_times, packed_times, alone_cpu, packed_cpu, rounds = [], [], [], [], []
    for repeat in range(args.repeats):
        start, cpu = time.perf_counter(), time.process_time()
        alone = [train(c, out_dir=out / f"alone-{repeat}-{c.seed}", data_root=data_dir) for c in configs]
        alone_times.append(time.perf_counter() - start)
        alone_cpu.append(time.process_time() - cpu)
        start, cpu = time.perf_counter(), time.process_time()
        packed = train_packed(configs, out_dirs=[out / f"packed-{repeat}-{c.seed}" for c in configs],
                              data_root=data_dir, vectorised=vectorised)
        packed_times.append(time.perf_counter() - start)
        packed_cpu.append(time.process_time() - cpu)
        failed = [r for r in packed if isinstance(r, BaseException)]
        if failed:
            raise failed[0]
        rounds.append((alone, packed))
        # CPU time as well: on a shared machine the wall clock measures the neighbours too.
        print(f"round {repeat + 1}: one by one {alone_times[-1]:.1f} s ({alone_cpu[-1]:.1f} s CPU), packed "
              f"{packed_times[-1]:.1f} s ({packed_cpu[-1]:.1f} s CPU): {alone_times[-1] / packed_times[-1]:.2f}× "
              f"faster by the clock, {alone_cpu[-1] / packed_cpu[-1]:.2f}× by CPU time", flush=True)

    alone, packed = rounds[-1]
    print(f"{'seed':>4} {'alone acc':>10} {'packed acc':>11} {'diff (points)':>14}")
    differences = []
    for config, a, p in zip(configs, alone, packed):
        differences.append(100 * (p.final_accuracy - a.final_accuracy))
        print(f"{config.seed:>4} {100 * a.final_accuracy:>9.2f}% {100 * p.final_accuracy:>10.2f}% "
              f"{differences[-1]:>+14.2f}")
    accuracy = statistics.mean(a.final_accuracy for a in alone)
    print(f"({len(data.test_y)} test images: one image is {100 / len(data.test_y):.2f} points; a seed's accuracy "
          f"has a sampling error of about {100 * (accuracy * (1 - accuracy) / len(data.test_y)) ** 0.5:.1f} points)")
    ratio = statistics.median(alone_times) / statistics.median(packed_times)
    within = all(abs(d) <= 1.0 for d in differences)
    print(f"end to end (median of {args.repeats}): one by one {statistics.median(alone_times):.1f} s, packed "
          f"{statistics.median(packed_times):.1f} s: {ratio:.2f}× faster (target ≥ 1.3×: "
          f"{'met' if ratio >= 1.3 else 'not met'}); every seed within 1 point of its twin: "
          f"{'yes' if within else 'no'}")
    cpu_ratio = statistics.median(alone_cpu) / statistics.median(packed_cpu)
    print(f"CPU time (median): one by one {statistics.median(alone_cpu):.1f} s, packed "
          f"{statistics.median(packed_cpu):.1f} s: {cpu_ratio:.2f}×")
    print(f"mean final accuracy: one by one {100 * statistics.mean(a.final_accuracy for a in alone):.2f}%, "
          f"packed {100 * statistics.mean(p.final_accuracy for p in packed):.2f}%")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "device": name, "dataset": dataset, "train_images": len(data.train_y), "seeds": args.seeds,
            "epochs": args.epochs, "alone_s": alone_times, "packed_s": packed_times, "ratio": ratio,
            "alone_cpu_s": alone_cpu, "packed_cpu_s": packed_cpu,
            "alone_accuracy": [a.final_accuracy for a in alone], "packed_accuracy": [p.final_accuracy for p in packed],
        }, indent=1))
    return 0


def _profile(config: RunConfig, out: Path, data_dir: str | None) -> None:
    """Self time per operator over one epoch of one run: what a pack could share (the fixed costs of an
    operator call, the optimiser's and autograd's per step) beside what it cannot (each run's arithmetic)."""
    from torch.profiler import profile

    train(config, out_dir=out / "warm", data_root=data_dir)  # oneDNN's kernels chosen outside the profile
    with profile() as profiler:
        train(config, out_dir=out / "run", data_root=data_dir)
    events = profiler.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    print(f"one epoch of one run, self CPU time by operator ({total / 1e6:.2f} s in all):")
    for event in sorted(events, key=lambda e: -e.self_cpu_time_total)[:16]:
        print(f"  {event.key[:48]:<48} {100 * event.self_cpu_time_total / total:5.1f} %  {event.count:>6} calls")


if __name__ == "__main__":
    sys.exit(main())
