"""FSP, FT and AB's pure functions against RepDistiller's own code (values and input gradients, float64, to
1e-6), and finite for a confident teacher.

The expected values are in tests/fixtures/stage_methods_reference.json, written by
tests/fixtures/stage_methods_reference.py from RepDistiller's distiller_zoo/FSP.py, FT.py and AB.py (its
docstring says how to regenerate them)."""

import json
import math
from pathlib import Path

import pytest
import torch

from kdcore.methods import ab, fsp, ft

CASES = json.loads((Path(__file__).parent / "fixtures" / "stage_methods_reference.json").read_text())
CLOSE = dict(rtol=1e-6, atol=1e-12)


def _leaves(case, name):
    return [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in case["inputs"][name]]


def _check(value, case, inputs: dict):
    torch.testing.assert_close(value, torch.tensor(case["value"], dtype=torch.float64), **CLOSE)
    value.backward()
    for name, expected in case["grads"].items():
        for leaf, grad in zip(inputs[name], expected):
            torch.testing.assert_close(leaf.grad, torch.tensor(grad, dtype=torch.float64), **CLOSE)


@pytest.mark.parametrize("index", range(len(CASES["fsp_matrix"])))
def test_fsp_matrix_equals_repdistillers(index):
    case = CASES["fsp_matrix"][index]
    (bottom,), (top,) = _leaves(case, "bottom"), _leaves(case, "top")
    matrix = fsp.fsp_matrix(bottom, top)
    assert matrix.shape == (bottom.shape[0], top.shape[1], bottom.shape[1])
    torch.testing.assert_close(matrix, torch.tensor(case["matrix"], dtype=torch.float64), **CLOSE)
    _check((matrix * torch.tensor(case["extra"]["weights"], dtype=torch.float64)).sum(), case,
           {"bottom": [bottom], "top": [top]})


def test_fsp_matrix_is_the_spatial_mean_of_channel_products():
    # Written out from the definition, element by element, on maps of one size.
    bottom, top = torch.randn(2, 3, 2, 2, dtype=torch.float64), torch.randn(2, 4, 2, 2, dtype=torch.float64)
    matrix = fsp.fsp_matrix(bottom, top)
    for b in range(2):
        for i in range(4):
            for j in range(3):
                products = [top[b, i, h, w].item() * bottom[b, j, h, w].item() for h in range(2) for w in range(2)]
                expected = sum(products) / 4
                assert math.isclose(matrix[b, i, j].item(), expected, rel_tol=1e-12, abs_tol=1e-15)


@pytest.mark.parametrize("index", range(len(CASES["fsp_loss"])))
def test_fsp_loss_equals_repdistillers(index):
    case = CASES["fsp_loss"][index]
    student, teacher = _leaves(case, "student"), _leaves(case, "teacher")
    _check(fsp.fsp_loss(student, teacher), case, {"student": student, "teacher": teacher})


@pytest.mark.parametrize("index", range(len(CASES["factor_loss"])))
def test_factor_loss_equals_repdistillers(index):
    case = CASES["factor_loss"][index]
    (student,), (teacher,) = _leaves(case, "student"), _leaves(case, "teacher")
    _check(ft.factor_loss(student, teacher), case, {"student": [student], "teacher": [teacher]})


@pytest.mark.parametrize("index", range(len(CASES["ab_loss"])))
def test_ab_loss_equals_repdistillers(index):
    case = CASES["ab_loss"][index]
    student, teacher = _leaves(case, "student"), _leaves(case, "teacher")
    _check(ab.ab_loss(student, teacher, case["extra"]["margin"]), case, {"student": student, "teacher": teacher})


def test_the_losses_stay_finite_with_finite_gradients_for_a_confident_teacher():
    # A teacher whose maps are 50 times the student's scale.
    torch.manual_seed(0)
    shapes = [(4, 3, 8, 8), (4, 5, 4, 4)]
    student = [torch.randn(s, dtype=torch.float64, requires_grad=True) for s in shapes]
    teacher = [50 * torch.randn(s, dtype=torch.float64).relu() for s in shapes]
    for value in (fsp.fsp_loss(student, teacher), ab.ab_loss(student, teacher),
                  ft.factor_loss(student[1], teacher[1])):
        (grad,) = torch.autograd.grad(value, student[1])
        assert math.isfinite(value.item()) and torch.isfinite(grad).all()
