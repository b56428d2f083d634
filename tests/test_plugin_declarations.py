"""A plugin's declaration is checked when the registry reads it: a bad one is refused with a message
naming the plugin, the field and the problem, warned about once per process, listed by GET /api/methods,
and the built-in methods and the other plugins still load."""

from __future__ import annotations

import logging

import pytest

from kdcore import plugins, registry
from kdcore.declarations import method_problem
from tests.app_fixtures import app, app_settings, client  # noqa: F401
from tests.plugin_install import install_plugin

GOOD = """
    from typing import Literal

    from pydantic import Field
    from kdcore.methods.base import Hyperparameters, Method, logits_only

    class Params(Hyperparameters):
        weight: float = Field(0.5, ge=0, description="Weight of the term")

    def loss(student, teacher, labels, params, progress, modules):
        raise AssertionError("not trained here")

    METHOD = Method(name="good_one", title="Good", description="A sound declaration.", loss=loss, params=Params,
                    needs_teacher=True, taps=logits_only)
"""


def _method_with(field_source: str, name: str) -> str:
    return GOOD.replace('weight: float = Field(0.5, ge=0, description="Weight of the term")', field_source) \
        .replace('"good_one"', repr(name))


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "_failed", {})  # this process's record starts empty for each test
    return tmp_path


def _install(site, **methods: str) -> None:
    install_plugin(site, "kd_test_plugins", methods,
                   {"kdcore.methods": {name: f"kd_test_plugins.{name}" for name in methods}})


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == plugins.__name__ and r.levelno == logging.WARNING]


CASES = {
    "default_out_of_range": ('weight: float = Field(-1.0, ge=0, description="w")',
                             "hyperparameter 'weight': default -1.0 fails its own declaration: "
                             "Input should be greater than or equal to 0"),
    "default_of_another_type": ('weight: int = Field("2", description="w")',
                                "hyperparameter 'weight': default '2' fails its own declaration: "
                                "Input should be a valid integer"),
    "list_valued": ('sizes: list[int] = Field([1, 2], description="s")',
                    "hyperparameter 'sizes': type list[int] cannot be edited as a flag, a form input or a study "
                    "grid; declare a number, a switch (bool), text, or a Literal choice of texts, optionally | None"),
    "choice_of_numbers": ('mode: Literal[1, 2] = 1', "hyperparameter 'mode': type Literal[1, 2] cannot be edited"),
    "no_default": ('weight: float = Field(description="w")', "hyperparameter 'weight' has no default"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_bad_declaration_is_refused_naming_the_plugin_and_the_field_and_the_rest_loads(site, caplog, case):
    field, problem = CASES[case]
    _install(site, good_one=GOOD, **{case: _method_with(field, case)})
    caplog.set_level(logging.WARNING, logger=plugins.__name__)
    found = registry._discover()
    assert "good_one" in found and set(registry.METHODS) <= set(found) and case not in found
    [failure] = plugins.failed_plugins(registry.ENTRY_POINT_GROUP)
    assert (failure.name, failure.value) == (case, f"kd_test_plugins.{case}")
    assert failure.reason.startswith(f"{case!r}: {problem}")
    assert _warnings(caplog) == [f"kdcore.methods plugin kd_test_plugins.{case} left out: {failure.reason}"]


def test_the_built_in_methods_pass_their_own_checks():
    assert {name: method_problem(method) for name, method in registry.METHODS.items()} == \
        {name: None for name in registry.METHODS}


def test_a_choice_and_an_optional_number_are_editable(site):
    source = _method_with('mode: Literal["a", "b"] = "a"\n        cap: float | None = None', "choices")
    _install(site, choices=source)
    assert "choices" in registry._discover() and registry.failed_method_plugins() == []


def test_a_plugin_that_fails_to_import_is_warned_about_once_and_listed(site, caplog):
    _install(site, good_one=GOOD, broken="import a_module_that_is_not_installed\n")
    caplog.set_level(logging.WARNING, logger=plugins.__name__)
    for _ in range(3):  # every read of a registry (the architectures' is read per model built)
        found = registry._discover()
    assert "good_one" in found and "broken" not in found
    [failure] = registry.failed_method_plugins()
    assert failure.reason == "could not be loaded: ModuleNotFoundError: No module named 'a_module_that_is_not_installed'"
    assert len(_warnings(caplog)) == 1


def test_a_name_already_taken_is_refused(site):
    _install(site, kd=GOOD.replace('"good_one"', '"kd"'))
    found = registry._discover()
    assert found["kd"] is registry.METHODS["kd"]
    assert [f.reason for f in registry.failed_method_plugins()] == ["'kd' is already registered"]


def test_the_api_and_the_launch_page_list_a_plugin_left_out(site, client):
    _install(site, broken="import a_module_that_is_not_installed\n")
    registry._discover()  # what importing the registry did at the server's start
    answer = client.get("/api/methods").json()
    assert answer["failed_plugins"] == [{
        "name": "broken", "value": "kd_test_plugins.broken",
        "reason": "could not be loaded: ModuleNotFoundError: No module named 'a_module_that_is_not_installed'"}]
    page = client.get("/launch").text
    note = page[page.index('<details class="help" id="failed-plugins">'):]
    note = note[: note.index("</details>")]
    assert "1 method plugin not loaded" in note and "kd_test_plugins.broken" in note
    assert "No module named &#39;a_module_that_is_not_installed&#39;" in note
