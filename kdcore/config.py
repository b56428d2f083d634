"""The typed, validated configuration of one run.

The same object travels unchanged from the CLI, the REST JSON or the web form to the
database, the trainer and the checkpoint. It is torch-free.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from kdcore.registry import KINDS, METHODS

# Every hyperparameter any method may use; a method accepts only those in its ``params``.
METHOD_PARAMS = ("temperature", "ce_weight", "distill_weight")


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    kind: str = Field(description="Run kind: " + ", ".join(KINDS))
    dataset: str = Field("cifar10", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    subset: int | None = Field(
        None, ge=1, description="Train on N images stratified by class, and the same fraction of the test split"
    )
    epochs: int | None = Field(None, ge=1, le=1000, description="Defaults to the kind's seed value")
    batch_size: int = Field(32, ge=1, le=65536)
    lr: float = Field(1e-3, gt=0, le=10)
    temperature: float | None = Field(None, gt=0, le=1000, description="Softmax temperature (kd only)")
    ce_weight: float | None = Field(None, ge=0, le=1000, description="Weight of the cross-entropy term (KD kinds)")
    distill_weight: float | None = Field(
        None, ge=0, le=1000, description="Weight of the distillation term (KD kinds)"
    )
    seed: int = Field(42, ge=0, le=2**63 - 1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Speed-ups, each with a switch; they do not change the mathematics.
    resident_data: bool = Field(True, description="Keep the dataset on the device, normalized once")
    cache_teacher: bool = Field(True, description="Compute teacher outputs once and reuse them")
    cuda_graphs: bool = Field(True, description="Replay each training step as a CUDA graph (CUDA only)")
    channels_last: bool = Field(True, description="NHWC memory layout for the convolutions (CUDA only)")

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in METHODS:
            raise ValueError(f"unknown run kind {kind!r}; choose one of: {', '.join(KINDS)}")
        return kind

    @model_validator(mode="before")
    @classmethod
    def _fill_kind_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("kind"), str) or data["kind"] not in METHODS:
            return data  # field validation reports the bad kind
        method = METHODS[data["kind"]]
        data = dict(data)
        for name in METHOD_PARAMS:
            if name in method.params:
                if data.get(name) is None:
                    data[name] = method.params[name]
            elif data.get(name) is not None:
                users = ", ".join(k for k, m in METHODS.items() if name in m.params)
                raise _field_error(name, data[name], "not_applicable", f"{name} applies only to kinds: {users}")
        if data.get("epochs") is None:
            data["epochs"] = method.default_epochs
        return data

    @model_validator(mode="after")
    def _cache_needs_resident_data(self) -> "RunConfig":
        if self.method.teacher_output and self.cache_teacher and not self.resident_data:
            raise _field_error("cache_teacher", True, "needs_resident_data",
                               "cache_teacher needs resident_data; turn both off to run the teacher online")
        return self

    @model_validator(mode="after")
    def _some_loss_weight(self) -> "RunConfig":
        if self.ce_weight is not None and self.distill_weight is not None:
            if self.ce_weight + self.distill_weight <= 0:
                raise _field_error(
                    "distill_weight", self.distill_weight, "all_zero", "ce_weight and distill_weight cannot both be zero"
                )
        return self

    @property
    def method(self):
        return METHODS[self.kind]

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _field_error(field: str, value: Any, kind: str, message: str) -> ValidationError:
    # A model-level check still reports against the field it is about, so forms can show it inline.
    error = InitErrorDetails(type=PydanticCustomError(kind, message), loc=(field,), input=value)
    return ValidationError.from_exception_data("RunConfig", [error])


def seed_config(kind: str, **overrides: Any) -> RunConfig:
    """The seed experiment's configuration for ``kind``, with overrides applied."""
    return RunConfig(kind=kind, **{k: v for k, v in overrides.items() if v is not None})
