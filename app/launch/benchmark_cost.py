"""What a benchmark costs, said before anything of it trains (the launch page's benchmark form, and the answers of
POST /api/benchmarks and /api/benchmarks/cost): its runs, and its GPU-hours from the epoch times measured here per
network (app.launch.timings) where there are some, else from the networks' arithmetic, labelled an estimate
(app.launch.estimates); and the same on this server's own workers when they are not GPUs."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from sqlmodel import Session

from app.launch import benchmark_form
from app.launch.estimates import Estimator, Planned
from app.launch.timings import measured_runs, worker_device
from kdcore.architectures import catalog
from app.runs.form import FormError
from kdcore.data.catalog import DatasetInfo, list_datasets
from kdcore.studies.benchmark import BenchmarkSpec, parse_benchmark, plan, run_count, studies
from kdcore.studies.study import StudyInputError


def _hours(estimator: Estimator, runs: list[Planned]) -> dict[str, Any] | None:
    found = estimator.total(runs)
    if found is None:
        return None
    return {"seconds": found.seconds, "hours": found.seconds / 3600, "basis": found.basis, "how": found.how,
            "where": estimator.where}


def benchmark_cost(session: Session, spec: BenchmarkSpec, datasets: list[DatasetInfo], max_runs: int,
                   pool: Any = None) -> dict[str, Any]:
    """The runs of a checked benchmark and how long they train one after another: ``gpu`` on a GPU worker,
    ``here`` on this server's workers when they are CPUs (None otherwise); either is None, with ``problem``
    saying why, when the data's size or a network's is unknown."""
    counts = {**run_count(spec), "studies": len(studies(spec))}
    size = next((d.train_size for d in datasets if d.name == spec.dataset), None)
    images = spec.subset or size
    if images is None:
        return {**counts, "gpu": None, "here": None,
                "problem": f"the size of {spec.dataset} is not known until it has been loaded"}
    # The launch page's catalog: its FLOPs differ from CIFAR-100's by the classifier alone.
    flops = {name: info["flops"] for name, info in catalog(10).items()}
    runs = [Planned(run.config, images, flops.get(run.teacher) if run.teacher else None)
            for run in plan(spec, max_runs)]
    measured = measured_runs(session, {d.name: d.train_size for d in datasets})
    device, _ = worker_device(session, pool)
    gpu = _hours(Estimator(measured, "cuda", flops), runs)
    here = _hours(Estimator(measured, device, flops), runs) if device == "cpu" else None
    return {**counts, "gpu": gpu, "here": here,
            "problem": None if gpu else "a network's size is not known"}


def form_cost(request: Request, session: Session, values: dict[str, list[str]]) -> dict:
    """What the benchmark form would cost now, or why that is not known yet (a field the submit would refuse)."""
    settings = request.app.state.settings
    datasets = list_datasets(settings.data_dir)
    try:
        spec = parse_benchmark(benchmark_form.benchmark_payload(values or benchmark_form.defaults(datasets)))
        return benchmark_cost(session, spec, datasets, settings.max_study_runs,
                              getattr(request.app.state, "worker_pool", None))
    except (FormError, StudyInputError) as exc:
        return {"problem": exc.errors[0]["msg"]}
