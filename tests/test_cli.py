"""The kd command line, run as a user would run it."""

import json
import subprocess
import sys


def _kd(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "kdcore.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_train_writes_checkpoint_metrics_and_a_json_summary_last(tmp_path):
    out = tmp_path / "run"
    done = _kd("train", "student", "--dataset", "synthetic", "--subset", "100", "--epochs", "2", "--device", "cpu",
               "--out", str(out))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["kind"] == "student" and summary["parameters"] == 267_738 and 0 <= summary["final_accuracy"] <= 1
    assert (out / "checkpoint.pt").is_file() and len(json.loads((out / "metrics.json").read_text())) == 2
    assert "student" in done.stderr and "step" in done.stderr  # the tqdm bar


def test_experiment_prints_the_comparison_table_and_writes_summary(tmp_path):
    done = _kd("experiment", "--dataset", "synthetic", "--subset", "100", "--epochs", "1", "--device", "cpu",
               "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    for title in ("Teacher", "Student (baseline)", "Soft targets (KD)", "Cosine", "FitNets"):
        assert title in done.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [row["kind"] for row in summary["runs"]] == ["teacher", "student", "kd", "cosine", "fitnet"]
    assert summary["runs"][2]["compression"] == 1_186_986 / 267_738


def test_bad_input_is_one_line_with_nonzero_exit_and_leaves_nothing(tmp_path, teacher_checkpoint, capsys):
    from kdcore.cli import main

    out = tmp_path / "out"
    cases = [
        (["train", "kd", "--dataset", "synthetic"], "distils from a teacher"),
        (["train", "student", "--dataset", "synthetic", "--epochs", "0"], "epochs"),
        (["train", "student", "--dataset", "synthetic", "--lr", "-1"], "lr"),
        (["train", "kd", "--dataset", "synthetic", "--temperature", "0", "--teacher", str(teacher_checkpoint)],
         "temperature"),
        (["train", "kd", "--dataset", "synthetic", "--distill-weight", "-1", "--teacher", str(teacher_checkpoint)],
         "distill_weight"),
        (["train", "kd", "--dataset", "missing-set", "--teacher", str(teacher_checkpoint)], "'missing-set' not found"),
        (["train", "kd", "--dataset", "synthetic", "--teacher", str(tmp_path / "nope.pt")], "does not exist"),
    ]
    for args, message in cases:  # in-process: the same main() the console script calls
        code = main([*args, "--out", str(out), "--device", "cpu"])
        stderr = capsys.readouterr().err
        assert code != 0, args
        error_lines = [line for line in stderr.strip().splitlines() if line]
        assert len(error_lines) == 1 and message in error_lines[0], (args, stderr)
        assert not out.exists()
    unknown = _kd("train", "distil-everything")
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr
