"""OFD's margin and partial L2 and ReviewKD's hierarchical context loss against float64 re-statements of
mdistiller's code (mdistiller/distillers/OFD.py: get_margin's loop and feat_loss; ReviewKD.py: hcl_loss), written
here with Python's math and NumPy, element by element as the reference does. Checked once against mdistiller's own
functions too, outside the suite: the same values to the last bit (partial L2, hcl) and to float32 rounding for the
margin, which mdistiller stores as a FloatTensor."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kdcore.methods import ofd, reviewkd
from tests.torch_threads import one_thread  # noqa: F401  (autouse: one thread here)


def _cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))  # scipy.stats.norm.cdf


def _margin_reference(std, mean) -> list[float]:
    margins = []
    for s, m in zip(std, mean):
        s = abs(s)
        if _cdf(-m / s) > 0.001:
            margins.append(-s * math.exp(-((m / s) ** 2) / 2) / math.sqrt(2 * math.pi) / _cdf(-m / s) + m)
        else:
            margins.append(-3 * s)
    return margins


def _partial_l2_reference(s: np.ndarray, t: np.ndarray, m: np.ndarray) -> float:
    loss = np.zeros_like(s)
    for index in np.ndindex(*s.shape):
        a, b, c = s[index], t[index], m[0, index[1], 0, 0]
        if a > c and b <= c:
            loss[index] += (a - c) ** 2
        if a > b and c < b <= 0:
            loss[index] += (a - b) ** 2
        if b > 0:
            loss[index] += (a - b) ** 2
    return float(np.abs(loss).mean(axis=0).sum())


def _adaptive_pool(x: np.ndarray, size: int) -> np.ndarray:
    """torch's adaptive average pooling: window i covers [floor(i·H/l), ceil((i+1)·H/l))."""
    h, w = x.shape[2:]
    out = np.zeros((*x.shape[:2], size, size))
    for i in range(size):
        for j in range(size):
            rows = slice(math.floor(i * h / size), math.ceil((i + 1) * h / size))
            cols = slice(math.floor(j * w / size), math.ceil((j + 1) * w / size))
            out[:, :, i, j] = x[:, :, rows, cols].mean(axis=(2, 3))
    return out


def _hcl_reference(fs_list, ft_list) -> float:
    total = 0.0
    for fs, ft in zip(fs_list, ft_list):
        loss, cnt, tot = ((fs - ft) ** 2).mean(), 1.0, 1.0
        for level in (4, 2, 1):
            if level >= fs.shape[2]:
                continue
            cnt /= 2.0
            loss += ((_adaptive_pool(fs, level) - _adaptive_pool(ft, level)) ** 2).mean() * cnt
            tot += cnt
        total += loss / tot
    return total


def test_margin_equals_the_reference_loop():
    g = torch.Generator().manual_seed(0)
    std = torch.randn(200, generator=g, dtype=torch.float64) * 2
    mean = torch.randn(200, generator=g, dtype=torch.float64) * 3
    mean[:20] = std[:20].abs() * 4  # Φ(−m/s) ≤ 0.001: the −3s branch
    expected = torch.tensor(_margin_reference(std.tolist(), mean.tolist()), dtype=torch.float64)
    torch.testing.assert_close(ofd.margin(std, mean), expected, rtol=0, atol=1e-6)
    assert torch.equal(ofd.margin(std, mean)[:20], -3 * std[:20].abs())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_partial_l2_equals_the_reference(seed):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(3, 4, 5, 5, generator=g, dtype=torch.float64)
    t = torch.randn(3, 4, 5, 5, generator=g, dtype=torch.float64)
    m = -torch.rand(1, 4, 1, 1, generator=g, dtype=torch.float64)
    expected = _partial_l2_reference(s.numpy(), t.numpy(), m.numpy())
    assert ofd.partial_l2(s, t, m).item() == pytest.approx(expected, rel=0, abs=1e-6)


def test_ofd_loss_pools_the_teacher_and_halves_shallower_stages():
    g = torch.Generator().manual_seed(3)
    s = [torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64), torch.randn(2, 5, 2, 2, generator=g, dtype=torch.float64)]
    t = [torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64), torch.randn(2, 5, 2, 2, generator=g, dtype=torch.float64)]
    m = [-torch.rand(1, 3, 1, 1, generator=g, dtype=torch.float64), -torch.rand(1, 5, 1, 1, generator=g, dtype=torch.float64)]
    expected = (_partial_l2_reference(s[0].numpy(), _adaptive_pool(t[0].numpy(), 4), m[0].numpy()) / 2
                + _partial_l2_reference(s[1].numpy(), t[1].numpy(), m[1].numpy()))
    assert ofd.ofd_loss(s, t, m).item() == pytest.approx(expected, rel=0, abs=1e-6)


def test_hcl_loss_equals_the_reference():
    g = torch.Generator().manual_seed(4)
    sizes = (1, 2, 3, 5, 8, 16)  # below, at and above each pyramid level; 3 and 5 pool with overlapping windows
    fs = [torch.randn(2, 3, h, h, generator=g, dtype=torch.float64) for h in sizes]
    ft = [torch.randn(2, 3, h, h, generator=g, dtype=torch.float64) for h in sizes]
    expected = _hcl_reference([f.numpy() for f in fs], [f.numpy() for f in ft])
    assert reviewkd.hcl_loss(fs, ft).item() == pytest.approx(expected, rel=0, abs=1e-6)


@pytest.mark.parametrize("kind", ["simkd", "ofd", "reviewkd"])
def test_finite_values_and_gradients_with_a_confident_teacher(kind):
    """The teacher's logits and maps ×50, on the tutorial CNNs and a resnet pair."""
    from kdcore.architectures import registry
    from kdcore.architectures.shapes import describe
    from kdcore.config import RunConfig
    from kdcore.methods.base import LOGITS, Outputs, Progress
    from kdcore.training.networks import build_model
    from kdcore.training.teacher_parts import with_teacher_parts

    for student_arch, teacher_arch in (("tutorial_student", "tutorial_teacher"), ("resnet20", "resnet8x4")):
        config = RunConfig(kind=kind, architecture=student_arch)
        shapes = {name: {t: tuple(s) for t, s in describe(registry()[name][0], 10)["taps"].items()}
                  for name in (student_arch, teacher_arch)}
        method = config.method
        student, teacher = build_model(student_arch, 10, 0), build_model(teacher_arch, 10, 1).eval()
        wanted = method.taps(shapes[student_arch], shapes[teacher_arch], config.params)
        modules = method.modules(shapes[student_arch], shapes[teacher_arch], config.params)
        modules = with_teacher_parts(method, modules, teacher, shapes[student_arch], shapes[teacher_arch],
                                     config.params)
        images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(5))
        labels = torch.arange(4)
        with torch.no_grad():
            t_logits, t_taps = teacher(images)
        confident = Outputs(t_logits * 50 if LOGITS in wanted.teacher else None,
                            {t: t_taps[t] * 50 for t in wanted.teacher if t != LOGITS})
        logits, taps = student(images)
        total, terms = method.loss(Outputs(logits, {t: taps[t] for t in wanted.student}), confident, labels,
                                   config.params, Progress(torch.tensor(30.0), torch.tensor(0.0), 30, 1), modules)
        total.backward()
        assert torch.isfinite(total) and all(torch.isfinite(v) for v in terms.values())
        grads = [p.grad for p in [*student.parameters(), *modules.parameters()] if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
