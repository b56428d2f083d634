"""Deployable exports (kdcore.deploy): the written file computes what the run's network computes, its card's
accuracy is the file's own and equals the run's final accuracy, and what ships is the deployed student."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from kdcore.cli import main
from kdcore.data.catalog import file_sha256
from kdcore.data.loader import load_dataset
from kdcore.deploy import formats
from kdcore.deploy.export import ExportRefused, export
from kdcore.deploy.formats import ExtraMissing
from kdcore.deploy.load import load_weights
from kdcore.deploy.source import load_source
from kdcore.training.checkpoint import load_checkpoint
from kdcore.training.device_data import MEAN, STD, normalize
from tests.deploy_fixtures import SMALL

onnxruntime = pytest.importorskip("onnxruntime", reason="the onnx format needs the deploy extra")


def _test_images(count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    dataset = load_dataset("synthetic", subset=SMALL["subset"])
    images = normalize(torch.from_numpy(dataset.test_x)).numpy()
    return (images[:count], dataset.test_y[:count]) if count else (images, dataset.test_y)


def test_a_resnet8x4_students_onnx_file_matches_pytorch_and_its_runs_accuracy(resnet8x4_run, resnet8x4_onnx):
    result, run_dir = resnet8x4_run
    card, out = resnet8x4_onnx
    assert sorted(p.name for p in out.iterdir()) == ["card.json", "model.onnx"]
    assert json.loads((out / "card.json").read_text()) == card
    # Run the file ourselves, at another batch size than the exporter saw (the batch dimension is dynamic).
    session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    images, labels = _test_images()
    network = load_source(run_dir).network
    with torch.inference_mode():
        expected = network(torch.from_numpy(images[:7])).numpy()
    got = session.run(["logits"], {"images": images[:7]})[0]
    assert got.shape == (7, 10) and np.abs(got - expected).max() < 1e-4
    assert 0 <= card["parity"]["max_abs_logit_difference"] < 1e-4 and card["parity"]["images"] == 64 < len(labels)
    # The card's accuracy is the file's on the whole test split, and for the final weights the run's own.
    predictions = session.run(["logits"], {"images": images})[0].argmax(1)
    assert len(set(predictions)) > 1  # a network that answers one class for all would prove little here
    file_accuracy = float((predictions == labels).mean())
    assert card["accuracy"]["test_accuracy"] == file_accuracy == result.final_accuracy
    assert card["accuracy"]["test_images"] == len(labels) and card["accuracy"]["equals_run"] is True
    assert card["files"]["model.onnx"]["sha256"] == file_sha256(out / "model.onnx")
    assert card["architecture"] == "resnet8x4" and card["num_classes"] == 10 and len(card["classes"]) == 10
    assert card["input"]["mean"] == list(MEAN) and card["input"]["std"] == list(STD)
    assert card["input"]["size"] == [32, 32] and card["parameters"] == result.parameters
    assert card["run"]["config"]["architecture"] == "resnet8x4" and card["run"]["method"]["name"] == "student"
    assert card["run"]["checkpoint"]["sha256"] == file_sha256(run_dir / "checkpoint.pt")


def test_kd_export_writes_model_onnx_and_card_json_for_a_teacher_checkpoint(teacher_checkpoint, tmp_path, capsys):
    out = tmp_path / "deployed"
    assert main(["export", str(teacher_checkpoint), "--format", "onnx", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["card.json", "model.onnx"]
    card = json.loads((out / "card.json").read_text())
    assert card["run"]["config"]["kind"] == "teacher" and card["architecture"] == "tutorial_teacher"
    assert card["accuracy"]["test_accuracy"] == load_checkpoint(teacher_checkpoint)["metrics"][-1]["test_accuracy"]
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["files"] == ["model.onnx", "card.json"]


def test_a_pt2_file_computes_the_networks_logits(resnet8x4_run, tmp_path):
    result, run_dir = resnet8x4_run
    images, _ = _test_images(16)
    with torch.inference_mode():
        expected = load_source(run_dir).network(torch.from_numpy(images))
    card = export(run_dir, "pt2", tmp_path / "pt2")
    program = torch.export.load(tmp_path / "pt2" / "model.pt2").module()
    assert torch.allclose(program(torch.from_numpy(images[:3])), expected[:3], atol=1e-5)
    assert card["accuracy"]["test_accuracy"] == result.final_accuracy
    assert card["accuracy"]["measured_with"].startswith("torch ") and "torch.export.load" in card["accuracy"]["measured_with"]


def test_a_simkd_student_ships_with_its_projector_and_the_teachers_head(teacher_checkpoint, tmp_path):
    from kdcore.config import RunConfig
    from kdcore.training.engine import train

    result = train(RunConfig(kind="simkd", **SMALL), out_dir=tmp_path / "run", teacher_checkpoint=teacher_checkpoint)
    card = export(tmp_path / "run", "weights", tmp_path / "out")
    assert card["parameters"] == result.parameters  # the deployed count: trunk, projector, teacher's head
    assert card["accuracy"]["test_accuracy"] == result.final_accuracy
    assert card["run"]["teacher"]["architecture"] == "tutorial_teacher"
    # The weights file holds the deployed student alone: no optimiser, nor the student's own unused head.
    state = torch.load(tmp_path / "out" / "model.pt", weights_only=True)
    assert set(state) == set(load_source(tmp_path / "run").shipped.state_dict())
    assert any(k.startswith("projector.") for k in state) and any(k.startswith("head.") for k in state)
    assert not any(k.startswith("classifier.") or k.startswith("fc.") for k in state)
    images, _ = _test_images(8)
    with torch.inference_mode():
        assert torch.equal(load_weights(tmp_path / "out")(torch.from_numpy(images)),
                           load_source(tmp_path / "run").network(torch.from_numpy(images)))


def test_a_file_that_computes_other_logits_is_refused_naming_the_difference(resnet8x4_run, tmp_path, monkeypatch):
    real_runner = formats.runner

    def off_by_a_little(format, path, network):
        run = real_runner(format, path, network)
        return lambda images: run(images) + 3e-4
    monkeypatch.setattr("kdcore.deploy.export.runner", off_by_a_little)
    (tmp_path / "out").mkdir()
    with pytest.raises(ExportRefused, match=r"differ from PyTorch's by up to 0\.0003\d*, more than 0\.0001"):
        export(resnet8x4_run[1], "weights", tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []  # nothing left behind


def test_onnx_without_the_deploy_extra_names_the_extra(resnet8x4_run, tmp_path, monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "onnxscript" else real_find_spec(name, *args))
    with pytest.raises(ExtraMissing, match=r"'deploy' extra.*onnxscript is not installed.*kd-dashboard\[deploy\]"):
        export(resnet8x4_run[1], "onnx", tmp_path / "out")
    assert main(["export", str(resnet8x4_run[1]), "--format", "onnx", "--out", str(tmp_path / "out")]) == 2



def test_the_card_states_and_the_check_uses_the_normalisation_the_network_was_trained_with(resnet8x4_run, tmp_path):
    """A CIFAR-100 network is fed CIFAR-100's statistics (kdcore.data.catalog): its checkpoint records them, and the
    card must state them (not the default), or inference elsewhere would not match training."""
    from kdcore.data.catalog import NORMALIZATIONS

    _, run_dir = resnet8x4_run
    cifar100 = NORMALIZATIONS["cifar100"]
    payload = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    payload["normalization"] = cifar100.to_json_dict()
    torch.save(payload, tmp_path / "checkpoint.pt")
    card = export(tmp_path / "checkpoint.pt", "weights", tmp_path / "out")
    assert card["input"]["mean"] == list(cifar100.mean) and card["input"]["std"] == list(cifar100.std)
    # The file's accuracy is measured on inputs normalised that way.
    dataset = load_dataset("synthetic", subset=SMALL["subset"])
    images = normalize(torch.from_numpy(dataset.test_x), cifar100)
    with torch.inference_mode():
        predictions = load_source(tmp_path / "checkpoint.pt").network(images).argmax(1).numpy()
    assert card["accuracy"]["test_accuracy"] == float((predictions == dataset.test_y).mean())
