"""SimKD ships the student's trunk with a projector and the teacher's head (Method.deployed, teacher_parts): the
run's parameter count and its accuracy are those of that student, and its checkpoint holds every part of it."""

from __future__ import annotations

import pytest
import torch

from kdcore.config import RunConfig
from kdcore.data.loader import load_dataset
from kdcore.training.checkpoint import load_checkpoint
from kdcore.training.device_data import Split
from kdcore.training.engine import train
from kdcore.training.networks import build_model
from tests.torch_threads import one_thread  # noqa: F401  (autouse: one thread here)

SMALL = dict(dataset="synthetic", subset=200, epochs=1, batch_size=50, device="cpu")


@pytest.fixture(scope="module")
def simkd_run(tmp_path_factory, teacher_checkpoint):
    out = tmp_path_factory.mktemp("simkd")
    return train(RunConfig(kind="simkd", **SMALL), out_dir=out, teacher_checkpoint=teacher_checkpoint), out


def _conv_bn(inputs: int, outputs: int, kernel: int) -> int:
    return inputs * outputs * kernel * kernel + 2 * outputs


def test_the_deployed_count_is_the_trunk_the_projector_and_the_teachers_head(simkd_run, teacher_checkpoint):
    result, out = simkd_run
    trunk = 16 * 3 * 9 + 16 + 16 * 16 * 9 + 16  # the tutorial student's two convs, not its own classifier
    projector = _conv_bn(16, 16, 1) + _conv_bn(16, 16, 3) + _conv_bn(16, 32, 1)  # to the teacher's 32, factor 2
    head = 2048 * 512 + 512 + 512 * 10 + 10  # the tutorial teacher's classifier
    assert result.parameters == trunk + projector + head
    saved = load_checkpoint(out / "checkpoint.pt")
    assert saved["parameters"] == result.parameters
    teacher = load_checkpoint(teacher_checkpoint)["model"]
    # The checkpoint holds the reused head, unchanged by training: it is frozen.
    for name in ("classifier.0.weight", "classifier.3.bias"):
        assert torch.equal(saved["modules"][f"head.part.1.{name[len('classifier.'):]}"], teacher[name])


def test_accuracy_is_measured_through_the_projector_and_the_teachers_head(simkd_run, teacher_checkpoint):
    result, out = simkd_run
    saved = load_checkpoint(out / "checkpoint.pt")
    student = build_model("tutorial_student", 10, 0)
    student.load_state_dict(saved["model"])
    student.eval()
    projector = torch.nn.Sequential(  # the tutorial maps are both 8×8: no pooling step (an Identity at index 0)
        torch.nn.Identity(), torch.nn.Conv2d(16, 16, 1, bias=False), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 16, 3, padding=1, bias=False), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 1, bias=False), torch.nn.BatchNorm2d(32), torch.nn.ReLU()).eval()
    projector.load_state_dict({k[len("projector."):]: v for k, v in saved["modules"].items()
                               if k.startswith("projector.")})
    teacher = build_model("tutorial_teacher", 10, 0)
    teacher.load_state_dict(load_checkpoint(teacher_checkpoint)["model"])
    teacher.eval()
    dataset = load_dataset("synthetic", None, 200)
    images, labels = map(torch.cat, zip(*Split(dataset.test_x, dataset.test_y, torch.device("cpu"), True,
                                                       normalization=dataset.normalization).chunks()))
    with torch.no_grad():
        own, taps = student(images)
        deployed = teacher.classifier(torch.flatten(projector(taps["stage2"]), 1))
    assert result.final_accuracy == (deployed.argmax(1) == labels).sum().item() / len(labels)
    assert not torch.equal(own.argmax(1), deployed.argmax(1))  # the student's own head tells another story


def test_a_simkd_run_trains_alone_not_in_a_pack(tmp_path, teacher_checkpoint):
    from kdcore.errors import ConfigError
    from kdcore.training.packing.key import pack_key
    from kdcore.training.packing.trainer import train_packed

    assert pack_key(RunConfig(kind="simkd")) != pack_key(RunConfig(kind="simkd"))  # no mate, not even its like
    assert pack_key(RunConfig(kind="ofd")) == pack_key(RunConfig(kind="ofd"))
    with pytest.raises(ConfigError, match="'simkd' ships more than the student's network"):
        train_packed([RunConfig(kind="simkd", **SMALL), RunConfig(kind="ofd", **SMALL)],
                     out_dirs=[tmp_path / "simkd", tmp_path / "ofd"], teacher_checkpoints=[teacher_checkpoint] * 2)
    assert not (tmp_path / "simkd").exists()
