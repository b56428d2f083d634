"""The training engine on CPU: learning, cached teacher targets, checkpoints, resume, cancel, errors."""

import json
import math

import pytest
import torch

from kdcore.architectures.tutorial_cnn import tutorial_teacher
from kdcore.config import RunConfig
from kdcore.data.loader import load_dataset
from kdcore.errors import CheckpointError, ConfigError, NonFiniteLoss, RunCancelled
from kdcore.training.checkpoint import load_checkpoint
from kdcore.training.device_data import Split, normalize
from kdcore.training.engine import train
from kdcore.training.teacher_cache import compute_teacher_outputs


def _weights(checkpoint):
    return load_checkpoint(checkpoint)["model"]


def test_short_training_clearly_beats_chance(tmp_path):
    steps, epochs = [], []
    result = train(RunConfig(kind="student", dataset="synthetic", epochs=2, device="cpu"), out_dir=tmp_path,
                   on_step=steps.append, on_epoch=epochs.append)
    assert result.final_accuracy > 0.5, "10 classes: chance is 0.1"
    assert [m.epoch for m in epochs] == [1, 2] and len(steps) == 2 * math.ceil(2000 / 32)
    assert steps[-1].step == steps[-1].steps == 63
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert len(record) == 2 and set(record[0]) >= {"train_loss", "train_terms", "test_loss", "test_accuracy",
                                                   "seconds", "images_per_sec"}
    assert all(math.isfinite(m.train_loss) and m.images_per_sec > 0 for m in epochs)


def test_kd_run_reports_each_term(tmp_path, teacher_checkpoint):
    result = train(RunConfig(kind="kd", dataset="synthetic", subset=200, epochs=1, device="cpu"), out_dir=tmp_path,
                   teacher_checkpoint=teacher_checkpoint)
    metrics = result.epochs[0]
    assert set(metrics.train_terms) == {"ce", "soft_target"}
    expected = 0.75 * metrics.train_terms["ce"] + 0.25 * metrics.train_terms["soft_target"]
    assert metrics.train_loss == pytest.approx(expected, rel=1e-5)


def test_resident_normalisation_equals_totensor_normalize():
    from PIL import Image
    from torchvision import transforms

    images = load_dataset("synthetic", subset=20).train_x
    pipeline = transforms.Compose([transforms.ToTensor(),
                                   transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    expected = torch.stack([pipeline(Image.fromarray(img.transpose(1, 2, 0))) for img in images])
    assert torch.equal(normalize(torch.from_numpy(images)), expected)


@pytest.mark.parametrize("output", ["logits", "stage2", "embedding"])
def test_cached_teacher_outputs_equal_online_ones(teacher_checkpoint, output):
    from kdcore.training.checkpoint import load_teacher

    teacher = load_teacher(teacher_checkpoint, 10, torch.device("cpu"))
    data = load_dataset("synthetic", subset=300)
    split = Split(data.train_x, data.train_y, torch.device("cpu"), resident=True, normalization=data.normalization)
    cached = compute_teacher_outputs(teacher, split.images, (output,))[output]
    for start in range(0, 300, 32):
        index = torch.arange(start, min(start + 32, 300))
        with torch.no_grad():
            logits, taps = teacher(split.gather(index))
            online = logits if output == "logits" else taps[output]
        torch.testing.assert_close(cached[index], online, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["kd", "fitnet"])
def test_cached_and_online_teacher_train_the_same_weights(tmp_path, teacher_checkpoint, kind):
    base = dict(kind=kind, dataset="synthetic", subset=200, epochs=1, device="cpu")
    train(RunConfig(**base), out_dir=tmp_path / "cached", teacher_checkpoint=teacher_checkpoint)
    train(RunConfig(**base, cache_teacher=False, resident_data=False), out_dir=tmp_path / "online",
          teacher_checkpoint=teacher_checkpoint)
    cached, online = _weights(tmp_path / "cached/checkpoint.pt"), _weights(tmp_path / "online/checkpoint.pt")
    for name in cached:
        torch.testing.assert_close(cached[name], online[name], rtol=1e-4, atol=1e-5)


def test_checkpoint_holds_config_model_optimizer_epoch_and_rng(tmp_path, teacher_checkpoint):
    config = RunConfig(kind="fitnet", dataset="synthetic", subset=100, epochs=1, device="cpu")
    train(config, out_dir=tmp_path, teacher_checkpoint=teacher_checkpoint)
    payload = load_checkpoint(tmp_path / "checkpoint.pt")
    assert RunConfig.model_validate(payload["config"]) == config
    assert payload["epoch"] == 1 and payload["optimizer"]["state"] and set(payload["rng"]) == {"torch", "cuda", "shuffle"}
    # The regressor is the method's: saved beside the student, not inside it, and not counted as deployed.
    assert set(payload["modules"]) == {"regressor.weight", "regressor.bias"}
    assert not any(key.startswith("regressor.") for key in payload["model"]) and payload["parameters"] == 267_738
    assert payload["parameters"] == 267_738
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary files left behind"


def test_cancel_then_resume_ends_with_the_weights_of_an_uninterrupted_run(tmp_path, teacher_checkpoint):
    config = RunConfig(kind="kd", dataset="synthetic", subset=200, epochs=3, device="cpu")
    train(config, out_dir=tmp_path / "whole", teacher_checkpoint=teacher_checkpoint)

    seen = []

    def stop_in_epoch_two():
        return len(seen) > 0 and seen[-1].epoch == 2 and seen[-1].step == 3

    with pytest.raises(RunCancelled):
        train(config, out_dir=tmp_path / "split", teacher_checkpoint=teacher_checkpoint,
              on_step=seen.append, should_stop=stop_in_epoch_two)
    assert load_checkpoint(tmp_path / "split/checkpoint.pt")["epoch"] == 1
    result = train(config, out_dir=tmp_path / "split", teacher_checkpoint=teacher_checkpoint, resume=True)
    assert [m.epoch for m in result.epochs] == [1, 2, 3]
    whole, resumed = _weights(tmp_path / "whole/checkpoint.pt"), _weights(tmp_path / "split/checkpoint.pt")
    for name in whole:
        torch.testing.assert_close(resumed[name], whole[name], rtol=0, atol=1e-6)


def test_resume_refuses_a_different_configuration(tmp_path):
    train(RunConfig(kind="student", dataset="synthetic", subset=100, epochs=1, device="cpu"), out_dir=tmp_path)
    with pytest.raises(ConfigError, match="different configuration"):
        train(RunConfig(kind="student", dataset="synthetic", subset=100, epochs=1, lr=0.01, device="cpu"),
              out_dir=tmp_path, resume=True)


def test_teacher_problems_fail_before_anything_is_written(tmp_path, teacher_checkpoint):
    config = RunConfig(kind="kd", dataset="synthetic", subset=100, epochs=1, device="cpu")
    with pytest.raises(ConfigError, match="teacher"):
        train(config, out_dir=tmp_path / "a")
    with pytest.raises(CheckpointError, match="does not exist"):
        train(config, out_dir=tmp_path / "b", teacher_checkpoint=tmp_path / "missing.pt")
    student = tmp_path / "student"
    train(RunConfig(kind="student", dataset="synthetic", subset=100, epochs=1, device="cpu"), out_dir=student)
    with pytest.raises(CheckpointError, match="not a teacher"):
        train(config, out_dir=tmp_path / "c", teacher_checkpoint=student / "checkpoint.pt")
    assert not any((tmp_path / name).exists() for name in "abc")


def test_teacher_with_another_class_count_is_refused(tmp_path, teacher_checkpoint):
    from kdcore.training.checkpoint import save_checkpoint

    payload = load_checkpoint(teacher_checkpoint)
    eleven = tutorial_teacher(11)
    save_checkpoint(tmp_path / "t11.pt", {**payload, "num_classes": 11, "model": eleven.state_dict()})
    with pytest.raises(CheckpointError, match="11 classes but the dataset has 10"):
        train(RunConfig(kind="kd", dataset="synthetic", subset=100, epochs=1, device="cpu"), out_dir=tmp_path / "x",
              teacher_checkpoint=tmp_path / "t11.pt")


def test_non_finite_loss_stops_the_run(tmp_path, monkeypatch):
    import dataclasses

    from kdcore.registry import METHODS

    def nan_loss(student, teacher, labels, params, progress, modules):
        return student.logits.sum() * float("nan"), {"ce": student.logits.sum() * float("nan")}

    monkeypatch.setitem(METHODS, "student", dataclasses.replace(METHODS["student"], loss=nan_loss))
    with pytest.raises(NonFiniteLoss, match="non-finite in epoch 1"):
        train(RunConfig(kind="student", dataset="synthetic", subset=100, epochs=1, device="cpu"), out_dir=tmp_path)


def test_cuda_requested_without_a_gpu_is_a_clear_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        train(RunConfig(kind="student", dataset="synthetic", device="cuda"), out_dir=tmp_path)


def test_experiment_phases_teacher_free_runs_then_kd_runs_from_its_teacher(tmp_path, monkeypatch):
    """The scheduling alone (the engine is covered above): which runs share a phase, and which teacher."""
    import threading

    from kdcore.studies import experiment

    calls = []

    def record(config, out_dir, teacher_checkpoint=None, **kwargs):
        calls.append((config.kind, teacher_checkpoint, threading.current_thread().name))
        from kdcore.training.engine import RunResult

        return RunResult(final_accuracy=0.5, best_epoch=1, test_accuracy_at_best=0.5, best_val_accuracy=None,
                         best_epoch_label="best test epoch (optimistic)", parameters=1, seconds=0.0,
                         checkpoint=str(out_dir / "checkpoint.pt"), device="cpu")

    monkeypatch.setattr(experiment, "_on_cuda", lambda config: True)
    monkeypatch.setattr(experiment, "_on_own_stream", lambda fn, job: fn(**job))
    configs = experiment.experiment_configs("synthetic", 100, epochs=1, temperature=3.0)
    results = experiment.run_experiment(configs, tmp_path, train_fn=record)
    assert list(results) == ["teacher", "student", "kd", "cosine", "fitnet"]
    assert [getattr(c.params, "temperature", None) for c in configs] == [None, None, 3.0, None, None]
    by_kind = {kind: (teacher, thread) for kind, teacher, thread in calls}
    assert by_kind["teacher"][0] is None and by_kind["student"][0] is None
    for kind in ("kd", "cosine", "fitnet"):
        assert by_kind[kind][0] == str(tmp_path / "teacher" / "checkpoint.pt")
    assert {kind for kind, _, _ in calls[:2]} == {"teacher", "student"}
    assert all(thread != threading.main_thread().name for _, _, thread in calls), "phases ran in worker threads"


def test_channels_last_changes_the_layout_on_a_cpu_and_not_the_mathematics(tmp_path):
    from tests.float64 import in_float64

    base = dict(dataset="synthetic", subset=24, batch_size=8, epochs=1, device="cpu", architecture="resnet20", seed=4)
    with in_float64():
        nhwc = train(RunConfig(kind="student", **base), out_dir=tmp_path / "nhwc")
        nchw = train(RunConfig(kind="student", channels_last=False, **base), out_dir=tmp_path / "nchw")
    assert [e.train_loss for e in nhwc.epochs] == pytest.approx([e.train_loss for e in nchw.epochs], rel=1e-9)
    ours, theirs = (load_checkpoint(tmp_path / name / "checkpoint.pt") for name in ("nhwc", "nchw"))
    weight = ours["model"]["stem.0.weight"]
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    assert theirs["model"]["stem.0.weight"].is_contiguous()
    torch.testing.assert_close(ours["model"], theirs["model"], rtol=1e-9, atol=1e-11)
    # The fused optimiser, on a CPU too: one kernel for all the parameters.
    assert ours["optimizer"]["param_groups"][0]["fused"] is True
