"""The layout's rules, read from the import graph: no module imports itself through others, and imports go
only downward (the contracts in pyproject.toml's [tool.importlinter], checked by import-linter). A broken
rule fails with import-linter's report, which names the import and its line."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import app
import kdcore

if sys.version_info < (3, 11):  # import-linter 2.17 and tomllib need 3.11; the [test] extra skips it below
    pytest.skip("the layout checks need Python 3.11", allow_module_level=True)

import tomllib  # noqa: E402
from importlinter.cli import lint_imports  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_imports_keep_the_contracts():
    # In a process of its own: import-linter configures logging as a command does, which would silence the
    # loggers of the tests that follow.
    code = (f"import sys; from importlinter.cli import lint_imports; "
            f"sys.exit(lint_imports(config_filename={str(ROOT / 'pyproject.toml')!r}, no_cache=True, no_logo=True))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(CONTRACTS)} kept, 0 broken" in result.stdout


def _layered(contract_id: str) -> set[str]:
    layers = next(c["layers"] for c in CONTRACTS if c["id"] == contract_id)
    return {name.strip() for layer in layers for name in layer.split("|")}


def _top_level(package) -> set[str]:
    return {f"{package.__name__}.{module.name}" for module in pkgutil.iter_modules(package.__path__)}


def test_every_top_level_module_sits_in_a_layer():
    # A module outside every layer would escape the layers contract; kdcore.stats and kdcore.study are
    # only the former names of kdcore.studies.stats and kdcore.studies.study, imported by nothing here.
    assert _top_level(app) <= _layered("app-layers")
    assert _top_level(kdcore) - {"kdcore.stats", "kdcore.study"} <= _layered("kdcore-layers")


def test_app_holds_feature_packages_and_its_entry_points_only():
    modules = {module.name for module in pkgutil.iter_modules(app.__path__) if not module.ispkg}
    assert modules == {"main", "cli", "settings"}
