"""FLOPs and MACs of the zoo's networks (kdcore.architectures.cost), checked against an independent counter."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from kdcore.architectures import catalog, registry
from kdcore.architectures.cost import count_flops

# fvcore traces the model with torch.jit and counts one "flop" per multiply-accumulate of each convolution
# and matrix product, where FlopCounterMode counts two FLOPs per MAC: so the MACs are compared. fvcore also
# counts batch norm, pooling and upsampling by default (one per element), which FlopCounterMode leaves out:
# only its convolution and matrix-product operators are summed here.
PRODUCTS = ("conv", "linear", "addmm", "matmul", "mm", "bmm", "einsum")


def fvcore_macs(model: nn.Module) -> int:
    from fvcore.nn import FlopCountAnalysis

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.trace's deprecation and tracer warnings
        analysis = FlopCountAnalysis(model.eval(), torch.zeros(1, 3, 32, 32))
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        by_operator = analysis.by_operator()
    return sum(by_operator.get(name, 0) for name in PRODUCTS)


@pytest.fixture(scope="module")
def zoo_catalog():
    return catalog(100)


@pytest.mark.parametrize("name", [name for name in registry() if not name.startswith("tutorial_")] +
                         ["tutorial_teacher", "tutorial_student"])
def test_every_network_matches_an_independent_counter_within_one_percent(name, zoo_catalog):
    torch.manual_seed(0)
    with torch.no_grad():
        reference = fvcore_macs(registry()[name][0](100))
    listed = zoo_catalog[name]
    assert listed["flops"] == 2 * listed["macs"]
    assert abs(listed["macs"] - reference) <= 0.01 * reference, (listed["macs"], reference)


def test_a_depthwise_convolution_trains_at_twice_its_forward_products():
    # The weight's gradient is one product per forward product, and so is the input's: a training step of one
    # layer whose input takes no gradient costs its forward pass twice (torch's own formula counted it 33×).
    layer = nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False)
    counted = count_flops(layer, (32, 8, 8))
    assert counted["flops"] == 2 * 32 * 9 * 64
    assert counted["training_flops"] == 2 * counted["flops"]
    dense = count_flops(nn.Conv2d(32, 32, 3, padding=1, bias=False), (32, 8, 8))
    assert dense["flops"] == 32 * counted["flops"] and dense["training_flops"] == 2 * dense["flops"]


def test_counting_leaves_the_model_as_it_was_and_scales_with_the_batch():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 30 * 30, 10)).train()
    before = [p.detach().clone() for p in model.parameters()]
    one, four = count_flops(model), count_flops(model, batch=4)
    assert model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert one["macs"] == 3 * 4 * 9 * 900 + 4 * 900 * 10 and one["flops"] == 2 * one["macs"]
    assert four["flops"] == 4 * one["flops"] and four["batch"] == 4
    # Forward and backward: the linear layer's input gradient is computed, the first layer's is not.
    assert one["training_flops"] == 3 * one["flops"] - 2 * 3 * 4 * 9 * 900
