"""Each export format: how it is written from the shipped network, and how the written file is run again (what the
card's parity and accuracy are measured with, so they describe the file, not the network it came from).

- ``weights``: the shipped network's state dict alone (``model.pt``; no optimiser, no training-only modules);
- ``onnx``: ``torch.onnx.export(..., dynamo=True)`` with a dynamic batch dimension (``model.onnx``), run by
  onnxruntime's CPU provider; onnx, onnxruntime and onnxscript are the ``deploy`` extra;
- ``pt2``: a ``torch.export`` program with a dynamic batch dimension, saved by ``torch.export.save``.
"""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kdcore.deploy.files import DEPLOY_EXTRA, FILE_NAMES, FORMATS, INPUT_NAME, OUTPUT_NAME
from kdcore.errors import KDError


Runner = Callable[[np.ndarray], np.ndarray]  # float32 NCHW images -> float32 logits


class ExtraMissing(KDError):
    """An export format needs packages of an optional extra that are not installed."""


def require_deploy_extra() -> None:
    missing = [name for name in DEPLOY_EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        raise ExtraMissing(f"the onnx format needs the 'deploy' extra ({', '.join(DEPLOY_EXTRA)}), and "
                           f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed: "
                           "pip install 'kd-dashboard[deploy]'")


def _batch_dimension():
    return {INPUT_NAME: {0: torch.export.Dim("batch")}}


def write(format: str, network: nn.Module, example: torch.Tensor, out_dir: Path) -> Path:
    """The file of ``format`` for ``network`` (forward(images) -> logits) in ``out_dir``; ``example`` is a batch of
    inputs of more than one image, so that the batch dimension is not specialised to its size."""
    path = out_dir / FILE_NAMES[format]
    if format == "weights":
        torch.save(shipped_network(network).state_dict(), path)
    elif format == "onnx":
        require_deploy_extra()
        program = torch.onnx.export(network, (example,), dynamo=True, input_names=[INPUT_NAME],
                                    output_names=[OUTPUT_NAME], dynamic_shapes=_batch_dimension(), verbose=False)
        program.save(str(path))
    elif format == "pt2":
        torch.export.save(torch.export.export(network, (example,), dynamic_shapes=_batch_dimension()), path)
    else:
        raise KDError(f"unknown export format {format!r}; choose one of: {', '.join(FORMATS)}")
    return path


def runner(format: str, path: Path, network: nn.Module) -> Runner:
    """Run the written file: ``network`` (the one it was written from) only gives the weights format its
    structure, whose every tensor is then loaded from the file."""
    if format == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda images: session.run([OUTPUT_NAME], {INPUT_NAME: images})[0]
    if format == "pt2":
        module = torch.export.load(path).module()
    else:
        module = copy.deepcopy(network)
        shipped_network(module).load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
        module.eval()

    def run(images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(images)).numpy()
    return run


def runtime(format: str) -> str:
    """What runs the file when the card's figures are measured."""
    if format == "onnx":
        import onnxruntime

        return f"onnxruntime {onnxruntime.__version__} (CPUExecutionProvider)"
    return f"torch {torch.__version__} ({'torch.export.load' if format == 'pt2' else 'load_state_dict'}, CPU)"


def shipped_network(network: nn.Module) -> nn.Module:
    """The shipped network inside the logits-only wrapper: its state dict is the one a user loads."""
    return getattr(network, "network", network)
