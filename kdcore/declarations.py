"""Is a method's declaration one the rest of kdcore can use? Checked when the registry reads it, so that a
plugin's mistake is refused with its name at start-up instead of surfacing as a crash in a form, a command
line or the middle of a run.

Hyperparameters are edited as flags (``kd train --gamma 2``), form inputs, study grids
(``kd.temperature=1,2,4``) and group keys, all of which hold a single number, switch, word or choice. A
list-valued hyperparameter would need its own syntax in each of them, and its commas would read as the grid's
list of values, so such a type is refused rather than half-supported; so is a choice of numbers, which a form's
text never matches. Torch-free.
"""

from __future__ import annotations

import types
import typing

from pydantic import ValidationError

from kdcore.methods.base import Hyperparameters, Method

EDITABLE = (bool, int, float, str)
# A choice's values are text: forms and flags send text, and pydantic matches Literal[1, 2] against "2" as no choice.
EDITABLE_TEXT = "a number, a switch (bool), text, or a Literal choice of texts, optionally | None"


def _editable(annotation: object) -> bool:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return all(type(choice) is str for choice in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        kinds = [a for a in typing.get_args(annotation) if a is not type(None)]
        return len(kinds) == 1 and _editable(kinds[0])
    return annotation in EDITABLE


def _shown(annotation: object) -> str:
    return getattr(annotation, "__name__", None) if isinstance(annotation, type) else str(annotation).replace(
        "typing.", "")


def method_problem(method: Method) -> str | None:
    """What is wrong with ``method``'s declaration, naming the field ("hyperparameter 'sizes': ..."), or None."""
    params = method.params
    if not (isinstance(params, type) and issubclass(params, Hyperparameters)):
        return f"params must be a subclass of kdcore.methods.base.Hyperparameters, not {params!r}"
    for name, field in params.model_fields.items():
        if not _editable(field.annotation):
            return (f"hyperparameter {name!r}: type {_shown(field.annotation)} cannot be edited as a flag, a form "
                    f"input or a study grid; declare {EDITABLE_TEXT}")
        if field.is_required():
            return f"hyperparameter {name!r} has no default; every hyperparameter needs one"
    try:
        # Strict, as the API validates a run: a default that JSON could not send is as wrong as one out of range.
        params.model_validate({name: field.get_default() for name, field in params.model_fields.items()},
                              strict=True)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(map(str, first["loc"])) or "its defaults"
        default = params.model_fields[first["loc"][0]].default if first["loc"] else None
        shown = f" default {default!r}" if first["loc"] else ""
        return f"hyperparameter {where!r}:{shown} fails its own declaration: {first['msg']}"
    return None
