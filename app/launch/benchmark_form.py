"""The launch page's CIFAR-100 benchmark form (the cifar100-benchmark preset, kdcore.studies.benchmark): the pairs
and methods to check, seeds, epochs, the dataset and a subset; read back into POST /api/benchmarks' body, with
its errors beside their fields. Values arrive as ``{name: [value, ...]}``, several pairs and methods at once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.runs.form import FormError, dataset_choices, parse_seeds
from kdcore.data.catalog import DatasetInfo
from kdcore.registry import METHODS
from kdcore.studies.benchmark import DEFAULT_METHODS, DEFAULT_SEEDS, PAIRS, BenchmarkSpec

Values = Mapping[str, list[str]]
FIELDS = ("pairs", "methods", "seeds", "epochs", "dataset", "subset", "name")
DISTILLING = tuple(name for name, method in METHODS.items() if method.needs_teacher)


def _text(values: Values, name: str) -> str:
    return (values.get(name) or [""])[-1].strip()


def defaults(datasets: list[DatasetInfo]) -> dict[str, list[str]]:
    """A fresh form: every pair, the default methods and seeds, the recipe's epochs, CIFAR-100 where it is
    here, else the first dataset of 100 classes (synthetic100 on a machine without CIFAR-100)."""
    hundred = [d.name for d in datasets if d.num_classes == 100 and not d.problem]
    dataset = "cifar100" if "cifar100" in hundred or not hundred else hundred[0]
    return {"pairs": [p.key for p in PAIRS], "methods": list(DEFAULT_METHODS),
            "seeds": [", ".join(map(str, DEFAULT_SEEDS))], "epochs": [str(BenchmarkSpec.model_fields["epochs"].default)],
            "dataset": [dataset]}


def benchmark_payload(values: Values) -> dict[str, Any]:
    """The form as the API's body; empty fields take the preset's defaults. Raises FormError for unreadable
    seeds, epochs or subset."""
    payload: dict[str, Any] = {"pairs": [p for p in values.get("pairs", []) if p],
                               "methods": [m for m in values.get("methods", []) if m]}
    errors = []
    for name in ("name", "dataset"):
        if text := _text(values, name):
            payload[name] = text
    for name in ("epochs", "subset"):
        if text := _text(values, name):
            try:
                payload[name] = int(text)
            except ValueError:
                errors.append({"loc": [name], "msg": f"{text!r} is not a whole number", "type": "int_parsing"})
    try:
        payload["seeds"] = parse_seeds(_text(values, "seeds"))
    except FormError as exc:
        errors += exc.errors
    if errors:
        raise FormError(errors)
    return payload


def place_errors(errors: list[dict], payload: Mapping[str, Any] | None = None) -> tuple[dict[str, str], list[str]]:
    """Each error beside the field its loc names (which pair or method it is about); the rest above the form."""
    placed: dict[str, str] = {}
    general: list[str] = []
    for error in errors:
        loc, msg = list(error.get("loc") or []), error["msg"]
        head = str(loc[0]) if loc else ""
        if head in ("pairs", "methods") and error.get("type") == "too_short":
            msg = f"choose at least one of the {head}"
        if head in FIELDS:
            placed[head] = f"{placed[head]}; {msg}" if head in placed else msg
        else:
            general.append(f"{'.'.join(map(str, loc))}: {msg}" if loc else msg)
    return placed, general


def benchmark_form(values: Values, errors: dict[str, str], datasets: list[DatasetInfo]) -> dict[str, Any]:
    """What the template draws: each pair and method with its box, the text fields with their values."""
    values = values or defaults(datasets)
    pairs, methods = set(values.get("pairs", [])), set(values.get("methods", []))
    dataset = _text(values, "dataset")
    return {"pairs": [{"key": p.key, "label": p.label, "lr": p.lr, "checked": p.key in pairs} for p in PAIRS],
            "methods": [{"name": n, "title": METHODS[n].title, "checked": n in methods} for n in DISTILLING],
            "seeds": _text(values, "seeds"), "epochs": _text(values, "epochs"), "subset": _text(values, "subset"),
            "name": _text(values, "name"), "dataset": dataset, "datasets": dataset_choices(datasets, dataset),
            "errors": errors}
