"""docs/configuration.md names every KD_* environment variable the code reads, and no other; and every flag of
`kd serve` and `kd worker`.

A variable counts as read where the code passes its name, a string literal, as the first argument of a call
(``os.environ.get("KD_DB_URL")``, ``os.getenv(...)``, ``_env_number("KD_MAX_BODY", ...)``), subscripts
``os.environ`` with it, or binds it to a module-level constant (``TOKEN = "KD_..."``, read through the name).
Mentions in comments, help texts and messages do not count: they name variables read elsewhere.
"""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "configuration.md"
DOCS = ROOT / "docs"
SOURCES = ("app", "kdcore")
NAME = re.compile(r"^KD_[A-Z0-9_]+$")
MENTION = re.compile(r"\bKD_[A-Z0-9_]+\b")


def _name(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and NAME.match(node.value):
        return node.value
    return None


def variables_read(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            found.update(filter(None, [_name(node.args[0])]))
        elif isinstance(node, ast.Subscript):
            found.update(filter(None, [_name(node.slice)]))
    for node in getattr(tree, "body", ()):
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            found.update(filter(None, [_name(node.value)]))
    return found


def code_variables() -> dict[str, list[str]]:
    """Each KD_* variable the code reads, with the files that read it."""
    where: dict[str, list[str]] = {}
    for package in SOURCES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for name in variables_read(ast.parse(path.read_text(), str(path))):
                where.setdefault(name, []).append(str(path.relative_to(ROOT)))
    return where


def page_variables(path: Path) -> set[str]:
    return set(MENTION.findall(path.read_text()))


def test_the_scan_finds_reads_and_ignores_mentions():
    tree = ast.parse('import os\nA = os.environ.get("KD_ONE")\nB = os.environ["KD_TWO"]\nC = _env_number("KD_THREE", 1)\n'
                     'TOKEN = "KD_FOUR"\nhelp = "or KD_FIVE, comma-separated"\n# KD_SIX\nprint("set KD_SEVEN")\n'
                     'def f(setting="KD_EIGHT"):\n    return setting\n')
    assert variables_read(tree) == {"KD_ONE", "KD_TWO", "KD_THREE", "KD_FOUR"}


def test_the_code_reads_the_variables_the_settings_declare():
    # A guard on the scan itself: were it to find nothing, the page test below would pass vacuously.
    assert {"KD_DB_URL", "KD_DATA_DIR", "KD_RUNS_DIR", "KD_API_TOKEN", "KD_CACHE_DIR",
            "KD_FORWARDED_ALLOW_IPS"} <= set(code_variables())


def test_configuration_page_names_every_variable_the_code_reads():
    read = code_variables()
    missing = {name: files for name, files in read.items() if name not in page_variables(PAGE)}
    assert not missing, f"docs/configuration.md does not name {sorted(missing)}, read by {missing}"


def test_configuration_page_names_no_variable_the_code_does_not_read():
    unknown = page_variables(PAGE) - set(code_variables())
    assert not unknown, f"docs/configuration.md names {sorted(unknown)}, which no code in app/ or kdcore/ reads"


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_no_page_names_a_variable_the_code_does_not_read(page):
    unknown = page_variables(page) - set(code_variables())
    assert not unknown, f"docs/{page.name} names {sorted(unknown)}, which no code in app/ or kdcore/ reads"


def _options(register) -> set[str]:
    parser = argparse.ArgumentParser(prog="kd")
    register(parser.add_subparsers())
    (command,) = parser._subparsers._group_actions[0].choices.values()
    return {option for action in command._actions for option in action.option_strings if option.startswith("--")
            and option != "--help"}


def test_configuration_page_names_every_serve_and_worker_flag():
    from app.cli import register_serve, register_worker

    text = PAGE.read_text()
    flags = _options(register_serve) | _options(register_worker)
    assert {"--host", "--pack", "--forwarded-allow-ips"} <= flags
    missing = sorted(flag for flag in flags if not re.search(rf"`{re.escape(flag)}(?![\w-])", text))
    assert not missing, f"docs/configuration.md does not list these kd serve / kd worker flags: {missing}"
