"""The README's method table lists every built-in method, each with what it needs and its defaults, and each
distilling method (but the tutorial's cosine) with its paper's year."""

from __future__ import annotations

import re
from pathlib import Path

from kdcore.registry import METHODS

README = Path(__file__).resolve().parents[1] / "README.md"
HEADER = "| method | what it adds to CE | needs | defaults |"


def _rows() -> dict[str, list[str]]:
    lines = README.read_text().splitlines()
    start = lines.index(HEADER) + 2
    rows = {}
    for line in lines[start:]:
        if not line.startswith("| "):
            break
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        for name in re.findall(r"`([a-z0-9_]+)`", cells[0]):
            rows[name] = cells
    return rows


def test_every_built_in_method_has_a_row_and_no_row_is_stale():
    built_in = {name for name, method in METHODS.items() if method.loss.__module__.startswith("kdcore.methods.")}
    assert set(_rows()) == built_in


def test_each_distilling_row_says_what_it_needs_and_cites_its_paper():
    for name, cells in _rows().items():
        assert len(cells) == 4, (name, cells)
        if METHODS[name].needs_teacher:
            assert cells[2], f"{name}: what it needs is empty"
            assert cells[3], f"{name}: its defaults are empty"
            if name != "cosine":
                assert re.search(r"\b(19|20)\d\d\b", cells[1]), f"{name}: no paper (year) in {cells[1]!r}"
