"""The registry covers every method of the seed, and every method takes an optimizer step."""

import math
import subprocess
import sys

import pytest
import torch

from kdcore.architectures import catalog
from kdcore.config import RunConfig
from kdcore.data.catalog import DEFAULT_NORMALIZATION
from kdcore.methods.base import LOGITS, Outputs, Progress
from kdcore.registry import EXPERIMENT_KINDS, KINDS, METHODS
from kdcore.training.engine import deployed_parameters, online_teacher
from kdcore.training.method_calls import build_modules, method_loss
from kdcore.training.networks import build_model
from kdcore.training.views import with_views
from kdcore.training.teacher_parts import shipped, trainable, with_teacher_parts

SEED_EPOCHS = {"teacher": 20, "student": 20, "kd": 10, "cosine": 10, "fitnet": 10}


def test_registry_covers_every_method_of_the_seed():
    assert set(SEED_EPOCHS) <= set(KINDS) and list(EXPERIMENT_KINDS) == list(SEED_EPOCHS)
    for kind, method in METHODS.items():
        assert method.name == kind and callable(method.loss) and method.description
        assert RunConfig(kind=kind).epochs == SEED_EPOCHS.get(kind, method.default_epochs)


def test_seed_parameter_counts():
    assert deployed_parameters(build_model("tutorial_teacher", 10, 42)) == 1_186_986
    assert deployed_parameters(build_model("tutorial_student", 10, 42)) == 267_738
    assert catalog(10)["tutorial_teacher"]["parameters"] == 1_186_986


def test_every_student_of_a_seed_starts_identical():
    # Methods own their extra modules, so the baseline and every KD student share their initial weights.
    first, second = build_model("tutorial_student", 10, 42), build_model("tutorial_student", 10, 42)
    for a, b in zip(first.parameters(), second.parameters()):
        assert torch.equal(a, b)


def test_the_registry_and_the_method_files_import_no_torch():
    code = "import sys, kdcore.registry, kdcore.config; assert 'torch' not in sys.modules, sorted(sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


@pytest.mark.parametrize("kind", KINDS)
def test_one_optimizer_step_per_method(kind):
    config = RunConfig(kind=kind)
    method = config.method
    shapes = {name: {tap: tuple(shape) for tap, shape in info["taps"].items()} for name, info in catalog(10).items()}
    student_shapes, teacher_shapes = shapes[config.architecture], shapes["tutorial_teacher"]
    wanted = method.taps(student_shapes, teacher_shapes if method.needs_teacher else None, config.params)
    model = build_model(config.architecture, 10, 42)
    train_labels = torch.randint(0, 10, (40,))  # a training set, for a method with per-image state
    modules = build_modules(method, student_shapes, teacher_shapes, config.params, train_labels)
    teacher = build_model("tutorial_teacher", 10, 7).eval()
    modules = with_teacher_parts(method, modules, teacher if method.needs_teacher else None, student_shapes,
                                 teacher_shapes, config.params)
    index = torch.randperm(40)[:8]
    images, labels = torch.randn(8, 3, 32, 32), train_labels[index]
    with torch.no_grad():
        t_logits, t_taps = teacher(images)
    teacher_out = Outputs(t_logits if LOGITS in wanted.teacher else None,
                          {t: t_taps[t] for t in wanted.teacher if t != LOGITS}) if method.needs_teacher else None
    # What ships and what trains with it; a SimKD student's own classifier is neither, a reused teacher part frozen.
    trained = list({id(p): p for p in trainable(shipped(method, model, modules), modules)}.values())
    optimizer = torch.optim.Adam(trained, lr=config.lr)
    before = [p.detach().clone() for p in trained]

    def student_on(batch):
        logits, taps = model(batch)
        return Outputs(logits, {t: taps[t] for t in wanted.student})

    student_out = student_on(images)
    if method.views:  # the extra views it asks for, both networks' outputs on them (kdcore.training.views)
        student_out, teacher_out = with_views(method.views, images, student_on, online_teacher(teacher, wanted.teacher),
                                              student_out, teacher_out, normalization=DEFAULT_NORMALIZATION)
    progress = Progress(torch.tensor(1.0), torch.tensor(0.0), config.epochs, 10)
    total, terms = method_loss(method, student_out, teacher_out, labels, config.params, progress, modules, index)
    optimizer.zero_grad()
    total.backward()
    optimizer.step()
    assert set(terms) == set(method.loss_terms)
    assert math.isfinite(total.item())
    changed = [not torch.equal(a, b) for a, b in zip(before, trained)]
    # The modules a pre-stage trains (FT's paraphraser) are frozen in the main stage.
    stage_modules = method.pre_stage.modules if method.pre_stage else ()
    frozen = {id(p) for name in stage_modules for p in modules[name].parameters()}
    assert all(c for c, p in zip(changed, trained) if id(p) not in frozen), \
        "every parameter (the method's own modules included) should receive a gradient"
    assert not any(c for c, p in zip(changed, trained) if id(p) in frozen), "a pre-stage's modules stay frozen"
