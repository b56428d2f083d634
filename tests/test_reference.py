"""The published results (kdcore.reference): the data as rows with their sources, the lookup, which rows a
configuration matches, and (where the reference clones are here) the check against their READMEs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import kdcore.architectures
from kdcore.reference import PublishedResult, published
from kdcore.reference import results as published_module
from kdcore.reference.matching import matching
from kdcore.reference.results import PublishedDataError, all_results
from kdcore.registry import METHODS

ROOT = Path(__file__).resolve().parents[1]
REFS = Path("/work/refs")


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A copy of the data in a folder of its own, read afresh."""
    for path in published_module.DATA_DIR.glob("*.csv"):
        shutil.copy(path, tmp_path / path.name)
    monkeypatch.setattr(published_module, "DATA_DIR", tmp_path)
    all_results.cache_clear()
    yield tmp_path
    all_results.cache_clear()


def test_every_row_cites_its_source_and_how_it_was_reported():
    rows = published(dataset=None)
    assert len(rows) > 300 and all(isinstance(r, PublishedResult) for r in rows)
    assert {r.dataset for r in rows} == {"cifar100"}
    assert all(r.source and r.section and r.reported_as in ("best epoch", "last epoch", "unstated") for r in rows)
    assert {r.source for r in rows} == {"HobbitLong/RepDistiller README.md", "megvii-research/mdistiller README.md",
                                        "sunshangquan/logit-standardization-KD README.md"}


def test_lookup_by_method_teacher_student_and_dataset():
    crd = published("crd", "resnet32x4", "resnet8x4")
    assert [(r.value, r.source) for r in crd] == [(75.51, "HobbitLong/RepDistiller README.md")]
    dkd = {(r.value, r.runs, r.how_reported) for r in published("DKD", "resnet32x4", "resnet8x4")}
    assert (76.32, 5, "best epoch, mean of 5 runs") in dkd
    assert published("kd", "resnet32x4", "resnet8x4", dataset="synthetic100") == []
    assert [r.value for r in published("student", student="resnet8x4")] == [72.50]
    assert {r.value for r in published("teacher", teacher="resnet32x4")} == {79.42}


def test_a_reference_framework_name_reads_as_the_network_it_aliases(monkeypatch):
    monkeypatch.setitem(kdcore.architectures.ALIASES, "ResNet50", "resnet50")
    monkeypatch.setitem(kdcore.architectures.ALIASES, "MobileNetV2", "mobilenetv2")
    rows = published("kd", "ResNet50", "MobileNetV2")
    assert sorted((r.value, r.params.get("standardize", False)) for r in rows) == [
        (67.35, False), (67.35, False), (67.35, False), (69.02, True)]


def test_a_row_is_added_without_code_and_a_bad_row_is_named(data_dir):
    (data_dir / "extra.csv").write_text(
        "method,teacher,student,dataset,value,reported_as,runs,params,source,section,note\n"
        "kd,resnet32x4,resnet8x4,cifar100,74.10,last epoch,3,,Some paper,Table 2,\n")
    rows = published("kd", "resnet32x4", "resnet8x4")
    assert (74.10, "last epoch, mean of 3 runs", "Some paper") in {(r.value, r.how_reported, r.source) for r in rows}
    (data_dir / "extra.csv").write_text(
        "method,teacher,student,dataset,value,reported_as,runs,params,source,section,note\n"
        "kd,resnet32x4,resnet8x4,cifar100,741,last epoch,3,,Some paper,Table 2,\n")
    all_results.cache_clear()
    with pytest.raises(PublishedDataError, match=r"extra.csv, line 2: value '741' is not a percentage"):
        published()


def test_a_configuration_matches_its_method_networks_dataset_and_variant():
    plain = matching("kd", "resnet8x4", "resnet32x4", "cifar100", {"temperature": 4.0})
    assert {r.value for r in plain} == {73.33} and all(not r.params for r in plain)
    # One source printing one figure in two of its tables is one published result.
    assert len([r for r in plain if r.source.startswith("megvii")]) == 2  # its two differ in how they were reported
    standardized = matching("kd", "resnet8x4", "resnet32x4", "cifar100", {"standardize": True})
    assert [r.value for r in standardized] == [76.62]
    assert matching("kd", "resnet8x4", "resnet32x4", "synthetic100", {}) == []
    assert matching("kd", "resnet8x4", "vgg13", "cifar100", {}) == []
    assert matching("kd", "resnet8x4", None, "cifar100", {}) == []
    # Teachers and students trained alone match their own rows.
    assert [r.value for r in matching("teacher", "resnet32x4", None, "cifar100")] == [79.42]
    assert [r.value for r in matching("student", "resnet8x4", "resnet32x4", "cifar100")] == [72.50]


def test_rows_this_project_cannot_run_are_kept_but_never_matched():
    assert "kd+dot" not in METHODS and published("kd+dot", "resnet32x4", "resnet8x4")
    assert matching("kd+dot", "resnet8x4", "resnet32x4", "cifar100") == []
    # CTKD with logit standardisation: this project's ctkd has no such switch.
    assert "standardize" not in METHODS["ctkd"].params.model_fields
    assert {r.params.get("standardize") for r in published("ctkd", "resnet32x4", "resnet8x4")} == {None, True}
    assert [r.value for r in matching("ctkd", "resnet8x4", "resnet32x4", "cifar100", {})] == [73.39]


@pytest.mark.skipif(not REFS.is_dir(), reason="the reference clones are not on this machine")
def test_the_data_agrees_with_the_readmes_cell_by_cell(capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_published", ROOT / "bench" / "check_published.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    assert check.main(REFS) == 0, capsys.readouterr().out


# ---------------------------------------------------------------- reported vs reproduced, over seeds

def _outcomes(dataset="cifar100", finals=(0.731, 0.735, 0.728), bests=None, validation=0.0, best_tests=None,
              kind="kd", params=None, subset=None):
    from kdcore.studies.groups import Outcome

    bests = bests or [f + 0.004 for f in finals]
    return [Outcome(group="g", kind=kind, role="method", architecture="resnet8x4", params=params or {}, seed=seed,
                    final_accuracy=final, best_accuracy=best, run_id=seed, dataset=dataset, subset=subset,
                    validation=validation, teacher_architecture="resnet32x4",
                    best_test_accuracy=best_tests[seed - 1] if best_tests else None)
            for seed, final, best in zip(range(1, len(finals) + 1), finals, bests)]


def _group(outcomes):
    from kdcore.studies.groups import summarize_groups

    return summarize_groups(outcomes)[0]["reproduction"]


def test_a_cifar100_group_shows_the_published_value_our_interval_and_the_verdict():
    shown = _group(_outcomes())
    assert shown["n"] == 3 and shown["validation"] is False
    assert shown["last"]["label"] == "last epoch" and shown["best"]["label"] == "best test epoch (optimistic)"
    by_source = {row["source"]: row for row in shown["published"]}
    repdistiller = by_source["HobbitLong/RepDistiller README.md"]
    assert repdistiller["value"] == 73.33 and repdistiller["accuracy"] == pytest.approx(0.7333)
    # Reported at the best epoch: compared with our best test epoch, whose interval holds 73.33 %.
    low, high = shown["best"]["ci95"]
    assert repdistiller["compared_on"] == "best" and low <= 0.7333 <= high and repdistiller["inside"] is True
    assert repdistiller["difference"] == pytest.approx(shown["best"]["mean"] - 0.7333)
    # Far from the published value, the verdict turns.
    far = _group(_outcomes(finals=(0.70, 0.701, 0.699)))
    assert {row["inside"] for row in far["published"]} == {False}


def test_synthetic_data_a_subset_or_a_single_seed_match_nothing_or_give_no_interval():
    assert _group(_outcomes(dataset="synthetic100")) is None
    assert _group(_outcomes(subset=5000)) is None
    single = _group(_outcomes(finals=(0.731,)))
    assert single["n"] == 1 and single["last"]["ci95"] is None
    assert {row["inside"] for row in single["published"]} == {None}


def test_with_a_validation_split_the_best_test_epoch_is_compared_and_the_validation_one_shown_beside():
    shown = _group(_outcomes(validation=0.1, bests=[0.70, 0.70, 0.70], best_tests=[0.731, 0.735, 0.733]))
    assert shown["best"]["label"] == "best validation epoch" and shown["best"]["mean"] == pytest.approx(0.70)
    assert shown["best_test"]["label"] == "best test epoch (optimistic)"
    row = next(r for r in shown["published"] if r["source"].startswith("HobbitLong"))
    assert row["compared_on"] == "best_test" and row["inside"] is True
    # Without the epochs read, the validation-selected figure is what there is, and the row says so.
    unread = _group(_outcomes(validation=0.1, bests=[0.70, 0.70, 0.70]))
    row = next(r for r in unread["published"] if r["source"].startswith("HobbitLong"))
    assert row["compared_on"] == "best" and row["compared_label"] == "best validation epoch"


def test_kd_sweep_summaries_carry_it(tmp_path):
    from kdcore.studies.groups import labelled_groups
    from kdcore.studies.sweep import prepare

    sweep = prepare({"dataset": "cifar100", "methods": ["kd"], "seeds": [1, 2], "epochs": 1,
                     "architectures": ["resnet8x4"], "teacher_architecture": "resnet32x4"}, tmp_path)
    for run, accuracy in zip(sweep.runs, (0.79, 0.733, 0.734)):
        run.status, run.final_accuracy, run.test_accuracy_at_best = "completed", accuracy, accuracy
    kd = next(g for g in labelled_groups([run.outcome() for run in sweep.runs]) if g["method"] == "kd")
    assert 73.33 in {row["value"] for row in kd["reproduction"]["published"]}


def test_every_network_the_published_table_names_is_in_the_zoo():
    """The benchmark's pairs must be trainable here: every teacher and student the data names is a zoo network
    (directly or by a reference framework's name), so a published row can match runs of it."""
    from kdcore.architectures import canonical, names
    from kdcore.reference.results import all_results

    named = {canonical(n) for row in all_results() for n in (row.teacher, row.student) if n}
    assert named and named <= set(names()), sorted(named - set(names()))
