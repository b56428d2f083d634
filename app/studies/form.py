"""The launch page's study form: methods (each with its hyperparameters), student networks, seeds, the
teacher, a grid of hyperparameter values and a recipe preset; read back into app.studies.service.create_study's
payload, with the number of runs it will train, and its errors placed beside their fields.

Form values arrive as ``{name: [value, ...]}``: several methods and networks can be checked at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from app.runs.form import FormError, dataset_field, default_dataset, form_field, parse_seeds, teacher_label
from app.web.formatting import fmt_params
from kdcore.architectures import canonical, catalog
from kdcore.data.catalog import DatasetInfo
from kdcore.presets import PRESET_TITLES, PRESETS
from kdcore.registry import BASELINE_KIND, METHODS
from kdcore.studies.study import StudyInputError, StudySpec, expand, parse_spec, run_count

Values = Mapping[str, list[str]]
# Every method but the teacher's own: a study trains its teacher, or distils from a teacher run.
STUDY_METHODS = tuple(name for name, method in METHODS.items() if not method.teaches)
# The question a study answers first: does distillation beat the student trained alone?
DEFAULT_METHODS = tuple(name for name in (BASELINE_KIND, next((k for k in STUDY_METHODS if METHODS[k].needs_teacher),
                                                              None)) if name)
DEFAULT_SEEDS = "1, 2, 3"
TEXT_FIELDS = ("name", "dataset", "subset", "validation", "seeds", "epochs", "teacher_run_id", "teacher_epochs", "grid",
               "preset")
# Where each error shows: the field its loc starts with; anything else goes above the form.
FIELDS = (*TEXT_FIELDS, "methods", "architectures", "teacher_per_seed")
GRID_EXAMPLE = "kd.temperature = 1, 2, 4, 8"
TEACHER_EPOCHS = next((m.default_epochs for m in METHODS.values() if m.teaches), None)


def defaults(datasets: list[DatasetInfo]) -> dict[str, list[str]]:
    return {"methods": list(DEFAULT_METHODS), "seeds": [DEFAULT_SEEDS], "dataset": [default_dataset(datasets)]}


def _text(values: Values, name: str) -> str:
    given = values.get(name) or [""]
    return given[-1].strip()


def _grid_value(text: str) -> Any:
    # A hyperparameter's values as JSON would give them, so "4" and "4.0" are one value, "true" a boolean.
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return {"true": True, "false": False}.get(text.lower(), text)


def parse_grid(text: str) -> dict[str, list[Any]]:
    """One swept hyperparameter per line, ``method.param = v1, v2, …``. Raises FormError."""
    grid: dict[str, list[Any]] = {}
    errors = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        key, equals, rest = (part.strip() for part in line.partition("="))
        if not equals or not key:
            errors.append({"loc": ["grid", f"line {number}"], "type": "grid_line",
                           "msg": f"line {number}: write method.param = values, e.g. {GRID_EXAMPLE}"})
        elif key in grid:
            errors.append({"loc": ["grid", key], "type": "duplicate", "msg": "is on two lines: give its values once"})
        else:
            grid[key] = [_grid_value(value.strip()) for value in rest.split(",") if value.strip()]
    if errors:
        raise FormError(errors)
    return grid


def study_payload(values: Values) -> dict[str, Any]:
    """The form as create_study's payload (strings that create_study parses). Empty fields take the
    study's defaults. Raises FormError when the seeds or the grid cannot be read."""
    payload: dict[str, Any] = {name: value for name in ("name", "dataset", "subset", "validation", "epochs",
                                                         "teacher_run_id", "teacher_epochs", "preset")
                               if (value := _text(values, name))}
    payload["methods"] = [m for m in values.get("methods", []) if m]
    architectures = [a for a in values.get("architectures", []) if a]
    if architectures:
        payload["architectures"] = architectures
    if _text(values, "teacher_per_seed") in ("true", "on"):
        payload["teacher_per_seed"] = True
    errors = []
    try:
        payload["seeds"] = parse_seeds(_text(values, "seeds"))
    except FormError as exc:
        errors += exc.errors
    try:
        grid = parse_grid((values.get("grid") or [""])[-1])
        if grid:
            payload["grid"] = grid
    except FormError as exc:
        errors += exc.errors
    if errors:
        raise FormError(errors)
    return payload


def place_errors(errors: list[dict], payload: Mapping[str, Any] | None = None) -> tuple[dict[str, str], list[str]]:
    """Each error beside the field its loc names, saying which method, grid line or seed it is about."""
    payload = payload or {}
    placed: dict[str, str] = {}
    general: list[str] = []
    for error in errors:
        loc, msg = list(error.get("loc") or []), error["msg"]
        head = str(loc[0]) if loc else ""
        item = loc[1] if len(loc) > 1 else None
        if head == "methods" and error.get("type") == "too_short":
            msg = "choose at least one method"
        elif head in ("methods", "seeds", "architectures") and isinstance(item, int):
            listed = payload.get(head) or []
            if item < len(listed):
                msg = f"{listed[item]}: {msg}"
        elif head == "grid" and item is not None and not str(item).startswith("line "):
            msg = f"{item}: {msg}"
        if head in FIELDS:
            placed[head] = f"{placed[head]}; {msg}" if head in placed else msg
        else:
            general.append(f"{'.'.join(map(str, loc))}: {msg}" if loc else msg)
    return placed, general


def run_estimate(values: Values, limit: int) -> dict[str, Any]:
    """How many runs the form's study will train (kdcore.studies.study.run_count), or why that is not known yet."""
    estimate: dict[str, Any] = {"count": None, "limit": limit, "problem": None}
    try:
        payload = study_payload(values)
    except FormError as exc:
        return {**estimate, "problem": exc.errors[0]["msg"]}
    external_teacher = bool(payload.pop("teacher_run_id", None))
    spec = None
    try:
        spec = parse_spec(payload)
        # Expanded as the submit expands it, so that a grid line the submit refuses is refused here in its
        # words. A study past the limit is counted and flagged instead.
        expand(spec, external_teacher=external_teacher, max_runs=limit)
    except StudyInputError as exc:
        if spec is not None and all(error["type"] == "too_many_runs" for error in exc.errors):
            return _counted(estimate, spec, external_teacher)
        placed, general = place_errors(exc.errors, payload)
        return {**estimate, "problem": next(iter([*placed.values(), *general]))}
    return _counted(estimate, spec, external_teacher)


def _counted(estimate: dict[str, Any], spec: StudySpec, external_teacher: bool) -> dict[str, Any]:
    total = run_count(spec, external_teacher)
    students = run_count(spec, external_teacher=True)
    return {**estimate, "count": total, "teachers": total - students, "students": students,
            "seeds": len(spec.seeds), "configurations": students // len(spec.seeds), "over": total > estimate["limit"]}


def _as_typed(value: Any) -> str:
    # A default as a grid line would give it.
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _method_choice(name: str, checked: bool) -> dict[str, Any]:
    method = METHODS[name]
    defaults = method.params().model_dump()
    return {"name": name, "title": method.title, "description": method.description, "checked": checked,
            "needs_teacher": method.needs_teacher, "default_epochs": method.default_epochs,
            "params": [(f"{name}.{param}", _as_typed(value)) for param, value in defaults.items()]}


def chosen_methods(values: Values) -> list[dict[str, Any]]:
    """The checked methods with their hyperparameters: what a grid line may sweep."""
    checked = set(values.get("methods", []))
    return [_method_choice(name, True) for name in STUDY_METHODS if name in checked]


def study_form(values: Values, errors: dict[str, str], datasets: list[DatasetInfo], teachers: list,
               limit: int) -> dict[str, Any]:
    """The study form's fields. ``values`` empty: a fresh form with the defaults."""
    values = values or defaults(datasets)
    checked = set(values.get("methods", []))
    dataset_name = _text(values, "dataset") or default_dataset(datasets)
    num_classes = next((d.num_classes for d in datasets if d.name == dataset_name and d.classes), 10)
    picked = {canonical(name) for name in values.get("architectures", [])}
    networks = [(name, f"{name} · {fmt_params(info['parameters'])} · {fmt_params(info.get('macs'))} MACs", name in picked)
                for name, info in catalog(num_classes).items()]
    networks += [(name, f"{name} (not found)", True) for name in sorted(picked - {n for n, _, _ in networks})]

    def text(name: str, label: str, help_text: str | None = None, input_: str = "text") -> dict[str, Any]:
        return {"name": name, "label": label, "input": input_, "value": _text(values, name), "error": errors.get(name),
                "help": help_text, "required": False, "step": "1"}

    teacher_value = _text(values, "teacher_run_id")
    teacher_choices = [("", "Train one in this study")] + [(str(t.id), teacher_label(t)) for t in teachers]
    if teacher_value and teacher_value not in {value for value, _ in teacher_choices}:
        teacher_choices.append((teacher_value, f"#{teacher_value} (not a teacher run)"))
    preset = _text(values, "preset")
    own_epochs = ", ".join(f"{m} {METHODS[m].default_epochs}" for m in STUDY_METHODS if m in checked)
    return {
        "error": errors.get(""), "invalid": bool(errors),
        "methods": [_method_choice(name, name in checked) for name in STUDY_METHODS],
        "methods_error": errors.get("methods"),
        "chosen": chosen_methods(values),
        "networks": networks, "networks_error": errors.get("architectures"),
        "seeds": text("seeds", "Seeds", "A list (1, 2, 3) or a count (3: seeds 1, 2, 3); each configuration "
                      "trains once per seed"),
        "epochs": text("epochs", "Epochs (students)", "Empty: the preset's, else each method's own"
                       + (f" ({own_epochs})" if own_epochs else ""), "number"),
        "teacher": {"name": "teacher_run_id", "label": "Teacher", "input": "select", "value": teacher_value,
                    "choices": teacher_choices, "error": errors.get("teacher_run_id"), "required": False,
                    "help": "Distil from a completed, queued or running teacher run, or train one first"},
        "teacher_epochs": text("teacher_epochs", "Teacher epochs", "When the study trains it; empty: the "
                               f"preset's, else the teacher's own ({TEACHER_EPOCHS})", "number"),
        "teacher_per_seed": {"name": "teacher_per_seed", "label": "One teacher per seed", "input": "checkbox",
                             "checked": _text(values, "teacher_per_seed") in ("true", "on"),
                             "error": errors.get("teacher_per_seed"), "value": "true",
                             "help": "Each seed's students distil from their own teacher, so the spread "
                                     "includes the teacher's; else one teacher, with the first seed"},
        "grid": {"name": "grid", "label": "Grid", "value": (values.get("grid") or [""])[-1],
                 "error": errors.get("grid"), "example": GRID_EXAMPLE},
        "name": text("name", "Name", "Optional: how lists show the study"),
        "dataset": dataset_field(form_field("dataset", dataset_name, errors.get("dataset")), datasets),
        "subset": form_field("subset", _text(values, "subset") or None, errors.get("subset")),
        "validation": form_field("validation", _text(values, "validation") or None, errors.get("validation")),
        "preset": {"name": "preset", "label": "Preset", "input": "select", "value": preset,
                   "error": errors.get("preset"), "required": False,
                   "help": PRESET_TITLES.get(preset, "The tutorial's recipe: Adam, constant learning rate"),
                   "choices": [("", "tutorial recipe"), *((name, name) for name in PRESETS)]},
        "estimate": run_estimate(values, limit),
    }

