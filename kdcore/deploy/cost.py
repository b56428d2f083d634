"""What the exported network costs: FLOPs and multiply-accumulates of one image's forward pass, counted by
``kdcore.architectures.cost.count_flops`` (FlopCounterMode; its docstring gives the conventions)."""

from __future__ import annotations

from torch import nn


def network_cost(network: nn.Module, input_shape: tuple[int, ...]) -> dict:
    """``{"flops", "macs", "batch", "input_shape", "counted_with"}`` of the shipped network at batch 1."""
    try:
        from kdcore.architectures.cost import count_flops
    except ImportError:  # until the counter lands on this branch (issue 22, part a)
        return {"flops": None, "macs": None, "batch": 1, "input_shape": list(input_shape),
                "counted_with": "not counted: kdcore.architectures.cost is not installed"}
    counted = count_flops(network, input_shape, batch=1)
    return {"flops": counted["flops"], "macs": counted["macs"], "batch": 1, "input_shape": list(input_shape),
            "counted_with": "torch.utils.flop_counter.FlopCounterMode (a multiply-accumulate is 2 FLOPs)"}
