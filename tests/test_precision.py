"""bfloat16 autocast (RunConfig.precision): the networks compute in bfloat16, the losses in float32, packs
of bfloat16 runs equal the runs alone, and the precision is part of what a run replicates."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kdcore.config import RunConfig
from kdcore.errors import ConfigError
from kdcore.methods.base import LOGITS, Method, TapChoice
from kdcore.registry import METHODS
from kdcore.studies.study import baseline_key, group_key
from kdcore.training.checkpoint import load_checkpoint
from kdcore.training.engine import train
from kdcore.training.packing.trainer import train_packed
from tests.torch_threads import one_thread  # noqa: F401  (autouse: one thread here)

BASE = dict(dataset="synthetic", subset=40, batch_size=8, epochs=2, device="cpu", architecture="resnet20")


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    train(RunConfig(kind="teacher", **{**BASE, "architecture": "seed_student", "epochs": 1}, seed=5), out_dir=out)
    return out / "checkpoint.pt"


def test_a_bfloat16_run_computes_its_student_in_bfloat16_and_its_teacher_and_losses_in_float32(tmp_path, teacher,
                                                                                            monkeypatch):
    seen = {"student": set(), "teacher": set(), "loss inputs": set()}

    def recording_loss(student, teacher_outputs, labels, params, progress, modules):
        seen["loss inputs"] |= {student.logits.dtype, teacher_outputs.logits.dtype,
                                *(t.dtype for t in [*student.taps.values(), *teacher_outputs.taps.values()])}
        ce = F.cross_entropy(student.logits, labels)
        return ce, {"ce": ce}

    monkeypatch.setitem(METHODS, "recorded", Method(name="recorded", title="Recorded", description="test only",
                                                    loss=recording_loss, needs_teacher=True,
                                                    taps=lambda s, t, p: TapChoice(("stage3",), (LOGITS, "stage2"))))
    monkeypatch.setattr(torch.nn.Conv2d, "forward",
                        lambda self, x, forward=torch.nn.Conv2d.forward: _note(seen, self, forward(self, x)))
    # augment: the teacher's outputs are computed online in every step, and still in float32, as cached.
    config = RunConfig(kind="recorded", precision="bfloat16", augment=True, **BASE)
    result = train(config, out_dir=tmp_path / "run", teacher_checkpoint=teacher)
    assert seen["student"] == {torch.bfloat16} and seen["teacher"] == {torch.float32}
    assert seen["loss inputs"] == {torch.float32}
    assert all(t.dtype == torch.float32 for t in load_checkpoint(tmp_path / "run" / "checkpoint.pt")["model"].values()
               if t.is_floating_point())
    assert all(torch.isfinite(torch.tensor(e.train_loss)) for e in result.epochs)


def _note(seen: dict, convolution: torch.nn.Conv2d, output: torch.Tensor) -> torch.Tensor:
    seen["student" if convolution.weight.requires_grad else "teacher"].add(output.dtype)  # the teacher is frozen
    return output


def test_bfloat16_learns_about_as_float32_does_and_is_not_float32(tmp_path):
    base = dict(dataset="synthetic", subset=1000, epochs=2, device="cpu", seed=3)
    single = train(RunConfig(kind="student", **base), out_dir=tmp_path / "float32")
    half = train(RunConfig(kind="student", precision="bfloat16", **base), out_dir=tmp_path / "bfloat16")
    assert half.final_accuracy > 0.3, "10 classes: chance is 0.1"
    assert abs(half.final_accuracy - single.final_accuracy) < 0.15
    assert half.epochs[0].train_loss != single.epochs[0].train_loss, "the arithmetic should differ"


def test_a_bfloat16_pack_trains_each_run_as_it_trains_alone_and_resumes_alone(tmp_path, teacher):
    configs = [RunConfig(kind=kind, seed=seed, precision="bfloat16", **BASE)
               for kind, seed in (("kd", 1), ("fitnet", 2), ("student", 3))]
    teachers = [teacher, teacher, None]
    results = train_packed(configs, out_dirs=[tmp_path / f"packed{i}" for i in range(3)], teacher_checkpoints=teachers)
    for i, config in enumerate(configs):
        alone = train(config, out_dir=tmp_path / f"alone{i}", teacher_checkpoint=teachers[i])
        assert [e.train_loss for e in results[i].epochs] == [e.train_loss for e in alone.epochs], config.kind
        assert [e.test_accuracy for e in results[i].epochs] == [e.test_accuracy for e in alone.epochs], config.kind
        torch.testing.assert_close(load_checkpoint(tmp_path / f"packed{i}" / "checkpoint.pt")["model"],
                                   load_checkpoint(tmp_path / f"alone{i}" / "checkpoint.pt")["model"], rtol=0, atol=0)
    with pytest.raises(ConfigError, match="float32 only"):
        train_packed(configs[2:], out_dirs=[tmp_path / "vmapped"], vectorised=True)


def test_precision_is_part_of_what_a_run_replicates_and_older_runs_keep_their_keys():
    single, half = RunConfig(kind="student", **BASE), RunConfig(kind="student", precision="bfloat16", **BASE)
    assert group_key(single) != group_key(half) and baseline_key(single) != baseline_key(half)
    # A configuration stored before the field existed has no "precision": it was float32.
    stored = {k: v for k, v in single.to_json_dict().items() if k != "precision"}
    assert group_key(stored) == group_key(single) and baseline_key(stored) == baseline_key(single)
    assert RunConfig.model_validate(stored) == single


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
def test_bfloat16_on_cuda_replays_its_steps_as_cuda_graphs_and_packs_as_alone(tmp_path, deterministic_cuda):
    base = dict(dataset="synthetic", subset=500, epochs=2, device="cuda", precision="bfloat16")
    graph = train(RunConfig(kind="student", seed=1, **base), out_dir=tmp_path / "graph")
    eager = train(RunConfig(kind="student", seed=1, cuda_graphs=False, **base), out_dir=tmp_path / "eager")
    packed = train_packed([RunConfig(kind="student", seed=s, **base) for s in (1, 2)],
                          out_dirs=[tmp_path / "packed1", tmp_path / "packed2"])
    for other in (eager, packed[0]):
        for a, b in zip(graph.epochs, other.epochs):
            assert a.train_loss == pytest.approx(b.train_loss, rel=1e-2)
            assert a.test_accuracy == pytest.approx(b.test_accuracy, abs=0.03)
