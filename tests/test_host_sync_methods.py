"""A method whose step must synchronise with the host on a GPU says so (``Method.host_sync``), and its
steps are then never captured in a CUDA graph: KDSVD (torch's SVD), and a plugin's method the same way
(tests/plugin_example's ``logit_spectrum``). Decided without a GPU: the decision is a pure function."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import torch

from kdcore.config import RunConfig
from kdcore.methods.base import Outputs
from kdcore.registry import METHODS
from kdcore.training.steps import graphs_apply

PLUGIN = Path(__file__).parent / "plugin_example" / "kd_example_plugin"

CUDA = torch.device("cuda")


def test_kdsvd_declares_its_sync_and_is_never_captured():
    assert METHODS["kdsvd"].host_sync and not METHODS["kd"].host_sync
    assert graphs_apply(RunConfig(kind="kd"), CUDA)
    assert not graphs_apply(RunConfig(kind="kdsvd"), CUDA)
    assert not graphs_apply(RunConfig(kind="kd"), torch.device("cpu"))


def test_a_plugin_method_declares_its_sync_the_same_way_and_its_loss_runs():
    # The example package's file, read as its entry point loads it (tests/test_plugins.py installs the package).
    spec = importlib.util.spec_from_file_location("logit_spectrum", PLUGIN / "logit_spectrum.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    method = module.METHOD
    assert "svdvals" in method.host_sync
    config = SimpleNamespace(method=method, cuda_graphs=True, resident_data=True)
    assert not graphs_apply(config, CUDA)
    logits = torch.randn(8, 10, requires_grad=True)
    total, terms = method.loss(Outputs(logits, {}), Outputs(3 * torch.randn(8, 10), {}), torch.randint(0, 10, (8,)),
                               method.params(), None, None)
    total.backward()
    assert set(terms) == set(method.loss_terms) and torch.isfinite(logits.grad).all()
