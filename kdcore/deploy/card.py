"""The card beside an exported file (``card.json``): what the network is, how to feed it so that inference
matches training, what the exported file itself scored, what it costs, where it came from, and each file's sha256."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from kdcore import __version__
from kdcore.data.catalog import file_sha256
from kdcore.data.loader import SIZE
from kdcore.deploy.files import FILE_NAMES, INPUT_NAME, OUTPUT_NAME
from kdcore.deploy.source import Source
from kdcore.data.catalog import DEFAULT_NORMALIZATION, Normalization


def input_spec(normalization: Normalization = DEFAULT_NORMALIZATION) -> dict:
    """The input as the run's data pipeline makes it (kdcore.data.loader, kdcore.training.device_data), normalised
    with its dataset's statistics (kdcore.data.catalog.normalization_for)."""
    return {
        "name": INPUT_NAME, "shape": ["batch", 3, SIZE, SIZE], "dtype": "float32", "layout": "NCHW",
        "channels": "RGB", "size": [SIZE, SIZE],
        "resize": f"images of another size were resized to {SIZE}×{SIZE} (PIL, bilinear) before training",
        "scale": "pixel values 0..255 divided by 255", "mean": list(normalization.mean), "std": list(normalization.std),
        "formula": "(pixels / 255 - mean) / std, per channel",
    }


def build_card(source: Source, format: str, files: list[Path], *, accuracy: dict, parity: dict, cost: dict,
               about: dict | None = None) -> dict:
    config = source.config
    method = config.method
    deployed = (f"the {method.name} student as it ships: its network with the method's deployed modules"
                + (f" and parts of its teacher ({source.teacher_architecture})" if source.teacher_architecture else "")
                if method.deployed is not None else f"the {config.architecture} network alone")
    return {
        "format": format,
        "files": {file.name: {"sha256": file_sha256(file), "bytes": file.stat().st_size} for file in files},
        "architecture": config.architecture,
        "deployed": deployed,
        "num_classes": source.num_classes,
        "classes": source.classes,
        "input": input_spec(source.normalization or DEFAULT_NORMALIZATION),
        "output": {"name": OUTPUT_NAME, "shape": ["batch", source.num_classes], "dtype": "float32",
                   "meaning": "unnormalised class scores (logits); softmax gives probabilities, argmax the class"},
        "accuracy": accuracy,
        "parity": parity,
        "parameters": sum(p.numel() for p in source.shipped.parameters()),
        "cost": cost,
        "run": {
            **{key: value for key, value in (about or {}).items() if key != "teacher"},
            "method": {"name": method.name, "title": method.title, "params": config.params.model_dump(mode="json")},
            "teacher": _teacher(source, about),
            "config": config.to_json_dict(),
            "epoch": source.epoch,
            "complete": source.complete,
            "data_fingerprint": source.data_fingerprint,
            "checkpoint": {"name": source.checkpoint.name, "sha256": file_sha256(source.checkpoint)},
        },
        "exported": {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "kdcore": __version__,
                     "torch": torch.__version__, "file": FILE_NAMES[format]},
    }


def _teacher(source: Source, about: dict | None) -> dict | None:
    if not source.config.method.needs_teacher:
        return None
    known = dict((about or {}).get("teacher") or {})
    if source.teacher_architecture:
        known.setdefault("architecture", source.teacher_architecture)
    known.setdefault("weights", source.config.teacher_weights)
    return known
