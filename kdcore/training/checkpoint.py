"""Checkpoints: written atomically each epoch, read back for resume, teachers and the app."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from kdcore.config import RunConfig
from kdcore.data.catalog import DEFAULT_NORMALIZATION, Normalization
from kdcore.errors import CheckpointError, StorageFull, out_of_space
from kdcore.training.networks import build_model

FORMAT = "kdcore-checkpoint-1"


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file. A full
    device is StorageFull naming the folder (torch would say "enforce fail at inline_container.cc")."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".checkpoint-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save({"format": FORMAT, **payload}, handle)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if out_of_space(exc) is not None:
            raise StorageFull(f"no space left on device: {path.parent.resolve()} (writing {path.name})") from exc
        raise


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a kdcore checkpoint")
    return _upgrade(payload)


def _upgrade(payload: dict[str, Any]) -> dict[str, Any]:
    """Checkpoints written before methods owned their modules kept the FitNets regressor inside the
    student: move it to the method's modules (same key names), and Adam's state with it."""
    if "modules" in payload:
        return payload
    old = list(payload["model"])
    moved = [k for k in old if k.startswith("regressor.")]
    kept = [k for k in old if k not in moved]
    upgraded = {**payload, "model": {k: payload["model"][k] for k in kept},
                "modules": {k: payload["model"][k] for k in moved} or None}
    optimizer = payload.get("optimizer")
    if moved and optimizer:
        # The optimizer numbers parameters in the order it got them: the student's, then the method's.
        new_index = {old.index(name): position for position, name in enumerate([*kept, *moved])}
        upgraded["optimizer"] = {
            "state": {new_index[i]: state for i, state in optimizer["state"].items()},
            "param_groups": [{**group, "params": sorted(new_index[i] for i in group["params"])}
                             for group in optimizer["param_groups"]],
        }
    return upgraded


def load_teacher(path: str | os.PathLike, num_classes: int, device: torch.device) -> torch.nn.Module:
    """The frozen teacher a KD run distils from, checked against the run's class count."""
    payload = load_checkpoint(path)
    config = RunConfig.model_validate(payload["config"])
    if not config.method.teaches:
        raise CheckpointError(f"checkpoint {path} holds a {config.kind!r} run, not a teacher")
    if payload["num_classes"] != num_classes:
        raise CheckpointError(
            f"teacher checkpoint {path} has {payload['num_classes']} classes but the dataset has {num_classes}"
        )
    model = _network(payload, config).to(device).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    model.architecture = config.architecture  # the run's loss asks the teacher's taps by this name
    model.normalization = trained_normalization(payload)
    return model


def _network(payload: dict[str, Any], config: RunConfig) -> torch.nn.Module:
    model = build_model(config.architecture, payload["num_classes"], config.seed)
    model.load_state_dict(payload["model"])
    return model


def load_model(path: str | os.PathLike) -> torch.nn.Module:
    """The network a checkpoint holds (trained here or imported, a teacher or a student), with its weights, in
    eval mode, on the CPU; its forward returns ``(logits, taps)``. A method's training-only modules (a FitNets
    regressor, SimKD's projector) are not part of it."""
    payload = load_checkpoint(path)
    config = RunConfig.model_validate(payload["config"])
    model = _network(payload, config).eval()
    model.architecture = config.architecture
    model.normalization = trained_normalization(payload)  # what its inputs must be normalised with
    return model


def trained_normalization(payload: dict[str, Any]) -> Normalization | None:
    """What a checkpoint's network saw its inputs normalised with: its record; for a checkpoint written before
    they kept one, the default, which every dataset had then; None where it is not known (a teacher imported
    without a dataset)."""
    if "normalization" not in payload:
        return DEFAULT_NORMALIZATION
    saved = payload["normalization"]
    return Normalization(tuple(saved["mean"]), tuple(saved["std"])) if saved else None
