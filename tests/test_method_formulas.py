"""The distillation formulas (DKD, AT, PKT, RKD, DIST, logit standardisation) against values
computed independently, in float64 with plain Python loops straight from each definition."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from kdcore.methods import at, dist, dkd, pkt, rkd, standardize_logits
from kdcore.methods.kd import soft_target_loss

ROOT = Path(__file__).resolve().parents[1]
REL = 1e-10
F64 = torch.float64

STUDENT = [[2.0, 0.5, -1.0, 0.3, 1.1], [0.0, 1.0, 3.0, -0.5, 0.2], [-1.2, 0.4, 0.9, 2.2, -0.3], [0.7, -0.8, 0.1, 0.0, 1.9]]
TEACHER = [[3.0, 0.0, -2.0, 1.0, 0.5], [-1.0, 2.0, 1.0, 0.0, -0.5], [0.3, -1.0, 2.5, 1.5, 0.0], [1.0, 0.2, -0.7, -1.5, 2.4]]
LABELS = [0, 2, 3, 4]
# A confident teacher: the labelled logit 1000 above the rest.
CONFIDENT = [[1000.0 if c == y else 0.0 for c in range(5)] for y in LABELS]


def t64(values, grad=False):
    return torch.tensor(values, dtype=F64, requires_grad=grad)


def _logsumexp(row):
    top = max(row)
    return top + math.log(sum(math.exp(v - top) for v in row))


def _log_softmax(row, temperature=1.0):
    scaled = [v / temperature for v in row]
    lse = _logsumexp(scaled)
    return [v - lse for v in scaled]


def _softmax(row, temperature=1.0):
    return [math.exp(v) for v in _log_softmax(row, temperature)]


def _kl_from_logs(log_p, log_q):  # Σ p·(log p − log q)
    return sum(math.exp(lp) * (lp - lq) for lp, lq in zip(log_p, log_q))


def _smooth_l1_mean(xs, ys):
    total = 0.0
    for x, y in zip(xs, ys):
        diff = abs(x - y)
        total += 0.5 * diff * diff if diff < 1.0 else diff - 0.5
    return total / len(xs)


def _finite_with_finite_grad(value, *leaves):
    value.backward()
    assert math.isfinite(value.item())
    for leaf in leaves:
        assert leaf.grad is not None and torch.isfinite(leaf.grad).all()


# --- DKD -------------------------------------------------------------------------------------


def _dkd_expected(student, teacher, labels, alpha, beta, temperature):
    tckd = nckd = 0.0
    for s_row, t_row, y in zip(student, teacher, labels):
        binary = []
        for row in (s_row, t_row):
            log_p = _log_softmax(row, temperature)
            # log(1 − p_gt) as log Σ_{c≠y} p_c, which is the same quantity without cancellation
            binary.append([log_p[y], _logsumexp([lp for c, lp in enumerate(log_p) if c != y])])
        tckd += _kl_from_logs(binary[1], binary[0])
        pushed_s = [v / temperature - (1000.0 if c == y else 0.0) for c, v in enumerate(s_row)]
        pushed_t = [v / temperature - (1000.0 if c == y else 0.0) for c, v in enumerate(t_row)]
        nckd += _kl_from_logs(_log_softmax(pushed_t), _log_softmax(pushed_s))
    n = len(labels)
    return alpha * tckd * temperature**2 / n + beta * nckd * temperature**2 / n


@pytest.mark.parametrize("alpha, beta, temperature", [(1.0, 8.0, 4.0), (0.5, 2.0, 1.0), (2.0, 0.0, 3.0)])
def test_dkd_matches_hand_computed(alpha, beta, temperature):
    value = dkd.dkd_loss(t64(STUDENT), t64(TEACHER), torch.tensor(LABELS), alpha, beta, temperature)
    assert value.dtype == F64
    assert value.item() == pytest.approx(_dkd_expected(STUDENT, TEACHER, LABELS, alpha, beta, temperature), rel=REL)


def test_dkd_terms_separately_match_the_textbook_probabilities():
    # TCKD alone (β = 0) and NCKD alone (α = 0), from plain probabilities p and 1 − p.
    temperature, n = 2.0, len(LABELS)
    tckd = nckd = 0.0
    for s_row, t_row, y in zip(STUDENT, TEACHER, LABELS):
        p_s, p_t = _softmax(s_row, temperature), _softmax(t_row, temperature)
        b_s, b_t = [p_s[y], 1 - p_s[y]], [p_t[y], 1 - p_t[y]]
        tckd += sum(bt * math.log(bt / bs) for bt, bs in zip(b_t, b_s))
        # non-target distribution: the others renormalised (the 1000 push leaves e^-1000 ≈ 0)
        q_s = [p / (1 - p_s[y]) for c, p in enumerate(p_s) if c != y]
        q_t = [p / (1 - p_t[y]) for c, p in enumerate(p_t) if c != y]
        nckd += sum(qt * math.log(qt / qs) for qt, qs in zip(q_t, q_s))
    labels = torch.tensor(LABELS)
    only_t = dkd.dkd_loss(t64(STUDENT), t64(TEACHER), labels, 1.0, 0.0, temperature).item()
    only_n = dkd.dkd_loss(t64(STUDENT), t64(TEACHER), labels, 0.0, 1.0, temperature).item()
    assert only_t == pytest.approx(tckd * temperature**2 / n, rel=1e-9)
    assert only_n == pytest.approx(nckd * temperature**2 / n, rel=1e-9)


def test_dkd_is_zero_for_identical_logits():
    assert dkd.dkd_loss(t64(TEACHER), t64(TEACHER), torch.tensor(LABELS), 1.0, 8.0, 4.0).item() == 0.0


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_dkd_finite_with_a_confident_teacher(dtype, temperature):
    student = torch.tensor(STUDENT, dtype=dtype, requires_grad=True)
    value = dkd.dkd_loss(student, torch.tensor(CONFIDENT, dtype=dtype), torch.tensor(LABELS), 1.0, 8.0, temperature)
    _finite_with_finite_grad(value, student)
    assert value.item() > 0
    # ...and equals the log-space hand computation (p_gt is 1 to double precision here)
    expected = _dkd_expected(STUDENT, CONFIDENT, LABELS, 1.0, 8.0, temperature)
    assert value.item() == pytest.approx(expected, rel=REL if dtype == F64 else 1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_dkd_finite_when_both_are_confident_and_wrong(dtype):
    wrong = [[1000.0 if c == (y + 1) % 5 else 0.0 for c in range(5)] for y in LABELS]
    student = torch.tensor(wrong, dtype=dtype, requires_grad=True)
    teacher = torch.tensor(CONFIDENT, dtype=dtype, requires_grad=True)
    value = dkd.dkd_loss(student, teacher, torch.tensor(LABELS), 1.0, 8.0, 1.0)
    _finite_with_finite_grad(value, student, teacher)


def test_dkd_float32_agrees_with_float64():
    labels = torch.tensor(LABELS)
    f32 = dkd.dkd_loss(torch.tensor(STUDENT), torch.tensor(TEACHER), labels, 1.0, 8.0, 4.0)
    assert f32.dtype == torch.float32
    assert f32.item() == pytest.approx(dkd.dkd_loss(t64(STUDENT), t64(TEACHER), labels, 1.0, 8.0, 4.0).item(), rel=1e-5)


def test_dkd_gradcheck():
    labels = torch.tensor(LABELS)
    assert torch.autograd.gradcheck(
        lambda s, t: dkd.dkd_loss(s, t, labels, 1.0, 8.0, 4.0), (t64(STUDENT, True), t64(TEACHER, True))
    )


def test_dkd_warmup():
    assert dkd.dkd_warmup(0, 20) == 0.0
    assert dkd.dkd_warmup(5, 20) == 0.25
    assert dkd.dkd_warmup(20, 20) == 1.0
    assert dkd.dkd_warmup(35, 20) == 1.0
    assert dkd.dkd_warmup(3, 0) == 1.0
    for epoch, expected in ((5, 0.25), (20, 1.0), (40, 1.0)):
        for tensor in (torch.tensor(epoch), torch.tensor(float(epoch), dtype=F64)):
            factor = dkd.dkd_warmup(tensor, 20)
            assert isinstance(factor, torch.Tensor) and factor.dim() == 0 and factor.device == tensor.device
            assert factor.is_floating_point() and factor.item() == expected
    assert dkd.dkd_warmup(torch.tensor(5.0, dtype=F64), 20).dtype == F64


# --- AT --------------------------------------------------------------------------------------


def _feature(n, c, h, w, seed):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, c, h, w)).round(3)


def _pool_hand(f, h, w):  # average over equal blocks (sizes divisible)
    n, c, big_h, big_w = f.shape
    bh, bw = big_h // h, big_w // w
    out = np.zeros((n, c, h, w))
    for i in range(n):
        for j in range(c):
            for y in range(h):
                for x in range(w):
                    out[i, j, y, x] = sum(f[i, j, y * bh + a, x * bw + b] for a in range(bh) for b in range(bw)) / (bh * bw)
    return out


def _attention_hand(f, p):
    n, c, h, w = f.shape
    maps = []
    for i in range(n):
        a = [sum(f[i, j, y, x] ** p for j in range(c)) / c for y in range(h) for x in range(w)]
        norm = math.sqrt(sum(v * v for v in a))
        maps.append([v / max(norm, 1e-12) for v in a])
    return maps


def _at_stage_hand(fs, ft, p):
    h, w = min(fs.shape[2], ft.shape[2]), min(fs.shape[3], ft.shape[3])
    if fs.shape[2:] != (h, w):
        fs = _pool_hand(fs, h, w)
    if ft.shape[2:] != (h, w):
        ft = _pool_hand(ft, h, w)
    a_s, a_t = _attention_hand(fs, p), _attention_hand(ft, p)
    diffs = [(x - y) ** 2 for rs, rt in zip(a_s, a_t) for x, y in zip(rs, rt)]
    return sum(diffs) / len(diffs)


@pytest.mark.parametrize("p", [2, 3])
def test_at_matches_hand_computed_over_two_stages(p):
    stages_s = [_feature(3, 4, 4, 4, 1), _feature(3, 6, 2, 2, 2)]
    stages_t = [_feature(3, 5, 4, 4, 3), _feature(3, 8, 2, 2, 4)]
    value = at.at_loss([t64(f) for f in stages_s], [t64(f) for f in stages_t], p)
    expected = sum(_at_stage_hand(fs, ft, p) for fs, ft in zip(stages_s, stages_t))
    assert value.item() == pytest.approx(expected, rel=REL)


def test_at_pools_the_larger_map_whichever_side_it_is_on():
    small, large = _feature(2, 3, 2, 2, 5), _feature(2, 5, 4, 4, 6)
    student_larger = at.at_loss([t64(large)], [t64(small)], 2).item()
    teacher_larger = at.at_loss([t64(small)], [t64(large)], 2).item()
    assert student_larger == pytest.approx(_at_stage_hand(large, small, 2), rel=REL)
    assert teacher_larger == pytest.approx(_at_stage_hand(small, large, 2), rel=REL)
    # the same as pooling the larger feature map by hand first
    pooled = t64(_pool_hand(large, 2, 2))
    assert student_larger == pytest.approx(at.at_loss([pooled], [t64(small)], 2).item(), rel=REL)
    # non-square and mixed sizes: each dimension pooled to the smaller one
    wide, tall = _feature(2, 3, 2, 8, 7), _feature(2, 4, 4, 4, 8)
    assert at.at_loss([t64(wide)], [t64(tall)], 2).item() == pytest.approx(
        _at_stage_hand(_pool_hand(wide, 2, 4), _pool_hand(tall, 2, 4), 2), rel=REL
    )


def test_at_is_zero_for_identical_maps_and_differentiable():
    f = t64(_feature(3, 4, 4, 4, 9))
    assert at.at_loss([f, f], [f.clone(), f.clone()], 2).item() == 0.0
    student = [t64(_feature(2, 3, 4, 4, 10), True), t64(_feature(2, 3, 2, 2, 11), True)]
    teacher = [t64(_feature(2, 5, 2, 2, 12)), t64(_feature(2, 4, 2, 2, 13))]
    assert torch.autograd.gradcheck(lambda a, b: at.at_loss([a, b], teacher, 2), tuple(student))
    f32 = at.at_loss([s.float() for s in student], [t.float() for t in teacher], 2)
    assert f32.dtype == torch.float32
    assert f32.item() == pytest.approx(at.at_loss(student, teacher, 2).item(), rel=1e-5)


def test_at_rejects_unpaired_stages():
    f = t64(_feature(2, 3, 2, 2, 14))
    with pytest.raises(ValueError):
        at.at_loss([f, f], [f], 2)


# --- PKT -------------------------------------------------------------------------------------

EMB_S = [[0.5, -1.0, 2.0], [1.5, 0.2, -0.3], [-0.7, 0.8, 0.1], [0.0, -0.4, 1.2]]
EMB_T = [[1.0, 0.3, -0.2, 0.8, 0.0], [-0.5, 1.1, 0.4, 0.0, 0.9], [0.2, -0.6, 1.3, 0.7, -1.0], [0.9, 0.9, -0.1, 0.3, 0.4]]


def _pkt_probabilities(rows, eps):
    unit = []
    for r in rows:
        norm = math.sqrt(sum(v * v for v in r))
        unit.append([v / (norm + eps) for v in r])
    probs = []
    for a in unit:
        sims = [(sum(x * y for x, y in zip(a, b)) + 1.0) / 2.0 for b in unit]
        probs.append([s / sum(sims) for s in sims])
    return probs


def _pkt_hand(student, teacher, eps=1e-7):
    p_s, p_t = _pkt_probabilities(student, eps), _pkt_probabilities(teacher, eps)
    terms = [pt * math.log((pt + eps) / (ps + eps)) for rs, rt in zip(p_s, p_t) for ps, pt in zip(rs, rt)]
    return sum(terms) / len(terms)


def test_pkt_matches_hand_computed_with_different_widths():
    assert pkt.pkt_loss(t64(EMB_S), t64(EMB_T)).item() == pytest.approx(_pkt_hand(EMB_S, EMB_T), rel=REL)
    assert pkt.pkt_loss(t64(EMB_S), t64(EMB_T), eps=1e-3).item() == pytest.approx(_pkt_hand(EMB_S, EMB_T, 1e-3), rel=REL)


def test_pkt_is_zero_for_identical_embeddings_and_scale_invariant():
    assert pkt.pkt_loss(t64(EMB_T), t64(EMB_T)).item() == 0.0
    # a row's scale does not change its direction: ~0 up to the eps in the norm
    assert abs(pkt.pkt_loss(t64(EMB_T) * 3.0, t64(EMB_T)).item()) < 1e-7


def test_pkt_is_differentiable_and_finite_with_a_zero_row():
    assert torch.autograd.gradcheck(lambda s: pkt.pkt_loss(s, t64(EMB_T)), (t64(EMB_S, True),))
    student = t64([[0.0, 0.0, 0.0]] + EMB_S[1:], True)
    _finite_with_finite_grad(pkt.pkt_loss(student, t64(EMB_T)), student)
    f32 = pkt.pkt_loss(torch.tensor(EMB_S), torch.tensor(EMB_T))
    assert f32.dtype == torch.float32 and f32.item() == pytest.approx(_pkt_hand(EMB_S, EMB_T), rel=1e-5)


# --- RKD -------------------------------------------------------------------------------------


def _rkd_distances_hand(rows):
    n = len(rows)
    d = [[0.0 if i == j else math.sqrt(max(sum((a - b) ** 2 for a, b in zip(rows[i], rows[j])), 1e-12)) for j in range(n)] for i in range(n)]
    positive = [v for r in d for v in r if v > 0]
    mean = sum(positive) / len(positive)
    return [v / mean for r in d for v in r]


def _rkd_angles_hand(rows):
    n = len(rows)
    out = []
    for i in range(n):
        units = []
        for j in range(n):
            v = [a - b for a, b in zip(rows[j], rows[i])]  # e_j − e_i
            norm = math.sqrt(sum(x * x for x in v))
            units.append([x / max(norm, 1e-12) for x in v])
        for j in range(n):
            for k in range(n):
                out.append(sum(x * y for x, y in zip(units[j], units[k])))
    return out


def _rkd_hand(student, teacher, wd, wa):
    distance = _smooth_l1_mean(_rkd_distances_hand(student), _rkd_distances_hand(teacher))
    angle = _smooth_l1_mean(_rkd_angles_hand(student), _rkd_angles_hand(teacher))
    return wd * distance + wa * angle


@pytest.mark.parametrize("wd, wa", [(25.0, 50.0), (1.0, 0.0), (0.0, 1.0)])
def test_rkd_matches_hand_computed_with_different_widths(wd, wa):
    value = rkd.rkd_loss(t64(EMB_S), t64(EMB_T), wd, wa)
    assert value.item() == pytest.approx(_rkd_hand(EMB_S, EMB_T, wd, wa), rel=REL)


def test_rkd_smooth_l1_reaches_its_linear_part():
    # spread teacher so some normalised distances/angles differ by more than 1
    teacher = [[10.0, 0.0], [0.0, 0.1], [0.0, -0.1], [0.05, 0.0], [-10.0, 0.3]]
    student = [[0.1, 0.2], [3.0, -1.0], [-2.0, 0.5], [0.4, 4.0], [1.0, 1.0]]
    assert max(abs(a - b) for a, b in zip(_rkd_distances_hand(student), _rkd_distances_hand(teacher))) > 1
    assert rkd.rkd_loss(t64(student), t64(teacher), 25.0, 50.0).item() == pytest.approx(
        _rkd_hand(student, teacher, 25.0, 50.0), rel=REL
    )


def test_rkd_is_zero_for_identical_embeddings_and_the_teacher_gets_no_gradient():
    assert rkd.rkd_loss(t64(EMB_T), t64(EMB_T), 25.0, 50.0).item() == 0.0
    student, teacher = t64(EMB_S, True), t64(EMB_T, True)
    rkd.rkd_loss(student, teacher, 25.0, 50.0).backward()
    assert teacher.grad is None and torch.isfinite(student.grad).all()


def test_rkd_differentiable_and_finite_with_duplicate_rows():
    assert torch.autograd.gradcheck(lambda s: rkd.rkd_loss(s, t64(EMB_T), 25.0, 50.0), (t64(EMB_S, True),))
    student = t64([EMB_S[0], EMB_S[0]] + EMB_S[2:], True)  # a zero distance off the diagonal
    _finite_with_finite_grad(rkd.rkd_loss(student, t64(EMB_T), 25.0, 50.0), student)
    f32 = rkd.rkd_loss(torch.tensor(EMB_S), torch.tensor(EMB_T), 25.0, 50.0)
    assert f32.dtype == torch.float32 and f32.item() == pytest.approx(_rkd_hand(EMB_S, EMB_T, 25.0, 50.0), rel=1e-4)


# --- DIST ------------------------------------------------------------------------------------


def _pearson_hand(a, b, eps):
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    ca, cb = [x - ma for x in a], [y - mb for y in b]
    na, nb = math.sqrt(sum(x * x for x in ca)), math.sqrt(sum(y * y for y in cb))
    return sum(x * y for x, y in zip(ca, cb)) / (na * nb + eps)


def _dist_hand(student, teacher, beta, gamma, temperature, eps=1e-8):
    y_s = [_softmax(r, temperature) for r in student]
    y_t = [_softmax(r, temperature) for r in teacher]
    rows = [_pearson_hand(a, b, eps) for a, b in zip(y_s, y_t)]
    cols = [_pearson_hand(list(a), list(b), eps) for a, b in zip(zip(*y_s), zip(*y_t))]
    inter = 1 - sum(rows) / len(rows)
    intra = 1 - sum(cols) / len(cols)
    return temperature**2 * (beta * inter + gamma * intra)


@pytest.mark.parametrize("beta, gamma, temperature", [(1.0, 1.0, 4.0), (2.0, 0.5, 1.0), (0.0, 1.0, 2.0)])
def test_dist_matches_hand_computed(beta, gamma, temperature):
    value = dist.dist_loss(t64(STUDENT), t64(TEACHER), beta, gamma, temperature)
    assert value.item() == pytest.approx(_dist_hand(STUDENT, TEACHER, beta, gamma, temperature), rel=REL)


def test_dist_pearson_rows_and_columns_match_numpy_corrcoef():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    rows = dist.pearson_rows(t64(a), t64(b), eps=0.0).numpy()
    cols = dist.pearson_rows(t64(a).T, t64(b).T, eps=0.0).numpy()
    np.testing.assert_allclose(rows, [np.corrcoef(a[i], b[i])[0, 1] for i in range(4)], rtol=1e-12)
    np.testing.assert_allclose(cols, [np.corrcoef(a[:, j], b[:, j])[0, 1] for j in range(6)], rtol=1e-12)
    # with the default eps 1e-8 in the denominator: within 1e-8 / (‖a‖‖b‖) of it
    np.testing.assert_allclose(dist.pearson_rows(t64(a), t64(b)).numpy(), rows, rtol=1e-8)


def test_dist_is_zero_up_to_eps_for_identical_logits():
    value = dist.dist_loss(t64(TEACHER), t64(TEACHER), 1.0, 1.0, 4.0).item()
    assert 0 <= value < 1e-4
    assert value == pytest.approx(_dist_hand(TEACHER, TEACHER, 1.0, 1.0, 4.0), rel=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_dist_finite_with_a_confident_teacher_and_constant_columns(dtype):
    student = torch.tensor(STUDENT, dtype=dtype, requires_grad=True)
    _finite_with_finite_grad(dist.dist_loss(student, torch.tensor(CONFIDENT, dtype=dtype), 1.0, 1.0, 4.0), student)
    # every row the same one-hot: each column is constant, its centred norm 0
    same = [[1000.0, 0.0, 0.0, 0.0, 0.0]] * 4
    student = torch.tensor(same, dtype=dtype, requires_grad=True)
    teacher = torch.tensor(same, dtype=dtype, requires_grad=True)
    _finite_with_finite_grad(dist.dist_loss(student, teacher, 1.0, 1.0, 1.0), student, teacher)


def test_dist_gradcheck_and_float32():
    assert torch.autograd.gradcheck(
        lambda s, t: dist.dist_loss(s, t, 1.0, 1.0, 4.0), (t64(STUDENT, True), t64(TEACHER, True))
    )
    f32 = dist.dist_loss(torch.tensor(STUDENT), torch.tensor(TEACHER), 1.0, 1.0, 4.0)
    assert f32.dtype == torch.float32 and f32.item() == pytest.approx(_dist_hand(STUDENT, TEACHER, 1.0, 1.0, 4.0), rel=1e-4)


# --- Logit standardisation -------------------------------------------------------------------


def test_standardize_logits_matches_numpy_with_ddof_1():
    z = np.array(STUDENT)
    expected = (z - z.mean(axis=1, keepdims=True)) / (z.std(axis=1, ddof=1, keepdims=True) + 1e-7)
    np.testing.assert_allclose(standardize_logits(t64(z)).numpy(), expected, rtol=1e-12, atol=1e-14)
    # and by hand for one row
    row = STUDENT[1]
    mean = sum(row) / len(row)
    std = math.sqrt(sum((v - mean) ** 2 for v in row) / (len(row) - 1))
    assert standardize_logits(t64([row]))[0, 2].item() == pytest.approx((row[2] - mean) / (std + 1e-7), rel=REL)
    assert standardize_logits(torch.tensor(STUDENT)).dtype == torch.float32


def test_standardized_logits_are_shift_and_scale_invariant():
    z = t64(TEACHER)
    torch.testing.assert_close(standardize_logits(3.0 * z + 7.0), standardize_logits(z), rtol=1e-6, atol=1e-6)


def test_kd_with_standardisation_matches_hand_computed_kl():
    temperature = 2.0
    expected = 0.0
    for s_row, t_row in zip(STUDENT, TEACHER):
        zs = standardize_logits(t64([s_row]))[0].tolist()
        zt = standardize_logits(t64([t_row]))[0].tolist()
        expected += _kl_from_logs(_log_softmax(zt, temperature), _log_softmax(zs, temperature))
    expected = expected / len(STUDENT) * temperature**2
    value = soft_target_loss(standardize_logits(t64(STUDENT)), standardize_logits(t64(TEACHER)), temperature)
    assert value.item() == pytest.approx(expected, rel=REL)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_kd_with_standardisation_finite_with_a_confident_teacher(dtype):
    student = torch.tensor(STUDENT, dtype=dtype, requires_grad=True)
    teacher = torch.tensor(CONFIDENT, dtype=dtype, requires_grad=True)
    value = soft_target_loss(standardize_logits(student), standardize_logits(teacher), 4.0)
    _finite_with_finite_grad(value, student, teacher)
    # a constant row (std 0) standardises to zeros with a finite gradient
    flat = torch.zeros(2, 5, dtype=dtype, requires_grad=True)
    out = standardize_logits(flat)
    assert (out == 0).all()
    _finite_with_finite_grad(soft_target_loss(out, standardize_logits(teacher[:2]), 4.0), flat)


# --- Import hygiene and the device ---------------------------------------------------------


def test_method_modules_import_without_torch():
    code = (
        "import sys\n"
        "import kdcore.methods\n"
        "from kdcore.methods import at, dist, dkd, logit_standardization, pkt, rkd, standardize_logits\n"
        "assert callable(standardize_logits) and dkd.dkd_warmup(5, 20) == 0.25\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def _all_formulas(s_logits, t_logits, labels, s_maps, t_maps, s_emb, t_emb):
    return (
        dkd.dkd_loss(s_logits, t_logits, labels, 1.0, 8.0, 4.0)
        + at.at_loss(s_maps, t_maps, 2)
        + pkt.pkt_loss(s_emb, t_emb)
        + rkd.rkd_loss(s_emb, t_emb, 25.0, 50.0)
        + dist.dist_loss(s_logits, t_logits, 1.0, 1.0, 4.0)
        + soft_target_loss(standardize_logits(s_logits), standardize_logits(t_logits), 4.0)
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_formulas_on_cuda_without_host_sync_and_in_a_cuda_graph(dtype):
    device = torch.device("cuda")
    gen = torch.Generator().manual_seed(0)

    def make(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen, dtype=dtype) * scale).to(device)

    s_logits = make(8, 10, scale=3.0).requires_grad_()
    s_maps = [make(8, 4, 8, 8).requires_grad_(), make(8, 6, 4, 4).requires_grad_()]
    s_emb = make(8, 16).requires_grad_()
    t_logits, t_maps, t_emb = make(8, 10, scale=3.0), [make(8, 5, 4, 4), make(8, 7, 4, 4)], make(8, 32)
    labels = torch.randint(0, 10, (8,), generator=gen).to(device)
    leaves = [s_logits, *s_maps, s_emb]
    args = (s_logits, t_logits, labels, s_maps, t_maps, s_emb, t_emb)

    eager = _all_formulas(*args)
    eager_grads = torch.autograd.grad(eager, leaves)
    cpu_value = _all_formulas(*[a.detach().cpu() if torch.is_tensor(a) else [m.detach().cpu() for m in a] for a in args])
    assert eager.item() == pytest.approx(cpu_value.item(), rel=1e-4 if dtype == torch.float32 else 1e-10)

    epoch = torch.tensor(3.0, dtype=dtype, device=device)  # the host-to-device copy happens here
    torch.cuda.synchronize()
    try:
        torch.cuda.set_sync_debug_mode("error")  # any host synchronisation below raises
        value = _all_formulas(*args)
        torch.autograd.grad(value, leaves)
        warm = dkd.dkd_warmup(epoch, 20) * value
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert warm.item() == pytest.approx(0.15 * value.item(), rel=1e-6)
    eager = eager.item()
    del value, warm  # free the eager autograd graphs: capture needs fresh AccumulateGrad nodes

    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # warm-up on a side stream, as capture requires
        for _ in range(2):
            torch.autograd.grad(_all_formulas(*args), leaves)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = _all_formulas(*args)
        captured_grads = torch.autograd.grad(captured, leaves)
    graph.replay()
    torch.cuda.synchronize()
    assert captured.item() == pytest.approx(eager, rel=1e-5)
    for got, want in zip(captured_grads, eager_grads):
        torch.testing.assert_close(got, want)
