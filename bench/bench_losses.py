"""The methods' training steps: no host synchronisation, and what each costs beside the seed's kd.

For each distilling method and student/teacher pair, side by side in one process:
- a step on meta tensors (kdcore.training.graph_safety), which fails on any read back to the host;
- on a GPU, steps under torch.cuda.set_sync_debug_mode("error"), which fails on any synchronisation;
- the time of a full training step (forward, loss, backward, optimiser; the teacher's outputs precomputed,
  as the engine caches them): the median of single steps on a CPU, the mean of a stream of steps on a GPU;
  and its ratio to the kd step of the same pair.

    python bench/bench_losses.py [--device auto] [--steps 20] [--batch 64]
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
from kdcore.methods.base import LOGITS, Outputs, Progress  # noqa: E402
from kdcore.registry import METHODS  # noqa: E402
from kdcore.training.engine import resolve_device  # noqa: E402
from kdcore.training.graph_safety import meta_step  # noqa: E402
from kdcore.training.method_calls import build_modules, method_loss  # noqa: E402

CIFAR_IMAGES = 50_000
PAIRS = (("seed_student", "seed_teacher"), ("resnet20", "resnet56"), ("resnet8x4", "resnet32x4"))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def step_times(kind: str, student: str, teacher: str, device: torch.device, steps: int, batch: int) -> list[float]:
    config = RunConfig(kind=kind, architecture=student)
    method = config.method
    shapes = {n: {t: tuple(s) for t, s in info["taps"].items()} for n, info in catalog(10).items()}
    wanted = method.taps(shapes[student], shapes[teacher], config.params)
    factories = registry()
    torch.manual_seed(0)
    model = factories[student][0](10).to(device)
    # A CIFAR-sized training set for methods that keep per-image state (CRD's memory banks).
    train_labels = torch.arange(CIFAR_IMAGES) % 10
    modules = build_modules(method, shapes[student], shapes[teacher], config.params, train_labels)
    modules = modules.to(device) if modules is not None else None
    images = torch.randn(batch, 3, 32, 32, device=device)
    index = torch.randperm(CIFAR_IMAGES)[:batch].to(device)
    labels = train_labels.to(device).index_select(0, index)
    with torch.no_grad():
        t_logits, t_taps = factories[teacher][0](10).to(device).eval()(images)
    teacher_out = Outputs(t_logits if LOGITS in wanted.teacher else None,
                          {t: t_taps[t] for t in wanted.teacher if t != LOGITS})
    trained = [*model.parameters(), *(modules.parameters() if modules is not None else ())]
    optimizer = torch.optim.SGD(trained, lr=0.01, momentum=0.9)
    progress = Progress(torch.ones((), device=device), torch.zeros((), device=device), config.epochs, steps)

    def step():
        logits, taps = model(images)
        total, _ = method_loss(method, Outputs(logits, {t: taps[t] for t in wanted.student}), teacher_out, labels,
                               config.params, progress, modules, index)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()

    for _ in range(3):  # warm-up: allocator, cuDNN's choices, the momentum buffers
        step()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.set_sync_debug_mode("error")  # any synchronisation inside these steps raises
        try:
            for _ in range(steps):
                step()
        finally:
            torch.cuda.set_sync_debug_mode(0)
        # Timed as a stream of steps with one synchronisation at the end, as training runs.
        start = time.perf_counter()
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
        return [(time.perf_counter() - start) / steps]
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; batch {args.batch}; median of {args.steps} steps after 3 warm-up steps")
    syncs = "none" if device.type == "cuda" else "n/a (CPU)"
    print(f"{'method':8} {'student ← teacher':28} {'host reads':11} {'GPU syncs':10} {'step ms':>8} {'vs kd':>6}")
    for student, teacher in PAIRS:
        kd_ms = None
        for kind in ["kd", *(k for k, m in METHODS.items() if m.needs_teacher and k != "kd")]:
            meta_step(kind, student, teacher)  # raises on a host read
            ms = 1000 * statistics.median(step_times(kind, student, teacher, device, args.steps, args.batch))
            kd_ms = kd_ms or ms
            print(f"{kind:8} {student + ' ← ' + teacher:28} {'none':11} {syncs:10} {ms:8.2f} {ms / kd_ms:5.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
