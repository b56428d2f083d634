"""CTKD (kdcore.methods.ctkd): the gradient reversal, the cosine schedule of its strength, and the whole loss
against the authors' code in float64.

The reference values in fixtures/mlkd_ctkd_reference.json were computed by the authors' own code
(zhengli97/CTKD: Global_T and its GradientReversalFunction, DistillKL, train_student.py's CosineDecay with
their script's max 0, min −1, 10 loops, helper/loops.py's T = 1 + 20·sigmoid) on the fixed logits stored
beside them; tests/fixtures/reference_mlkd_ctkd.py regenerates them from a clone of that repository.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from kdcore.methods import ctkd
from kdcore.methods.base import Outputs, Progress

F64 = torch.float64
CASES = json.loads((Path(__file__).parent / "fixtures" / "mlkd_ctkd_reference.json").read_text())["ctkd"]


def test_the_gradient_reversal_is_the_identity_forward_and_reverses_backward():
    x = torch.tensor([0.7, -1.3, 2.0], requires_grad=True)
    for strength in (0.5, torch.tensor(2.0), 0.0):
        y = ctkd.gradient_reversal(x, strength)
        assert torch.equal(y, x)  # exactly, not to rounding
        (y * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
        torch.testing.assert_close(x.grad, -float(strength) * torch.tensor([1.0, 2.0, 3.0]), rtol=0, atol=0)
        x.grad = None


def test_through_the_reversal_the_temperature_ascends_the_loss_that_the_student_descends():
    theta = torch.tensor(0.3, requires_grad=True)
    direct = torch.tensor(0.3, requires_grad=True)
    logits = torch.tensor([[2.0, 0.5, -1.0]])
    teacher = torch.tensor([[0.5, 2.0, 0.0]])

    def kd(temperature):
        return ctkd.soft_target_loss(logits, teacher, temperature)

    kd(ctkd.curriculum_temperature(theta, 1.0, 1.0, 20.0)).backward()
    kd(1.0 + 20.0 * torch.sigmoid(direct)).backward()
    assert direct.grad != 0 and theta.grad == pytest.approx(-direct.grad.item(), rel=1e-6)


def _authors_cosine_decay(i, max_value, min_value, loops):
    """train_student.py's CosineDecay.get_value, restated."""
    i = min(max(i, 0), loops)
    return (math.cos(i * math.pi / loops) + 1.0) * 0.5 * (max_value - min_value) + min_value


@pytest.mark.parametrize("start, end, epochs", [(0.0, 1.0, 10), (0.2, 2.0, 5), (1.0, 0.5, 3)])
def test_the_strength_follows_the_authors_cosine_on_numbers_and_device_tensors(start, end, epochs):
    for epoch in range(0, epochs + 4):
        expected = -_authors_cosine_decay(epoch, -start, -end, epochs)
        assert ctkd.reversal_strength(epoch, start, end, epochs) == pytest.approx(expected, abs=1e-12)
        on_device = ctkd.reversal_strength(torch.tensor(float(epoch), dtype=F64), start, end, epochs)
        assert on_device.shape == () and on_device.item() == pytest.approx(expected, abs=1e-12)
    assert ctkd.reversal_strength(torch.tensor(3.0), start, end, 0) == end


@pytest.mark.parametrize("case", range(len(CASES)))
def test_the_loss_temperature_and_gradients_equal_the_authors(case):
    data = CASES[case]
    student = torch.tensor(data["student"], dtype=F64, requires_grad=True)
    modules = ctkd.modules({}, {}, ctkd.CTKDParams()).double()
    with torch.no_grad():
        modules[ctkd.THETA].fill_(data["theta"])
    progress = Progress(torch.tensor(float(data["epoch"]), dtype=F64), torch.zeros((), dtype=F64), 240, 10)
    total, terms = ctkd.loss(Outputs(student, {}), Outputs(torch.tensor(data["teacher"], dtype=F64), {}),
                             torch.tensor(data["labels"]), ctkd.CTKDParams(), progress, modules)
    assert terms["temperature"].item() == pytest.approx(data["temperature"], rel=1e-9)
    assert total.item() == pytest.approx(data["loss"], rel=1e-6)
    total.backward()
    assert modules[ctkd.THETA].grad.item() == pytest.approx(data["grad_theta"], rel=1e-6, abs=1e-12)
    torch.testing.assert_close(student.grad, torch.tensor(data["grad_student"], dtype=F64), rtol=1e-6, atol=1e-9)
    assert all(t.shape == () for t in terms.values())


def test_a_confident_teacher_gives_finite_values_and_gradients():
    generator = torch.Generator().manual_seed(4)
    student = torch.randn(8, 10, generator=generator, requires_grad=True)
    teacher = torch.randn(8, 10, generator=generator) * 50
    modules = ctkd.modules({}, {}, ctkd.CTKDParams())
    total, terms = ctkd.loss(Outputs(student, {}), Outputs(teacher, {}), torch.randint(0, 10, (8,), generator=generator),
                             ctkd.CTKDParams(), Progress(torch.tensor(5.0), torch.zeros(()), 10, 10), modules)
    total.backward()
    assert all(torch.isfinite(v) for v in terms.values())
    assert torch.isfinite(student.grad).all() and torch.isfinite(modules[ctkd.THETA].grad)
