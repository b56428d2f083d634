"""The loss functions of SP, NST, CC, VID, KDSVD and WTTM against their reference implementations, in
float64, to 1e-6: values and the gradients a student receives. The expected numbers are those the
references' own code gave for the stored inputs (tests/fixtures/reference_losses.py says how to
regenerate them); then the properties each loss must have whatever its inputs, a confident teacher
and dead feature maps included."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from kdcore.methods import cc, kdsvd, nst, sp, vid, wttm

F64 = torch.float64
TOLERANCE = 1e-6
CASES = json.loads((Path(__file__).parent / "fixtures" / "reference_losses.json").read_text())


def t64(values, grad=False):
    return torch.tensor(values, dtype=F64, requires_grad=grad)


def _ours(name, inputs, extra):
    """The leaves our function receives (named as the reference's arguments) and its value."""
    if name == "sp":
        leaves = {"f_s": t64(inputs["f_s"], True), "f_t": t64(inputs["f_t"])}
        return leaves, sp.sp_loss(leaves["f_s"], leaves["f_t"])
    if name == "nst":
        leaves = {"f_s": t64(inputs["f_s"], True), "f_t": t64(inputs["f_t"])}
        return leaves, nst.nst_loss(leaves["f_s"], leaves["f_t"])
    if name == "cc":
        leaves = {"f_s": t64(inputs["f_s"], True), "f_t": t64(inputs["f_t"])}
        return leaves, cc.cc_loss(leaves["f_s"], leaves["f_t"])
    if name == "vid":
        leaves = {k: t64(inputs[k], k != "f_t") for k in ("f_s", "log_scale", "f_t")}
        return leaves, vid.vid_loss(leaves["f_s"], leaves["log_scale"], leaves["f_t"], eps=extra["eps"])
    if name == "kdsvd":
        leaves = {"g_s": [t64(x, True) for x in inputs["g_s"]], "g_t": [t64(x) for x in inputs["g_t"]]}
        return leaves, kdsvd.kdsvd_loss(leaves["g_s"], leaves["g_t"], k=extra["k"])
    leaves = {"y_s": t64(inputs["y_s"], True), "y_t": t64(inputs["y_t"])}
    return leaves, wttm.wttm_loss(leaves["y_s"], leaves["y_t"], gamma=extra["gamma"])


@pytest.mark.parametrize("name,index", [(name, i) for name, cases in CASES.items() for i in range(len(cases))])
def test_each_loss_equals_its_reference_in_value_and_gradient(name, index):
    case = CASES[name][index]
    leaves, value = _ours(name, case["inputs"], case["extra"])
    assert value.dtype == F64 and value.shape == ()
    assert value.item() == pytest.approx(case["value"], rel=TOLERANCE, abs=TOLERANCE)
    value.backward()
    for key, expected in case["grads"].items():
        grads = [x.grad for x in leaves[key]] if isinstance(leaves[key], list) else [leaves[key].grad]
        expected = expected if isinstance(leaves[key], list) else [expected]
        for grad, want in zip(grads, expected):
            torch.testing.assert_close(grad, t64(want), rtol=TOLERANCE, atol=TOLERANCE)


def test_the_fixture_covers_every_loss_and_pools_in_both_directions():
    assert set(CASES) == {"sp", "nst", "cc", "vid", "kdsvd", "wttm"}
    sizes = [(len(c["inputs"]["f_s"][0][0]), len(c["inputs"]["f_t"][0][0])) for c in CASES["nst"]]
    assert any(s > t for s, t in sizes) and any(s < t for s, t in sizes) and any(s == t for s, t in sizes)


# --- properties ------------------------------------------------------------------------------


def _maps(*shape, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(*shape, generator=g, dtype=F64)).clamp(min=0)


def test_identical_inputs_cost_nothing():
    f = _maps(4, 6, 5, 5)
    assert sp.sp_loss(f, f).item() == pytest.approx(0, abs=1e-12)
    assert nst.nst_loss(f, f).item() == pytest.approx(0, abs=1e-12)
    assert cc.cc_loss(f.flatten(1), f.flatten(1)).item() == 0
    logits = torch.randn(5, 10, dtype=F64)
    assert wttm.wttm_loss(logits, logits, gamma=1.0).item() == pytest.approx(0, abs=1e-12)
    maps = [_maps(4, 3, 6, 6, seed=1), _maps(4, 5, 3, 3, seed=2)]
    assert kdsvd.kdsvd_loss(maps, maps).item() == pytest.approx(0, abs=1e-12)


def test_sp_and_nst_only_compare_shapes_of_relations_not_scale():
    s, t = _maps(4, 3, 4, 4, seed=3), _maps(4, 6, 4, 4, seed=4)
    assert sp.sp_loss(7 * s, t).item() == pytest.approx(sp.sp_loss(s, t).item(), rel=1e-12)
    assert nst.nst_loss(7 * s, t).item() == pytest.approx(nst.nst_loss(s, t).item(), rel=1e-12)


def test_vid_at_its_initial_variance_is_the_gaussian_negative_log_likelihood():
    mean, target = torch.randn(2, 3, 4, 4, dtype=F64), torch.randn(2, 3, 4, 4, dtype=F64)
    params = vid.VIDParams()
    log_scale = torch.full((3,), vid._initial_log_scale(params), dtype=F64)
    variance = params.init_pred_var
    expected = (0.5 * ((mean - target) ** 2 / variance + math.log(variance))).mean()
    assert vid.vid_loss(mean, log_scale, target, params.eps).item() == pytest.approx(expected.item(), rel=1e-9)


def test_wttm_at_gamma_one_is_kl_at_temperature_one_and_weights_smooth_teachers_more():
    from kdcore.methods.kd import soft_target_loss

    s, t = torch.randn(6, 10, dtype=F64), torch.randn(6, 10, dtype=F64)
    assert wttm.wttm_loss(s, t, 1.0).item() == pytest.approx(soft_target_loss(s, t, 1.0).item(), rel=1e-12)
    # One sample each: the same KL target shape (a uniform teacher), weights U_γ = C^(1−γ) against 1 + tiny.
    uniform, sharp = torch.zeros(1, 10, dtype=F64), torch.tensor([[40.0] + [0.0] * 9], dtype=F64)
    student = torch.randn(1, 10, dtype=F64)
    assert wttm.wttm_loss(student, uniform, 0.5).item() > 3 * torch.nn.functional.kl_div(
        torch.log_softmax(student, 1), torch.full((1, 10), 0.1, dtype=F64), reduction="sum").item() * 0.99
    assert wttm.wttm_loss(student, sharp, 0.5).item() > 0


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_a_confident_teacher_gives_finite_values_and_gradients(dtype):
    """Logits ×50 (a teacher certain of every sample) and feature maps ×50; the references' pow(softmax, γ)
    underflows there, our log-space WTTM does not."""
    g = torch.Generator().manual_seed(5)
    student_logits = torch.randn(8, 10, generator=g, dtype=dtype, requires_grad=True)
    teacher_logits = 50 * torch.randn(8, 10, generator=g, dtype=dtype)
    for gamma in (0.1, 0.2, 1.0):
        _finite_with_grad(wttm.wttm_loss(student_logits, teacher_logits, gamma), student_logits)
    student_map = _maps(8, 4, 4, 4, seed=6).to(dtype).requires_grad_()
    teacher_map = _maps(8, 6, 4, 4, seed=7, scale=50).to(dtype)
    for value in (sp.sp_loss(student_map, teacher_map), nst.nst_loss(student_map, teacher_map),
                  kdsvd.kdsvd_loss([student_map, student_map.amax(1, keepdim=True).expand(8, 3, 4, 4)],
                                   [teacher_map, teacher_map[:, :2]])):
        _finite_with_grad(value, student_map)


def test_dead_feature_maps_give_finite_values_and_gradients():
    """A stage whose ReLU outputs are all zero (a fresh or dead network): zero rows, zero Gram matrices, zero
    singular values."""
    alive = _maps(4, 3, 4, 4, seed=8).requires_grad_()
    dead = torch.zeros(4, 5, 4, 4, dtype=F64)
    for student, teacher in ((alive, dead), (dead.clone().requires_grad_(), alive.detach())):
        leaf = student if student.requires_grad else None
        for value in (sp.sp_loss(student, teacher), nst.nst_loss(student, teacher),
                      kdsvd.kdsvd_loss([student, student], [teacher, teacher])):
            _finite_with_grad(value, leaf)


def _finite_with_grad(value, leaf):
    assert torch.isfinite(value).all()
    if leaf is not None:
        (grad,) = torch.autograd.grad(value, leaf, allow_unused=True)
        assert grad is None or torch.isfinite(grad).all()


def test_kdsvd_needs_paired_stages():
    with pytest.raises(ValueError, match="paired"):
        kdsvd.kdsvd_loss([_maps(2, 3, 4, 4)], [])


def test_vid_refuses_an_initial_variance_at_or_below_its_floor():
    from pydantic import ValidationError

    from kdcore.config import RunConfig

    with pytest.raises(ValidationError, match="init_pred_var must be larger than eps"):
        RunConfig(kind="vid", params={"init_pred_var": 1e-6, "eps": 1e-5})
    assert RunConfig(kind="vid", params={"init_pred_var": 2e-5, "eps": 1e-5}).params.init_pred_var == 2e-5
