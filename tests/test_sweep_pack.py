"""``kd sweep --pack N``: compatible, ready runs train together (kdcore.training.packing.trainer) and each
stays a run of its own.

The equality test runs in float64, as tests/test_packed.py explains: in float32 a pack's grouped
convolutions round differently from a run's own, and Adam turns that into weight differences that can
move a test prediction. resnet20 has no dropout, whose masks a pack draws from other streams.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from kdcore.cli import main
from kdcore.training.packing import trainer as packed
from tests.float64 import in_float64

# The teacher is a resnet20 trained as long as the students: it shares their pack key, so the
# students that need no teacher can train in its pack, and the kd students only after it.
SWEEP = ["sweep", "--methods", "student,kd", "--seeds", "1,2", "--arch", "resnet20", "--teacher-arch", "resnet20",
         "--teacher-epochs", "1", "--epochs", "1", "--dataset", "synthetic", "--subset", "40", "--batch-size", "16",
         "--device", "cpu"]


@pytest.fixture()
def pack_calls(monkeypatch):
    """The methods of each pack train_packed is given, in order."""
    calls, real = [], packed.train_packed

    def spy(configs, **kwargs):
        calls.append([f"{c.kind}{c.seed}" for c in configs])
        return real(configs, **kwargs)

    monkeypatch.setattr(packed, "train_packed", spy)
    return calls


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def test_packed_sweep_equals_the_one_by_one_sweep(tmp_path, pack_calls):
    with in_float64():
        assert main([*SWEEP, "--pack", "1", "--out", str(tmp_path / "alone")]) == 0
        assert pack_calls == []
        assert main([*SWEEP, "--pack", "3", "--out", str(tmp_path / "packed")]) == 0
    # kd waits for the teacher: the first pack is the teacher with the students that need none.
    assert pack_calls == [["teacher1", "student1", "student2"], ["kd1", "kd2"]]
    alone, together = _summary(tmp_path / "alone"), _summary(tmp_path / "packed")
    assert together["completed"] == together["total"] == 5 and together["failed"] == 0
    assert any(note.startswith("trained packed with") for note in together["notes"])
    for one, other in zip(alone["runs"], together["runs"]):
        label = f"{one['method']} seed {one['seed']}"
        assert (one["method"], one["seed"], one["out"].replace("alone", "packed")) == \
            (other["method"], other["seed"], other["out"]), label
        assert one["status"] == other["status"] == "completed", label
        assert other["final_accuracy"] == pytest.approx(one["final_accuracy"], abs=1e-12), label
        assert other["test_accuracy_at_best"] == pytest.approx(one["test_accuracy_at_best"], abs=1e-12), label
        assert other["parameters"] == one["parameters"], label
        ours = json.loads((Path(other["out"]) / "metrics.json").read_text())
        theirs = json.loads((Path(one["out"]) / "metrics.json").read_text())
        assert len(ours) == len(theirs) == 1, label
        assert ours[0]["test_loss"] == pytest.approx(theirs[0]["test_loss"], rel=1e-9), label
        assert ours[0]["train_loss"] == pytest.approx(theirs[0]["train_loss"], rel=1e-9), label
    assert [g["mean"] for g in together["groups"]] == pytest.approx([g["mean"] for g in alone["groups"]], abs=1e-12)


def test_a_failing_run_fails_alone_in_its_pack(tmp_path, teacher_checkpoint, pack_calls):
    # At temperature 1e-40 the soft-target loss is NaN from the first step (see tests/test_sweep.py).
    code = main(["sweep", "--methods", "student,kd", "--seeds", "1", "--teacher", str(teacher_checkpoint),
                 "--grid", "kd.temperature=2,1e-40", "--dataset", "synthetic", "--subset", "50", "--epochs", "1",
                 "--device", "cpu", "--pack", "3", "--out", str(tmp_path)])
    assert code == 0 and pack_calls == [["student1", "kd1", "kd1"]]
    runs = _summary(tmp_path)["runs"]
    failed = [r for r in runs if r["params"].get("temperature") == 1e-40]
    assert len(failed) == 1 and failed[0]["status"] == "failed" and "non-finite" in failed[0]["error"]
    assert failed[0]["final_accuracy"] is None
    for run in runs:
        if run is not failed[0]:
            assert run["status"] == "completed" and 0 <= run["final_accuracy"] <= 1, run
            assert (Path(run["out"]) / "checkpoint.pt").is_file()


def test_pack_must_be_positive(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["sweep", "--methods", "student", "--seeds", "1", "--dataset", "synthetic", "--pack", "0",
              "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2 and "--pack: must be at least 1" in capsys.readouterr().err
    assert main(["experiment", "--dataset", "synthetic", "--pack", "2", "--out", str(tmp_path / "out")]) == 2
    assert "--pack applies to an experiment over several --seeds" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_experiment_with_seeds_packs_its_students(tmp_path, pack_calls):
    code = main(["experiment", "--seeds", "1,2", "--dataset", "synthetic", "--subset", "20", "--epochs", "1",
                 "--device", "cpu", "--pack", "8", "--out", str(tmp_path)])
    assert code == 0 and _summary(tmp_path)["completed"] == 10
    # Two teachers (another network: they pack together), then the eight students of both seeds.
    assert [len(call) for call in pack_calls] == [2, 8]
    assert sorted(pack_calls[1]) == sorted(f"{kind}{seed}" for kind in ("student", "kd", "cosine", "fitnet")
                                           for seed in (1, 2))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_a_missing_device_fails_the_runs_not_the_sweep(tmp_path):
    # The default pack size depends on the device: one that is not there leaves each run to fail alone.
    code = main(["sweep", "--methods", "student", "--seeds", "1,2", "--dataset", "synthetic", "--subset", "20",
                 "--epochs", "1", "--device", "cuda", "--out", str(tmp_path)])
    runs = _summary(tmp_path)["runs"]
    assert code == 0 and [r["status"] for r in runs] == ["failed", "failed"]
    assert all("no CUDA GPU is visible" in r["error"] for r in runs)
