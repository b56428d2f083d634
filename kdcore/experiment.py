"""The seed experiment: a teacher, a baseline student, then three students distilled from it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from kdcore.config import RunConfig
from kdcore.engine import RunResult, train
from kdcore.registry import EXPERIMENT_KINDS, METHODS


def experiment_configs(dataset: str, subset: int | None = None, **overrides: Any) -> list[RunConfig]:
    """One config per kind, with the seed's defaults and the overrides that kind accepts."""
    configs = []
    for kind in EXPERIMENT_KINDS:
        method = METHODS[kind]
        accepted = {k: v for k, v in overrides.items() if v is not None and (k not in _METHOD_ONLY or k in method.params)}
        configs.append(RunConfig(kind=kind, dataset=dataset, subset=subset, **accepted))
    return configs


_METHOD_ONLY = ("temperature", "ce_weight", "distill_weight")


def run_experiment(
    configs: list[RunConfig], out_dir: str | os.PathLike, *, data_root=None,
    train_fn: Callable[..., RunResult] = train, **callbacks: Any,
) -> dict[str, RunResult]:
    """Train each config in order; students that need a teacher distil from this experiment's."""
    out_dir, results = Path(out_dir), {}
    teacher_checkpoint = None
    for config in configs:
        result = train_fn(
            config, out_dir=out_dir / config.kind, data_root=data_root,
            teacher_checkpoint=teacher_checkpoint if config.method.needs_teacher else None, **callbacks,
        )
        if config.method.architecture == "teacher":
            teacher_checkpoint = result.checkpoint
        results[config.kind] = result
    return results


def summary_rows(results: dict[str, RunResult]) -> list[dict[str, Any]]:
    teacher = next((r for k, r in results.items() if METHODS[k].architecture == "teacher"), None)
    rows = []
    for kind, result in results.items():
        rows.append({
            "kind": kind,
            "title": METHODS[kind].title,
            "test_accuracy": result.final_accuracy,
            "best_accuracy": result.best_accuracy,
            "best_epoch": result.best_epoch,
            "parameters": result.parameters,
            "compression": teacher.parameters / result.parameters if teacher else None,
            "seconds": result.seconds,
            "epochs": len(result.epochs),
        })
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    header = f"{'run':<30} {'test acc':>9} {'best':>7} {'params':>10} {'compr.':>7} {'seconds':>8}"
    lines = [header, "-" * len(header)]
    for row in rows:
        compression = f"{row['compression']:.1f}×" if row["compression"] else "-"
        lines.append(
            f"{row['title']:<30} {100 * row['test_accuracy']:>8.2f}% {100 * row['best_accuracy']:>6.2f}% "
            f"{row['parameters']:>10,} {compression:>7} {row['seconds']:>8.1f}"
        )
    return "\n".join(lines)
