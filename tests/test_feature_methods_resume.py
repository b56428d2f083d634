"""SP, NST, CC, VID, KDSVD and WTTM resume exactly on a CPU: a run stopped after its first epoch and
resumed ends with the weights, method modules and optimiser state of the run that was never stopped,
bit for bit (CC's projectors and VID's regressors and variances train, so they must come back too)."""

from __future__ import annotations

import pytest
import torch

from kdcore.config import RunConfig
from kdcore.errors import RunCancelled
from kdcore.training.checkpoint import load_checkpoint
from kdcore.training.engine import train
from tests.torch_threads import one_thread  # noqa: F401  (autouse: one thread here)

KINDS = ["sp", "nst", "cc", "vid", "kdsvd", "wttm"]


def _flat(tree):
    """Every tensor of a checkpoint section with its path, for a bit-for-bit comparison."""
    if torch.is_tensor(tree):
        return {"": tree}
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, (list, tuple)) else ()
    return {f"{key}/{path}": t for key, value in items for path, t in _flat(value).items()}


@pytest.mark.parametrize("kind", KINDS)
def test_a_stopped_and_resumed_run_equals_an_uninterrupted_one(kind, tmp_path, teacher_checkpoint):
    config = RunConfig(kind=kind, dataset="synthetic", subset=100, epochs=2, batch_size=25, device="cpu",
                       optimizer="sgd", momentum=0.9, lr=0.01)
    train(config, out_dir=tmp_path / "whole", teacher_checkpoint=teacher_checkpoint)
    seen = []
    with pytest.raises(RunCancelled):
        train(config, out_dir=tmp_path / "split", teacher_checkpoint=teacher_checkpoint, on_step=seen.append,
              should_stop=lambda: bool(seen) and seen[-1].epoch == 2 and seen[-1].step == 2)
    assert load_checkpoint(tmp_path / "split/checkpoint.pt")["epoch"] == 1
    resumed = train(config, out_dir=tmp_path / "split", teacher_checkpoint=teacher_checkpoint, resume=True)
    assert [m.epoch for m in resumed.epochs] == [1, 2]
    whole, split = load_checkpoint(tmp_path / "whole/checkpoint.pt"), load_checkpoint(tmp_path / "split/checkpoint.pt")
    for section in ("model", "modules", "optimizer"):
        expected, got = _flat(whole.get(section)), _flat(split.get(section))
        assert expected.keys() == got.keys(), section
        for path in expected:
            assert torch.equal(got[path], expected[path]), f"{kind}: {section}{path}"
    assert _flat(whole["model"]) and _flat(whole["optimizer"]), "the comparison is not vacuous"
    if kind in ("cc", "vid"):
        assert _flat(whole["modules"]), "the method's own modules are saved with the run"
