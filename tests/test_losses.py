"""Each method's loss against values computed by hand on fixed tensors."""

import math

import pytest
import torch
import torch.nn.functional as F

from kdcore.config import RunConfig
from kdcore.methods import cosine, fitnet, supervised
from kdcore.methods import kd as soft_targets
from kdcore.methods.base import Outputs


def _call(module, student_logits, labels, teacher=None, student_taps=None, kind="kd", modules=None):
    """A method's loss with the run's default hyperparameters."""
    return module.loss(Outputs(student_logits, student_taps or {}), teacher, labels, RunConfig(kind=kind).params,
                       None, modules)

STUDENT = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]])
TEACHER = torch.tensor([[3.0, 0.0, -2.0], [-1.0, 2.0, 1.0]])
LABELS = torch.tensor([0, 2])


def _softmax(row, t=1.0):
    exps = [math.exp(v / t) for v in row]
    return [e / sum(exps) for e in exps]


def test_soft_target_loss_matches_hand_computed_kl():
    temperature = 2.0
    expected = 0.0
    for s_row, t_row in zip(STUDENT.tolist(), TEACHER.tolist()):
        p_t, p_s = _softmax(t_row, temperature), _softmax(s_row, temperature)
        expected += sum(pt * (math.log(pt) - math.log(ps)) for pt, ps in zip(p_t, p_s))
    expected = expected / 2 * temperature**2
    assert soft_targets.soft_target_loss(STUDENT, TEACHER, temperature).item() == pytest.approx(expected, rel=1e-5)


def test_soft_target_loss_has_the_seeds_value_and_gradient():
    def seed_formula(s, t, temp):  # the seed's own expression
        p_t = F.softmax(t / temp, dim=-1)
        log_p_s = F.log_softmax(s / temp, dim=-1)
        return torch.sum(p_t * (p_t.log() - log_p_s)) / log_p_s.size(0) * temp**2

    ours_in = STUDENT.clone().requires_grad_()
    seed_in = STUDENT.clone().requires_grad_()
    ours = soft_targets.soft_target_loss(ours_in, TEACHER, 2.0)
    seed = seed_formula(seed_in, TEACHER, 2.0)
    ours.backward(), seed.backward()
    assert ours.item() == pytest.approx(seed.item(), rel=1e-5)
    torch.testing.assert_close(ours_in.grad, seed_in.grad)


def test_soft_target_loss_stays_finite_for_extreme_logits():
    student = torch.tensor([[1000.0, -1000.0, 0.0]], requires_grad=True)
    teacher = torch.tensor([[-1000.0, 1000.0, 0.0]])
    value = soft_targets.soft_target_loss(student, teacher, 2.0)
    value.backward()
    assert math.isfinite(value.item()) and value.item() > 0
    assert torch.isfinite(student.grad).all()
    # Where the seed's p·log p would produce 0·log 0 = NaN:
    p_t = F.softmax(teacher / 2.0, dim=-1)
    assert torch.isnan(torch.sum(p_t * (p_t.log() - F.log_softmax(student / 2.0, dim=-1)))).item()


def test_kd_total_weights_ce_and_soft_targets():
    total, terms = _call(soft_targets, STUDENT, LABELS, Outputs(TEACHER, {}))
    ce = -(math.log(_softmax(STUDENT[0].tolist())[0]) + math.log(_softmax(STUDENT[1].tolist())[2])) / 2
    assert terms["ce"].item() == pytest.approx(ce, rel=1e-5)
    assert total.item() == pytest.approx(0.75 * ce + 0.25 * terms["soft_target"].item(), rel=1e-5)


def test_supervised_loss_is_cross_entropy():
    total, terms = _call(supervised, STUDENT, LABELS, kind="student")
    ce = -(math.log(_softmax(STUDENT[0].tolist())[0]) + math.log(_softmax(STUDENT[1].tolist())[2])) / 2
    assert total.item() == pytest.approx(ce, rel=1e-5) and set(terms) == {"ce"}


def test_cosine_loss_pools_teacher_pairs_and_compares_directions():
    student_map = torch.zeros(1, 16, 8, 8)
    teacher_map = torch.zeros(1, 32, 8, 8)
    student_map.view(-1)[0], student_map.view(-1)[1] = 1.0, 1.0  # flattened: [1, 1, 0, ...]
    teacher_map.view(-1)[0], teacher_map.view(-1)[1] = 4.0, 2.0  # pooled pairs: [3, 0, ...]
    # cos([1,1],[3,0]) = 3 / (sqrt(2)·3) = 1/sqrt(2); loss = 1 - cos
    assert cosine.cosine_hidden_loss(student_map, teacher_map).item() == pytest.approx(1 - 1 / math.sqrt(2), rel=1e-5)
    total, terms = _call(cosine, STUDENT[:1], LABELS[:1], Outputs(None, {"stage2": teacher_map}),
                         {"stage2": student_map}, kind="cosine")
    assert total.item() == pytest.approx(0.75 * terms["ce"].item() + 0.25 * terms["cosine"].item(), rel=1e-6)


def test_fitnet_loss_is_mse_of_regressor_output():
    hint = torch.full((1, 32, 8, 8), 2.0)
    teacher_map = torch.zeros(1, 32, 8, 8)
    teacher_map.view(-1)[:1024] = 1.0  # half the entries differ by 1, half by 2: mean of 1 and 4
    regressor = {"regressor": lambda student_map: hint}  # the regressor's output, fixed
    total, terms = _call(fitnet, STUDENT[:1], LABELS[:1], Outputs(None, {"stage2": teacher_map}),
                         {"stage2": torch.zeros(1, 16, 8, 8)}, kind="fitnet", modules=regressor)
    assert terms["hint"].item() == pytest.approx(2.5)
    assert total.item() == pytest.approx(0.75 * terms["ce"].item() + 0.25 * 2.5, rel=1e-6)


def test_cosine_pooling_is_the_seeds_pairwise_average():
    teacher_map = torch.randn(4, 32, 8, 8)
    student_map = torch.randn(4, 16, 8, 8)
    seed = F.cosine_embedding_loss(torch.flatten(student_map, 1), F.avg_pool1d(torch.flatten(teacher_map, 1), 2),
                                   torch.ones(4))
    assert torch.equal(cosine.cosine_hidden_loss(student_map, teacher_map), seed)


def test_kd_with_standardised_logits_uses_both_standardised():
    from kdcore.methods import standardize_logits

    params = RunConfig(kind="kd", params={"standardize": True, "temperature": 3.0}).params
    total, terms = soft_targets.loss(Outputs(STUDENT, {}), Outputs(TEACHER, {}), LABELS, params, None, None)
    expected = soft_targets.soft_target_loss(standardize_logits(STUDENT), standardize_logits(TEACHER), 3.0)
    assert torch.equal(terms["soft_target"], expected)
