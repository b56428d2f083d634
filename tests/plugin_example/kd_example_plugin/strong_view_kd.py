"""KD on a strongly augmented view of each batch, weighed by a learnt weight (the uncertainty weighting of
Kendall, Gal & Cipolla 2018): CE on the batch plus exp(−s)·KD on the strong view plus s, s a learnt scalar.
It shows two contract features: an extra view (``views``) and a learnt value shown in the curves (``reported``)."""

from pydantic import Field

from kdcore.methods.base import Hyperparameters, Method, logits_only


class StrongViewKDParams(Hyperparameters):
    temperature: float = Field(4.0, gt=0, le=1000, description="Softmax temperature T of the KD term")


def modules(student, teacher, params):
    import torch  # inside: the web process reads this file without torch

    return torch.nn.ParameterDict({"log_variance": torch.nn.Parameter(torch.zeros(()))})


def loss(student, teacher, labels, params: StrongViewKDParams, progress, modules):
    import torch
    import torch.nn.functional as F

    strong_s, strong_t = student.views["strong"].logits, teacher.views["strong"].logits
    T = params.temperature
    kd = F.kl_div(F.log_softmax(strong_s / T, dim=1), F.log_softmax(strong_t / T, dim=1), reduction="batchmean",
                  log_target=True) * T * T
    ce = F.cross_entropy(student.logits, labels)
    s = modules["log_variance"]
    weight = torch.exp(-s)
    return ce + weight * kd + s, {"ce": ce, "strong_kd": kd, "kd_weight": weight.detach()}


METHOD = Method(
    name="strong_view_kd", title="Strong-view KD (plugin)",
    description="CE plus KD on a strongly augmented view, weighed by a learnt weight.",
    loss=loss, params=StrongViewKDParams, loss_terms=("ce", "strong_kd", "kd_weight"), reported=("kd_weight",),
    needs_teacher=True, default_epochs=5, taps=logits_only, modules=modules, views=("strong",),
)
