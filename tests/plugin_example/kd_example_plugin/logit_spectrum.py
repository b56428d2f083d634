"""Logit spectrum matching: CE plus the squared difference of the singular values of the batch's student
and teacher logit matrices (each normalised to unit length). An example of a method whose step needs a
library call that synchronises with the host on a GPU (torch's SVD family reads its solver's status
back), and says so: ``host_sync`` keeps its steps out of CUDA graphs, and its GPU runs note why."""

from pydantic import Field

from kdcore.methods.base import Hyperparameters, Method, logits_only


class LogitSpectrumParams(Hyperparameters):
    ce_weight: float = Field(1.0, ge=0, le=1000, description="Weight of the cross-entropy term")
    weight: float = Field(1.0, ge=0, le=1000, description="Weight of the spectrum term")


def loss(student, teacher, labels, params: LogitSpectrumParams, progress, modules):
    import torch  # inside: the web process reads this file without torch
    import torch.nn.functional as F

    ce = F.cross_entropy(student.logits, labels)
    s = F.normalize(torch.linalg.svdvals(student.logits), dim=0)
    t = F.normalize(torch.linalg.svdvals(teacher.logits), dim=0)
    spectrum = (s - t).pow(2).sum()
    return params.ce_weight * ce + params.weight * spectrum, {"ce": ce, "spectrum": spectrum}


METHOD = Method(
    name="logit_spectrum", title="Logit spectrum (plugin)",
    description="CE plus the distance between the normalised singular values of the logit matrices.",
    loss=loss, params=LogitSpectrumParams, loss_terms=("ce", "spectrum"), needs_teacher=True, default_epochs=5,
    taps=logits_only, host_sync="torch.linalg.svdvals reads its solver's status back to the host",
)
