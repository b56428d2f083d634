"""The run page's "Deploy" card: buttons that export the run, and an export's card with snippets that load and run
the files, preprocessing as the card says (app.runs.export makes the files)."""

from __future__ import annotations

import json

from app.runs import export
from app.store.errors import ServiceError
from app.store.models import Run
from kdcore.deploy.files import FILE_NAMES, FORMATS

FORMAT_TITLES = {"onnx": "ONNX", "pt2": "torch.export (.pt2)", "weights": "Weights (state dict)"}

PREPROCESS = """import json
import numpy as np

card = json.load(open("card.json"))
mean = np.array(card["input"]["mean"], np.float32).reshape(1, 3, 1, 1)
std = np.array(card["input"]["std"], np.float32).reshape(1, 3, 1, 1)
# images: uint8 RGB of {size}×{size} pixels, shape (N, {size}, {size}, 3)
x = ((images.transpose(0, 3, 1, 2) / 255 - mean) / std).astype(np.float32)
"""

ONNXRUNTIME = """import onnxruntime

session = onnxruntime.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
logits = session.run(["logits"], {"images": x})[0]
print([card["classes"][i] for i in logits.argmax(axis=1)])
"""

TORCH_PT2 = """import torch

network = torch.export.load("model.pt2").module()
logits = network(torch.from_numpy(x))
print([card["classes"][i] for i in logits.argmax(dim=1)])
"""

TORCH_WEIGHTS = """import torch
from kdcore.deploy.load import load_weights  # pip install kd-dashboard: builds the network the card names

network = load_weights(".")  # the folder of model.pt and card.json
with torch.inference_mode():
    logits = network(torch.from_numpy(x))
print([card["classes"][i] for i in logits.argmax(dim=1)])
"""


def snippets(card: dict) -> dict[str, str]:
    """Python that runs this export, and the same with the other runtime: onnxruntime for model.onnx, PyTorch for
    model.pt2 or model.pt (a weights export's), each after the card's preprocessing."""
    prepare = PREPROCESS.format(size=card["input"]["size"][0])
    with_onnxruntime, with_torch = prepare + "\n" + ONNXRUNTIME, prepare + "\n" + (
        TORCH_WEIGHTS if card["format"] == "weights" else TORCH_PT2)
    if card["format"] == "onnx":
        return {"onnxruntime": with_onnxruntime, "torch (with the pt2 export)": with_torch}
    return {"torch": with_torch, "onnxruntime (with the onnx export)": with_onnxruntime}


def export_view(run: Run, format: str | None = None, card: dict | None = None, error: str | None = None) -> dict:
    """What the card shows: the buttons while the run can export, and ``card`` (else an export already made for
    the run's current checkpoint, ONNX first) with its download link and snippets."""
    exportable = run.status == "completed" and bool(run.checkpoint)
    if exportable and card is None and error is None:
        try:
            format, card = next(((f, c) for f in ([format] if format else ["onnx", "pt2", "weights"])
                                 if (c := export.cached_card(run, f)) is not None), (format, None))
        except (ServiceError, OSError):
            card = None
    return {"x": {
        "run_id": run.id, "exportable": exportable, "formats": [(f, FORMAT_TITLES[f]) for f in FORMATS],
        "format": format, "title": FORMAT_TITLES.get(format or ""), "card": card, "error": error,
        "file": FILE_NAMES.get(format or ""), "snippets": snippets(card) if card else {},
        "card_json": json.dumps(card, indent=1) if card else None,
        "download": f"/api/runs/{run.id}/export?format={format}" if card else None,
    }}
