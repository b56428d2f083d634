"""Shared fixtures: an isolated data directory per test session and a small trained teacher."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Session fixtures several modules use must be defined once, here: imported into each module, each would run anew.
from tests.deploy_fixtures import resnet8x4_onnx, resnet8x4_run  # noqa: E402, F401

SHARED_ARCHIVE = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "cifar10-jpg.tar.xz"


@pytest.fixture(scope="session", autouse=True)
def isolated_data_dir(tmp_path_factory):
    """Datasets and caches go to a temp folder, never into the checkout or ~/.cache."""
    root = tmp_path_factory.mktemp("data")
    previous = {k: os.environ.get(k) for k in ("KD_DATA_DIR", "KD_CACHE_DIR")}
    os.environ["KD_DATA_DIR"] = str(root)
    os.environ.pop("KD_CACHE_DIR", None)
    yield root
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def teacher_checkpoint(tmp_path_factory) -> Path:
    """A teacher trained for one short epoch on synthetic data (CPU, a couple of seconds)."""
    from kdcore.config import RunConfig
    from kdcore.training.engine import train

    out = tmp_path_factory.mktemp("teacher")
    train(RunConfig(kind="teacher", dataset="synthetic", subset=200, epochs=1, device="cpu"), out_dir=out)
    return out / "checkpoint.pt"


@pytest.fixture(scope="session")
def real_archive() -> Path:
    if not SHARED_ARCHIVE.is_file():
        pytest.skip(f"real-data test: {SHARED_ARCHIVE} is absent")
    return SHARED_ARCHIVE


@pytest.fixture()
def deterministic_cuda(monkeypatch):
    """Graph replay and eager steps draw different dropout masks, and cuDNN may pick different (TF32)
    algorithms for each; without dropout and with fixed FP32 algorithms they must agree."""
    import torch

    monkeypatch.setattr(torch.nn.Dropout, "forward", lambda self, x: x)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
