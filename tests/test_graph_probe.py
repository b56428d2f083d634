"""Before a run's steps are captured as a CUDA graph, the graph-safety probe (one step on meta tensors) runs once
per method, hyperparameters and network pair in a process; a step that reads the host trains eagerly, with the
probe's message in the run's notes, instead of failing inside a capture. On a CPU the GPU's decision is forced."""

from __future__ import annotations

import dataclasses

import pytest

import kdcore.training.engine as engine
import kdcore.training.graph_safety as graph_safety
import kdcore.training.packing.vmapped as vmapped
from kdcore import registry
from kdcore.config import RunConfig
from kdcore.training.fallback import CUDA_GRAPHS

RUN = {"dataset": "synthetic", "subset": 100, "epochs": 1, "device": "cpu", "batch_size": 50}


def host_reading_loss(student, teacher, labels, params, progress, modules):
    import torch.nn.functional as F

    ce = F.cross_entropy(student.logits, labels)
    if ce > 100:  # a truth test of a device tensor: a read back to the host every step
        ce = ce / 2
    return ce, {"ce": ce}


@pytest.fixture
def probes(monkeypatch) -> list:
    """The probe's calls in this test, each verdict computed afresh for it."""
    monkeypatch.setattr(graph_safety, "_verdicts", {})
    calls, real = [], graph_safety.meta_step

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(graph_safety, "meta_step", counted)
    return calls


@pytest.fixture
def host_reading_student(monkeypatch):
    student = registry.METHODS["student"]
    monkeypatch.setitem(registry.METHODS, "student", dataclasses.replace(student, loss=host_reading_loss))


def test_a_host_reading_step_trains_eagerly_with_the_probes_message(tmp_path, monkeypatch, probes,
                                                                     host_reading_student):
    monkeypatch.setattr(engine, "graphs_apply", lambda config, device: True)  # as on a GPU with resident data
    captures = []
    monkeypatch.setattr(engine.StepRunner, "_try_capture", lambda self, batch_size: captures.append(batch_size))
    results = [engine.train(RunConfig(kind="student", seed=seed, **RUN), out_dir=tmp_path / str(seed))
               for seed in (1, 2)]
    assert captures == []  # never tried
    for result in results:
        [note] = [n for n in result.notes if CUDA_GRAPHS in n]
        assert note.startswith(f"fallback: {CUDA_GRAPHS} raised GraphSafetyError: the graph-safety probe failed "
                               "(RuntimeError: ")
        assert note.endswith("; the steps run eagerly")
        assert 0 <= result.final_accuracy <= 1
    assert len(probes) == 1  # once per method and networks in a process


def test_a_sound_step_is_captured_and_probed_once(probes):
    config = RunConfig(kind="kd", **RUN)
    for _ in range(2):
        assert graph_safety.graph_refusal(True, config, "tutorial_teacher", 10) is None
    assert probes == [("kd", "tutorial_student", "tutorial_teacher", 10)]
    # Other hyperparameters are another probe; a run that would not be captured asks none.
    other = RunConfig(kind="kd", temperature=8.0, **RUN)
    assert graph_safety.graph_refusal(True, other, "tutorial_teacher", 10) is None
    assert graph_safety.graph_refusal(False, other, "resnet8x4", 10) is None
    assert len(probes) == 2


def test_a_pack_with_a_host_reading_run_trains_eagerly_and_says_so(tmp_path, monkeypatch, probes,
                                                                   host_reading_student):
    from kdcore.training.packing import trainer

    monkeypatch.setattr(trainer, "graphs_apply", lambda config, device: True)
    monkeypatch.setattr(vmapped, "graphs_apply", lambda config, device: True)
    captures = []
    monkeypatch.setattr(engine.StepRunner, "_try_capture", lambda self, batch_size: captures.append(batch_size))
    results = trainer.train_packed([RunConfig(kind="student", seed=seed, **RUN) for seed in (1, 2)],
                                   out_dirs=[tmp_path / "p1", tmp_path / "p2"])
    assert captures == [] and len(probes) == 1
    for result in results:
        assert any(n.startswith(f"fallback: {CUDA_GRAPHS} raised GraphSafetyError: the graph-safety probe failed")
                   for n in result.notes), result.notes
