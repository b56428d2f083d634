"""The CIFAR recipe options: schedules, presets, on-device augmentation, best teacher weights, CIFAR-100,
and checkpoints written before methods owned their modules."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from bench.seed_loop import Student
from kdcore.config import RunConfig
from kdcore.data.catalog import DEFAULT_NORMALIZATION, NORMALIZATIONS
from kdcore.data.loader import load_dataset
from kdcore.errors import DatasetError
from kdcore.training.augment import random_crop_flip
from kdcore.training.checkpoint import load_checkpoint, save_checkpoint
from kdcore.training.device_data import MEAN, STD, normalize
from kdcore.training.engine import train
from kdcore.training.recipe import lr_at

SMALL = dict(dataset="synthetic", subset=200, device="cpu")


# ---------------------------------------------------------------- schedules and presets

def test_step_schedule_with_warm_up():
    config = RunConfig(kind="student", lr=0.1, epochs=10, schedule="step", milestones=(4, 7), warmup_epochs=2)
    assert [round(lr_at(config, e), 6) for e in range(1, 11)] == [0.05, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01,
                                                                 0.001, 0.001, 0.001]


def test_cosine_schedule_falls_from_the_peak_to_near_zero():
    config = RunConfig(kind="student", lr=0.2, epochs=5, schedule="cosine")
    values = [lr_at(config, e) for e in range(1, 6)]
    assert values[0] == pytest.approx(0.2) and all(a > b for a, b in zip(values, values[1:]))
    assert values[-1] == pytest.approx(0.2 * 0.5 * (1 + math.cos(math.pi * 4 / 5)))


def test_the_benchmark_preset_is_one_choice_and_fields_beside_it_win():
    config = RunConfig(kind="kd", preset="crd-cifar")
    assert (config.optimizer, config.lr, config.momentum, config.weight_decay, config.epochs, config.milestones,
            config.lr_decay, config.augment, config.batch_size) == (
        "sgd", 0.05, 0.9, 5e-4, 240, (150, 180, 210), 0.1, True, 64)
    assert RunConfig(kind="kd", preset="crd-cifar", epochs=30, lr=0.01).epochs == 30
    # The seed's runs keep the seed's recipe.
    seed = RunConfig(kind="kd")
    assert (seed.optimizer, seed.schedule, seed.augment, seed.weight_decay) == ("adam", "constant", False, 0.0)


@pytest.mark.parametrize("fields, loc", [
    ({"preset": "nope"}, ("preset",)),
    ({"schedule": "step"}, ("milestones",)),
    ({"schedule": "step", "milestones": "7,3"}, ("milestones",)),
    ({"warmup_epochs": 10, "epochs": 10}, ("warmup_epochs",)),
    ({"optimizer": "rmsprop"}, ("optimizer",)),
])
def test_inconsistent_recipes_name_their_field(fields, loc):
    with pytest.raises(ValidationError) as caught:
        RunConfig(kind="kd", **fields)
    assert loc in {tuple(e["loc"]) for e in caught.value.errors()}


def test_sgd_step_schedule_trains_and_records_finite_losses(tmp_path):
    config = RunConfig(kind="student", **SMALL, optimizer="sgd", lr=0.05, weight_decay=5e-4, schedule="step",
                       milestones=(1,), epochs=2, augment=True)
    result = train(config, out_dir=tmp_path)
    assert len(result.epochs) == 2 and all(math.isfinite(m.train_loss) for m in result.epochs)
    optimizer = load_checkpoint(tmp_path / "checkpoint.pt")["optimizer"]
    assert optimizer["param_groups"][0]["lr"] == pytest.approx(0.005)


# ---------------------------------------------------------------- augmentation

def _reference_crop_flip(image: torch.Tensor, top: int, left: int, flip: bool, normalization) -> torch.Tensor:
    """torchvision's order on a raw image: pad with black, crop, flip; then normalise."""
    padded = torch.zeros(3, 40, 40, dtype=torch.uint8)
    padded[:, 4:36, 4:36] = image
    crop = padded[:, top : top + 32, left : left + 32]
    return normalize((crop.flip(2) if flip else crop).unsqueeze(0), normalization)[0]


# The padding is black in the images' own normalisation (−mean/std of their dataset's): the default's and
# CIFAR-100's.
@pytest.mark.parametrize("normalization", [DEFAULT_NORMALIZATION, NORMALIZATIONS["cifar100"]],
                         ids=["default", "cifar100"])
def test_crop_and_flip_equal_torchvisions_on_raw_pixels(monkeypatch, normalization):
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    offsets = iter([torch.tensor([[0], [8], [3], [4], [8], [1]]), torch.tensor([[5], [0], [8], [4], [2], [7]])])
    flips = torch.tensor([[0.1], [0.9], [0.4], [0.6], [0.2], [0.7]])
    monkeypatch.setattr(torch, "randint", lambda *a, **k: next(offsets))
    monkeypatch.setattr(torch, "rand", lambda *a, **k: flips)
    out = random_crop_flip(normalize(images, normalization), normalization)
    tops, lefts = [0, 8, 3, 4, 8, 1], [5, 0, 8, 4, 2, 7]
    for i in range(6):
        expected = _reference_crop_flip(images[i], tops[i], lefts[i], bool(flips[i, 0] < 0.5), normalization)
        torch.testing.assert_close(out[i], expected, rtol=0, atol=1e-6)


def test_augmentation_varies_and_keeps_shape():
    torch.manual_seed(0)
    images = normalize(torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8))
    out = random_crop_flip(images, DEFAULT_NORMALIZATION)
    assert out.shape == images.shape and not torch.equal(out, images)
    black = -torch.tensor(MEAN) / torch.tensor(STD)
    assert torch.isclose(out[..., 0, 0], black).all(dim=1).any(), "some crops reach into the black padding"


# ---------------------------------------------------------------- best teacher weights

def test_a_teacher_keeps_its_best_epoch_and_a_kd_run_may_choose_it(tmp_path):
    # Its best epoch is chosen on a validation split (tests/test_validation_split.py: and only with one).
    teacher = train(RunConfig(kind="teacher", **SMALL, epochs=3, validation=0.1), out_dir=tmp_path / "teacher")
    best = load_checkpoint(tmp_path / "teacher" / "best.pt")
    assert best["epoch"] == teacher.best_epoch
    assert best["normalization"] == {"mean": list(MEAN), "std": list(STD)}  # synthetic's: the default
    assert not any(k.startswith("regressor") for k in best["model"])
    for weights in ("final", "best"):
        result = train(RunConfig(kind="kd", **SMALL, epochs=1, teacher_weights=weights), out_dir=tmp_path / weights,
                       teacher_checkpoint=tmp_path / "teacher" / "checkpoint.pt")
        assert math.isfinite(result.epochs[0].train_loss)
    augmented = train(RunConfig(kind="kd", **SMALL, epochs=1, augment=True), out_dir=tmp_path / "augmented",
                      teacher_checkpoint=tmp_path / "teacher" / "checkpoint.pt")
    assert "teacher outputs are computed online: augmentation changes every image" in augmented.notes
    student = train(RunConfig(kind="student", **SMALL, epochs=1), out_dir=tmp_path / "student")
    assert not (tmp_path / "student" / "best.pt").exists() and student.final_accuracy >= 0


# ---------------------------------------------------------------- CIFAR-100

def test_cifar100_offline_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="CIFAR-100 is not in .* could not be downloaded"):
        load_dataset("cifar100", tmp_path)


def test_generated_100_class_data_trains_a_100_class_model(tmp_path):
    data = load_dataset("synthetic100")
    assert data.num_classes == 100 and data.train_x.shape == (5000, 3, 32, 32)
    assert sorted(set(data.train_y.tolist())) == list(range(100))
    result = train(RunConfig(kind="student", dataset="synthetic100", subset=500, epochs=1, device="cpu"),
                   out_dir=tmp_path)
    assert result.parameters == 267_738 - 10 * 257 + 100 * 257  # the last layer grows to 100 outputs


# ---------------------------------------------------------------- checkpoints from before

LEGACY_FITNET_CONFIG = {  # RunConfig.to_json_dict() as it was written then
    "kind": "fitnet", "dataset": "synthetic", "subset": 200, "epochs": 2, "batch_size": 32, "lr": 0.001,
    "temperature": None, "ce_weight": 0.75, "distill_weight": 0.25, "seed": 42, "device": "cpu",
    "resident_data": True, "cache_teacher": True, "cuda_graphs": True, "channels_last": True,
}


def test_a_fitnet_checkpoint_from_before_resumes(tmp_path, teacher_checkpoint):
    # The seed tutorial's student with its FitNets regressor inside, as checkpoints stored it before
    # methods owned their modules (bench/seed_loop.py keeps the tutorial's models).
    legacy = Student(10, regressor=True)
    optimizer = torch.optim.Adam(legacy.parameters(), lr=1e-3)
    loss = legacy.classifier(torch.flatten(legacy.features(torch.randn(4, 3, 32, 32)), 1)).sum() \
        + legacy.regressor(torch.randn(4, 16, 8, 8)).sum()
    loss.backward()
    optimizer.step()
    save_checkpoint(tmp_path / "checkpoint.pt", {
        "config": LEGACY_FITNET_CONFIG, "num_classes": 10, "classes": [], "data_fingerprint": "x",
        "parameters": 267_738, "epoch": 1, "model": legacy.state_dict(), "optimizer": optimizer.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "cuda": None, "shuffle": torch.Generator().manual_seed(42).get_state()},
        "metrics": [{"epoch": 1, "epochs": 2, "train_loss": 1.0, "train_terms": {"ce": 1.0, "hint": 1.0},
                     "test_loss": 1.0, "test_accuracy": 0.5, "seconds": 1.0, "images_per_sec": 1.0}],
    })
    payload = load_checkpoint(tmp_path / "checkpoint.pt")
    assert set(payload["modules"]) == {"regressor.weight", "regressor.bias"}
    torch.testing.assert_close(payload["modules"]["regressor.weight"], legacy.regressor.weight)
    # Adam's moments follow their parameters to their new places.
    moved = payload["optimizer"]["state"][8]["exp_avg"]
    torch.testing.assert_close(moved, optimizer.state[legacy.regressor.weight]["exp_avg"])
    config = RunConfig.model_validate(LEGACY_FITNET_CONFIG)
    assert config.params.distill_weight == 0.25 and config.architecture == "tutorial_student"
    result = train(config, out_dir=tmp_path, teacher_checkpoint=teacher_checkpoint, resume=True)
    assert [m.epoch for m in result.epochs] == [1, 2]
