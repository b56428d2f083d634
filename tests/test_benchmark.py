"""The cifar100-benchmark preset: its pairs and how they become studies, narrowing and its refusals, the paper's
table with the published values beside ours, and ``kd benchmark`` trained end to end on a CPU."""

from __future__ import annotations

import json

import pytest

from kdcore.cli import main
from kdcore.studies.benchmark import find_pair, parse_benchmark, plan, run_count, studies, teacher_config
from kdcore.studies.benchmark_table import NO_DATASET, SUBSET, benchmark_table, markdown
from kdcore.studies.groups import Outcome, labelled_groups
from kdcore.studies.study import StudyInputError


def test_the_preset_is_the_13_standard_pairs_one_study_per_teacher_network_and_learning_rate():
    spec = parse_benchmark({})
    assert [p.label for p in spec.chosen_pairs()][:3] == ["wrn_40_2→wrn_16_2", "wrn_40_2→wrn_40_1",
                                                          "resnet56→resnet20"]
    assert len(spec.chosen_pairs()) == 13 and spec.epochs == 240 and spec.methods == ["kd", "dkd"]
    found = studies(spec)
    # The papers train MobileNetV2 and the ShuffleNets at 0.01: those students are studies of their own.
    by_study = {(s.teacher, s.payload["lr"]): sorted(s.payload["architectures"]) for s in found}
    assert by_study[("resnet32x4", 0.05)] == ["resnet8x4"]
    assert by_study[("resnet32x4", 0.01)] == ["shufflev1", "shufflev2"]
    assert by_study[("resnet50", 0.01)] == ["mobilenetv2"] and by_study[("resnet50", 0.05)] == ["vgg8"]
    assert len(found) == 10
    for study in found:
        assert study.payload["preset"] == "crd-cifar" and study.payload["methods"] == ["student", "kd", "dkd"]
    # One teacher per network, at the recipe's own learning rate, whatever its students' studies use.
    assert teacher_config(spec, "resnet32x4").lr == 0.05 and teacher_config(spec, "resnet32x4").augment
    assert run_count(spec) == {"teachers": 6, "students": 39, "distilled": 78, "total": 123}
    assert len(plan(spec, 500)) == 123


def test_every_part_narrows_and_names_go_by_any_alias():
    spec = parse_benchmark({"pairs": ["ResNet50:MobileNetV2", "resnet32x4:resnet8x4"], "methods": ["kd"],
                            "seeds": [7], "epochs": 3, "dataset": "synthetic100", "subset": 200,
                            "teachers": {"ResNet50": 12}})
    assert find_pair("resnet50:mobile_half") == find_pair("ResNet50:MobileNetV2")
    assert [p.key for p in spec.chosen_pairs()] == ["resnet32x4:resnet8x4", "ResNet50:MobileNetV2"]
    assert spec.given_teacher("resnet50") == 12 and spec.given_teacher("resnet32x4") is None
    runs = plan(spec, 500)
    # The given ResNet-50 is not trained again: one teacher, two students and two KD runs, 3 epochs each.
    assert [(r.config.kind, r.config.architecture, r.teacher) for r in runs] == [
        ("teacher", "resnet32x4", None), ("student", "resnet8x4", None), ("kd", "resnet8x4", "resnet32x4"),
        ("student", "mobilenetv2", None), ("kd", "mobilenetv2", "resnet50")]
    assert {(r.config.epochs, r.config.seed, r.config.subset, r.config.dataset) for r in runs} == {
        (3, 7, 200, "synthetic100")}
    assert [r.config.lr for r in runs] == [0.05, 0.05, 0.05, 0.01, 0.01]


@pytest.mark.parametrize("payload, loc, words", [
    ({"pairs": ["resnet32x4:vgg8"]}, ["pairs", 0], "is not a pair of the benchmark"),
    ({"pairs": ["vgg13:vgg8", "vgg13_bn:vgg8_bn"]}, ["pairs", 1], "listed twice"),
    ({"methods": ["kd", "distil-all"]}, ["methods", 1], "unknown method 'distil-all'"),
    ({"methods": ["teacher"]}, ["methods", 0], "is the teacher"),
    ({"methods": ["student"]}, ["methods"], "at least one method that distils"),
    ({"pairs": ["vgg13:vgg8"], "teachers": {"resnet56": 3}}, ["teachers", "resnet56"], "teaches none of"),
    ({"seeds": [1, 1]}, ["seeds"], "distinct"),
    ({"epochs": 0}, ["epochs"], "greater than or equal to 1"),
    ({"grid": {}}, ["grid"], "Extra inputs"),
])
def test_narrowing_refuses_what_is_not_in_the_preset_by_name(payload, loc, words):
    with pytest.raises(StudyInputError) as caught:
        parse_benchmark(payload)
    assert any(e["loc"] == loc and words in e["msg"] for e in caught.value.errors), caught.value.errors


def test_more_runs_than_allowed_is_refused_before_any_study_expands():
    with pytest.raises(StudyInputError, match="expands to 123 runs; at most 100"):
        plan(parse_benchmark({}), 100)


def _groups(teacher_accuracy, seeds_by_kind, dataset="cifar100", subset=None):
    """Groups as a study of resnet32x4→resnet8x4 would have them, from runs' accuracies by kind and seed."""
    outcomes = [Outcome(group="t", kind="teacher", role="teacher", architecture="resnet32x4", params={}, seed=1,
                        final_accuracy=teacher_accuracy, best_accuracy=teacher_accuracy, dataset=dataset,
                        subset=subset)]
    for kind, values in seeds_by_kind.items():
        role = "baseline" if kind == "student" else "method"
        for seed, (final, best) in enumerate(values, start=1):
            outcomes.append(Outcome(group=kind, kind=kind, role=role, architecture="resnet8x4", params={}, seed=seed,
                                    final_accuracy=final, best_accuracy=best, baseline="student", dataset=dataset,
                                    subset=subset, teacher_architecture="resnet32x4" if role == "method" else None))
    return labelled_groups(outcomes)


def test_the_table_puts_the_published_values_beside_ours_compared_as_they_were_reported():
    pair = find_pair("resnet32x4:resnet8x4")
    # KD's last epochs average 72.9, its best epochs 73.3: RepDistiller's 73.33 (a best epoch) is compared
    # with our best epochs, and lies inside their interval though outside the last epochs'.
    groups = _groups(0.7942, {"student": [(0.721, 0.724), (0.725, 0.727), (0.722, 0.726)],
                              "kd": [(0.728, 0.732), (0.730, 0.7335), (0.729, 0.734)]})
    table = benchmark_table([pair], {pair.key: groups}, ["kd"], "cifar100")
    assert [row["method"] for row in table["rows"]] == ["teacher", "student", "kd"]
    kd = table["rows"][2]["cells"][0]
    assert kd["n"] == 3 and kd["mean"] == pytest.approx(0.729)
    repdistiller = next(r for r in kd["published"] if r["source"].startswith("HobbitLong/RepDistiller"))
    assert repdistiller["value"] == 73.33 and repdistiller["inside"] is True
    assert all(r["params"] == {} for r in kd["published"])  # never the logit-standardised variant
    text = markdown(table)
    kd_line = next(line for line in text.splitlines() if line.startswith("| Soft targets (KD)"))
    assert "72.90 ± 0.10 (n=3)" in kd_line and "73.33 [" in kd_line and "✓" in kd_line
    assert "HobbitLong/RepDistiller README.md" in text
    teacher_line = next(line for line in text.splitlines() if line.startswith("| Teacher"))
    assert "79.42 (n=1)" in teacher_line and "79.42 [" in teacher_line  # n = 1: no interval, no mark
    assert "✓" not in teacher_line and "✗" not in teacher_line


def test_no_published_value_is_compared_on_another_dataset_or_a_subset():
    pair = find_pair("resnet32x4:resnet8x4")
    for dataset, subset, note in (("synthetic100", None, NO_DATASET), ("cifar100", 5000, SUBSET)):
        groups = _groups(0.5, {"student": [(0.4, 0.4)], "kd": [(0.45, 0.45)]}, dataset, subset)
        table = benchmark_table([pair], {pair.key: groups}, ["kd"], dataset, subset)
        assert table["published_note"] == note
        # The CIFAR-100 values stand beside ours for reference (RepDistiller's resnet32x4 → resnet8x4 row: teacher
        # 79.42, student 72.50, KD 73.33), never with a verdict.
        cells = [row["cells"][0] for row in table["rows"]]
        assert [{r["value"] for r in cell["published"]} >= want for cell, want in
                zip(cells, ({79.42}, {72.50}, {73.33}))] == [True] * 3
        assert all(r["inside"] is None for cell in cells for r in cell["published"])
        text = markdown(table)
        rows_text = "".join(line for line in text.splitlines() if line.startswith("|"))
        assert text.count(note) == 1 and "73.33 [" in rows_text and "✓" not in rows_text and "✗" not in rows_text


def test_kd_benchmark_trains_on_a_cpu_and_writes_the_table(tmp_path, capsys):
    out = tmp_path / "bench"
    code = main(["benchmark", "--pairs", "resnet32x4:resnet8x4", "--methods", "kd", "--seeds", "1",
                 "--epochs", "1", "--dataset", "synthetic100", "--subset", "100", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    # The cost comes first, before any run's progress.
    first = captured.err.strip().splitlines()[0]
    assert first.startswith("kd benchmark: 3 runs (1 teacher, 1 baseline student, 1 distilled) in 1 study")
    assert "GPU-hours" in first and "rough estimate" in first
    data = json.loads((out / "benchmark.json").read_text())
    assert (out / "table.md").read_text() == data["markdown"] and data["markdown"] in captured.out
    table = data["table"]
    assert [row["method"] for row in table["rows"]] == ["teacher", "student", "kd"]
    assert all(row["cells"][0]["n"] == 1 for row in table["rows"])  # each trained once, and completed
    assert table["published_note"] == NO_DATASET
    assert "73.33 [" in data["markdown"]  # the published CIFAR-100 value beside ours, for reference
    assert data["studies"][0]["completed"] == data["studies"][0]["total"] == 2
    kd = (out / "study-1-resnet32x4-lr0.05" / "summary.json")
    assert json.loads(kd.read_text())["runs"][1]["teacher"].endswith("checkpoint.pt")


def test_kd_benchmark_refuses_bad_input_in_one_line_and_writes_nothing(tmp_path, capsys, teacher_checkpoint):
    out = tmp_path / "bench"
    wrong_network = f"resnet32x4={teacher_checkpoint}"
    for args, words in ((["--pairs", "resnet32x4:vgg8"], "is not a pair of the benchmark"),
                        (["--teacher", wrong_network], "holds a tutorial_teacher, not a resnet32x4"),
                        (["--teacher", "vgg13=x.pt"], "vgg13 teaches none of the chosen pairs"),
                        (["--methods", "kd,nope"], "unknown method 'nope'"),
                        (["--dataset", "missing-set"], "'missing-set' not found"),
                        (["--teacher", "resnet32x4"], "expected NETWORK=CHECKPOINT")):
        code = main(["benchmark", "--pairs", "resnet32x4:resnet8x4", "--seeds", "1", "--epochs", "1",
                     "--dataset", "synthetic100", *args, "--out", str(out)])
        lines = [line for line in capsys.readouterr().err.splitlines() if line]
        assert code == 2 and len(lines) == 1 and words in lines[0], (args, lines)
        assert not out.exists()
