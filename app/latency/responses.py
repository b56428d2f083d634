"""The latency API's answers, as documented in the OpenAPI schema."""

from __future__ import annotations

from pydantic import Field

from app.web.api import ApiModel, Timestamp


class LatencyKey(ApiModel):
    device: str = Field(description="cpu or cuda")
    device_model: str = Field(description="The CPU's or GPU's model name")
    torch: str
    onnxruntime: str | None = Field(description="null: onnxruntime not installed where it was measured")


class LatencyOut(ApiModel):
    network: str
    num_classes: int
    target: str = Field(description="cpu, cuda or onnxruntime-cpu")
    batch: int
    threads: int | None = Field(description="CPU threads (null on the GPU)")
    median_s: float | None = Field(description="Median seconds of one call over the timed blocks; null: unavailable")
    iqr_s: float | None = Field(description="Inter-quartile range of the blocks' per-call seconds")
    blocks: int
    calls: int
    unavailable: str | None = Field(description="Why this row has no figure (onnxruntime not installed, ...)")
    min_run_time: float | None
    measured_at: Timestamp | None
    key: LatencyKey


class LatencyRequestOut(ApiModel):
    id: int
    status: str = Field(description="queued, running, completed or failed")
    num_classes: int
    networks: list[str] = Field(description="Empty: every network")
    min_run_time: float
    requested_at: Timestamp | None
    started_at: Timestamp | None
    finished_at: Timestamp | None
    worker: str | None
    error: str | None


class LatencyListOut(ApiModel):
    num_classes: int
    items: list[LatencyOut]
    requests: list[LatencyRequestOut] = Field(description="The latest requests, newest first")
