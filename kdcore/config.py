"""The typed, validated configuration of one run.

The same object travels unchanged from the CLI, the REST JSON or the web form to the
database, the trainer and the checkpoint. It is torch-free.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from kdcore.methods.base import Hyperparameters, NoHyperparameters
from kdcore.presets import PRESETS
from kdcore.registry import KINDS, METHODS

# Every hyperparameter any method declares. A method's own live under ``params``; given at the top
# level (how configurations were written before methods had their own), they move there.
METHOD_PARAMS = tuple(dict.fromkeys(name for method in METHODS.values() for name in method.param_names()))


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    kind: str = Field(description="Method: " + ", ".join(KINDS))
    architecture: str | None = Field(
        None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="The network this run trains (a KD run's student); defaults to the method's",
    )
    params: Annotated[SerializeAsAny[Hyperparameters], WithJsonSchema(
        {"type": "object", "description": "The method's own hyperparameters (GET /api/methods lists each "
         "method's); omitted ones take the method's defaults"})] = Field(default_factory=NoHyperparameters)
    dataset: str = Field("cifar10", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    subset: int | None = Field(
        None, ge=1, description="Train on N images stratified by class, and the same fraction of the test split"
    )
    validation: float = Field(
        0.0, ge=0, le=0.5, description="Hold out this fraction of the training images, stratified by class and "
        "the same for every run of the data (not drawn from the run's seed), to choose the best epoch and a "
        "teacher's best weights on; 0: none, and any best epoch is the best test epoch (optimistic)")
    epochs: int | None = Field(None, ge=1, le=1000, description="Defaults to the method's own (the tutorial's)")
    batch_size: int = Field(32, ge=1, le=65536)
    # The recipe. Its defaults are the tutorial's (Adam, constant lr, no augmentation); PRESETS hold others.
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0, le=10, description="Learning rate (the peak, with a schedule)")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum (sgd only)")
    weight_decay: float = Field(0.0, ge=0, le=1, description="L2 weight decay")
    schedule: Literal["constant", "step", "cosine"] = Field("constant", description="Learning-rate schedule")
    milestones: tuple[int, ...] = Field((), max_length=20, description="Epochs after which a step schedule "
                                        "multiplies the learning rate by lr_decay, e.g. 150,180,210")
    lr_decay: float = Field(0.1, gt=0, le=1, description="Factor of each step of a step schedule")
    warmup_epochs: int = Field(0, ge=0, le=1000, description="Epochs of linear learning-rate warm-up")
    augment: bool = Field(False, description="Random crop (4-pixel padding) and horizontal flip, on the device")
    precision: Literal["float32", "bfloat16"] = Field(
        "float32", description="The networks' arithmetic: float32, or bfloat16 autocast (faster on GPUs and on CPUs "
        "with bfloat16 units; weights, optimiser and losses stay float32)")
    teacher_weights: Literal["final", "best"] = Field(
        "final", description="Which weights of the teacher a KD run distils from: its last epoch, or its best "
        "validation epoch (only from a teacher trained with a validation split)"
    )
    seed: int = Field(42, ge=0, le=2**63 - 1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Speed-ups, each with a switch; they do not change the mathematics.
    resident_data: bool = Field(True, description="Keep the dataset on the device, normalized once")
    cache_teacher: bool = Field(True, description="Compute teacher outputs once and reuse them (exact only "
                                "without augmentation, so augmented runs compute them online)")
    cuda_graphs: bool = Field(True, description="Replay each training step as a CUDA graph (CUDA only)")
    channels_last: bool = Field(True, description="NHWC memory layout for the convolutions (on GPUs and CPUs)")

    @field_validator("milestones", mode="before")
    @classmethod
    def _milestones_from_text(cls, value: Any) -> Any:
        # Forms and flags give "150,180,210", JSON a list.
        if isinstance(value, str):
            return tuple(int(part) if part.strip().isdigit() else part.strip() for part in value.split(",")
                         if part.strip())
        return tuple(value) if isinstance(value, list) else value

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in METHODS:
            raise ValueError(f"unknown run kind {kind!r}; choose one of: {', '.join(KINDS)}")
        return kind

    @field_validator("architecture")
    @classmethod
    def _known_architecture(cls, name: str | None) -> str | None:
        from kdcore.architectures import canonical, names

        known = names()
        if name is not None and canonical(name) not in known:
            raise ValueError(f"unknown architecture {name!r}; choose one of: {', '.join(known)}")
        # A former name (stored configs, checkpoints, scripts) is kept as the network's current one.
        return None if name is None else canonical(name)

    @model_validator(mode="before")
    @classmethod
    def _fill_method_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("kind"), str) or data["kind"] not in METHODS:
            return data  # field validation reports the bad kind
        method = METHODS[data["kind"]]
        data = dict(data)
        preset = data.pop("preset", None)
        if preset is not None:
            if preset not in PRESETS:
                raise _field_error(("preset",), preset, "unknown_preset",
                                   f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
            data = {**PRESETS[preset], **{k: v for k, v in data.items() if v is not None}}
        raw = data.get("params")
        params = dict(raw) if isinstance(raw, dict) else {} if raw is None else raw
        for name in METHOD_PARAMS:
            if name in cls.model_fields or name not in data:
                continue
            value = data.pop(name)
            if name in method.param_names():
                if value is not None and isinstance(params, dict):
                    params.setdefault(name, value)
            elif value is not None:
                users = ", ".join(k for k, m in METHODS.items() if name in m.param_names())
                raise _field_error((name,), value, "not_applicable", f"{name} applies only to kinds: {users}")
        data["params"] = params
        if data.get("architecture") is None:
            data["architecture"] = method.default_architecture
        if data.get("epochs") is None:
            data["epochs"] = method.default_epochs
        return data

    @field_validator("params", mode="before")
    @classmethod
    def _method_params(cls, value: Any, info: ValidationInfo) -> Any:
        # A field validator, after kind (declared first), so that its errors join the other fields'.
        kind = info.data.get("kind")
        if kind not in METHODS:
            return NoHyperparameters()  # the kind's own error says what is wrong
        if isinstance(value, Hyperparameters):
            return value
        # Strict validation (JSON clients) reaches the method's own fields through the context.
        return METHODS[kind].params.model_validate(value, strict=bool((info.context or {}).get("strict")))

    @model_validator(mode="after")
    def _params_belong_to_the_method(self) -> "RunConfig":
        if type(self.params) is not self.method.params:
            raise _field_error(("params",), None, "model_type", f"expected the hyperparameters of {self.kind!r}")
        return self

    @model_validator(mode="after")
    def _recipe_is_consistent(self) -> "RunConfig":
        if self.schedule == "step" and not self.milestones:
            raise _field_error(("milestones",), (), "missing", "a step schedule needs milestones, e.g. 150,180,210")
        if list(self.milestones) != sorted(set(self.milestones)) or any(m < 1 for m in self.milestones):
            raise _field_error(("milestones",), self.milestones, "order", "milestones must be increasing epochs")
        if self.warmup_epochs >= self.epochs:
            raise _field_error(("warmup_epochs",), self.warmup_epochs, "too_long", "warm-up must be shorter than the run")
        return self

    @model_validator(mode="after")
    def _cache_needs_resident_data(self) -> "RunConfig":
        if self.method.needs_teacher and self.cache_teacher and not self.resident_data:
            raise _field_error(("cache_teacher",), True, "needs_resident_data",
                               "cache_teacher needs resident_data; turn both off to run the teacher online")
        return self

    @property
    def method(self):
        return METHODS[self.kind]

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _field_error(loc: tuple, value: Any, kind: str, message: str) -> ValidationError:
    # A model-level check still reports against the field it is about, so forms can show it inline.
    error = InitErrorDetails(type=PydanticCustomError(kind, message), loc=loc, input=value)
    return ValidationError.from_exception_data("RunConfig", [error])


def best_teacher_weights_error(teacher_validation: float | None) -> str | None:
    """Why ``teacher_weights: best`` may not distil from a teacher trained with this validation fraction
    (None: it may). Without a split its best epoch could only be chosen on the test set, which would then
    leak into every student distilled from it."""
    if teacher_validation:
        return None
    return ("teacher_weights 'best' needs a teacher trained with a validation split: without one its best epoch "
            "would be chosen on the test set. Train the teacher with validation > 0 (e.g. 0.1), or use "
            "teacher_weights 'final'")


def seed_config(kind: str, **overrides: Any) -> RunConfig:
    """The tutorial experiment's configuration for ``kind``, with overrides applied."""
    return RunConfig(kind=kind, **{k: v for k, v in overrides.items() if v is not None})
