"""Teachers trained elsewhere (kdcore.training.teacher_import, ``kd import-teacher``, ``kdcore.load_model``).

Each zoo network's checkpoint is checked against data recorded from the reference frameworks' own networks
(tests/fixtures/record_reference_keys.py): their key names and shapes, and the logits their network gives for
weights made from those names. Importing a file of those names must fill every key of our network with its
shape, leave nothing over, and give the reference's logits; written back under the reference names and imported
again, the logits must not change by a bit.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kdcore.architectures import build
from kdcore.cli import main
from kdcore.errors import CheckpointError
from kdcore.training.teacher_import import convert_state_dict, import_teacher, to_reference_names
from tests.reference_weights import probe_images, synthetic_state

RECORDED = sorted((Path(__file__).parent / "fixtures" / "reference_keys").glob("*/*.json"))


def _loaded(architecture: str, num_classes: int, state: dict) -> torch.nn.Module:
    model = build(architecture, num_classes)
    model.load_state_dict(state)
    return model.eval()


def _recorded(fmt: str, architecture: str) -> dict:
    return json.loads((RECORDED[0].parent.parent / fmt / f"{architecture}.json").read_text())


def test_every_zoo_network_has_recorded_keys_in_every_format_that_names_it():
    from kdcore.architectures import registry

    recorded = {(path.parent.name, path.stem) for path in RECORDED}
    zoo = set(registry())
    assert {arch for fmt, arch in recorded if fmt == "state_dict"} == zoo
    reference_zoo = zoo - {"tutorial_teacher", "tutorial_student"}  # the frameworks have no such networks
    for fmt in ("mdistiller", "repdistiller"):
        assert {arch for f, arch in recorded if f == fmt} == reference_zoo


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_recorded_keys_fill_every_key_of_our_network_and_map_back_to_the_same_names(path):
    recorded = json.loads(path.read_text())
    fmt, architecture, classes = recorded["format"], recorded["architecture"], recorded["num_classes"]
    state = {name: torch.empty(shape) for name, shape in recorded["keys"]}
    # As the frameworks save it, under the reference's own name for the network (an alias here).
    converted = convert_state_dict({"epoch": 240, "model": state, "accuracy": 71.9}, recorded["model"], classes, fmt)

    # Our network's names and shapes: recorded too, and checked against the network itself in its own case.
    ours = [[k, list(v.shape)] for k, v in build(architecture, classes).state_dict().items()] \
        if fmt == "state_dict" else _recorded("state_dict", architecture)["keys"]
    assert [[k, list(v.shape)] for k, v in converted.items()] == ours
    assert sorted(map(id, converted.values())) == sorted(map(id, state.values()))  # each tensor used once
    written = to_reference_names(converted, architecture, fmt)
    assert [[k, list(v.shape)] for k, v in written.items()] == recorded["keys"]
    assert all(written[k] is state[k] for k in state)


# One format per network: the two frameworks' model files are the same code (their recorded logits are equal),
# and this project's own names are checked on the networks the frameworks lack. float32, as teachers run here.
LOGITS = [path for path in RECORDED if path.parent.name == "mdistiller"
          or (path.parent.name == "state_dict" and not (path.parent.parent / "mdistiller" / path.name).exists())]


@pytest.mark.parametrize("path", LOGITS, ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_an_imported_network_gives_the_references_logits_and_round_trips(path):
    recorded = json.loads(path.read_text())
    fmt, architecture, classes = recorded["format"], recorded["architecture"], recorded["num_classes"]
    state = {k: v.float() if v.is_floating_point() else v for k, v in synthetic_state(recorded["keys"]).items()}
    model = _loaded(architecture, classes, convert_state_dict(state, architecture, classes, fmt))
    images = probe_images().float()
    with torch.no_grad():
        logits = model(images)[0]
    reference = torch.tensor(recorded["logits"], dtype=torch.float32)
    torch.testing.assert_close(logits, reference, rtol=1e-4, atol=1e-4 * reference.abs().max().item())

    # Our network's weights written under the reference names and imported again: every tensor back in its place,
    # so the network computes the same logits bit for bit (through a file: the last test of this module).
    weights = model.state_dict()
    again = convert_state_dict(to_reference_names(weights, architecture, fmt), architecture, classes, fmt)
    assert list(again) == list(weights) and all(again[k] is weights[k] for k in weights)


def _recorded_state(fmt: str, architecture: str) -> dict[str, torch.Tensor]:
    recorded = _recorded(fmt, architecture)
    return {k: v.float() if v.is_floating_point() else v for k, v in synthetic_state(recorded["keys"]).items()}


def test_the_frameworks_wrappers_and_prefixes_are_unwrapped():
    state = _recorded_state("mdistiller", "resnet8x4")
    expected = convert_state_dict(state, "resnet8x4", 100, "mdistiller")
    # DataParallel's prefix, RepDistiller's {"state_dict"} variant, and mdistiller's whole distiller, whose
    # student is the network (its teacher and the method's modules are left out).
    distiller = {f"module.student.{k}": v for k, v in state.items()}
    distiller.update({f"module.teacher.{k}": v for k, v in state.items()}, **{"module.connector.weight": torch.ones(1)})
    for wrapped in ({f"module.{k}": v for k, v in state.items()}, {"state_dict": state, "epoch": 3},
                    {"model": distiller, "optimizer": {"state": {}, "param_groups": []}, "epoch": 240}):
        converted = convert_state_dict(wrapped, "resnet8x4", 100, "mdistiller")
        assert converted.keys() == expected.keys() and all(converted[k] is expected[k] for k in expected)


def _error(state, architecture="resnet20", classes=100, fmt="repdistiller") -> str:
    with pytest.raises(CheckpointError) as caught:
        convert_state_dict(state, architecture, classes, fmt)
    return str(caught.value)


def test_a_file_that_does_not_fit_is_refused_naming_the_first_mismatch():
    state = _recorded_state("repdistiller", "resnet20")
    wrong_shape = {**state, "layer2.1.conv1.weight": torch.zeros(32, 16, 3, 3),
                   "layer3.0.conv1.weight": torch.zeros(1)}  # two mismatches: the network's first is named
    assert _error(wrong_shape) == ("the checkpoint does not fit resnet20 (repdistiller names, 100 classes): key "
                                   "'layer2.1.conv1.weight' has shape (32, 16, 3, 3), the network's is (32, 32, 3, 3)")
    missing = {k: v for k, v in state.items() if k != "layer2.0.downsample.1.bias"}
    assert _error(missing).endswith("it has no key 'layer2.0.downsample.1.bias' (this project's "
                                    "'stages.1.0.shortcut.1.bias')")
    assert "unexpected key 'layer3.0.extra.weight'" in _error({**state, "layer3.0.extra.weight": torch.zeros(1)})
    assert "key 'fc.weight' has shape (100, 64), the network's is (10, 64) (a classifier for a different " \
           "--num-classes?)" in _error(state, classes=10)
    # PyTorch before 0.4.1 wrote no num_batches_tracked: eval mode never reads it.
    old = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    assert convert_state_dict(old, "resnet20", 100, "repdistiller")["stem.1.num_batches_tracked"].item() == 0


def test_the_wrong_network_format_or_file_is_named():
    resnet56 = _recorded_state("mdistiller", "resnet56")
    assert _error(resnet56, fmt="mdistiller") == (
        "the checkpoint does not fit resnet20 (mdistiller names, 100 classes): unexpected key "
        "'layer1.3.conv1.weight'; it fits resnet56 with 100 classes")
    assert _error(resnet56, fmt="pytorch") == ("unknown checkpoint format 'pytorch'; choose one of: mdistiller, "
                                               "repdistiller, state_dict")
    assert _error(resnet56, fmt="state_dict").endswith("it has no key 'stem.0.weight'")
    assert _error(resnet56, "tutorial_teacher", fmt="mdistiller").startswith(
        "mdistiller has no network 'tutorial_teacher': import its weights with format 'state_dict'")
    assert _error({"epoch": 3, "accuracy": 0.5}).startswith("the checkpoint holds no state dict")


def test_import_teacher_writes_nothing_for_a_file_that_needs_pickle_or_does_not_fit(tmp_path, capsys):
    state = _recorded_state("repdistiller", "resnet20")
    pickled = tmp_path / "with_options.pth"
    torch.save({"model": state, "opt": argparse.Namespace(lr=0.05)}, pickled)  # an object weights_only refuses
    with pytest.raises(CheckpointError, match="with_options.pth needs arbitrary pickled objects, which are not "
                                              r"loaded \(torch.load weights_only=True"):
        import_teacher(pickled, "resnet20", 100, "repdistiller", tmp_path / "out")
    fits_not = tmp_path / "resnet20.pth"
    torch.save({"model": state}, fits_not)
    with pytest.raises(CheckpointError, match="does not fit resnet32"):
        import_teacher(fits_not, "resnet32", 100, "repdistiller", tmp_path / "out")
    # The command says it in one line and fails.
    assert main(["import-teacher", str(fits_not), "--arch", "resnet20", "--num-classes", "10", "--format",
                 "repdistiller", "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (
        "kd: error: the checkpoint does not fit resnet20 (repdistiller names, 10 classes): key 'fc.weight' has shape "
        "(100, 64), the network's is (10, 64) (a classifier for a different --num-classes?); it fits resnet20 with "
        "100 classes\n")
    assert not (tmp_path / "out").exists()


def test_an_imported_teacher_is_evaluated_loads_as_it_was_and_teaches_a_kd_run(tmp_path, capsys):
    import kdcore
    from kdcore.config import RunConfig
    from kdcore.data.catalog import file_sha256
    from kdcore.data.loader import load_dataset
    from kdcore.training.checkpoint import load_checkpoint
    from kdcore.training.device_data import Split
    from kdcore.training.engine import evaluate, train

    torch.manual_seed(3)
    network = build("tutorial_student", 10).eval()  # any network teaches; the small one evaluates fast
    source = tmp_path / "teacher.pth"
    torch.save({f"module.{k}": v for k, v in network.state_dict().items()}, source)
    assert main(["import-teacher", str(source), "--arch", "seed_student", "--num-classes", "10", "--format",
                 "state_dict", "--out", str(tmp_path / "imported"), "--dataset", "synthetic"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    checkpoint = tmp_path / "imported" / "checkpoint.pt"
    payload = load_checkpoint(checkpoint)
    test = load_dataset("synthetic")
    _, accuracy = evaluate(network, Split(test.test_x, test.test_y, torch.device("cpu"), True,
                                          normalization=test.normalization))
    assert summary["test_accuracy"] == payload["test_accuracy"] == accuracy
    assert payload["origin"] == {"file": "teacher.pth", "sha256": file_sha256(source), "format": "state_dict"}
    assert payload["normalization"] == test.normalization.to_json_dict()  # what it was evaluated with
    assert payload["config"]["kind"] == "teacher" and payload["config"]["architecture"] == "tutorial_student"

    loaded = kdcore.load_model(checkpoint)
    images = probe_images().float()
    with torch.no_grad():
        assert not loaded.training and torch.equal(loaded(images)[0], network(images)[0])

    result = train(RunConfig(kind="kd", dataset="synthetic", subset=20, epochs=1, device="cpu"),
                   out_dir=tmp_path / "kd", teacher_checkpoint=checkpoint)
    assert len(result.epochs) == 1 and (tmp_path / "kd" / "checkpoint.pt").is_file()


def test_the_command_and_the_package_import_no_torch():
    code = ("import sys, kdcore, kdcore.commands.import_teacher, kdcore.training.run_files; "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
