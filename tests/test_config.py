"""RunConfig: seed defaults per kind, and one clear error per bad field."""

import pytest
from pydantic import ValidationError

from kdcore.config import RunConfig


def _error_fields(**kwargs):
    with pytest.raises(ValidationError) as caught:
        RunConfig(**kwargs)
    return {tuple(e["loc"]) for e in caught.value.errors()}


def test_seed_defaults():
    kd = RunConfig(kind="kd")
    params = kd.params
    assert (kd.epochs, kd.batch_size, kd.lr, params.temperature, params.ce_weight, params.distill_weight, kd.seed) == (
        10, 32, 1e-3, 2.0, 0.75, 0.25, 42)
    assert kd.architecture == "tutorial_student"
    teacher = RunConfig(kind="teacher")
    assert teacher.epochs == 20 and teacher.params.model_dump() == {} and teacher.architecture == "tutorial_teacher"


def test_round_trip_through_json_is_unchanged():
    config = RunConfig(kind="fitnet", dataset="synthetic", subset=300, lr=5e-4, distill_weight=0.5)
    assert RunConfig.model_validate(config.to_json_dict()) == config


@pytest.mark.parametrize("kwargs, field", [
    ({"kind": "nope"}, ("kind",)),
    ({"kind": {}}, ("kind",)),
    ({"kind": None}, ("kind",)),
    ({"kind": "kd", "epochs": 0}, ("epochs",)),
    ({"kind": "kd", "lr": 0}, ("lr",)),
    ({"kind": "kd", "lr": float("nan")}, ("lr",)),
    ({"kind": "kd", "temperature": 0}, ("params", "temperature")),
    ({"kind": "kd", "temperature": -1}, ("params", "temperature")),
    ({"kind": "kd", "ce_weight": -0.1}, ("params", "ce_weight")),
    ({"kind": "kd", "distill_weight": -1}, ("params", "distill_weight")),
    ({"kind": "kd", "ce_weight": 0, "distill_weight": 0}, ("params", "distill_weight")),
    ({"kind": "cosine", "temperature": 3}, ("temperature",)),
    ({"kind": "student", "ce_weight": 0.5}, ("ce_weight",)),
    ({"kind": "kd", "batch_size": 0}, ("batch_size",)),
    ({"kind": "kd", "dataset": "../etc"}, ("dataset",)),
    ({"kind": "kd", "unknown": 1}, ("unknown",)),
    ({"kind": "fitnet", "resident_data": False}, ("cache_teacher",)),
])
def test_bad_fields_are_named(kwargs, field):
    assert field in _error_fields(**kwargs)


def test_config_is_immutable():
    config = RunConfig(kind="kd")
    with pytest.raises(ValidationError):
        config.lr = 1.0
