"""What the benchmarks API returns (the /api/benchmarks routes' response models)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from app.web.api import ApiModel


class HoursOut(ApiModel):
    """How long the benchmark's runs train one after another on one kind of device."""

    seconds: float
    hours: float
    basis: str = Field(description="What the figure rests on: measured step times, or an estimate that says so")
    how: str = Field(description="In words: how the figure was reached")
    where: str = Field(description="The device the figure is for")


class BenchmarkCostOut(ApiModel):
    """Runs and GPU-hours of a benchmark before anything trains."""

    teachers: int = Field(description="Teacher runs it trains (one per teacher network not given)")
    students: int = Field(description="Baseline students")
    distilled: int = Field(description="Runs of the chosen methods")
    total: int
    studies: int = Field(description="Studies it creates: one per teacher network and learning rate")
    gpu: HoursOut | None = Field(description="On a GPU worker; null when not known (see problem)")
    here: HoursOut | None = Field(description="On this server's CPU workers; null where they are not CPUs")
    problem: str | None = Field(description="Why a figure is not known")


class BenchmarkStudyOut(ApiModel):
    """One of the benchmark's studies and its progress."""

    study_id: int
    name: str | None
    teacher: str = Field(description="The teacher network its pairs share")
    teacher_run_id: int | None
    pairs: list[str] = Field(description="Its pairs, as teacher:student")
    status: str
    runs: int
    completed: int


class BenchmarkOut(ApiModel):
    """A benchmark: its request, its studies' progress and the paper's table (published values beside ours)."""

    id: int
    name: str | None
    dataset: str
    spec: dict[str, Any] = Field(description="The request as stored (POST /api/benchmarks' body, checked)")
    teachers: dict[str, int] = Field(description="Teacher run id by teacher network")
    studies: list[BenchmarkStudyOut]
    created_at: str
    table: dict[str, Any] = Field(description="The paper's layout: pairs as columns, the teacher, the student and "
                                  "each method as rows; each cell our mean ± std over seeds (n) and the published "
                                  "values beside it")
    markdown: str = Field(description="The same table in Markdown")


class CreatedBenchmarkOut(BenchmarkOut):
    cost: BenchmarkCostOut


class BenchmarkItemOut(ApiModel):
    id: int
    name: str | None
    dataset: str
    spec: dict[str, Any]
    teachers: dict[str, int]
    study_ids: list[int]


class BenchmarkListOut(ApiModel):
    items: list[BenchmarkItemOut] = Field(description="Newest first")
