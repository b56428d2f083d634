"""CRD (kdcore.methods.crd) and the per-image state it keeps (kdcore.methods.memory_bank): its NCE loss, scores,
normalisation constants and bank updates against RepDistiller's; its negatives; training, exact resume and
packs in which every run keeps its own banks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from kdcore.config import RunConfig
from kdcore.errors import ConfigError, RunCancelled
from kdcore.methods import crd, memory_bank
from kdcore.methods.base import Outputs, Progress
from kdcore.training.checkpoint import load_checkpoint
from kdcore.training.engine import train
from kdcore.training.packing import vmapped
from kdcore.training.packing.trainer import train_packed
from tests.float64 import in_float64
from tests.torch_threads import one_thread  # noqa: F401  (autouse: one thread here)

# RepDistiller's ContrastMemory and ContrastLoss run in float64 on fixed inputs (tests/fixtures/crd_reference.py
# wrote it from the reference's clone, and regenerates it).
REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "crd_reference.json").read_text())
F64 = torch.float64
SMALL = dict(dataset="synthetic", subset=100, batch_size=25, device="cpu")


def t64(values):
    return torch.tensor(values, dtype=F64)


def _nce_by_loops(scores: list[list[float]], n_data: int) -> float:
    """ContrastLoss (CRD's Eq. 18) restated: positive in column 0, K negatives, noise K/n_data, ε 1e-7."""
    negatives = len(scores[0]) - 1
    noise = negatives / n_data
    total = 0.0
    for row in scores:
        total += math.log(row[0] / (row[0] + noise + 1e-7))
        total += sum(math.log(noise / (p + noise + 1e-7)) for p in row[1:])
    return -total / len(scores)


def test_contrast_loss_equals_its_definition_and_repdistillers():
    generator = torch.Generator().manual_seed(3)
    for batch, k, n_data in [(4, 6, 12), (8, 30, 1000), (3, 100, 50_000)]:
        scores = torch.rand(batch, k + 1, dtype=F64, generator=generator) * 10.0 ** -torch.randint(0, 5, ()).item()
        assert crd.contrast_loss(scores, n_data).item() == pytest.approx(_nce_by_loops(scores.tolist(), n_data),
                                                                         rel=1e-12)
    scores = t64(REFERENCE["scores"])
    assert crd.contrast_loss(scores, REFERENCE["n_data"]).item() == pytest.approx(REFERENCE["loss_scores"], rel=1e-6)


def test_scores_normalisers_and_bank_updates_equal_repdistillers_contrast_memory():
    """One forward of ContrastMemory (scores, Z set from this first batch, momentum updates of both banks) and
    the two ContrastLosses, on the same banks, embeddings and sampled indices."""
    n_data, temperature = REFERENCE["n_data"], REFERENCE["temperature"]
    banks = {"student": t64(REFERENCE["bank_student"]), "teacher": t64(REFERENCE["bank_teacher"])}
    student, teacher = t64(REFERENCE["student"]), t64(REFERENCE["teacher"])
    index, sample = torch.tensor(REFERENCE["index"]), torch.tensor(REFERENCE["sample"])
    student_scores = crd.contrast_scores(student, banks["teacher"], sample, temperature)
    teacher_scores = crd.contrast_scores(teacher, banks["student"], sample, temperature)
    slot = torch.full((2,), -1.0, dtype=F64)
    z = memory_bank.set_once(slot, torch.stack([student_scores.mean(), teacher_scores.mean()]) * n_data)
    torch.testing.assert_close(z, t64(REFERENCE["normalizers"]), rtol=1e-6, atol=0)
    torch.testing.assert_close(student_scores / z[0], t64(REFERENCE["out_student"]), rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(teacher_scores / z[1], t64(REFERENCE["out_teacher"]), rtol=1e-6, atol=1e-12)
    assert crd.contrast_loss(student_scores / z[0], n_data).item() == pytest.approx(REFERENCE["loss_student"], rel=1e-6)
    assert crd.contrast_loss(teacher_scores / z[1], n_data).item() == pytest.approx(REFERENCE["loss_teacher"], rel=1e-6)
    memory_bank.momentum_update(banks["student"], index, student, REFERENCE["momentum"])
    memory_bank.momentum_update(banks["teacher"], index, teacher, REFERENCE["momentum"])
    torch.testing.assert_close(banks["student"], t64(REFERENCE["bank_student_after"]), rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(banks["teacher"], t64(REFERENCE["bank_teacher_after"]), rtol=1e-6, atol=1e-12)
    # Set once: later batches leave Z where the first one put it.
    again = memory_bank.set_once(slot, z * 3)
    assert torch.equal(again, z) and torch.equal(slot, z)


def _labels(counts: list[int]) -> torch.Tensor:
    return torch.cat([torch.full((count,), c) for c, count in enumerate(counts)])


def test_negatives_are_distinct_images_of_other_classes_and_a_function_of_key_step_and_image():
    train_labels = _labels([7, 5, 9, 4])  # 25 images, the largest class 9: 16 negatives for every image
    assert memory_bank.negatives_available(train_labels) == 16
    index = torch.tensor([0, 8, 13, 20, 24])
    labels = train_labels[index]
    key, step, images = memory_bank.draw_key(), torch.tensor(4.0), memory_bank.image_keys(25)
    drawn = memory_bank.other_class_negatives(key, step, index, labels, train_labels, images, 16)
    assert drawn.shape == (5, 16)
    for row, label in zip(drawn, labels):
        assert len(set(row.tolist())) == 16 and not (train_labels[row] == label).any()
    # The last row's image is of the 4-image class: 16 of its 21 others were drawn, not always the same ones.
    assert torch.equal(drawn, memory_bank.other_class_negatives(key, step, index, labels, train_labels, images, 16))
    later = memory_bank.other_class_negatives(key, step + 1, index, labels, train_labels, images, 16)
    assert set(later[-1].tolist()) != set(drawn[-1].tolist())
    # Over many steps each other-class image is drawn about equally often (uniform sampling).
    counts = torch.zeros(25)
    for s in range(400):
        row = memory_bank.other_class_negatives(key, torch.tensor(float(s)), index[-1:], labels[-1:], train_labels,
                                                images, 4)
        counts.index_add_(0, row[0], torch.ones(4))
    others = counts[train_labels != labels[-1]]
    assert others.min() > 0.6 * others.mean() and others.max() < 1.4 * others.mean()
    assert counts[train_labels == labels[-1]].sum() == 0


def test_the_negatives_are_clamped_to_what_the_training_set_holds_and_one_class_is_refused():
    student, teacher = {"embedding": (16,)}, {"embedding": (32,)}
    parts = crd.modules(student, teacher, crd.CRDParams(), train_labels=_labels([30, 50, 20]))
    assert parts["memory"].negatives == 50 and parts["memory"].student.shape == (100, 128)
    assert crd.modules(student, teacher, crd.CRDParams(negatives=8), train_labels=_labels([30, 50, 20]))[
        "memory"].negatives == 8
    with pytest.raises(ConfigError, match="one class"):
        crd.modules(student, teacher, crd.CRDParams(), train_labels=_labels([12]))


def test_a_confident_teacher_gives_finite_values_and_gradients():
    torch.manual_seed(0)
    train_labels = _labels([10] * 10)
    params = crd.CRDParams(kd_weight=1.0)
    parts = crd.modules({"embedding": (16,)}, {"embedding": (32,)}, params, train_labels=train_labels)
    index = torch.tensor([3, 17, 42, 99, 64, 5])
    labels = train_labels[index]
    logits = torch.randn(6, 10, requires_grad=True)
    embedding = torch.randn(6, 16, requires_grad=True)
    teacher = Outputs(torch.nn.functional.one_hot(labels, 10).float() * 50 * 50, {"embedding": torch.randn(6, 32) * 50})
    progress = Progress(torch.ones(()), torch.zeros(()), 1, 10)
    total, terms = crd.loss(Outputs(logits, {"embedding": embedding}), teacher, labels, params, progress, parts, index)
    total.backward()
    assert math.isfinite(total.item()) and all(math.isfinite(v.item()) for v in terms.values())
    for leaf in (logits, embedding, *parts.parameters()):
        assert torch.isfinite(leaf.grad).all()
    assert (parts["memory"].normalizers > 0).all()
    touched = parts["memory"].student[index]
    torch.testing.assert_close(touched.norm(dim=1), torch.ones(6))


def test_crd_trains_and_a_resumed_run_equals_an_uninterrupted_one_bit_for_bit(tmp_path, teacher_checkpoint):
    config = RunConfig(kind="crd", epochs=2, **SMALL)
    whole = train(config, out_dir=tmp_path / "whole", teacher_checkpoint=teacher_checkpoint)
    assert all(math.isfinite(v) for m in whole.epochs for v in (m.train_loss, *m.train_terms.values()))
    seen = []
    with pytest.raises(RunCancelled):
        train(config, out_dir=tmp_path / "split", teacher_checkpoint=teacher_checkpoint, on_step=seen.append,
              should_stop=lambda: seen[-1].epoch == 2 and seen[-1].step == 2)
    resumed = train(config, out_dir=tmp_path / "split", teacher_checkpoint=teacher_checkpoint, resume=True)
    assert [m.train_terms for m in resumed.epochs] == [m.train_terms for m in whole.epochs]
    ours, theirs = load_checkpoint(tmp_path / "split/checkpoint.pt"), load_checkpoint(tmp_path / "whole/checkpoint.pt")
    # The banks, their normalisation constants and the negatives' key are saved with the run's modules.
    assert {"memory.student", "memory.teacher", "memory.normalizers", "memory.key"} <= set(theirs["modules"])
    assert theirs["modules"]["memory.student"].shape == (100, 128)
    assert (theirs["modules"]["memory.normalizers"] > 0).all()
    for part in ("model", "modules"):
        for name, value in theirs[part].items():
            assert torch.equal(ours[part][name], value), f"{part}.{name}"


@pytest.fixture(scope="module")
def teacher64(tmp_path_factory):
    """A teacher trained in float64 (the tutorial's student network, one short epoch): packs and runs alone
    agree to float64 rounding (tests/test_packed.py says why float32 cannot show it)."""
    out = tmp_path_factory.mktemp("teacher64")
    with in_float64():
        train(RunConfig(kind="teacher", architecture="tutorial_student", epochs=1, **SMALL), out_dir=out)
    return out / "checkpoint.pt"


@pytest.mark.parametrize("vectorised", [False, True], ids=["looped", "vectorised"])
def test_each_run_of_a_pack_keeps_its_own_banks(tmp_path, teacher64, vectorised, monkeypatch):
    """Two CRD runs packed end with the banks each has alone: a bank shared by the pack, or one run's rows
    written into the other's, would not. (Without dropout: a vmapped pack draws its masks from another stream.)"""
    monkeypatch.setattr(torch.nn.Dropout, "forward", lambda self, x: x)
    counted = []  # what each pack step restores after a CUDA graph's warm-up steps (kdcore.training.steps)

    class Recording(vmapped.StepRunner):
        def __init__(self, *args, counters=(), **kwargs):
            counted.append(counters)
            super().__init__(*args, counters=counters, **kwargs)

    monkeypatch.setattr(vmapped, "StepRunner", Recording)
    teacher_checkpoint = teacher64
    with in_float64():
        configs = [RunConfig(kind="crd", epochs=1, seed=seed, **SMALL) for seed in (1, 2)]
        packed = train_packed(configs, out_dirs=[tmp_path / "p1", tmp_path / "p2"],
                              teacher_checkpoints=[teacher_checkpoint] * 2, vectorised=vectorised)
        assert not [r for r in packed if isinstance(r, BaseException)], packed
        banks = []
        for i, config in enumerate(configs, start=1):
            train(config, out_dir=tmp_path / f"a{i}", teacher_checkpoint=teacher_checkpoint)
            ours = load_checkpoint(tmp_path / f"p{i}/checkpoint.pt")["modules"]
            alone = load_checkpoint(tmp_path / f"a{i}/checkpoint.pt")["modules"]
            torch.testing.assert_close(ours, alone, rtol=1e-9, atol=1e-11)
            banks.append(ours["memory.student"])
    assert not torch.allclose(banks[0], banks[1])
    # Both runs' banks (student and teacher side) count as counters: warm-up steps must not move them.
    assert sum(tuple(c.shape) == (100, 128) for c in counted[0]) == 4


@pytest.mark.parametrize("size", [12, 1000], ids=["whole-bank product", "gathered rows"])
def test_contrast_scores_take_either_path_to_the_same_values(size):
    generator = torch.Generator().manual_seed(size)
    anchor = torch.nn.functional.normalize(torch.randn(4, 5, dtype=F64, generator=generator), dim=1)
    bank = torch.nn.functional.normalize(torch.randn(size, 5, dtype=F64, generator=generator), dim=1)
    sample = torch.randint(0, size, (4, 7), generator=generator)
    expected = [[math.exp(sum(b * a for b, a in zip(bank[j].tolist(), anchor[i].tolist())) / 0.07) for j in row]
                for i, row in enumerate(sample.tolist())]
    torch.testing.assert_close(crd.contrast_scores(anchor, bank, sample, 0.07), t64(expected), rtol=1e-12, atol=0)
