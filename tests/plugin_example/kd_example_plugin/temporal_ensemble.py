"""An indexed method (``Method.indexed``): temporal ensembling (Samuli Laine and Timo Aila, "Temporal Ensembling
for Semi-Supervised Learning", ICLR 2017), the student distilled from its own past outputs. Each training image
keeps an exponential moving average of the student's softmax outputs on it, a buffer of N×C updated in place
at the batch's indices; the loss pulls today's outputs towards that ensemble (bias-corrected, as the paper's
Z/(1 − α^t)). The buffers are saved in the checkpoint, so a resumed run carries on with the same ensembles."""

from pydantic import Field

from kdcore.methods.base import Hyperparameters, Method


class TemporalEnsembleParams(Hyperparameters):
    ce_weight: float = Field(1.0, ge=0, description="Weight of the cross-entropy term")
    weight: float = Field(1.0, ge=0, description="Weight of the consistency term (MSE to the ensemble)")
    decay: float = Field(0.6, ge=0, lt=1, description="Ensemble momentum α (the paper's 0.6)")


def modules(student, teacher, params, train_labels):
    import torch  # inside: the web process reads this file and never imports torch
    from torch import nn

    state = nn.Module()
    # Built once, outside the training step: reading the class count back from the labels is fine here.
    classes = int(train_labels.max()) + 1
    state.register_buffer("ensemble", torch.zeros(len(train_labels), classes))
    state.register_buffer("visits", torch.zeros(len(train_labels)))
    return state


def loss(student, teacher, labels, params, progress, modules, index):
    import torch
    import torch.nn.functional as F

    ce = F.cross_entropy(student.logits, labels)
    outputs = F.softmax(student.logits, dim=1)
    ensemble, visits = modules.ensemble.index_select(0, index), modules.visits.index_select(0, index)
    corrected = ensemble / (1 - params.decay ** visits).clamp_min(1e-12).unsqueeze(1)
    # An image not seen before has no ensemble yet: its target is its own output (no pull), chosen on the device.
    target = torch.where((visits > 0).unsqueeze(1), corrected, outputs.detach())
    consistency = F.mse_loss(outputs, target)
    with torch.no_grad():  # in place at the batch's indices: no host read, safe in a CUDA graph
        modules.ensemble.index_copy_(0, index, params.decay * ensemble + (1 - params.decay) * outputs)
        modules.visits.index_add_(0, index, torch.ones_like(visits))
    return params.ce_weight * ce + params.weight * consistency, {"ce": ce, "consistency": consistency}


METHOD = Method(name="temporal_ensemble", title="Temporal ensembling",
                description="CE plus MSE to each image's moving average of the student's past outputs.",
                loss=loss, params=TemporalEnsembleParams, loss_terms=("ce", "consistency"), modules=modules,
                indexed=True)
