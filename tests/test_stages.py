"""A method's pre-stage (kdcore.methods.base.Stage, kdcore.training.stages): it trains before the main
stage, reports its epochs as its own stage, trains only what it names, resumes exactly from inside it and
after it, and keeps its run out of packs."""

import pytest
import torch

from kdcore.config import RunConfig
from kdcore.errors import ConfigError, RunCancelled
from kdcore.training.checkpoint import load_checkpoint
from kdcore.training.engine import train
from kdcore.training.packing.key import pack_key, trains_alone
from kdcore.training.packing.trainer import train_packed
from tests.torch_threads import one_thread  # noqa: F401  (autouse: one thread here)

SMALL = dict(dataset="synthetic", subset=100, batch_size=25, device="cpu")


def _checkpoint(folder):
    return load_checkpoint(folder / "checkpoint.pt")


def test_a_staged_run_reports_its_init_epochs_then_its_main_epochs(tmp_path, teacher_checkpoint):
    config = RunConfig(kind="ab", epochs=2, params={"init_epochs": 2}, **SMALL)
    epochs, steps = [], []
    result = train(config, out_dir=tmp_path, teacher_checkpoint=teacher_checkpoint, on_epoch=epochs.append,
                   on_step=steps.append)
    assert [(m.stage, m.epoch, m.epochs) for m in epochs] == [("init", 1, 2), ("init", 2, 2), (None, 1, 2), (None, 2, 2)]
    assert [set(m.train_terms) for m in epochs] == [{"ab"}, {"ab"}, {"ce"}, {"ce"}]
    assert [(s.stage, s.epoch, s.step) for s in steps[:5]] == [("init", 1, 1), ("init", 1, 2), ("init", 1, 3),
                                                              ("init", 1, 4), ("init", 2, 1)]
    assert steps[8].stage is None and steps[8].epoch == 1
    # The run's result and metrics are its main stage's; the checkpoint keeps the stage's record beside them.
    assert [m.epoch for m in result.epochs] == [1, 2] and result.best_epoch in (1, 2)
    stage = _checkpoint(tmp_path)["stage"]
    assert stage["name"] == "init" and stage["epochs"] == 2 and [m["epoch"] for m in stage["metrics"]] == [1, 2]
    assert all(m["stage"] == "init" for m in stage["metrics"])


def test_the_init_stage_trains_what_it_names_and_nothing_else(tmp_path, teacher_checkpoint):
    def stop_at_main(seen):
        return lambda: bool(seen) and seen[-1].stage is None

    # FT's init trains the paraphraser alone: the student and the translator stay as they were built.
    seen = []
    with pytest.raises(RunCancelled):
        train(RunConfig(kind="ft", epochs=1, params={"init_epochs": 1}, **SMALL), out_dir=tmp_path / "ft",
              teacher_checkpoint=teacher_checkpoint, on_step=seen.append, should_stop=stop_at_main(seen))
    after = _checkpoint(tmp_path / "ft")
    assert after["stage"]["metrics"][0]["train_terms"]["reconstruction"] > 0
    initial = initial_state()
    for name, value in after["model"].items():
        assert torch.equal(value, initial["model"][name]), name
    for name, value in after["modules"].items():
        changed = not torch.equal(value, initial["modules"][name])
        assert changed == (name.startswith("paraphraser.") and value.is_floating_point()), name

    # AB's init trains the student's features and connectors, not its classifier, which no gradient reaches.
    seen = []
    with pytest.raises(RunCancelled):
        train(RunConfig(kind="ab", epochs=1, params={"init_epochs": 1}, **SMALL), out_dir=tmp_path / "ab",
              teacher_checkpoint=teacher_checkpoint, on_step=seen.append, should_stop=stop_at_main(seen))
    ab = _checkpoint(tmp_path / "ab")["model"]
    untouched = {name for name, value in ab.items() if torch.equal(value, initial["model"][name])}
    assert {name for name in ab if name.startswith("classifier.")} <= untouched
    assert any(name.startswith("features") or name.startswith("stage") for name in set(ab) - untouched)


def initial_state():
    """An FT run's student and modules as the engine builds them, before any step."""
    from kdcore.architectures import catalog
    from kdcore.methods.ft import METHOD
    from kdcore.training.engine import _tap_shapes
    from kdcore.training.networks import build_model

    config = RunConfig(kind="ft", epochs=1, params={"init_epochs": 1}, **SMALL)
    described = catalog(10)
    model = build_model(config.architecture, 10, config.seed)
    modules = METHOD.modules(_tap_shapes(described, config.architecture), _tap_shapes(described, "tutorial_teacher"),
                             config.params)
    return {"model": model.state_dict(), "modules": modules.state_dict()}


@pytest.mark.parametrize("stop_after", ["inside the init stage", "after the init stage"])
def test_a_run_stopped_in_or_after_its_init_stage_resumes_to_the_uninterrupted_weights(
        tmp_path, teacher_checkpoint, stop_after):
    config = RunConfig(kind="fsp", epochs=2, params={"init_epochs": 2}, **SMALL)
    whole_epochs = []
    train(config, out_dir=tmp_path / "whole", teacher_checkpoint=teacher_checkpoint, on_epoch=whole_epochs.append)
    seen = []
    stop = ("init", 2, 2) if stop_after == "inside the init stage" else (None, 1, 2)

    def stop_there():
        return bool(seen) and (seen[-1].stage, seen[-1].epoch, seen[-1].step) == stop

    with pytest.raises(RunCancelled):
        train(config, out_dir=tmp_path / "split", teacher_checkpoint=teacher_checkpoint, on_step=seen.append,
              should_stop=stop_there)
    saved = _checkpoint(tmp_path / "split")
    assert len(saved["stage"]["metrics"]) == (1 if stop_after == "inside the init stage" else 2)
    resumed_epochs = []
    result = train(config, out_dir=tmp_path / "split", teacher_checkpoint=teacher_checkpoint, resume=True,
                   on_epoch=resumed_epochs.append)
    assert [m.epoch for m in result.epochs] == [1, 2]
    # Only what was left is trained again, and it reports as the uninterrupted run did.
    left = whole_epochs[-len(resumed_epochs):]
    assert [(m.stage, m.epoch) for m in resumed_epochs] == [(m.stage, m.epoch) for m in left]
    assert [m.train_terms for m in resumed_epochs] == [m.train_terms for m in left]
    whole, split = _checkpoint(tmp_path / "whole"), _checkpoint(tmp_path / "split")
    for part in ("model", "modules"):
        for name, value in whole[part].items():
            assert torch.equal(split[part][name], value), f"{part}.{name}"
    assert [m["train_terms"] for m in split["stage"]["metrics"]] == [m["train_terms"] for m in whole["stage"]["metrics"]]


def test_a_run_with_a_pre_stage_packs_with_no_other_and_is_refused_by_the_packed_trainer(tmp_path, teacher_checkpoint):
    staged = RunConfig(kind="fsp", epochs=1, **SMALL)
    assert trains_alone(staged) and pack_key(staged) != pack_key(staged)
    assert pack_key(staged) != pack_key(RunConfig(kind="kd", epochs=1, **SMALL))
    # Without init epochs it has no pre-stage to run, and packs as any other.
    plain = RunConfig(kind="fsp", epochs=1, params={"init_epochs": 0}, **SMALL)
    assert trains_alone(plain) is None and pack_key(plain) == pack_key(RunConfig(kind="kd", epochs=1, **SMALL))
    with pytest.raises(ConfigError, match="pre-stage"):
        train_packed([staged, plain], out_dirs=[tmp_path / "a", tmp_path / "b"],
                     teacher_checkpoints=[teacher_checkpoint] * 2)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
