"""The methods page (docs/methods.md) stays true to the code: its method table has one row per built-in method and
no stale row, each distilling row says what it needs, gives its defaults and cites its paper's year; its network
table lists every network of the catalog with the catalog's parameter count and MACs. The plugin page
(docs/plugins.md) names every field of the method contract."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from kdcore.architectures import catalog
from kdcore.methods.base import Method, Stage
from kdcore.registry import METHODS

DOCS = Path(__file__).resolve().parents[1] / "docs"
METHODS_PAGE = DOCS / "methods.md"
PLUGINS_PAGE = DOCS / "plugins.md"
METHOD_HEADER = "| method | what it adds to CE | paper | needs | defaults |"
NETWORK_HEADER = "| network | parameters | MACs | what it is | taps | other names |"
NAME = re.compile(r"`([A-Za-z0-9_]+)`")
# "1,186,986 (10 classes)": the count at the class count named, else at 100 classes.
PARAMETERS = re.compile(r"^([\d,]+)(?: \((\d+) classes\))?$")
MACS = re.compile(r"^([\d.]+)([MG])$")


def table(page: Path, header: str) -> list[list[str]]:
    """The cells of each row of the table under ``header`` (its separator line skipped)."""
    lines = page.read_text().splitlines()
    assert header in lines, f"{page.name} has no table headed {header!r}"
    rows = []
    for line in lines[lines.index(header) + 2:]:
        if not line.startswith("| "):
            break
        rows.append([cell.strip() for cell in line.strip()[1:-1].split("|")])  # no cell holds a "|"
    return rows


def method_rows() -> dict[str, list[str]]:
    return {name: cells for cells in table(METHODS_PAGE, METHOD_HEADER) for name in NAME.findall(cells[0])}


def network_rows() -> dict[str, list[str]]:
    return {NAME.fullmatch(cells[0]).group(1): cells for cells in table(METHODS_PAGE, NETWORK_HEADER)}


def test_every_built_in_method_has_a_row_and_no_row_is_stale():
    built_in = {name for name, method in METHODS.items() if method.loss.__module__.startswith("kdcore.methods.")}
    assert set(method_rows()) == built_in


def test_each_distilling_row_says_what_it_needs_gives_its_defaults_and_cites_its_paper():
    for name, cells in method_rows().items():
        assert len(cells) == 5, (name, cells)
        if METHODS[name].needs_teacher:
            method, adds, paper, needs, defaults = cells
            assert adds, f"{name}: what it adds is empty"
            assert needs, f"{name}: what it needs is empty"
            assert defaults, f"{name}: its defaults are empty"
            if name != "cosine":  # the tutorial's own loss: no paper
                shown = re.sub(r"\]\([^)]*\)", "]", paper)  # a link's address is no citation (arXiv ids look like years)
                assert re.search(r"\b(19|20)\d\d\b", shown), f"{name}: no paper (year) in {paper!r}"


def test_the_rows_name_what_the_declarations_say_a_method_needs():
    for name, cells in method_rows().items():
        method, needs = METHODS[name], cells[3]
        expected = {"pre-stage": method.pre_stage is not None, "strong view": bool(method.views),
                    "indices": method.indexed, "teacher parts": method.teacher_parts is not None,
                    "host sync": bool(method.host_sync), "modules": method.modules is not None}
        for word, declared in expected.items():
            assert (word in needs) == declared, f"{name}: {word!r} {'missing from' if declared else 'in'} {needs!r}"


def _macs(text: str) -> float:
    match = MACS.fullmatch(text)
    assert match, f"MACs {text!r} is not a figure like 94.2M or 1.08G"
    return float(match.group(1)) * {"M": 1e6, "G": 1e9}[match.group(2)]


@pytest.mark.timeout(300)
def test_every_network_of_the_catalog_has_a_row_with_its_parameters_and_macs():
    rows = network_rows()
    described = {classes: catalog(classes) for classes in (10, 100)}
    assert set(rows) == set(described[10]), "the networks table and the catalog name different networks"
    for name, cells in rows.items():
        match = PARAMETERS.fullmatch(cells[1])
        assert match, f"{name}: parameters {cells[1]!r}"
        classes = int(match.group(2) or 100)
        entry = described[classes][name]
        assert int(match.group(1).replace(",", "")) == entry["parameters"], f"{name} at {classes} classes"
        # Three significant figures, as the table rounds them.
        assert _macs(cells[2]) == pytest.approx(entry["macs"], rel=0.006), f"{name}: MACs {cells[2]}"


def test_the_plugin_page_names_every_field_of_the_method_contract():
    text = PLUGINS_PAGE.read_text()
    for declared in (Method, Stage):
        missing = [f.name for f in dataclasses.fields(declared) if f"`{f.name}`" not in text]
        assert not missing, f"docs/plugins.md does not name {declared.__name__}'s {', '.join(missing)}"
