"""kdcore.studies.study's per-entry epochs: a method entry may train its students for its own number of epochs."""

from __future__ import annotations

import pytest

from kdcore.studies.study import StudyInputError, expand, parse_spec, run_count


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
