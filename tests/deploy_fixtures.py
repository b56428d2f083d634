"""A completed resnet8x4 student (one epoch on a synthetic subset) and its ONNX export, made once per session:
exporting with the dynamo exporter takes seconds, and the kdcore, API and page tests of exports share them."""

from __future__ import annotations

import pytest

# 280 images: the test split then has 70 (7 a class), more than the 64 the export's parity check takes.
SMALL = dict(dataset="synthetic", subset=280, epochs=1, batch_size=20, device="cpu")


@pytest.fixture(scope="session")
def resnet8x4_run(tmp_path_factory):
    """(its RunResult, its folder)."""
    from kdcore.config import RunConfig
    from kdcore.training.engine import train

    out = tmp_path_factory.mktemp("resnet8x4-student")
    return train(RunConfig(kind="student", architecture="resnet8x4", **SMALL), out_dir=out), out


@pytest.fixture(scope="session")
def resnet8x4_onnx(resnet8x4_run, tmp_path_factory):
    """(the card, the export's folder)."""
    from kdcore.deploy.export import export

    out = tmp_path_factory.mktemp("resnet8x4-onnx")
    return export(resnet8x4_run[1], "onnx", out), out
