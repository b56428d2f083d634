"""bfloat16 autocast against float32, side by side in one process: time and accuracy over seeds.

    python bench/bench_precision.py                              # the seed's teacher and student, 3 seeds
    python bench/bench_precision.py --kinds student --seeds 5 --subset 2000 --epochs 5
    python bench/bench_precision.py --synthetic                  # no archive needed

Each seed trains each kind twice, float32 then bfloat16 (``RunConfig.precision``), on the same data,
with the same initial weights and data order. Printed per kind: seconds per run and their ratio, and
each precision's final accuracy as mean ± std over the seeds with its 95 % interval, then the paired
difference (bfloat16 − float32) with its interval and p-value (kdcore.studies.stats, SciPy's t distribution).
A difference whose interval holds zero is not a difference this benchmark can see.

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
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_packed import add_data_options, prepare  # noqa: E402

from kdcore.config import RunConfig  # noqa: E402
from kdcore.studies.stats import difference, summarize  # noqa: E402
from kdcore.training.engine import train  # noqa: E402

PRECISIONS = typing.get_args(RunConfig.model_fields["precision"].annotation)  # float32 first


def _interval(ci, sign: str = "") -> str:
    return f"[{100 * ci[0]:{sign}.2f}, {100 * ci[1]:{sign}.2f}]" if ci else "[n/a]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", default="teacher,student", help="methods that train without a teacher")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--subset", type=int, default=5000, help="training images; 0 for the whole set")
    parser.add_argument("--epochs", type=int, default=4)
    add_data_options(parser)
    args = parser.parse_args()

    dataset, data_dir, device, subset, data, name = prepare(args)
    print(f"device: {name}; {dataset}, {len(data.train_y)} train / {len(data.test_y)} test images; "
          f"{args.epochs} epochs, seeds 1–{args.seeds}", flush=True)
    out = Path(tempfile.mkdtemp(prefix="kd-bench-precision-"))
    figures = {}
    for kind in args.kinds.split(","):
        seconds = {p: [] for p in PRECISIONS}
        accuracy = {p: {} for p in PRECISIONS}
        for seed in range(1, args.seeds + 1):
            for precision in PRECISIONS:
                config = RunConfig(kind=kind, dataset=dataset, subset=subset, epochs=args.epochs, device=device.type,
                                   seed=seed, precision=precision)
                start = time.perf_counter()
                result = train(config, out_dir=out / f"{kind}-{precision}-{seed}", data_root=data_dir)
                seconds[precision].append(time.perf_counter() - start)
                accuracy[precision][seed] = result.final_accuracy
                print(f"{kind} seed {seed} {precision}: {seconds[precision][-1]:.1f} s, "
                      f"final accuracy {100 * result.final_accuracy:.2f}%", flush=True)
        ratio = statistics.median(seconds["float32"]) / statistics.median(seconds["bfloat16"])
        print(f"== {kind} ({RunConfig(kind=kind).architecture}): median {statistics.median(seconds['float32']):.1f} s "
              f"in float32, {statistics.median(seconds['bfloat16']):.1f} s in bfloat16: {ratio:.2f}× faster")
        for precision in PRECISIONS:
            s = summarize(list(accuracy[precision].values()))
            std = f" ± {100 * s.std:.2f}" if s.std is not None else ""
            print(f"   {precision:>8}: {100 * s.mean:.2f}{std} % (n={s.n}), 95% CI {_interval(s.ci95)}")
        diff = difference(accuracy["bfloat16"], accuracy["float32"])
        if diff is not None:
            p_value = f"{diff.p_value:.2f}" if diff.p_value is not None else "n/a"
            print(f"   bfloat16 − float32: {100 * diff.mean:+.2f} points, 95% CI {_interval(diff.ci95, '+')}, "
                  f"p = {p_value} ({'paired' if diff.paired else 'Welch'}, n={diff.n})")
        figures[kind] = {"seconds": seconds, "accuracy": {p: list(v.values()) for p, v in accuracy.items()},
                         "ratio": ratio}
    if args.json:
        Path(args.json).write_text(json.dumps({"device": name, "dataset": dataset, "figures": figures}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
