"""Every distilling method trains end to end with finite losses: on the seed's CNNs, and across the CIFAR
ResNets (a wider teacher than its student, so taps differ in channels and widths)."""

from __future__ import annotations

import math

import pytest
import torch

from kdcore.config import RunConfig
from kdcore.registry import METHODS
from kdcore.training.engine import train
from tests.torch_threads import one_thread  # noqa: F401  (autouse: one thread here)

DISTILLING = [name for name, method in METHODS.items() if method.needs_teacher]
SMALL = dict(dataset="synthetic", subset=200, epochs=1, batch_size=50, device="cpu")


@pytest.fixture(scope="module")
def resnet_teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("resnet8x4")
    train(RunConfig(kind="teacher", architecture="resnet8x4", **SMALL), out_dir=out)
    return out / "checkpoint.pt"


def _check(result, kind):
    metrics = result.epochs[0]
    assert math.isfinite(metrics.train_loss) and set(metrics.train_terms) == set(METHODS[kind].loss_terms)
    assert all(math.isfinite(value) for value in metrics.train_terms.values())


@pytest.mark.parametrize("kind", DISTILLING)
def test_each_method_trains_on_the_tutorial_cnns(kind, tmp_path, teacher_checkpoint):
    _check(train(RunConfig(kind=kind, **SMALL), out_dir=tmp_path, teacher_checkpoint=teacher_checkpoint), kind)


@pytest.mark.parametrize("kind", DISTILLING)
def test_each_method_trains_a_resnet20_from_a_resnet8x4(kind, tmp_path, resnet_teacher):
    result = train(RunConfig(kind=kind, architecture="resnet20", **SMALL), out_dir=tmp_path,
                   teacher_checkpoint=resnet_teacher)
    _check(result, kind)
    if METHODS[kind].deployed is None:  # SimKD ships a projector and the teacher's head too (tests/test_simkd.py)
        assert result.parameters == 278_324 - 90 * 65  # resnet20 at 10 classes; a method's own modules excluded


@pytest.mark.parametrize("pair", [("tutorial_student", "tutorial_teacher"), ("resnet20", "resnet8x4"), ("vgg8", "vgg13"),
                                  ("mobilenetv2", "resnet32x4"), ("shufflev2", "wrn_40_2")])
def test_no_method_reads_back_to_the_host_in_a_step(pair):
    from kdcore.training.graph_safety import meta_step

    for kind in METHODS:
        teacher = pair[1] if METHODS[kind].needs_teacher else None
        terms = meta_step(kind, pair[0] if not METHODS[kind].teaches else None, teacher)
        assert set(terms) == set(METHODS[kind].loss_terms) and all(shape == () for shape in terms.values())
        if METHODS[kind].pre_stage is not None:
            terms = meta_step(kind, pair[0], teacher, pre_stage=True)
            assert set(terms) == set(METHODS[kind].pre_stage.loss_terms) and all(s == () for s in terms.values())


def test_the_host_read_check_catches_one(monkeypatch):
    import dataclasses

    from kdcore.training.graph_safety import meta_step

    def reads_back(student, teacher, labels, params, progress, modules):
        ce = torch.nn.functional.cross_entropy(student.logits, labels)
        return (ce if ce.item() > 0 else ce), {"ce": ce, "soft_target": ce}

    monkeypatch.setitem(METHODS, "kd", dataclasses.replace(METHODS["kd"], loss=reads_back))
    with pytest.raises(RuntimeError, match="meta"):
        meta_step("kd")
