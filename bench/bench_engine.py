"""Engine vs the seed's pipeline, side by side in one process, per run kind.

    python bench/bench_engine.py --dataset cifar10-jpg --subset 5000            # CPU
    python bench/bench_engine.py --dataset cifar10-jpg --device cuda            # GPU, full set

For each kind it times one training epoch of the seed-style loop and of the engine on the same
data and hyperparameters (the KD kinds distil from the same teacher checkpoint) and prints
images/s for each and their ratio. It then projects each whole experiment (20 + 20 + 3×10
epochs) from those epoch times, and adds the engine's one-off costs (teacher outputs, CUDA graph
capture) that a projection from epoch times would hide.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]
import seed_loop  # noqa: E402

from kdcore.config import RunConfig  # noqa: E402
from kdcore.data.loader import load_dataset  # noqa: E402
from kdcore.registry import EXPERIMENT_KINDS, METHODS  # noqa: E402
from kdcore.training.checkpoint import load_checkpoint  # noqa: E402
from kdcore.training.engine import resolve_device, train  # noqa: E402


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def seed_epoch(kind, data, teacher_ckpt, device, workers):
    method = METHODS[kind]
    torch.manual_seed(42)
    student = (seed_loop.Teacher(data.num_classes) if method.teaches
               else seed_loop.Student(data.num_classes, regressor=kind == "fitnet")).to(device)
    teacher = None
    if method.needs_teacher:
        teacher = seed_loop.Teacher(data.num_classes)
        teacher.load_state_dict(load_checkpoint(teacher_ckpt)["model"])  # the same key names
        teacher.to(device).eval()
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-3)
    train_loader = seed_loop.loader(data.train_x, data.train_y, workers=workers)
    _sync(device)
    start = time.perf_counter()
    seed_loop.train_epoch(kind, student, teacher, train_loader, optimizer, device)
    _sync(device)
    return time.perf_counter() - start


def engine_epoch(kind, dataset, subset, data_root, teacher_ckpt, device, out, train_size):
    """Seconds of the training phase, of the whole run (setup included) and of the epoch with its test pass."""
    config = RunConfig(kind=kind, dataset=dataset, subset=subset, epochs=1, device=device.type)
    start = time.perf_counter()
    result = train(config, out_dir=out / kind, data_root=data_root,
                   teacher_checkpoint=teacher_ckpt if config.method.needs_teacher else None)
    total = time.perf_counter() - start
    epoch = result.epochs[0]
    return train_size / epoch.images_per_sec, total, epoch.seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="cifar10-jpg")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--subset", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=2, help="the seed's DataLoader workers")
    parser.add_argument("--kinds", default=",".join(EXPERIMENT_KINDS))
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()

    device = resolve_device(args.device)
    data = load_dataset(args.dataset, args.data_dir, args.subset)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; dataset {args.dataset}, {len(data.train_y)} train / {len(data.test_y)} test images; "
          f"batch 32, Adam 1e-3; one epoch per kind and loop")
    out = Path(tempfile.mkdtemp(prefix="kd-bench-"))
    teacher_run = train(RunConfig(kind="teacher", dataset=args.dataset, subset=args.subset, epochs=1,
                                  device=device.type), out_dir=out / "bench-teacher", data_root=args.data_dir)
    teacher_ckpt = teacher_run.checkpoint

    rows = []
    print(f"{'kind':<8} {'seed img/s':>11} {'engine img/s':>13} {'ratio':>7} {'engine run s':>13}")
    for kind in args.kinds.split(","):
        seed_s = seed_epoch(kind, data, teacher_ckpt, device, args.workers)
        train_s, run_s, epoch_s = engine_epoch(kind, args.dataset, args.subset, args.data_dir, teacher_ckpt, device, out,
                                              len(data.train_y))
        n = len(data.train_y)
        row = {"kind": kind, "seed_epoch_s": seed_s, "engine_train_s": train_s, "engine_epoch_s": epoch_s,
               "engine_run_s": run_s, "seed_img_s": n / seed_s, "engine_img_s": n / train_s, "ratio": seed_s / train_s}
        rows.append(row)
        print(f"{kind:<8} {row['seed_img_s']:>11.0f} {row['engine_img_s']:>13.0f} {row['ratio']:>6.1f}× "
              f"{run_s:>13.2f}", flush=True)

    by_kind = {r["kind"]: r for r in rows}
    if set(by_kind) == set(EXPERIMENT_KINDS):
        epochs = {k: METHODS[k].default_epochs for k in EXPERIMENT_KINDS}
        seed_total = sum(by_kind[k]["seed_epoch_s"] * epochs[k] for k in EXPERIMENT_KINDS)
        # The engine's projection: every epoch with its test evaluation, plus each run's one-off setup.
        ours_total = sum(by_kind[k]["engine_epoch_s"] * epochs[k] + by_kind[k]["engine_run_s"]
                         - by_kind[k]["engine_epoch_s"] for k in EXPERIMENT_KINDS)
        kd_kinds = [k for k in EXPERIMENT_KINDS if METHODS[k].needs_teacher]
        seed_kd = sum(by_kind[k]["seed_epoch_s"] * epochs[k] for k in kd_kinds)
        ours_kd = sum(by_kind[k]["engine_epoch_s"] * epochs[k] + by_kind[k]["engine_run_s"] - by_kind[k]["engine_epoch_s"]
                      for k in kd_kinds)
        print(f"projected whole experiment (20+20+3×10 epochs): seed {seed_total:.0f} s, engine {ours_total:.0f} s, "
              f"{seed_total / ours_total:.1f}× faster")
        print(f"projected three KD runs: seed {seed_kd:.0f} s, engine {ours_kd:.0f} s, {seed_kd / ours_kd:.1f}× faster")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": name, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
