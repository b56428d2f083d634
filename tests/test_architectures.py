"""The CIFAR KD benchmark's architectures and the tutorial's CNNs (kdcore/architectures).

Parameter counts are those of the benchmark's reference implementations (CRD / mdistiller) at
100 classes, and of the tutorial's models at 10. Everything runs on CPU at 32×32 with tiny batches.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bench import seed_loop
from kdcore.architectures import registry
from kdcore.architectures.shapes import describe
from tests.torch_threads import one_thread  # noqa: F401  (autouse: one thread here)

# name: (classes, parameters)
EXPECTED = {
    "tutorial_teacher": (10, 1_186_986),
    "tutorial_student": (10, 267_738),
    "resnet20": (100, 278_324),
    "resnet32": (100, 472_756),
    "resnet56": (100, 861_620),
    "resnet110": (100, 1_736_564),
    "resnet8x4": (100, 1_233_540),
    "resnet32x4": (100, 7_433_860),
    "wrn_16_2": (100, 703_284),
    "wrn_40_1": (100, 569_780),
    "wrn_40_2": (100, 2_255_156),
    "vgg8": (100, 3_965_028),
    "vgg13": (100, 9_462_180),
    "mobilenetv2": (100, 812_836),
    "shufflev1": (100, 949_258),
    "shufflev2": (100, 1_355_528),
    "resnet50": (100, 23_705_252),
}
STAGES = {
    "tutorial_teacher": 2, "tutorial_student": 2,
    "resnet20": 3, "resnet32": 3, "resnet56": 3, "resnet110": 3, "resnet8x4": 3, "resnet32x4": 3,
    "wrn_16_2": 3, "wrn_40_1": 3, "wrn_40_2": 3, "vgg8": 5, "vgg13": 5,
    "mobilenetv2": 4, "shufflev1": 3, "shufflev2": 3, "resnet50": 4,
}
# Those that also tap each stage before its final ReLU (pre_stage1…: tests/test_pre_activation_taps.py).
PRE_ACTIVATED = {"tutorial_teacher", "tutorial_student", "resnet20", "resnet32", "resnet56", "resnet110", "resnet8x4",
                 "resnet32x4", "vgg8", "vgg13", "shufflev1", "resnet50"}
ARCHITECTURES = registry()
NAMES = list(EXPECTED)


def _tap_names(name: str) -> list[str]:
    stages = [f"stage{i}" for i in range(1, STAGES[name] + 1)]
    return [tap for s in stages for tap in ((f"pre_{s}", s) if name in PRE_ACTIVATED else (s,))] + ["embedding"]


def build(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return ARCHITECTURES[name][0](EXPECTED[name][0])


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def described() -> dict[str, dict]:
    return {name: describe(ARCHITECTURES[name][0], EXPECTED[name][0]) for name in NAMES}


def test_registered_names_and_descriptions():
    assert sorted(ARCHITECTURES) == sorted(NAMES) and list(ARCHITECTURES)[:2] == ["tutorial_teacher", "tutorial_student"]
    for name, (factory, description) in ARCHITECTURES.items():
        assert callable(factory) and factory.__name__ == name
        assert description.strip() and "\n" not in description


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count(name, described):
    classes, expected = EXPECTED[name]
    assert n_params(build(name)) == expected
    assert described[name]["parameters"] == expected


@pytest.mark.parametrize("name", NAMES)
def test_forward_shapes_match_describe(name, described):
    classes = EXPECTED[name][0]
    model = build(name)
    x = torch.randn(2, 3, 32, 32)
    expected_names = _tap_names(name)
    assert list(described[name]["taps"]) == expected_names
    for train in (True, False):
        model.train(train)
        with torch.no_grad():
            logits, taps = model(x)
        assert logits.shape == (2, classes) and torch.isfinite(logits).all()
        assert list(taps) == expected_names
        for tap, tensor in taps.items():
            assert list(tensor.shape) == [2, *described[name]["taps"][tap]], tap
            assert torch.isfinite(tensor).all(), tap
        # The embedding is what the classifier receives: a flat vector per image.
        assert taps["embedding"].dim() == 2


@pytest.mark.parametrize("name", NAMES)
def test_train_step_and_backward_on_meta(name):
    """Train-mode forward + backward with no data (meta): any .item(), data-dependent branch or
    data-dependent shape raises there, so the models hold no host sync a CUDA graph would trip on."""
    with torch.device("meta"):
        model = ARCHITECTURES[name][0](EXPECTED[name][0]).train()
        logits, taps = model(torch.empty(2, 3, 32, 32))
        loss = logits.sum() + sum(t.sum() for t in taps.values())
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_one_sgd_step(name):
    classes = EXPECTED[name][0]
    model = build(name).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x, y = torch.randn(2, 3, 32, 32), torch.randint(0, classes, (2,))
    before = [p.detach().clone() for p in model.parameters()]
    logits, taps = model(x)
    # Losses on the taps too, as the feature-distillation methods put them there.
    loss = F.cross_entropy(logits, y) + sum(t.pow(2).mean() for t in taps.values()) * 1e-3
    optimizer.zero_grad()
    loss.backward()
    # Every parameter takes part in the forward pass.
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert not unused
    optimizer.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("name", NAMES)
def test_short_epoch(name):
    classes = EXPECTED[name][0]
    model = build(name).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(64, 3, 32, 32, generator=generator)
    labels = torch.randint(0, classes, (64,), generator=generator)
    losses = []
    for start in range(0, 64, 16):
        logits, _ = model(images[start:start + 16])
        loss = F.cross_entropy(logits, labels[start:start + 16])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    assert len(losses) == 4 and torch.isfinite(torch.stack(losses)).all()
    model.eval()
    with torch.no_grad():
        logits, _ = model(images[:16])
    assert logits.shape == (16, classes) and torch.isfinite(logits).all()


@pytest.mark.parametrize("seed", [0, 1234])
@pytest.mark.parametrize("classes", [10, 100])
def test_tutorial_wrappers_initialise_like_the_tutorials_models(seed, classes):
    """bench/seed_loop.py keeps the tutorial's own models: the reference for the tutorial's initial
    weights and for checkpoints written before architectures were plugins."""
    from kdcore.architectures.tutorial_cnn import tutorial_student, tutorial_teacher

    pairs = [
        (lambda: seed_loop.Teacher(classes), lambda: tutorial_teacher(classes)),
        (lambda: seed_loop.Student(classes), lambda: tutorial_student(classes)),
    ]
    x = torch.randn(2, 3, 32, 32)
    for old_factory, new_factory in pairs:
        torch.manual_seed(seed)
        old = old_factory().eval()
        torch.manual_seed(seed)
        new = new_factory().eval()
        old_state, new_state = old.state_dict(), new.state_dict()
        assert list(old_state) == list(new_state)
        for key in old_state:
            assert torch.equal(old_state[key], new_state[key]), key
        # Same computation: the old feature map is the new stage2 tap, and the logits agree.
        with torch.no_grad():
            old_logits, feature_map = old(x)
            new_logits, taps = new(x)
        assert torch.equal(old_logits, new_logits)
        assert torch.equal(feature_map, taps["stage2"])
        assert torch.equal(taps["embedding"], torch.flatten(feature_map, 1))


def test_tutorial_student_has_no_regressor():
    from kdcore.architectures.tutorial_cnn import tutorial_student

    model = tutorial_student(10)
    assert not hasattr(model, "regressor")
    assert not any("regressor" in key for key in model.state_dict())


def test_describe_other_input_size():
    from kdcore.architectures.resnet import resnet20

    info = describe(resnet20, 10, input_shape=(3, 64, 64))
    assert info["parameters"] == 278_324 - 90 * 65  # 100 → 10 classes: 90 fewer rows of 64 + 1
    assert info["taps"] == {"pre_stage1": [16, 64, 64], "stage1": [16, 64, 64], "pre_stage2": [32, 32, 32],
                            "stage2": [32, 32, 32], "pre_stage3": [64, 16, 16], "stage3": [64, 16, 16],
                            "embedding": [64]}


@pytest.mark.parametrize("alias, name", [("MobileNetV2", "mobilenetv2"), ("mobile_half", "mobilenetv2"),
                                         ("ShuffleV1", "shufflev1"), ("ShuffleV2", "shufflev2"), ("vgg8_bn", "vgg8"),
                                         ("vgg13_bn", "vgg13"), ("ResNet50", "resnet50")])
def test_the_reference_frameworks_names_are_aliases(alias, name):
    """RepDistiller's and mdistiller's names for the zoo's networks configure the same network, stored under
    the zoo's name; they are not former names, so runs of these networks keep their group keys."""
    from kdcore.architectures import first_name
    from kdcore.config import RunConfig

    assert RunConfig(kind="teacher", architecture=alias).architecture == name
    assert first_name(name) == name
