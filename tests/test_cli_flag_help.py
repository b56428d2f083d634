"""`kd train --help` shows, for a flag several methods declare with different meanings (--weight, --beta),
each method's own description and default, not the first method's for all of them."""

from __future__ import annotations

import re

import pytest

from kdcore.cli import build_parser
from kdcore.registry import METHODS


def _flag_help(flag: str) -> str:
    parser = build_parser()
    train = next(a for a in parser._subparsers._group_actions[0].choices.values() if a.prog.endswith(" train"))
    action = next(a for a in train._actions if flag in a.option_strings)
    return " ".join(action.help.split())


def _declaring(name: str) -> dict:
    return {kind: m.params.model_fields[name] for kind, m in METHODS.items() if name in m.params.model_fields}


@pytest.mark.parametrize("name", ["weight", "beta"])
def test_a_shared_flag_shows_each_methods_own_description_and_default(name):
    fields = _declaring(name)
    assert len({f.description for f in fields.values()}) > 1  # the case in question: one name, several meanings
    shown = _flag_help(f"--{name}")
    for kind, field in fields.items():
        # "dist: Weight β of the inter-class (row) relation (default 1.0)", or with methods that mean the same
        # thing by it listed together before it.
        said = re.search(rf"(?:^|; )[\w, ]*\b{kind}\b[\w, ]*: {re.escape(field.description)} \(defaults? ([^)]*)\)",
                         shown)
        assert said, f"{kind}'s meaning of --{name} is not in: {shown}"
        assert repr(field.default) in said.group(1)


def test_a_flag_all_its_methods_mean_alike_by_is_described_once():
    names = {name for method in METHODS.values() for name in method.params.model_fields}
    alike = {name: fields for name in sorted(names)
             if len(fields := _declaring(name)) > 1 and len({f.description for f in fields.values()}) == 1}
    assert alike
    for name, fields in alike.items():
        [description] = {f.description for f in fields.values()}
        assert _flag_help(f"--{name.replace('_', '-')}").count(description) == 1
