"""The launch page's search form: what it offers (teachers, samplers, pruners, defaults) and its fields read back
into app.searches.service.create_search's request (numbers from their text; the space one item a line)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from app.runs.form import teacher_label
from app.runs.service import teacher_choices
from app.searches.service import SEARCH_DEFAULTS
from kdcore.search.optuna_setup import PRUNERS, SAMPLERS

WHOLE = ("trials", "parallelism", "top_k", "seeds", "seed", "max_runs", "subset", "epochs", "teacher_run_id")
FRACTIONS = ("validation", "max_hours")
TEXT = ("name", "dataset", "sampler", "pruner")
EXAMPLE_SPACE = "kd.temperature=log:1:16\nkd.distill_weight=0.1:0.9"


def search_form(session: Session) -> dict[str, Any]:
    return {"teachers": [(run.id, teacher_label(run)) for run in teacher_choices(session)],
            "samplers": SAMPLERS, "pruners": PRUNERS, "defaults": SEARCH_DEFAULTS, "example_space": EXAMPLE_SPACE}


def _number(text: str, cast) -> Any:
    try:
        return cast(text)
    except ValueError:
        return text  # the service names the field that is not a number


def search_payload(form) -> dict[str, Any]:
    """The form's filled fields as the API's JSON would give them; blank fields take their defaults."""
    payload: dict[str, Any] = {}
    for name in (*WHOLE, *FRACTIONS, *TEXT):
        text = str(form.get(name) or "").strip()
        if text:
            payload[name] = _number(text, int) if name in WHOLE else _number(text, float) if name in FRACTIONS \
                else text
    methods = str(form.get("methods") or "").replace(",", " ").split()
    if methods:
        payload["methods"] = methods
    space = [line.strip() for line in str(form.get("space") or "").splitlines() if line.strip()]
    if space:
        payload["space"] = space
    return payload
