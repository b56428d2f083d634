"""MLKD (kdcore.methods.mlkd) against the authors' code and against its definition, in float64.

The reference values in fixtures/mlkd_ctkd_reference.json were computed by the authors' own code
(KD_ours.py of Jin-Ying/Multi-Level-Logit-Distillation; MLKD.py of sunshangquan/logit-standardization-KD
for ``standardize``) on the fixed logits stored beside them; tests/fixtures/reference_mlkd_ctkd.py
regenerates them from clones of those repositories.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from kdcore.methods import mlkd
from kdcore.methods.base import Outputs, Progress

F64 = torch.float64
CASES = json.loads((Path(__file__).parent / "fixtures" / "mlkd_ctkd_reference.json").read_text())["mlkd"]
TOLERANCE = dict(rtol=1e-6, atol=1e-9)


def t64(values, grad=False):
    return torch.tensor(values, dtype=F64, requires_grad=grad)


def _softmax_rows(z, temperature):
    rows = []
    for row in z:
        top = max(v / temperature for v in row)
        exps = [math.exp(v / temperature - top) for v in row]
        rows.append([e / sum(exps) for e in exps])
    return rows


def _class_correlation(s, t, temperature):
    """Σ_{a,b} (Σ_i p_t[i,a]p_t[i,b] − Σ_i p_s[i,a]p_s[i,b])² / C, with plain loops."""
    ps, pt = _softmax_rows(s, temperature), _softmax_rows(t, temperature)
    classes = len(s[0])
    total = 0.0
    for a in range(classes):
        for b in range(classes):
            diff = sum(r[a] * r[b] for r in pt) - sum(r[a] * r[b] for r in ps)
            total += diff * diff
    return total / classes


def _batch_correlation(s, t, temperature):
    """Σ_{i,j} (p_t[i]·p_t[j] − p_s[i]·p_s[j])² / B, with plain loops."""
    ps, pt = _softmax_rows(s, temperature), _softmax_rows(t, temperature)
    total = 0.0
    for i in range(len(s)):
        for j in range(len(s)):
            diff = sum(x * y for x, y in zip(pt[i], pt[j])) - sum(x * y for x, y in zip(ps[i], ps[j]))
            total += diff * diff
    return total / len(s)


@pytest.mark.parametrize("case", range(len(CASES)))
def test_the_correlation_losses_equal_the_authors_and_their_definition(case):
    data = CASES[case]
    s, t = data["student_weak"], data["teacher_weak"]
    for row in data["correlations"]:
        T = row["temperature"]
        ours_class = mlkd.class_correlation_loss(t64(s), t64(t), T).item()
        ours_batch = mlkd.batch_correlation_loss(t64(s), t64(t), T).item()
        assert ours_class == pytest.approx(row["class"], rel=1e-6, abs=1e-12)
        assert ours_batch == pytest.approx(row["batch"], rel=1e-6, abs=1e-12)
        assert ours_class == pytest.approx(_class_correlation(s, t, T), rel=1e-9, abs=1e-12)
        assert ours_batch == pytest.approx(_batch_correlation(s, t, T), rel=1e-9, abs=1e-12)


def test_the_kept_share_is_that_of_numpys_median_mask():
    generator = torch.Generator().manual_seed(0)
    for size in (1, 2, 5, 8, 9):
        values = torch.rand(size, generator=generator, dtype=F64)
        values[-1] = values[0]  # a tie at the median's side
        expected = (values.numpy() <= np.percentile(values.numpy(), 50)).mean()
        assert mlkd.kept_share(values).item() == pytest.approx(expected, abs=1e-12)


def _outputs(logits, strong):
    return Outputs(logits, {}, views={mlkd.STRONG: Outputs(strong, {})})


@pytest.mark.parametrize("case", range(len(CASES)))
def test_the_whole_loss_and_its_gradients_equal_the_authors(case):
    data = CASES[case]
    s_weak, s_strong = t64(data["student_weak"], grad=True), t64(data["student_strong"], grad=True)
    params = mlkd.MLKDParams(temperature=data["temperature"], standardize=data["standardize"])
    progress = Progress(torch.ones((), dtype=F64), torch.zeros((), dtype=F64), 10, 10)
    total, terms = mlkd.loss(_outputs(s_weak, s_strong),
                             _outputs(t64(data["teacher_weak"]), t64(data["teacher_strong"])),
                             torch.tensor(data["labels"]), params, progress, None)
    expected = data["losses"]
    # The authors' dictionary holds weighted terms; ours are unweighted, the weights in the total.
    assert (params.ce_weight * terms["ce"]).item() == pytest.approx(expected["loss_ce"], rel=1e-6)
    assert (params.kd_weight * terms["kd"]).item() == pytest.approx(expected["loss_kd"], rel=1e-6)
    assert (params.kd_weight * terms["class_correlation"]).item() == pytest.approx(expected["loss_cc"], rel=1e-6)
    assert (params.kd_weight * terms["batch_correlation"]).item() == pytest.approx(expected["loss_bc"], rel=1e-6)
    assert total.item() == pytest.approx(data["total"], rel=1e-6)
    total.backward()
    torch.testing.assert_close(s_weak.grad, t64(data["grad_student_weak"]), **TOLERANCE)
    torch.testing.assert_close(s_strong.grad, t64(data["grad_student_strong"]), **TOLERANCE)


def test_standardize_changes_only_the_kd_terms():
    case = next(c for c in CASES if not c["standardize"])
    logits = [t64(case[k]) for k in ("student_weak", "teacher_weak", "student_strong", "teacher_strong")]
    plain = mlkd.mlkd_terms(*logits, 4.0, standardize=False)
    standardised = mlkd.mlkd_terms(*logits, 4.0, standardize=True)
    assert standardised["kd"].item() != pytest.approx(plain["kd"].item(), rel=1e-3)
    for name in ("class_correlation", "batch_correlation"):
        assert standardised[name].item() == plain[name].item()


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_a_confident_teacher_gives_finite_values_and_gradients(dtype):
    generator = torch.Generator().manual_seed(3)
    student = torch.randn(8, 10, generator=generator, dtype=dtype, requires_grad=True)
    strong = torch.randn(8, 10, generator=generator, dtype=dtype, requires_grad=True)
    teacher = torch.randn(8, 10, generator=generator, dtype=dtype) * 50
    labels = torch.randint(0, 10, (8,), generator=generator)
    for standardize in (False, True):
        params = mlkd.MLKDParams(standardize=standardize)
        total, terms = mlkd.loss(_outputs(student, strong), _outputs(teacher, teacher * 1.1), labels, params,
                                 Progress(torch.ones(()), torch.zeros(()), 10, 10), None)
        total.backward()
        assert all(torch.isfinite(v) for v in terms.values())
        assert torch.isfinite(student.grad).all() and torch.isfinite(strong.grad).all()
        assert strong.grad.abs().sum() > 0  # the strong view is trained on
        student.grad = strong.grad = None
