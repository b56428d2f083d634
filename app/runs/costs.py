"""A network's arithmetic as the pages show it beside its parameters: the forward pass of one image, in
FLOPs and multiply-accumulates (kdcore.architectures.cost, through the architecture catalog at the run's
class count, which validating the run described already)."""

from __future__ import annotations

from kdcore.architectures import canonical, catalog


def network_cost(architecture: str | None, num_classes: int | None) -> dict | None:
    """``{"flops", "macs"}`` of ``architecture`` at ``num_classes`` (10 when a run stored
    none), or None for a network the catalog no longer has (a plugin uninstalled) or cannot describe."""
    if not architecture:
        return None
    try:
        info = catalog(num_classes or 10).get(canonical(architecture))
    except RuntimeError:  # the describing subprocess failed: the page shows a dash, not an error
        return None
    if info is None or "macs" not in info:
        return None
    return {"flops": info["flops"], "macs": info["macs"]}
