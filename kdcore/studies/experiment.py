"""The tutorial experiment: a teacher, a baseline student, then three students distilled from it."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from kdcore.config import METHOD_PARAMS, RunConfig, best_teacher_weights_error
from kdcore.errors import ConfigError
from kdcore.figures import compression
from kdcore.registry import EXPERIMENT_KINDS, METHODS
from kdcore.training.engine import RunResult, train


def experiment_configs(dataset: str, subset: int | None = None, **overrides: Any) -> list[RunConfig]:
    """One config per kind, with the tutorial's defaults and the overrides that kind accepts (an
    ``architecture`` is the students': the teacher keeps its own)."""
    configs = []
    for kind in EXPERIMENT_KINDS:
        method = METHODS[kind]
        accepted = {k: v for k, v in overrides.items() if v is not None
                    and (k not in METHOD_PARAMS or k in method.param_names())
                    and not (k == "architecture" and method.teaches)}
        configs.append(RunConfig(kind=kind, dataset=dataset, subset=subset, **accepted))
    teacher = next((c for c in configs if c.method.teaches), None)
    best_error = best_teacher_weights_error(teacher.validation) if teacher else None
    if best_error and any(c.method.needs_teacher and c.teacher_weights == "best" for c in configs):
        raise ConfigError(best_error)  # before the teacher trains, not after
    return configs


def run_experiment(
    configs: list[RunConfig], out_dir: str | os.PathLike, *, data_root=None,
    train_fn: Callable[..., RunResult] = train, concurrent: bool = True, **callbacks: Any,
) -> dict[str, RunResult]:
    """Train the runs that need no teacher, then those that distil from this experiment's teacher.

    On a GPU the runs of each phase train concurrently, each on its own CUDA stream: these
    small models leave most of the GPU idle, and each run's arithmetic is unchanged.
    """
    out_dir, results = Path(out_dir), {}
    phases = [[c for c in configs if not c.method.needs_teacher], [c for c in configs if c.method.needs_teacher]]
    teacher_checkpoint = None
    for phase in phases:
        jobs = [
            dict(config=c, out_dir=out_dir / c.kind, data_root=data_root,
                 teacher_checkpoint=teacher_checkpoint if c.method.needs_teacher else None, **callbacks)
            for c in phase
        ]
        if concurrent and len(jobs) > 1 and all(_on_cuda(c) for c in phase):
            with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
                finished = list(pool.map(lambda job: _on_own_stream(train_fn, job), jobs))
        else:
            finished = [train_fn(**job) for job in jobs]
        for config, result in zip(phase, finished):
            results[config.kind] = result
            if config.method.teaches:
                teacher_checkpoint = result.checkpoint
    return {c.kind: results[c.kind] for c in configs}


def _on_cuda(config: RunConfig) -> bool:
    import torch

    return config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())


def _on_own_stream(train_fn, job: dict) -> RunResult:
    import torch

    with torch.cuda.stream(torch.cuda.Stream()):
        return train_fn(**job)


def summary_rows(results: dict[str, RunResult]) -> list[dict[str, Any]]:
    teacher = next((r for k, r in results.items() if METHODS[k].teaches), None)
    rows = []
    for kind, result in results.items():
        rows.append({
            "kind": kind,
            "title": METHODS[kind].title,
            "test_accuracy": result.final_accuracy,
            "best_epoch": result.best_epoch,
            "best_epoch_label": result.best_epoch_label,
            "test_accuracy_at_best": result.test_accuracy_at_best,
            "best_val_accuracy": result.best_val_accuracy,
            "parameters": result.parameters,
            "compression": compression(teacher.parameters if teacher else None, result.parameters),
            "seconds": result.seconds,
            "epochs": len(result.epochs),
        })
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """The runs' final test accuracies, and the test accuracy at each one's best epoch, which the line below
    the table names: the best validation epoch, or without a validation split the best test epoch."""
    header = f"{'run':<30} {'test acc':>9} {'at best':>8} {'params':>10} {'compr.':>7} {'seconds':>8}"
    lines = [header, "-" * len(header)]
    for row in rows:
        ratio = f"{row['compression']:.1f}×" if row["compression"] else "-"
        lines.append(
            f"{row['title']:<30} {100 * row['test_accuracy']:>8.2f}% {100 * row['test_accuracy_at_best']:>7.2f}% "
            f"{row['parameters']:>10,} {ratio:>7} {row['seconds']:>8.1f}"
        )
    labels = sorted({row["best_epoch_label"] for row in rows})
    lines.append(f"at best: test accuracy at the {' or the '.join(labels)}")
    return "\n".join(lines)


def experiment_study(dataset: str, subset: int | None, seeds: list, **overrides: Any) -> dict[str, Any]:
    """The tutorial experiment repeated over seeds, as a study request (kdcore.studies.study): one teacher per seed,
    each seed's students distilled from their own, every method at its own default epochs unless
    ``epochs`` is given (which, as in the single experiment, sets every run's, the teacher's included)."""
    epochs = overrides.pop("epochs", None)
    architecture = overrides.pop("architecture", None)
    fixed = {k: overrides.pop(k) for k in list(overrides) if k in METHOD_PARAMS}
    methods = []
    for kind in EXPERIMENT_KINDS:
        method = METHODS[kind]
        if not method.teaches:
            params = {k: v for k, v in fixed.items() if k in method.param_names()}
            methods.append({"method": kind, "params": params} if params else kind)
    return {"dataset": dataset, "subset": subset, "methods": methods, "seeds": seeds, "epochs": epochs,
            "teacher_epochs": epochs, "teacher_per_seed": True,
            **({"architectures": [architecture]} if architecture else {}), **overrides}
