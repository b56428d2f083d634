"""What the runs API returns (see app.web.api for the shared base and field types)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from app.store.models import STATUSES
from app.web.api import ApiModel, Figure, Timestamp
from kdcore.training.selection import BY_VALIDATION, OPTIMISTIC

# How every best-epoch field says which epoch it is about.
BEST_EPOCH = (f"The run's best epoch so far: of highest validation accuracy when the run holds out a validation "
              f"split (best_epoch_label '{BY_VALIDATION}'); without one, of highest test accuracy, which makes "
              f"every best figure the '{OPTIMISTIC}'")


class ProgressOut(ApiModel):
    """Where a run's training is; for a completed run, its end."""

    stage: str | None = Field(None, description="The method's pre-stage under way (e.g. \"init\"), whose epochs "
                              "count 1..epochs of their own; null in the main stage")
    epoch: int | None = Field(description="The epoch under way (1-based), or the last one stored")
    epochs: int | None
    step: int | None = Field(description="Step within the epoch; null at an epoch's end")
    steps: int | None
    phase: Literal["training", "evaluating", "done"]
    fraction: float = Field(ge=0, le=1, description="Share of the whole run done; of the pre-stage during one")
    eta_seconds: Figure
    updated_at: Timestamp | None


class BestEpochOut(ApiModel):
    """A run's best epoch and its figures: the runs API's and a study export's."""

    best_epoch: int | None = Field(description=BEST_EPOCH)
    best_epoch_label: Literal[BY_VALIDATION, OPTIMISTIC] = Field(
        description=f"What best_epoch is: '{BY_VALIDATION}', or without a validation split '{OPTIMISTIC}'")
    test_accuracy_at_best: float | None = Field(
        description=f"Test accuracy at best_epoch; without a validation split the {OPTIMISTIC}'s. Null when unknown")
    best_val_accuracy: float | None = Field(
        description="Validation accuracy at best_epoch; null without a validation split")
    best_accuracy: float | None = Field(
        description=f"The former name of test_accuracy_at_best (the same figure; without a validation split the "
        f"{OPTIMISTIC}'s)")


class RunOut(BestEpochOut):
    id: int
    kind: str
    title: str = Field(description="The kind's name for people")
    status: Literal[STATUSES]
    dataset: str | None
    architecture: str | None = Field(description="The network it trains (a KD run's student)")
    config: dict[str, Any] = Field(description="The run's full RunConfig, as stored when it was queued")
    teacher_run_id: int | None
    experiment_id: int | None
    study_id: int | None
    search_id: int | None = Field(None, description="The search (app.searches) this run is a trial of")
    trial_number: int | None = Field(None, description="Its Optuna trial number within that search")
    num_classes: int | None
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    worker: str | None = Field(description="The worker slot holding the run while it runs")
    heartbeat_at: Timestamp | None
    cancel_requested: bool
    resume: bool = Field(description="The next attempt continues from the run's checkpoint")
    error: str | None
    has_checkpoint: bool
    checkpoint_url: str | None
    parameters: int | None = Field(description="Deployed parameter count, once completed")
    final_accuracy: Figure = Field(description="Test accuracy after the last epoch (what runs are compared by)")
    train_seconds: Figure
    progress: ProgressOut | None
    tags: list[str] = Field(description="Its own tags (its study's tags also match a tag filter)")
    note: str | None
    notes: list[str] = Field(description="What the trainer said of the completed run: a resized dataset, a pack, "
                             "and each speed path it fell back from ('fallback: ...')")
    checkpoint_sha256: str | None = Field(None, description="A completed teacher's checkpoint file's sha256, as "
                                          "recorded when it completed (the teacher registry, GET /api/teachers)")
    origin: dict[str, Any] | None = Field(None, description="Null: trained here. An imported teacher's upload: "
                                          "file, format, file_sha256, recipe (POST /api/teachers/import)")


class RunListOut(ApiModel):
    items: list[RunOut]
    total: int = Field(description="How many runs match the filters in all")
    limit: int
    offset: int


class EpochOut(ApiModel):
    epoch: int
    train_loss: Figure
    train_terms: dict[str, float | None] = Field(description="Unweighted loss terms, named by the kind")
    test_loss: Figure
    test_accuracy: Figure
    seconds: Figure
    images_per_sec: Figure
    val_loss: float | None = Field(description="Mean cross-entropy on the validation split; null without one")
    val_accuracy: float | None = Field(description="Accuracy on the validation split; null without one")


class EpochListOut(ApiModel):
    run_id: int
    items: list[EpochOut]


class NormalizationOut(ApiModel):
    mean: list[float] = Field(description="Per channel (R, G, B), of pixel values scaled to 0..1")
    std: list[float]


class DatasetOut(ApiModel):
    name: str = Field(description="What a run's config names as its dataset")
    source: str = Field(description="synthetic, torchvision or imagefolder")
    classes: list[str]
    ready: bool = Field(description="False: usable only after a download, or (with a problem) not at all")
    note: str
    num_classes: int
    train_size: int | None = Field(description="Images in the training split, when known (the most a subset may take)")
    problem: str = Field(description="Why it cannot be used, e.g. \"cifar10-jpg.tar.xz: truncated archive, …\"; "
                         "empty when it can")
    normalization: NormalizationOut = Field(description="What its images are normalised with, (x − mean) / std: "
                                            "cifar100 its own statistics (as the reference frameworks), every "
                                            "other dataset ImageNet's (the tutorial's)")


class DatasetListOut(ApiModel):
    items: list[DatasetOut]


class MethodOut(ApiModel):
    name: str = Field(description="What a run's kind names")
    title: str
    description: str
    needs_teacher: bool
    teaches: bool = Field(description="Its runs can be distilled from")
    default_architecture: str
    default_epochs: int
    loss_terms: list[str] = Field(description="The unweighted train-loss terms its epochs report")
    reported: list[str] = Field(default_factory=list, description="Those of loss_terms that are values it reports "
                                "(a learnt temperature), not losses: each epoch's mean over its steps")
    views: list[str] = Field(default_factory=list, description="Extra augmented views of each batch it trains on")
    params: dict[str, Any] = Field(description="JSON schema of its hyperparameters (a run's params)")


class FailedPluginOut(ApiModel):
    name: str = Field(description="The entry point's name")
    value: str = Field(description="What it points at, package.module:attribute")
    reason: str = Field(description="Why it was left out: it failed to import, or its declaration was refused")


class MethodListOut(ApiModel):
    items: list[MethodOut]
    failed_plugins: list[FailedPluginOut] = Field(
        default_factory=list, description="Method plugins installed here that were left out, and why")


class ArchitectureOut(ApiModel):
    name: str
    aliases: list[str] = Field(description="Former names, which still name it (configs, runs, checkpoints)")
    description: str
    parameters: int = Field(description="Trainable parameters at the list's class count")
    flops: int = Field(description="Floating-point operations of one 32×32 image's forward pass (batch 1), counted "
                       "by torch's FlopCounterMode: its convolutions and matrix products, two per multiply-accumulate")
    macs: int = Field(description="Multiply-accumulates of the same forward pass (flops / 2)")
    taps: dict[str, list[int]] = Field(description="Named feature outputs and their shapes without the batch, "
                                       "for 32×32 inputs")


class ArchitectureListOut(ApiModel):
    num_classes: int
    items: list[ArchitectureOut]


class ExportCardOut(ApiModel):
    """An export's card.json (kdcore.deploy.card): what the network is, how to feed it, what the exported file
    itself scored, what it costs, where it came from, and each file's sha256."""

    format: str = Field(description="weights, onnx or pt2")
    files: dict[str, dict[str, Any]] = Field(description="By file name: its sha256 and bytes")
    architecture: str
    deployed: str = Field(description="In words: what ships (the network alone, or with a method's deployed parts)")
    num_classes: int
    classes: list[Any]
    input: dict[str, Any] = Field(description="The input tensor: shape, dtype, size, and the normalisation "
                                  "(mean, std) inference must apply as training did")
    output: dict[str, Any]
    accuracy: dict[str, Any] = Field(description="The exported file's own test accuracy, and whether it equals the run's")
    parity: dict[str, Any] = Field(description="The largest logit difference from PyTorch on the test images checked")
    parameters: int
    cost: dict[str, Any] = Field(description="FLOPs, MACs and CPU latency")
    run: dict[str, Any] = Field(description="The run's config, method, teacher and checkpoint sha256")
    exported: dict[str, Any] = Field(description="When, and with which versions")
