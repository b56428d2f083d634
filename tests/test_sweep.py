"""``kd sweep`` and ``kd experiment --seeds``, in-process through kdcore.cli.main, on small synthetic data."""

import io
import json
from collections import defaultdict
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from kdcore.cli import main
from kdcore.studies.groups import Outcome, summarize_groups

COMMON = ["--dataset", "synthetic", "--subset", "100", "--epochs", "1", "--device", "cpu"]


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """student and kd over three seeds; the sweep trains the teacher (one epoch) first."""
    out = tmp_path_factory.mktemp("sweep") / "study"
    stdout, stderr = io.StringIO(), io.StringIO()
    with redirect_stdout(stdout), redirect_stderr(stderr):
        code = main(["sweep", "--methods", "student,kd", "--seeds", "1,2,3", "--teacher-epochs", "1", *COMMON,
                     "--out", str(out)])
    return code, out, _summary(out), stdout.getvalue(), stderr.getvalue()


def test_sweep_trains_teacher_first_then_students_each_in_its_folder(study):
    code, out, summary, _, _ = study
    assert code == 0 and summary["status"] == "completed"
    runs = summary["runs"]
    assert [(r["method"], r["seed"]) for r in runs] == [("teacher", 1), ("student", 1), ("student", 2),
                                                        ("student", 3), ("kd", 1), ("kd", 2), ("kd", 3)]
    assert [Path(r["out"]).name for r in runs] == ["1-teacher-1", "2-student-1", "3-student-2", "4-student-3",
                                                  "5-kd-1", "6-kd-2", "7-kd-3"]
    for run in runs:
        assert run["status"] == "completed" and run["error"] is None
        assert 0 <= run["final_accuracy"] <= 1 and run["epochs"] == 1
        # One epoch and no validation split: the best epoch is the only one, the best test epoch.
        assert run["best_epoch"] == 1 and run["test_accuracy_at_best"] == run["final_accuracy"]
        assert run["best_val_accuracy"] is None and run["best_epoch_label"] == "best test epoch (optimistic)"
        assert 0 < run["seconds"] <= run["wall_seconds"]
        assert (Path(run["out"]) / "checkpoint.pt").is_file() and (Path(run["out"]) / "metrics.json").is_file()
        metrics = json.loads((Path(run["out"]) / "metrics.json").read_text())
        assert metrics[-1]["test_accuracy"] == run["final_accuracy"]
    kd = runs[4]
    assert kd["params"] == {"ce_weight": 0.75, "distill_weight": 0.25, "temperature": 2.0, "standardize": False}
    assert kd["architecture"] == "tutorial_student" and kd["parameters"] == 267_738 and kd["teacher"] == "1-teacher-1"
    assert runs[0]["architecture"] == "tutorial_teacher" and runs[1]["params"] == {} and runs[1]["teacher"] is None
    assert len({r["group"] for r in runs}) == 3  # teacher, student, kd: the seeds are replicates
    assert {r["baseline"] for r in runs[1:]} == {runs[1]["group"]}  # the student trained here, its own epochs
    assert summary["total"] == 7 and summary["completed"] == 7 and summary["failed"] == 0


def test_groups_are_summarize_groups_of_the_runs_with_labels(study):
    _, out, summary, _, _ = study
    outcomes = [Outcome(group=r["group"], kind=r["method"], role=r["role"], architecture=r["architecture"],
                        params=r["params"], seed=r["seed"], status=r["status"], final_accuracy=r["final_accuracy"],
                        best_accuracy=r["test_accuracy_at_best"], run_id=r["index"], baseline=r["baseline"],
                        epochs=r["epochs"]) for r in summary["runs"]]
    expected = json.loads(json.dumps(summarize_groups(outcomes)))
    assert [{k: v for k, v in g.items() if k != "label"} for g in summary["groups"]] == expected
    labels = {g["method"]: g["label"] for g in summary["groups"]}
    assert labels == {"teacher": "Teacher", "student": "Student (baseline)", "kd": "Soft targets (KD)"}
    assert (out / "table.md").read_text() == summary["tables"]["markdown"]
    assert (out / "table.tex").read_text().startswith(r"\begin{tabular}")


def test_group_statistics_equal_scipy_recomputed_from_the_runs(study):
    _, _, summary, _, _ = study
    finals: dict[str, dict[int, float]] = defaultdict(dict)
    for run in summary["runs"]:
        finals[run["group"]][run["seed"]] = run["final_accuracy"]
    groups = {g["method"]: g for g in summary["groups"]}
    for method in ("student", "kd"):
        group = groups[method]
        values = np.array([finals[group["key"]][s] for s in (1, 2, 3)])
        assert values.std() > 0, "the seeds must differ for the interval to mean anything"
        assert group["n"] == 3 and group["mean"] == pytest.approx(values.mean(), abs=1e-12)
        assert group["std"] == pytest.approx(values.std(ddof=1), abs=1e-12)
        low, high = stats.t.interval(0.95, 2, loc=values.mean(), scale=stats.sem(values))
        assert group["ci95"] == pytest.approx([low, high], abs=1e-12)
    kd, student = groups["kd"], groups["student"]
    mine = [finals[kd["key"]][s] for s in (1, 2, 3)]
    theirs = [finals[student["key"]][s] for s in (1, 2, 3)]
    test = stats.ttest_rel(mine, theirs)
    interval = test.confidence_interval(0.95)
    diff = kd["vs_baseline"]
    assert diff["paired"] is True and diff["n"] == 3 and kd["baseline_key"] == student["key"]
    assert diff["mean"] == pytest.approx(np.mean(mine) - np.mean(theirs), abs=1e-12)
    assert diff["p_value"] == pytest.approx(test.pvalue, abs=1e-12)
    assert diff["ci95"] == pytest.approx([interval.low, interval.high], abs=1e-12)
    assert diff["significant"] == (test.pvalue < 0.05) and student["vs_baseline"] is None


def test_sweep_prints_the_paper_table_and_marks_differences_inside_the_noise(study):
    _, _, summary, out, err = study
    assert summary["tables"]["markdown"] in out
    assert "| Method | Accuracy (%) | n | Δ vs student (pt) | p |" in out
    kd = next(g for g in summary["groups"] if g["method"] == "kd")
    marker = f"not significant at 5 %: {kd['label']} vs the student"
    assert (marker in out) == (not kd["vs_baseline"]["significant"])
    assert json.loads(out.strip().splitlines()[-1])["runs"] == 7
    assert "[1/7] teacher seed 1" in err and "[7/7] kd seed 3" in err  # a bar per run


def test_a_given_teacher_checkpoint_is_distilled_from_and_a_failing_run_is_recorded(tmp_path, teacher_checkpoint):
    # At temperature 1e-40 the logits over T overflow to inf and the soft-target loss is NaN from the first
    # step: those runs fail, and the others must still train.
    code = main(["sweep", "--methods", "student,kd", "--seeds", "1,2", "--teacher", str(teacher_checkpoint),
                 "--grid", "kd.temperature=2,1e-40", "--dataset", "synthetic", "--subset", "50", "--epochs", "1",
                 "--device", "cpu", "--out", str(tmp_path)])
    assert code == 0
    summary = _summary(tmp_path)
    runs = summary["runs"]
    assert [r["method"] for r in runs] == ["student", "student", "kd", "kd", "kd", "kd"]  # no teacher trained
    assert summary["teacher_checkpoint"] == str(teacher_checkpoint)
    assert all(r["teacher"] == str(teacher_checkpoint) for r in runs if r["method"] == "kd")
    diverged = [r for r in runs if r["params"].get("temperature") == 1e-40]
    assert len(diverged) == 2 and all(r["status"] == "failed" and "non-finite" in r["error"] for r in diverged)
    assert all(r["final_accuracy"] is None for r in diverged)
    assert all(r["status"] == "completed" for r in runs if r not in diverged)
    assert summary["failed"] == 2 and summary["completed"] == 4 and summary["status"] == "completed"
    by_temperature = {g["params"]["temperature"]: g for g in summary["groups"] if g["method"] == "kd"}
    assert by_temperature[1e-40]["n"] == 0 and by_temperature[1e-40]["finished"] == 2
    assert by_temperature[2]["n"] == 2 and by_temperature[2]["vs_baseline"]["paired"] is True
    assert "temperature=1e-40" not in summary["tables"]["markdown"]
    assert "temperature=2" in summary["tables"]["markdown"]


@pytest.mark.parametrize("args, message", [
    (["--methods", ""], "methods"),
    (["--methods", "student,distil-everything"], "unknown method 'distil-everything'"),
    (["--methods", "student,kd", "--grid", "kd.bogus=1,2"], "kd has no hyperparameter 'bogus'"),
    (["--methods", "student", "--grid", "student.temperature=1,2"], "student has no hyperparameter"),
    (["--methods", "kd", "--grid", "kd.temperature=1,2,3", "--max-runs", "5"], "expands to 10 runs; at most 5"),
    (["--methods", "student", "--seeds", "1,1"], "seeds must be distinct"),
    (["--methods", "student", "--grid", "kd.temperature"], "expected method.param=value"),
    (["--methods", "student", "--temperature", "4"], "no method of this sweep"),
    (["--methods", "student", "--dataset", "missing-set"], "'missing-set' not found"),
    (["--methods", "student", "--subset", "5"], "subset must be at least 10"),
    (["--methods", "kd", "--teacher", "nope.pt"], "does not exist"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_trained(args, message, tmp_path, capsys):
    given = dict(zip(args[::2], args[1::2]))
    full = ["sweep", *args, *(["--seeds", "1,2,3"] if "--seeds" not in given else []),
            *(["--dataset", "synthetic"] if "--dataset" not in given else []), "--device", "cpu",
            "--out", str(tmp_path / "out")]
    code = main(full)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("kd: error: ") and message in lines[0], err
    assert not (tmp_path / "out").exists()


def test_a_kd_run_without_the_teachers_checkpoint_classes_is_refused(tmp_path, teacher_checkpoint, capsys):
    code = main(["sweep", "--methods", "kd", "--seeds", "1", "--teacher", str(teacher_checkpoint),
                 "--dataset", "synthetic100", "--device", "cpu", "--out", str(tmp_path / "out")])
    assert code == 2 and "has 10 classes but the dataset has 100" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_ctrl_c_stops_cleanly_and_leaves_the_finished_runs(tmp_path, monkeypatch, capsys):
    from kdcore.training import engine

    real, calls = engine.train, []

    def interrupted_second(config, **kwargs):
        calls.append(config.seed)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(config, **kwargs)

    monkeypatch.setattr(engine, "train", interrupted_second)
    code = main(["sweep", "--methods", "student", "--seeds", "1,2,3", *COMMON, "--out", str(tmp_path)])
    assert code == 130 and calls == [1, 2] and "interrupted" in capsys.readouterr().err
    summary = _summary(tmp_path)
    assert summary["status"] == "interrupted"
    assert [r["status"] for r in summary["runs"]] == ["completed", "cancelled", "cancelled"]
    assert summary["groups"][0]["n"] == 1 and summary["groups"][0]["finished"] == 3


def test_experiment_with_seeds_runs_the_seed_experiment_as_a_study(tmp_path, capsys):
    code = main(["experiment", "--seeds", "1,2", "--dataset", "synthetic", "--subset", "20", "--epochs", "1",
                 "--device", "cpu", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert code == 0
    summary = _summary(tmp_path)
    runs = summary["runs"]
    assert [(r["method"], r["seed"]) for r in runs[:2]] == [("teacher", 1), ("teacher", 2)]  # one per seed
    assert sorted((r["method"], r["seed"]) for r in runs[2:]) == sorted(
        (m, s) for m in ("student", "kd", "cosine", "fitnet") for s in (1, 2))
    assert all(r["teacher"] == f"{r['seed']:02d}-teacher-{r['seed']}" for r in runs if r["method"] in ("kd", "fitnet"))
    for title in ("Student (baseline)", "Soft targets (KD)", "Cosine", "FitNets", "Δ vs student"):
        assert title in printed
    groups = {g["method"]: g for g in summary["groups"]}
    assert groups["kd"]["n"] == 2 and groups["kd"]["vs_baseline"]["paired"] is True
    assert main(["experiment", "--seeds", "1,2", "--seed", "3", "--dataset", "synthetic"]) == 2
