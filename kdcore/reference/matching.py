"""Which published rows a configuration of this project reproduces: the same method (one this project
has), the same teacher and student networks, the same dataset (never another), and the same variant.

A variant is what a row's ``params`` set apart, e.g. logit standardisation: for every parameter that any
row of the method names, the configuration's value (or the method's default) must equal the row's (or the
default), so a plain KD run never matches a standardised KD row nor the reverse. A row that sets a
parameter the method does not declare matches nothing. Torch-free.
"""

from __future__ import annotations

from typing import Any, Mapping

from kdcore.architectures import canonical
from kdcore.reference.results import PublishedResult, all_results
from kdcore.registry import METHODS

_UNSET = object()  # a parameter the method does not declare


def _default(method: str, name: str) -> Any:
    fields = METHODS[method].params.model_fields
    return fields[name].default if name in fields else _UNSET


# (the rows read, their rows by (method, dataset), each method's variant parameters); None until first used.
_index: tuple[tuple[PublishedResult, ...], dict[tuple[str, str], list[PublishedResult]],
              dict[str, set[str]]] | None = None


def _indexed(method: str, dataset: str) -> tuple[list[PublishedResult], set[str]]:
    """The rows of a method on a dataset, and the parameters any row of the method names: built once per
    reading of the data, so that a configuration nobody published costs a lookup (boards describe hundreds)."""
    global _index
    rows = all_results()
    if _index is None or _index[0] is not rows:
        by_pair: dict[tuple[str, str], list[PublishedResult]] = {}
        names: dict[str, set[str]] = {}
        for row in rows:
            by_pair.setdefault((row.method, row.dataset), []).append(row)
            names.setdefault(row.method, set()).update(row.params)
        _index = (rows, by_pair, names)
    return _index[1].get((method, dataset), []), _index[2].get(method, set())


def _same_variant(row: PublishedResult, params: Mapping[str, Any], names: set[str]) -> bool:
    for name in names:
        default = _default(row.method, name)
        if default is _UNSET:
            if name in row.params:
                return False  # a variant the method cannot run
            continue
        if params.get(name, default) != row.params.get(name, default):
            return False
    return True


def matching(method: str, network: str | None, teacher: str | None, dataset: str,
             params: Mapping[str, Any] | None = None) -> list[PublishedResult]:
    """The published rows a configuration reproduces: ``method`` (a registry name) training ``network``,
    from ``teacher``'s network when it distils, on ``dataset``; ``params`` its hyperparameters. A teacher
    or a student trained alone matches the rows of method ``teacher`` or ``student`` for its network.
    Nothing for a method this project lacks or a configuration without a network."""
    spec = METHODS.get(method)
    candidates, names = _indexed(method, dataset)
    if spec is None or network is None or not candidates:
        return []
    network = canonical(network)
    if spec.teaches:
        wanted_teacher, wanted_student = network, None
    elif spec.needs_teacher:
        if teacher is None:
            return []
        wanted_teacher, wanted_student = canonical(teacher), network
    else:
        wanted_teacher, wanted_student = None, network
    params = params or {}
    found: dict[tuple, PublishedResult] = {}
    for row in candidates:
        if row.teacher == wanted_teacher and row.student == wanted_student and _same_variant(row, params, names):
            # One source printing the same figure in two of its tables is one published result.
            found.setdefault((row.source, row.value, row.reported_as, row.runs), row)
    return list(found.values())
