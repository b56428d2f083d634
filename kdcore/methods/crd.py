"""Contrastive representation distillation (CRD): Yonglong Tian, Dilip Krishnan and Phillip Isola,
"Contrastive Representation Distillation", ICLR 2020.

Each side's embedding is projected to ``feat_dim`` and normalised. A momentum memory bank per side holds one
vector per training image. For each image of the batch, the student's embedding is scored against the teacher
bank's row of that image (the positive) and of ``negatives`` images of other classes, and the teacher's against
the student bank likewise; an NCE loss tells the positive from the negatives. Then the banks take the batch's
embeddings with momentum. As RepDistiller's ``crd/`` (the reference); its CIFAR-100 recipe weighs CE 1, KD 0 and
CRD 0.8 (``-a 0 -b 0.8``; mdistiller's ``CFG.CRD`` likewise), and CRD+KD is ``kd_weight`` 1.

The banks (N×feat_dim per side for N training images) are buffers: saved in the checkpoint, one pair per run in
a pack. The negatives are hashed from a per-run key and the step (``kdcore.methods.memory_bank``), so a run
draws the same ones alone, packed or resumed.
"""

from __future__ import annotations

from math import prod

from pydantic import Field

from kdcore.errors import ConfigError
from kdcore.methods.base import LOGITS, Hyperparameters, Method, TapChoice
from kdcore.methods.kd import soft_target_loss

EPS = 1e-7  # RepDistiller's ContrastLoss


class CRDParams(Hyperparameters):
    ce_weight: float = Field(1.0, ge=0, le=1000, description="Weight of the cross-entropy term (RepDistiller's -r)")
    kd_weight: float = Field(0.0, ge=0, le=1000, description="Weight of the soft-target KD term (-a; 1 for CRD+KD)")
    weight: float = Field(0.8, ge=0, le=1000, description="Weight of the contrastive term (-b)")
    temperature: float = Field(4.0, gt=0, le=1000, description="Softmax temperature T of the KD term")
    feat_dim: int = Field(128, ge=1, le=4096, description="Width of the embeddings and memory banks")
    negatives: int = Field(16384, ge=1, le=1_000_000, description="Negatives per image (at most the training "
                           "images outside the largest class: fewer on a small dataset)")
    nce_temperature: float = Field(0.07, gt=0, le=10, description="Temperature of the contrastive scores")
    bank_momentum: float = Field(0.5, ge=0, lt=1, description="Momentum of the memory banks' updates")


def contrast_loss(scores, n_data: int):
    """RepDistiller's ContrastLoss (the NCE loss, CRD's Eq. 18): ``scores`` (B, 1 + K) with the positive in
    column 0 and K negatives drawn uniformly from ``n_data`` images (noise probability Pn = 1/n_data):
    −(Σ_i log(P_i0 / (P_i0 + K·Pn + ε)) + Σ_i Σ_k log(K·Pn / (P_ik + K·Pn + ε))) / B, ε = 1e-7."""
    import torch

    batch, negatives = scores.shape[0], scores.shape[1] - 1
    noise = negatives / n_data  # K·Pn
    positive = scores[:, 0]
    log_d1 = torch.log(positive / (positive + noise + EPS))
    log_d0 = torch.log(noise / (scores[:, 1:] + noise + EPS))
    return -(log_d1.sum() + log_d0.sum()) / batch


def contrast_scores(anchor, bank, sample_index, temperature: float):
    """exp(⟨bank[sample_index[i, j]], anchor[i]⟩ / T): (B, 1 + K) unnormalised scores of each anchor against
    the bank's rows it is contrasted with (the bank is read, not trained)."""
    import torch

    if 4 * sample_index.shape[1] >= bank.shape[0]:
        # Many negatives for the bank's size (CIFAR's 16,384 of 50,000): every anchor against the whole bank is
        # one matrix product that reads the bank once, where RepDistiller's gathered (B, 1 + K, D) rows copy
        # 0.5 GB per side at batch 64 (forward and backward of one side: 2.2 s against 0.34 s on 2 loaded CPU cores).
        # The product's backward needs the bank as it is now, and the step updates it in place afterwards: a copy.
        return torch.exp(torch.gather(anchor @ bank.detach().clone().t(), 1, sample_index) / temperature)
    rows = bank.index_select(0, sample_index.flatten()).view(*sample_index.shape, bank.shape[1])
    return torch.exp(torch.bmm(rows, anchor.unsqueeze(2)).squeeze(2) / temperature)


def taps(student, teacher, params) -> TapChoice:
    return TapChoice(student=("embedding",), teacher=("embedding", LOGITS))


def modules(student, teacher, params: CRDParams, train_labels):
    import torch
    from torch import nn

    from kdcore.methods import memory_bank

    size = int(train_labels.shape[0])
    available = memory_bank.negatives_available(train_labels)
    if available < 1:
        raise ConfigError("crd contrasts each image with images of other classes: the training set has one class")
    memory = nn.Module()
    memory.register_buffer("student", memory_bank.uniform_bank(size, params.feat_dim))
    memory.register_buffer("teacher", memory_bank.uniform_bank(size, params.feat_dim))
    # The normalisation constants Z (student-anchored, teacher-anchored), negative until the first step sets them.
    memory.register_buffer("normalizers", torch.full((2,), -1.0))
    memory.register_buffer("key", memory_bank.draw_key())
    # Derived from the data at every build, so not saved.
    memory.register_buffer("train_labels", train_labels.clone(), persistent=False)
    memory.register_buffer("images", memory_bank.image_keys(size), persistent=False)
    memory.negatives = min(params.negatives, available)
    return nn.ModuleDict({
        "embed_student": nn.Linear(prod(student["embedding"]), params.feat_dim),
        "embed_teacher": nn.Linear(prod(teacher["embedding"]), params.feat_dim),
        "memory": memory,
    })


def crd_term(student_embedding, teacher_embedding, labels, index, step, modules, params: CRDParams):
    """Both sides' NCE losses, then the banks' update: RepDistiller's CRDLoss."""
    import torch
    import torch.nn.functional as F

    from kdcore.methods import memory_bank

    memory = modules["memory"]
    size = memory.student.shape[0]
    s = F.normalize(modules["embed_student"](student_embedding.flatten(1)), dim=1)
    t = F.normalize(modules["embed_teacher"](teacher_embedding.flatten(1)), dim=1)
    others = memory_bank.other_class_negatives(memory.key, step, index, labels, memory.train_labels, memory.images,
                                               memory.negatives)
    sample = torch.cat([index.unsqueeze(1), others], dim=1)
    student_scores = contrast_scores(s, memory.teacher, sample, params.nce_temperature)
    teacher_scores = contrast_scores(t, memory.student, sample, params.nce_temperature)
    z = memory_bank.set_once(memory.normalizers, torch.stack([student_scores.mean(), teacher_scores.mean()]) * size)
    term = contrast_loss(student_scores / z[0], size) + contrast_loss(teacher_scores / z[1], size)
    memory_bank.momentum_update(memory.student, index, s, params.bank_momentum)
    memory_bank.momentum_update(memory.teacher, index, t, params.bank_momentum)
    return term


def loss(student, teacher, labels, params: CRDParams, progress, modules, index):
    import torch.nn.functional as F

    ce = F.cross_entropy(student.logits, labels)
    soft = soft_target_loss(student.logits, teacher.logits, params.temperature)
    term = crd_term(student.taps["embedding"], teacher.taps["embedding"], labels, index, progress.step, modules,
                    params)
    total = params.ce_weight * ce + params.kd_weight * soft + params.weight * term
    return total, {"ce": ce, "soft_target": soft, "crd": term}


METHOD = Method(
    name="crd", title="Contrastive representation (CRD)",
    description="CE plus an NCE loss telling each image's embedding from 16,384 others' in the other network's "
    "momentum memory bank (Tian et al. 2020).",
    loss=loss, params=CRDParams, loss_terms=("ce", "soft_target", "crd"), needs_teacher=True, default_epochs=10,
    taps=taps, modules=modules, indexed=True,
)
