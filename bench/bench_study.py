"""A 12-run study end to end through ``kd sweep``, in one process.

    KD_DATA_DIR=DIR python bench/bench_study.py                      # DIR holds cifar10-jpg.tar.xz
    python bench/bench_study.py --subset 500 --epochs 1 --teacher-epochs 1   # a quick rehearsal

The design: one teacher, trained first with ``kd train teacher`` and timed on its own; then the study,
``kd sweep --methods student,kd,cosine,fitnet --seeds 1,2,3 --teacher CKPT``: 4 methods × 3 seeds =
exactly 12 runs, all distilling from that checkpoint. Decoding the archive (once per data directory) is
timed apart too. Prints the total, each run's time (its training loop, and its whole run with data,
teacher outputs and checkpoints), the mean per method, and the study's paper table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent)]

from kdcore.cli import main  # noqa: E402
from kdcore.data.loader import load_dataset  # noqa: E402

METHODS = ("student", "kd", "cosine", "fitnet")
SEEDS = (1, 2, 3)


def _kd(args: list[str]) -> float:
    started = time.perf_counter()
    code = main(args)
    if code != 0:
        raise SystemExit(f"kd {' '.join(args)} exited with {code}")
    return time.perf_counter() - started


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="cifar10-jpg")
    parser.add_argument("--data-dir", default=None, help="default: $KD_DATA_DIR or ./data")
    parser.add_argument("--subset", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=5, help="each student's")
    parser.add_argument("--teacher-epochs", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None, help="default: a temporary folder")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="bench-study-"))
    data = ["--dataset", args.dataset, "--subset", str(args.subset), "--device", args.device]
    if args.data_dir:
        data += ["--data-dir", args.data_dir]

    load_before = os.getloadavg()
    started = time.perf_counter()
    load_dataset(args.dataset, args.data_dir, args.subset)  # decodes the archive into the cache once
    decode_s = time.perf_counter() - started
    teacher_s = _kd(["train", "teacher", *data, "--epochs", str(args.teacher_epochs), "--out", str(out / "teacher")])
    study_s = _kd(["sweep", "--methods", ",".join(METHODS), "--seeds", ",".join(map(str, SEEDS)),
                   "--teacher", str(out / "teacher" / "checkpoint.pt"), "--epochs", str(args.epochs), *data,
                   "--out", str(out / "study")])
    summary = json.loads((out / "study" / "summary.json").read_text())
    runs = summary["runs"]
    assert len(runs) == len(METHODS) * len(SEEDS) == 12, len(runs)

    print(f"\n{args.dataset}, {args.subset:,} images, students {args.epochs} epochs, teacher {args.teacher_epochs} "
          f"epochs, device {summary['device']}")
    load_after = os.getloadavg()
    print(f"load average (1, 5, 15 min) before {' '.join(f'{v:.1f}' for v in load_before)}, after "
          f"{' '.join(f'{v:.1f}' for v in load_after)} on {os.cpu_count()} CPUs: other work slows every figure")
    print(f"decode / load the data      {decode_s:8.1f} s")
    print(f"teacher (kd train teacher)  {teacher_s:8.1f} s")
    print(f"study of 12 runs (kd sweep) {study_s:8.1f} s   ({study_s / len(runs):.1f} s per run)")
    print(f"total                       {decode_s + teacher_s + study_s:8.1f} s\n")
    print(f"{'run':<14} {'status':<10} {'train s':>8} {'run s':>7} {'final acc':>10}")
    for run in runs:
        accuracy = f"{100 * run['final_accuracy']:.2f}%" if run["final_accuracy"] is not None else "-"
        print(f"{Path(run['out']).name:<14} {run['status']:<10} {run['seconds'] or 0:>8.1f} "
              f"{run['wall_seconds'] or 0:>7.1f} {accuracy:>10}")
    per_method = {m: statistics.mean(r["wall_seconds"] for r in runs if r["method"] == m) for m in METHODS}
    print("\nmean run time by method (whole run): "
          + ", ".join(f"{m} {seconds:.1f} s" for m, seconds in per_method.items()))
    print("\n" + summary["tables"]["markdown"])
    if args.json:
        Path(args.json).write_text(json.dumps({
            "dataset": args.dataset, "subset": args.subset, "epochs": args.epochs,
            "teacher_epochs": args.teacher_epochs, "device": summary["device"], "decode_s": decode_s,
            "teacher_s": teacher_s, "study_s": study_s, "load_before": load_before, "load_after": load_after, "per_method_s": per_method,
            "runs": [{k: r[k] for k in ("method", "seed", "status", "seconds", "wall_seconds", "final_accuracy")}
                     for r in runs], "table": summary["tables"]["markdown"]}, indent=1))


if __name__ == "__main__":
    main_bench()
