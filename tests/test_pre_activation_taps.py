"""Architectures expose each stage's map before its final ReLU (``pre_stageN``: OFD and ReviewKD read the
teacher's), listed in the catalog; and say which of their modules turn the last stage's map into logits (SimKD
reuses a teacher's)."""

from __future__ import annotations

import pytest
import torch

from kdcore.architectures import registry
from kdcore.architectures.shapes import describe
from kdcore.methods.preact import stage_names
from tests.torch_threads import one_thread  # noqa: F401  (autouse: one thread here)

PRE_ACTIVATED = ("tutorial_student", "tutorial_teacher", "resnet20", "resnet8x4", "vgg8", "shufflev1")


@pytest.mark.parametrize("name", PRE_ACTIVATED)
def test_pre_stage_taps_are_the_values_before_the_relu(name):
    model = registry()[name][0](10).eval()
    _, taps = model(torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    stages = stage_names(taps)
    assert stages and all(f"pre_{stage}" in taps for stage in stages)
    for stage in stages:
        pre = taps[f"pre_{stage}"]
        assert (pre < 0).any()  # a tap after the ReLU has no negative value
        assert torch.equal(torch.relu(pre), taps[stage])
    described = describe(registry()[name][0], 10)["taps"]
    assert all(described[f"pre_{stage}"] == described[stage] for stage in stages)


@pytest.mark.parametrize("name", sorted(registry()))
def test_after_last_stage_turns_the_last_stage_into_the_logits(name):
    model = registry()[name][0](10).eval()
    if not hasattr(model, "after_last_stage"):
        pytest.skip(f"{name} does not declare its head")
    with torch.no_grad():
        logits, taps = model(torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)))
        torch.testing.assert_close(model.after_last_stage()(taps[stage_names(taps)[-1]]), logits, rtol=0,
                                   atol=1e-5)


def test_ofd_margins_come_from_the_teachers_batch_norms():
    from kdcore.methods import ofd
    from kdcore.training.teacher_parts import with_teacher_parts

    teacher = registry()["resnet8x4"][0](10).eval()
    with torch.no_grad():
        for norm in teacher.pre_activation_norms().values():
            norm.weight.uniform_(0.5, 2)
            norm.bias.uniform_(-1, 1)
    shapes = describe(registry()["resnet8x4"][0], 10)["taps"]
    student_shapes = describe(registry()["resnet20"][0], 10)["taps"]
    modules = with_teacher_parts(ofd.METHOD, None, teacher, student_shapes, shapes, ofd.OFDParams())
    norms = teacher.pre_activation_norms()
    for index, name in enumerate(("pre_stage1", "pre_stage2", "pre_stage3")):
        expected = ofd.margin(norms[name].weight, norms[name].bias).reshape(1, -1, 1, 1)
        assert torch.equal(getattr(modules["margins"].part, f"margin{index}"), expected)
    assert not any(p.requires_grad for p in modules.parameters())
