"""``kd benchmark``: the cifar100-benchmark preset (kdcore.studies.benchmark) trained here. Everything is checked
first (the request, the dataset, every given teacher checkpoint); then each teacher network's teacher trains
once, unless a checkpoint was given for it, and each study runs as ``kd sweep`` runs one
(kdcore.studies.sweep), distilling from it. ``OUT/benchmark.json`` and ``OUT/table.md`` hold the paper's table
with the published values beside ours, rewritten after each study so that an interrupted benchmark keeps
what it finished. Torch is imported only by the training it calls.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable

from kdcore.config import RunConfig
from kdcore.errors import KDError
from kdcore.studies.benchmark import BenchmarkSpec, PlannedRun, plan, rough_seconds, run_count, studies, teacher_config
from kdcore.studies.benchmark_table import benchmark_table, markdown
from kdcore.studies.groups import Outcome, labelled_groups
from kdcore.studies.study import group_key
from kdcore.studies.sweep import _atomic_write, prepare, run_sweep

BENCHMARK = "benchmark.json"
TABLE = "table.md"


def cost(spec: BenchmarkSpec, runs: list[PlannedRun], data_root: str | os.PathLike | None) -> dict[str, Any]:
    """What the benchmark costs before it trains: its runs, and rough GPU- and CPU-hours from the networks'
    arithmetic at the development machines' pace (nothing here has been measured)."""
    from kdcore.architectures import catalog
    from kdcore.data.catalog import find_dataset

    info = find_dataset(spec.dataset, data_root)
    images = spec.subset or info.train_size
    flops = {name: entry["flops"] for name, entry in catalog(info.num_classes).items()}
    hours = {device: (seconds / 3600 if (seconds := rough_seconds(runs, flops, images, device)) is not None else None)
             for device in ("cuda", "cpu")} if images else {"cuda": None, "cpu": None}
    return {**run_count(spec), "studies": len(studies(spec)), "gpu_hours": hours["cuda"], "cpu_hours": hours["cpu"],
            "basis": "rough", "how": "a rough estimate from the networks' arithmetic at the pace of one H100 (GPU) "
            "and of a 2-core development CPU; no run of these networks has been measured"}


def cost_line(found: dict[str, Any]) -> str:
    """The cost in one sentence, as the CLI prints it before anything trains."""
    def hours(value):
        return "unknown" if value is None else f"{value:,.2f}"

    def count(number, one, many):
        return f"{number} {one if number == 1 else many}"

    return (f"{count(found['total'], 'run', 'runs')} ({count(found['teachers'], 'teacher', 'teachers')}, "
            f"{count(found['students'], 'baseline student', 'baseline students')}, {found['distilled']} distilled) "
            f"in {count(found['studies'], 'study', 'studies')}: about {hours(found['gpu_hours'])} "
            f"GPU-hours ({hours(found['cpu_hours'])} CPU-hours), {found['how']}")


def _check_teacher_network(path: str | os.PathLike, network: str) -> None:
    from kdcore.architectures import canonical
    from kdcore.errors import CheckpointError
    from kdcore.training.checkpoint import load_checkpoint

    trained = canonical(str(load_checkpoint(path)["config"].get("architecture")))
    if trained != network:
        raise CheckpointError(f"--teacher {network}={path}: that checkpoint holds a {trained}, not a {network}")


def _teacher_group(config: RunConfig, result: Any) -> list[dict[str, Any]]:
    """The teacher the benchmark trained, as the table's teacher row counts it (one seed)."""
    completed = not isinstance(result, BaseException)
    return labelled_groups([Outcome(group=group_key(config), kind=config.kind, role="teacher",
                                    architecture=config.architecture, params={}, seed=config.seed,
                                    status="completed" if completed else "failed",
                                    final_accuracy=result.final_accuracy if completed else None,
                                    best_accuracy=result.test_accuracy_at_best if completed else None,
                                    epochs=config.epochs, dataset=config.dataset, subset=config.subset,
                                    validation=config.validation)])


def run_benchmark(spec: BenchmarkSpec, out_dir: str | os.PathLike, *, data_root: str | os.PathLike | None = None,
                  max_runs: int = 5000, pack: int | None = None, progress: Callable[..., Any] | None = None,
                  on_note: Callable[[str], None] | None = None,
                  on_cost: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Check, announce the cost (``on_cost``), train and tabulate the benchmark; returns what it wrote to
    OUT/benchmark.json. ``spec.teachers`` names a checkpoint per teacher network to distil from instead."""
    from kdcore.training import engine  # looked up at call time, so that tests can replace engine.train

    note = on_note or (lambda text: None)
    runs = plan(spec, max_runs)
    chosen = studies(spec)
    for study in chosen:  # the dataset, the subset and every given checkpoint, before anything trains
        given = spec.given_teacher(study.teacher)
        if given is not None:
            _check_teacher_network(given, study.teacher)
        prepare({**study.payload, **({} if given else {"teacher_architecture": study.teacher})}, Path(out_dir),
                teacher_checkpoint=given, max_runs=max_runs, data_root=data_root)
    found = cost(spec, runs, data_root)
    if on_cost:
        on_cost(found)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    checkpoints: dict[str, str | None] = {}
    teacher_groups: dict[str, list[dict]] = {}
    for index, network in enumerate(spec.teacher_networks(), start=1):
        given = spec.given_teacher(network)
        if given is not None:
            checkpoints[network], teacher_groups[network] = str(given), []
            continue
        config = teacher_config(spec, network)
        bar = progress(config, f"teacher {network}") if progress else None
        try:
            result = engine.train(config, out_dir=out / "teachers" / f"{index}-{network}", data_root=data_root,
                                  on_step=bar.on_step if bar else None, on_epoch=bar.on_epoch if bar else None)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001  (its studies are skipped; the other teachers' still train)
            result = exc
            note(f"teacher {network} failed: {exc}")
        finally:
            if bar:
                bar.close()
        checkpoints[network] = None if isinstance(result, BaseException) else result.checkpoint
        teacher_groups[network] = _teacher_group(config, result)
    groups_by_pair: dict[str, list[dict]] = {}
    summaries = []
    for index, study in enumerate(chosen, start=1):
        folder = out / f"study-{index}-{study.teacher}-lr{study.payload['lr']:g}"
        if checkpoints[study.teacher] is None:
            note(f"{folder.name}: skipped, its teacher did not complete")
            continue
        sweep = prepare(study.payload, folder, teacher_checkpoint=checkpoints[study.teacher], max_runs=max_runs,
                        data_root=data_root)

        def bar(run, total, position=0, _study=index):
            return progress(run.config, f"[study {_study}/{len(chosen)}, {run.index}/{total}] "
                                        f"{run.config.kind} {run.config.architecture} seed {run.config.seed}",
                            position) if progress else None

        summary = run_sweep(sweep, data_root=data_root, progress=bar if progress else None, on_note=note, pack=pack)
        summaries.append({"teacher": study.teacher, "pairs": [p.key for p in study.pairs], "out": str(folder),
                          "completed": summary["completed"], "failed": summary["failed"], "total": summary["total"]})
        for pair in study.pairs:
            groups_by_pair[pair.key] = [*teacher_groups[study.teacher], *summary["groups"]]
        _write(out, spec, found, summaries, groups_by_pair, checkpoints, time.perf_counter() - started)
    return _write(out, spec, found, summaries, groups_by_pair, checkpoints, time.perf_counter() - started)


def _write(out: Path, spec: BenchmarkSpec, found: dict, summaries: list, groups_by_pair: dict,
           checkpoints: dict, seconds: float) -> dict[str, Any]:
    table = benchmark_table(spec.chosen_pairs(), groups_by_pair, spec.methods, spec.dataset, spec.subset)
    data = {"benchmark": spec.model_dump(mode="json"), "cost": found, "teachers": checkpoints,
            "studies": summaries, "seconds": seconds, "table": table, "markdown": markdown(table)}
    _atomic_write(out / BENCHMARK, json.dumps(data, indent=1))
    _atomic_write(out / TABLE, data["markdown"])
    return data


def given_teachers(items: list[str]) -> dict[str, str]:
    """``["resnet32x4=runs/t/checkpoint.pt", …]`` → ``{"resnet32x4": "runs/t/checkpoint.pt"}``."""
    found = {}
    for item in items:
        network, equals, path = item.partition("=")
        if not equals or not network.strip() or not path.strip():
            raise KDError(f"--teacher {item!r}: expected NETWORK=CHECKPOINT, e.g. resnet32x4=runs/t/checkpoint.pt")
        found[network.strip()] = path.strip()
    return found
