"""The methods' training steps: no host synchronisation, and what each costs beside kd's.

Every distilling method of the registry (plugins' included), for each student ← teacher pair (by default
the benchmark's resnet8x4 ← resnet32x4), side by side in one process:
- a step on meta tensors (kdcore.training.graph_safety), which fails on any read back to the host;
- on a GPU, steps under torch.cuda.set_sync_debug_mode("error"), which fails on any synchronisation
  (skipped for a method that declares one, ``Method.host_sync``, whose steps are never graph-captured);
- the time of a full training step (forward, loss, backward, SGD; the teacher's outputs precomputed, as
  the engine caches them), in rounds: a round steps every method in turn (on a CPU one step each per pass,
  the order rotated every pass) and divides each method's time by kd's in the same round, so that a
  machine that slows down slows both sides of a ratio. The table gives the median over rounds and the
  rounds' range: where that range is wide, the machine was too busy to tell.

    python bench/bench_losses.py [--device auto] [--pairs resnet8x4:resnet32x4 ...] [--rounds 5]
                                 [--steps 5] [--batch 32] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent)]

import torch  # noqa: E402

from kdcore.architectures import catalog, registry  # noqa: E402
from kdcore.config import RunConfig  # noqa: E402
from kdcore.data.catalog import DEFAULT_NORMALIZATION  # noqa: E402
from kdcore.methods.base import LOGITS, Outputs, Progress  # noqa: E402
from kdcore.registry import METHODS  # noqa: E402
from kdcore.training.engine import online_teacher, resolve_device  # noqa: E402
from kdcore.training.graph_safety import meta_step  # noqa: E402
from kdcore.training.method_calls import build_modules, method_loss  # noqa: E402
from kdcore.training.teacher_parts import shipped, trainable, with_teacher_parts  # noqa: E402
from kdcore.training.views import with_views  # noqa: E402

DEFAULT_PAIRS = ("resnet8x4:resnet32x4",)
# A CIFAR-sized training set for methods that keep per-image state (CRD's memory banks).
CIFAR_IMAGES = 50_000


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_step(kind: str, student: str, teacher_net, teacher_outputs: dict, shapes: dict, teacher: str, images,
              labels, index, train_labels, device: torch.device):
    """One full training step of ``kind`` on fixed data, as a closure over its own student, modules and SGD."""
    config = RunConfig(kind=kind, architecture=student)
    method = config.method
    wanted = method.taps(shapes[student], shapes[teacher], config.params)
    torch.manual_seed(0)
    model = registry()[student][0](10).to(device)
    modules = build_modules(method, shapes[student], shapes[teacher], config.params, train_labels)
    modules = with_teacher_parts(method, modules, teacher_net, shapes[student], shapes[teacher], config.params)
    modules = modules.to(device) if modules is not None else None
    t_logits, t_taps = teacher_outputs
    teacher_out = Outputs(t_logits if LOGITS in wanted.teacher else None,
                          {t: t_taps[t] for t in wanted.teacher if t != LOGITS})
    # What ships and trains with it (SimKD's student has no classifier of its own; a teacher part is frozen).
    trained = list({id(p): p for p in trainable(shipped(method, model, modules), modules)}.values())
    optimizer = torch.optim.SGD(trained, lr=0.01, momentum=0.9)
    progress = Progress(torch.ones((), device=device), torch.zeros((), device=device), config.epochs, 100)
    teacher_on = online_teacher(teacher_net, wanted.teacher)  # for a method's views: never precomputed

    def student_on(batch):
        logits, taps = model(batch)
        return Outputs(logits, {t: taps[t] for t in wanted.student})

    def step():
        student_out, teacher_view = student_on(images), teacher_out
        if method.views:
            student_out, teacher_view = with_views(method.views, images, student_on, teacher_on, student_out,
                                                   teacher_out, normalization=DEFAULT_NORMALIZATION)
        total, _ = method_loss(method, student_out, teacher_view, labels, config.params, progress, modules, index)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()

    return step


def check_syncs(kind: str, step, device: torch.device) -> str:
    if device.type != "cuda":
        return "n/a (CPU)"
    if METHODS[kind].host_sync:
        return "declared"
    torch.cuda.set_sync_debug_mode("error")  # any synchronisation inside these steps raises
    try:
        for _ in range(3):
            step()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    return "none"


def timed_round(stepper: dict, order: list[str], device: torch.device, steps: int) -> dict[str, float]:
    """Each method's step time in one round, in ms. On a CPU, ``steps`` passes over the methods, one step
    each (the order rotated every pass), and each method's median: a burst of another process's load
    falls on neighbouring methods alike. On a GPU, each method's mean over a stream of ``steps`` steps
    with one synchronisation at its end, as training runs."""
    if device.type == "cuda":
        result = {}
        for kind in order:
            _sync(device)
            start = time.perf_counter()
            for _ in range(steps):
                stepper[kind]()
            _sync(device)
            result[kind] = 1000 * (time.perf_counter() - start) / steps
        return result
    times: dict[str, list[float]] = {kind: [] for kind in order}
    for p in range(steps):
        for kind in order[p % len(order):] + order[:p % len(order)]:
            start = time.perf_counter()
            stepper[kind]()
            times[kind].append(1000 * (time.perf_counter() - start))
    return {kind: statistics.median(values) for kind, values in times.items()}


def bench_pair(student: str, teacher: str, device: torch.device, rounds: int, steps: int, batch: int) -> list[tuple]:
    kinds = ["kd", *(k for k, m in METHODS.items() if m.needs_teacher and k != "kd")]
    shapes = {n: {t: tuple(s) for t, s in info["taps"].items()} for n, info in catalog(10).items()}
    torch.manual_seed(0)
    images = torch.randn(batch, 3, 32, 32, device=device)
    train_labels = torch.arange(CIFAR_IMAGES) % 10
    index = torch.randperm(CIFAR_IMAGES)[:batch].to(device)
    labels = train_labels.to(device).index_select(0, index)
    teacher_net = registry()[teacher][0](10).to(device).eval()
    with torch.no_grad():
        teacher_outputs = teacher_net(images)
    stepper, syncs = {}, {}
    for kind in kinds:
        meta_step(kind, student, teacher)  # raises on a host read
        stepper[kind] = make_step(kind, student, teacher_net, teacher_outputs, shapes, teacher, images, labels, index,
                                   train_labels, device)
        for _ in range(3):  # warm-up: allocator, cuDNN's choices, the momentum buffers
            stepper[kind]()
        syncs[kind] = check_syncs(kind, stepper[kind], device)
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    ratios: dict[str, list[float]] = {kind: [] for kind in kinds}
    for r in range(rounds):
        order = kinds[r % len(kinds):] + kinds[:r % len(kinds)]
        this_round = timed_round(stepper, order, device, steps)
        for kind in kinds:
            times[kind].append(this_round[kind])
            ratios[kind].append(this_round[kind] / this_round["kd"])
    return [(kind, syncs[kind], statistics.median(times[kind]), statistics.median(ratios[kind]),
             min(ratios[kind]), max(ratios[kind])) for kind in kinds]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--pairs", nargs="+", default=list(DEFAULT_PAIRS), metavar="STUDENT:TEACHER")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5, help="steps per method per round")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads (1: on a small shared CPU, OpenMP's spinning threads made steps 5-20× "
                        "slower and far noisier; see tests/torch_threads.py)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    per_step = ("each method a stream of {} steps, mean" if device.type == "cuda"
                else "{} passes of one step per method, median").format(args.steps)
    print(f"device: {name}; batch {args.batch}; after 3 warm-up steps, {args.rounds} rounds of {per_step}; "
          f"orders rotated; ratio to kd's step of the same round")
    print(f"{'method':8} {'student ← teacher':28} {'host reads':11} {'GPU syncs':10} {'step ms':>8} {'vs kd':>6}  "
          f"{'rounds':>11}")
    for pair in args.pairs:
        student, teacher = pair.split(":")
        for kind, syncs, ms, ratio, low, high in bench_pair(student, teacher, device, args.rounds, args.steps,
                                                             args.batch):
            print(f"{kind:8} {student + ' ← ' + teacher:28} {'none':11} {syncs:10} {ms:8.1f} {ratio:5.2f}×  "
                  f"{low:5.2f}–{high:4.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
