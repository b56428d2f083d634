"""The registry covers every kind, and every kind takes an optimizer step."""

import math

import pytest
import torch

from kdcore.config import RunConfig
from kdcore.models import build_model, deployed_parameters
from kdcore.registry import EXPERIMENT_KINDS, KINDS, METHODS

SEED_EPOCHS = {"teacher": 20, "student": 20, "kd": 10, "cosine": 10, "fitnet": 10}


def test_registry_covers_every_kind_of_the_seed():
    assert set(KINDS) == set(SEED_EPOCHS) == set(EXPERIMENT_KINDS)
    for kind, method in METHODS.items():
        assert method.kind == kind
        assert callable(method.loss_fn())
        assert RunConfig(kind=kind).epochs == SEED_EPOCHS[kind]


def test_seed_parameter_counts():
    assert deployed_parameters(build_model(METHODS["teacher"], 10, 42)) == 1_186_986
    for kind in ("student", "kd", "cosine", "fitnet"):
        assert deployed_parameters(build_model(METHODS[kind], 10, 42)) == 267_738


def test_models_built_with_the_same_seed_start_identical():
    first, second = build_model(METHODS["student"], 10, 42), build_model(METHODS["kd"], 10, 42)
    for a, b in zip(first.parameters(), second.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("kind", KINDS)
def test_one_optimizer_step_per_kind(kind):
    method = METHODS[kind]
    config = RunConfig(kind=kind)
    model = build_model(method, 10, 42)
    teacher = build_model(METHODS["teacher"], 10, 7).eval()
    images, labels = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    target = None
    if method.teacher_output:
        with torch.no_grad():
            target = teacher(images)[0 if method.teacher_output == "logits" else 1]
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    before = [p.detach().clone() for p in model.parameters()]
    total, terms = method.loss_fn()(model(images), labels, target, config)
    optimizer.zero_grad()
    total.backward()
    optimizer.step()
    assert set(terms) == set(method.loss_terms)
    assert math.isfinite(total.item())
    changed = [not torch.equal(a, b) for a, b in zip(before, model.parameters())]
    assert all(changed), "every parameter (regressor included) should receive a gradient"
