"""kdcore.studies.study's per-entry epochs (a method entry may train its students for its own number of
epochs), and the baseline student each run of a study or experiment is compared with."""

from __future__ import annotations

import pytest

from kdcore.config import RunConfig
from kdcore.studies.study import (
    StudyInputError,
    baseline_key,
    expand,
    group_key,
    own_baselines,
    parse_spec,
    run_count,
)


def _epochs_by_method(plan) -> dict[str, set[int]]:
    found: dict[str, set[int]] = {}
    for member in plan.members:
        found.setdefault(member.config.kind, set()).add(member.config.epochs)
    return found


def test_an_entrys_epochs_win_over_the_studys_and_the_methods():
    spec = parse_spec({"dataset": "synthetic", "seeds": [1, 2], "epochs": 3, "teacher_epochs": 4,
                       "methods": ["student", {"method": "kd", "epochs": 7}, {"method": "cosine"}]})
    plan = expand(spec)
    assert _epochs_by_method(plan) == {"teacher": {4}, "student": {3}, "kd": {7}, "cosine": {3}}
    assert run_count(spec) == len(plan.members) == 1 + 3 * 2


def test_without_study_epochs_an_entry_without_its_own_keeps_the_methods_default():
    spec = parse_spec({"dataset": "synthetic", "seeds": [1], "methods": ["student", {"method": "kd", "epochs": 2}]})
    assert _epochs_by_method(expand(spec)) == {"teacher": {20}, "student": {20}, "kd": {2}}


def test_the_same_method_with_other_epochs_is_another_configuration():
    spec = parse_spec({"dataset": "synthetic", "seeds": [1], "methods": [{"method": "student", "epochs": 2},
                                                                         {"method": "student", "epochs": 4}]})
    assert sorted(m.config.epochs for m in expand(spec).students) == [2, 4]
    twice = parse_spec({"dataset": "synthetic", "seeds": [1], "methods": [{"method": "student", "epochs": 2},
                                                                          {"method": "student", "epochs": 2}]})
    with pytest.raises(StudyInputError) as caught:
        expand(twice)
    assert [e["loc"] for e in caught.value.errors] == [["methods", 1]]


@pytest.mark.parametrize("epochs", [0, 1001, "many"])
def test_an_entrys_epochs_are_validated(epochs):
    with pytest.raises(StudyInputError) as caught:
        parse_spec({"seeds": [1], "methods": [{"method": "kd", "epochs": epochs}]}, strict=True)
    assert ["methods", 0, "MethodEntry", "epochs"] in [e["loc"] for e in caught.value.errors]


def _by_kind(configs, keys) -> dict[str, str | None]:
    return {f"{c.kind}@{c.epochs}/{c.architecture}": key for c, key in zip(configs, keys)}


def test_a_run_compares_with_the_student_of_its_own_network_data_recipe_and_epochs():
    kd = RunConfig(kind="kd", dataset="synthetic", epochs=4, lr=0.01)
    student = RunConfig(kind="student", dataset="synthetic", epochs=4, lr=0.01, seed=7)
    assert baseline_key(kd) == group_key(student)
    for other in ({"epochs": 3}, {"lr": 0.001}, {"architecture": "resnet8x4"}, {"dataset": "cifar10"}):
        assert baseline_key(kd.model_copy(update=other)) != group_key(student), other
    # What belongs to distillation does not choose the student.
    assert baseline_key(RunConfig(kind="dkd", dataset="synthetic", epochs=4, lr=0.01, teacher_weights="best")) \
        == group_key(student)


def test_a_submission_compares_its_runs_with_the_students_it_trains():
    # The seed experiment: 10-epoch distilled students against its 20-epoch student, as the seed does.
    seed = [RunConfig(kind=k, dataset="synthetic") for k in ("teacher", "student", "kd", "cosine")]
    keys = _by_kind(seed, own_baselines(seed))
    student = group_key(seed[1])
    assert keys == {"teacher@20/tutorial_teacher": baseline_key(seed[0]), "student@20/tutorial_student": student,
                    "kd@10/tutorial_student": student, "cosine@10/tutorial_student": student}
    # A student of the run's own epochs wins; two others and none of its own is no guess: its own epochs.
    spec = parse_spec({"dataset": "synthetic", "seeds": [1, 2], "teacher_epochs": 2,
                       "methods": [{"method": "student", "epochs": 2}, {"method": "student", "epochs": 4},
                                   {"method": "kd", "epochs": 2}, {"method": "cosine", "epochs": 3}]})
    configs = [m.config for m in expand(spec).members]
    keys = _by_kind(configs, own_baselines(configs))
    assert keys["kd@2/tutorial_student"] == group_key(configs[1]) and configs[1].epochs == 2
    assert keys["cosine@3/tutorial_student"] == baseline_key(configs[-1])
    assert keys["cosine@3/tutorial_student"] not in {group_key(c) for c in configs}
