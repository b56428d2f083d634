"""Selection without peeking: a validation split held out of the training images chooses the best epoch and a
teacher's best weights; without one, every best figure is the best test epoch (optimistic), and a KD run may
not distil from such a teacher's "best" weights."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest
import torch

from kdcore.cli import main
from kdcore.config import RunConfig
from kdcore.data.loader import hold_out, load_dataset
from kdcore.errors import ConfigError, DatasetError
from kdcore.studies.study import StudyInputError, expand, group_key, parse_spec
from kdcore.training.checkpoint import load_checkpoint
from kdcore.training.engine import train
from kdcore.training.selection import BY_VALIDATION, OPTIMISTIC

# A teacher (the seed's small network, so that it trains in a second) on 200 images, 20 of them held out.
# With this seed and learning rate its validation accuracy peaks at epoch 1 and its test accuracy at
# epoch 3: the two choices differ, so picking on the test set cannot pass for picking on validation.
PEEKING = dict(kind="teacher", architecture="seed_student", dataset="synthetic", subset=200, epochs=3, batch_size=8,
               lr=3e-4, seed=2, validation=0.1, device="cpu")


def test_the_split_is_stratified_disjoint_and_the_same_for_every_run_of_the_data():
    whole = load_dataset("synthetic", subset=200)
    split = load_dataset("synthetic", subset=200, validation=0.1)
    assert np.bincount(split.val_y).tolist() == [2] * 10 and np.bincount(split.train_y).tolist() == [18] * 10
    # Every training image lands in exactly one of the two splits.
    rows = lambda x: {image.tobytes() for image in x}  # noqa: E731
    assert rows(split.train_x) | rows(split.val_x) == rows(whole.train_x)
    assert not rows(split.train_x) & rows(split.val_x)
    assert np.array_equal(split.test_x, whole.test_x)
    # The draw depends on the data and the split seed only (load_dataset has no run seed to take).
    assert np.array_equal(hold_out(whole, 0.1).val_x, split.val_x)
    assert not np.array_equal(hold_out(whole, 0.1, split_seed=1).val_x, split.val_x)
    # Teacher outputs are cached by this fingerprint: another split must not reuse them.
    assert len({whole.fingerprint, split.fingerprint, load_dataset("synthetic", subset=200, validation=0.2).fingerprint}) == 3
    assert whole.val_x is None


def test_too_few_images_per_class_to_hold_one_out_is_a_clear_error():
    with pytest.raises(DatasetError, match="at least 2 training images"):
        load_dataset("synthetic", subset=10, validation=0.1)


def test_best_pt_is_the_epoch_of_best_validation_accuracy_not_of_best_test_accuracy(tmp_path):
    out = tmp_path / "teacher"
    weights_after = {}

    def keep(metrics):  # checkpoint.pt holds the epoch's weights when on_epoch is called
        weights_after[metrics.epoch] = load_checkpoint(out / "checkpoint.pt")["model"]

    result = train(RunConfig(**PEEKING), out_dir=out, on_epoch=keep)
    by_val = max(result.epochs, key=lambda m: m.val_accuracy)  # max keeps the earliest of a tie
    by_test = max(result.epochs, key=lambda m: m.test_accuracy)
    assert by_val.epoch != by_test.epoch, "the scenario needs the two choices to differ"
    best = load_checkpoint(out / "best.pt")
    assert best["epoch"] == result.best_epoch == by_val.epoch
    for name, tensor in weights_after[by_val.epoch].items():
        assert torch.equal(best["model"][name], tensor), name
    assert (result.best_val_accuracy, result.test_accuracy_at_best) == (by_val.val_accuracy, by_val.test_accuracy)
    assert result.best_epoch_label == BY_VALIDATION and result.final_accuracy == result.epochs[-1].test_accuracy
    record = json.loads((out / "metrics.json").read_text())
    assert [m["val_accuracy"] for m in record] == [m.val_accuracy for m in result.epochs]
    assert all(m["val_loss"] > 0 for m in record)


def test_without_a_split_the_best_epoch_is_the_best_test_epoch_and_no_best_weights_are_kept(tmp_path):
    result = train(RunConfig(**{**PEEKING, "validation": 0.0}), out_dir=tmp_path)
    assert result.best_epoch_label == OPTIMISTIC and result.best_val_accuracy is None
    assert result.test_accuracy_at_best == max(m.test_accuracy for m in result.epochs)
    assert all(m.val_accuracy is None and m.val_loss is None for m in result.epochs)
    assert not (tmp_path / "best.pt").exists()


def test_distilling_from_best_weights_chosen_on_the_test_set_is_refused(tmp_path, teacher_checkpoint):
    # teacher_checkpoint (conftest) was trained without a validation split.
    student = RunConfig(kind="kd", dataset="synthetic", subset=200, epochs=1, device="cpu", teacher_weights="best")
    with pytest.raises(ConfigError, match="needs a teacher trained with a validation split"):
        train(student, out_dir=tmp_path / "kd", teacher_checkpoint=teacher_checkpoint)
    assert not (tmp_path / "kd").exists()
    stderr = io.StringIO()
    with redirect_stderr(stderr):
        code = main(["train", "kd", "--dataset", "synthetic", "--subset", "200", "--device", "cpu",
                     "--teacher-weights", "best", "--teacher", str(teacher_checkpoint), "--out", str(tmp_path / "cli")])
    lines = [line for line in stderr.getvalue().splitlines() if line]
    assert code != 0 and len(lines) == 1 and "validation split" in lines[0] and "validation > 0" in lines[0]
    assert not (tmp_path / "cli").exists()


def test_kd_train_reports_the_best_validation_epoch_in_its_json_summary(tmp_path):
    stdout, stderr = io.StringIO(), io.StringIO()
    with redirect_stdout(stdout), redirect_stderr(stderr):
        code = main(["train", "student", "--dataset", "synthetic", "--subset", "100", "--epochs", "2", "--device", "cpu",
                     "--validation", "0.2", "--out", str(tmp_path)])
    assert code == 0, stderr.getvalue()
    summary = json.loads(stdout.getvalue().strip().splitlines()[-1])
    record = json.loads((tmp_path / "metrics.json").read_text())
    best = max(record, key=lambda m: m["val_accuracy"])
    assert summary["best_epoch"] == best["epoch"] and summary["best_val_accuracy"] == best["val_accuracy"]
    assert summary["test_accuracy_at_best"] == best["test_accuracy"] and summary["best_epoch_label"] == BY_VALIDATION
    assert "best_accuracy" not in summary


def test_validation_is_part_of_a_configuration_and_stored_configs_keep_their_keys():
    plain = RunConfig(kind="student", dataset="synthetic")
    stored_before = {k: v for k, v in plain.to_json_dict().items() if k != "validation"}
    assert group_key(stored_before) == group_key(plain)
    assert group_key(RunConfig(kind="student", dataset="synthetic", validation=0.1)) != group_key(plain)
    with pytest.raises(ValueError, match="validation"):
        RunConfig(kind="student", validation=0.9)


def test_a_study_that_distils_from_its_own_teacher_best_weights_needs_a_validation_split():
    spec = dict(dataset="synthetic", subset=200, methods=["student", "kd"], seeds=[1, 2], teacher_weights="best")
    with pytest.raises(StudyInputError) as refused:
        expand(parse_spec(spec))
    assert [e["loc"] for e in refused.value.errors] == [["teacher_weights"]]
    assert "validation split" in refused.value.errors[0]["msg"]
    plan = expand(parse_spec({**spec, "validation": 0.1}))
    assert {m.config.validation for m in plan.members} == {0.1}


def test_a_sweep_from_a_given_teacher_without_a_split_is_refused_before_anything_trains(tmp_path, teacher_checkpoint):
    stderr = io.StringIO()
    with redirect_stderr(stderr), redirect_stdout(io.StringIO()):
        code = main(["sweep", "--methods", "kd", "--seeds", "1", "--dataset", "synthetic", "--subset", "100",
                     "--device", "cpu", "--teacher", str(teacher_checkpoint), "--teacher-weights", "best",
                     "--out", str(tmp_path / "sweep")])
    assert code != 0 and "validation split" in stderr.getvalue() and not (tmp_path / "sweep").exists()
