"""``load_weights(folder)``: the network of a ``weights`` export, built as its card names it and loaded from its
model.pt, returning the logits alone (what the ONNX and torch.export files compute)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from kdcore.config import RunConfig
from kdcore.deploy.files import CARD, FILE_NAMES
from kdcore.deploy.formats import shipped_network
from kdcore.deploy.source import LogitsOnly, shipped_structure
from kdcore.errors import CheckpointError
from kdcore.training.networks import build_model


def load_weights(folder: str | Path) -> LogitsOnly:
    folder = Path(folder)
    try:
        card = json.loads((folder / CARD).read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{folder / CARD} is missing or unreadable ({type(exc).__name__})") from None
    if card.get("format") != "weights":
        raise CheckpointError(f"{folder} holds a {card.get('format')!r} export; load_weights reads a 'weights' one")
    config = RunConfig.model_validate(card["run"]["config"])
    model = build_model(config.architecture, card["num_classes"], config.seed)
    teacher = (card["run"].get("teacher") or {}).get("architecture") if config.method.deployed is not None else None
    network, _ = shipped_structure(config, card["num_classes"], model, teacher)
    network = LogitsOnly(network)
    shipped_network(network).load_state_dict(
        torch.load(folder / FILE_NAMES["weights"], map_location="cpu", weights_only=True), strict=True)
    return network.eval()
