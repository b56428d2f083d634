"""Before a run's steps are captured as a CUDA graph, the graph-safety probe (one step on meta tensors) runs once
per method, hyperparameters and network pair in a process; a step that reads the host trains eagerly, with the
probe's message in the run's notes, instead of failing inside a capture. On a CPU the GPU's decision is forced."""

from __future__ import annotations

import dataclasses

import pytest

import kdcore.training.engine as engine
import kdcore.training.graph_safety as graph_safety
from kdcore import registry
from kdcore.config import RunConfig
from kdcore.training.fallback import CUDA_GRAPHS, Fallbacks

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
        fallbacks = Fallbacks("run")
        assert graph_safety.graphs_after_probe(True, config, "tutorial_teacher", 10, fallbacks) is True
        assert fallbacks.notes == [] and not fallbacks.is_off(CUDA_GRAPHS)
    assert probes == [("kd", "tutorial_student", "tutorial_teacher", 10)]
    # Other hyperparameters are another probe; a run that would not be captured asks none.
    other = RunConfig(kind="kd", temperature=8.0, **RUN)
    assert graph_safety.graphs_after_probe(True, other, "tutorial_teacher", 10, Fallbacks("run")) is True
    assert graph_safety.graphs_after_probe(False, other, "resnet8x4", 10, Fallbacks("run")) is False
    assert len(probes) == 2
