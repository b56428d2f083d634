"""SimKD, OFD and ReviewKD train end to end and resume exactly: a run stopped after its first epoch and resumed
ends with the weights, method modules (the teacher parts among them) and metrics of an uninterrupted one."""

from __future__ import annotations

import pytest
import torch

from kdcore.config import RunConfig
from kdcore.errors import RunCancelled
from kdcore.training.checkpoint import load_checkpoint
from kdcore.training.engine import train
from tests.torch_threads import one_thread  # noqa: F401  (autouse: one thread here)


# ReviewKD's fusion modules reach the tutorial teacher's 2048-wide embedding from a middle width of 512 by
# default: 9.4 M weights, whose checkpoints (with Adam's moments) would cost this test seconds to write.
@pytest.mark.parametrize("kind, params", [("simkd", {}), ("ofd", {}), ("reviewkd", {"max_mid_channels": 16})])
def test_stopped_and_resumed_equals_uninterrupted(kind, params, tmp_path, teacher_checkpoint):
    config = RunConfig(kind=kind, params=params, dataset="synthetic", subset=60, epochs=2, batch_size=30,
                       device="cpu")
    whole = train(config, out_dir=tmp_path / "whole", teacher_checkpoint=teacher_checkpoint)
    seen = []
    with pytest.raises(RunCancelled):
        train(config, out_dir=tmp_path / "split", teacher_checkpoint=teacher_checkpoint, on_step=seen.append,
              should_stop=lambda: seen[-1].epoch == 2)
    assert load_checkpoint(tmp_path / "split/checkpoint.pt")["epoch"] == 1
    resumed = train(config, out_dir=tmp_path / "split", teacher_checkpoint=teacher_checkpoint, resume=True)
    a, b = load_checkpoint(tmp_path / "whole/checkpoint.pt"), load_checkpoint(tmp_path / "split/checkpoint.pt")
    for part in ("model", "modules"):
        assert a[part].keys() == b[part].keys()
        assert all(torch.equal(a[part][name], b[part][name]) for name in a[part]), part
    assert [m.test_accuracy for m in resumed.epochs] == [m.test_accuracy for m in whole.epochs]
    assert [m.train_terms for m in resumed.epochs] == [m.train_terms for m in whole.epochs]
    assert resumed.parameters == whole.parameters
