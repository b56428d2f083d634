"""A search space: per hyperparameter, a range (linear or log) or choices, checked against what the method
declares (its pydantic field's type and bounds), as Optuna distributions.

Written ``method.param=SPEC`` on the command line, as the API takes it:
``kd.temperature=log:1:16`` (log-uniform), ``kd.distill_weight=0.1:0.9`` (uniform), ``kd.standardize=true,false``
(choices). An integer hyperparameter's range draws integers. With several methods the method itself is a choice
(``"method"``) and each method's hyperparameters are drawn only in its trials. Torch-free.
"""

from __future__ import annotations

import json
import math
import typing
from dataclasses import dataclass
from typing import Any, Literal, Mapping

from pydantic import ValidationError

from kdcore.config import RunConfig
from kdcore.errors import KDError
from kdcore.registry import METHODS

METHOD_KEY = "method"  # the parameter that chooses among several methods
DEFAULT_VALIDATION = 0.1  # the split a search holds out when none is given (an explicit 0 is refused)
GRID_MAX_INTEGERS = 50  # an integer range a grid search enumerates, at most this many values


class SearchSpaceError(KDError):
    """A search space that does not fit the methods' declared hyperparameters; the message names the item."""


@dataclass(frozen=True)
class Dimension:
    """One searched hyperparameter of one method."""

    method: str
    name: str
    kind: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.method}.{self.name}"

    def distribution(self):
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "categorical":
            return CategoricalDistribution(self.choices)
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log)
        return FloatDistribution(self.low, self.high, log=self.log)

    def suggest(self, trial) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.key, self.choices)
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, log=self.log)

    def text(self) -> str:
        """The dimension as it is written on the command line."""
        if self.kind == "categorical":
            return f"{self.key}={','.join(json.dumps(c) if not isinstance(c, str) else c for c in self.choices)}"
        bounds = f"{_plain(self.low)}:{_plain(self.high)}"
        return f"{self.key}={'log:' if self.log else ''}{bounds}"


@dataclass(frozen=True)
class SearchSpace:
    methods: tuple[str, ...]
    dimensions: tuple[Dimension, ...]

    def distributions(self) -> dict[str, Any]:
        """Every parameter Optuna may draw, by name (``method.param``, and ``method`` with several methods)."""
        from optuna.distributions import CategoricalDistribution

        found = {METHOD_KEY: CategoricalDistribution(self.methods)} if len(self.methods) > 1 else {}
        return {**found, **{d.key: d.distribution() for d in self.dimensions}}

    def suggest(self, trial) -> dict[str, Any]:
        """Draw a trial's parameters (define-by-run: a method's hyperparameters only in its own trials)."""
        params = {METHOD_KEY: trial.suggest_categorical(METHOD_KEY, self.methods)} if len(self.methods) > 1 else {}
        method = self.method_of(params)
        params.update({d.key: d.suggest(trial) for d in self.dimensions if d.method == method})
        return params

    def method_of(self, params: Mapping[str, Any]) -> str:
        return params.get(METHOD_KEY, self.methods[0]) if len(self.methods) > 1 else self.methods[0]

    def method_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A trial's hyperparameters of its method, by their own names."""
        method = self.method_of(params)
        return {d.name: params[d.key] for d in self.dimensions if d.method == method and d.key in params}

    def config_for(self, params: Mapping[str, Any], base_config: RunConfig | Mapping[str, Any]) -> RunConfig:
        """The run a trial trains: the base configuration's recipe with the trial's method and hyperparameters.
        Hyperparameters the base gives for that method and the trial does not draw are kept."""
        base = base_config.to_json_dict() if isinstance(base_config, RunConfig) else dict(base_config)
        method = self.method_of(params)
        fixed = base.pop("params", None) or {}
        if base.pop("kind", None) in (None, method):
            # Hyperparameters fixed for the whole search: each method takes those it declares.
            kept = {name: value for name, value in fixed.items() if name in METHODS[method].param_names()}
        else:
            kept = {}
        try:
            return RunConfig.model_validate({**base, "kind": method, "params": {**kept, **self.method_params(params)}})
        except ValidationError as error:
            problem = error.errors()[0]
            where = ".".join(map(str, problem["loc"]))
            raise SearchSpaceError(f"trial parameters {dict(params)}: {where}: "
                                   f"{problem['msg'].removeprefix('Value error, ')}") from None

    def grid(self) -> dict[str, list[Any]]:
        """The values a grid search tries, by parameter: choices, and every integer of an integer range. A
        float range has no grid: it is refused with the choices to write instead."""
        if len(self.methods) > 1:
            raise SearchSpaceError("a grid search takes one method (its grid is every combination of that method's "
                                   "values); search several methods with tpe or random")
        grid = {}
        for d in self.dimensions:
            if d.kind == "categorical":
                grid[d.key] = list(d.choices)
            elif d.kind == "int" and not d.log and d.high - d.low < GRID_MAX_INTEGERS:
                grid[d.key] = list(range(int(d.low), int(d.high) + 1))
            else:
                raise SearchSpaceError(f"--space {d.text()}: a grid search needs the values to try, e.g. "
                                       f"{d.key}={_example_values(d)}")
        return grid

    def texts(self) -> list[str]:
        return [d.text() for d in self.dimensions]


def validation_error(config: RunConfig) -> str | None:
    """Why a search may not run with this recipe (None: it may). Trials are pruned and ranked on validation
    accuracy; without a held-out split that would be the test accuracy the confirmation is judged on."""
    if config.validation > 0:
        return None
    return ("a search needs a validation split (validation > 0, e.g. 0.1): its trials are pruned and ranked on "
            "validation accuracy, never on the test set the confirmation reports")


def parse_space(method_names: list[str] | tuple[str, ...], items: list[str]) -> SearchSpace:
    """``(["kd"], ["kd.temperature=log:1:16", "kd.distill_weight=0.1:0.9"])`` → a SearchSpace; raises
    SearchSpaceError naming the first item that does not fit a method's declared hyperparameters."""
    methods = tuple(dict.fromkeys(method_names))
    if not methods:
        raise SearchSpaceError("give at least one method to search")
    for name in methods:
        method = METHODS.get(name)
        if method is None:
            raise SearchSpaceError(f"unknown method {name!r}; choose from: {', '.join(METHODS)}")
        if method.teaches:
            raise SearchSpaceError(f"{name} trains a teacher; a search tunes students that distil from one")
    dimensions: dict[str, Dimension] = {}
    for item in items:
        dimension = parse_dimension(item, methods)
        if dimension.key in dimensions:
            raise SearchSpaceError(f"--space {dimension.key} is given twice; give its range or choices once")
        dimensions[dimension.key] = dimension
    if len(methods) == 1 and not dimensions:
        raise SearchSpaceError(f"nothing to search: give --space {methods[0]}.PARAM=LOW:HIGH for a hyperparameter "
                               f"of {methods[0]} ({', '.join(METHODS[methods[0]].param_names()) or 'it has none'})")
    return SearchSpace(methods, tuple(dimensions.values()))


def parse_dimension(item: str, methods: tuple[str, ...]) -> Dimension:
    key, equals, spec = (part.strip() for part in item.partition("="))
    method_name, dot, name = key.partition(".")
    if not equals or not dot or not name or not spec:
        raise SearchSpaceError(f"--space {item!r}: expected method.param=LOW:HIGH, log:LOW:HIGH or A,B,… "
                               "e.g. kd.temperature=log:1:16")
    if method_name not in methods:
        raise SearchSpaceError(f"--space {item!r}: {method_name} is not among the searched methods "
                               f"({', '.join(methods)})")
    params = METHODS[method_name].params
    if name not in params.model_fields:
        raise SearchSpaceError(f"--space {item!r}: {method_name} has no hyperparameter {name!r}; it has: "
                               f"{', '.join(params.model_fields) or 'none'}")
    field = params.model_fields[name]
    base = next((t for t in typing.get_args(field.annotation) if t is not type(None)), field.annotation)
    numeric = base in (int, float)
    log, text = (True, spec[4:]) if spec.startswith("log:") else (False, spec)
    if ":" in text:
        if not numeric:
            raise SearchSpaceError(f"--space {item!r}: {key} is not a number; give its choices, e.g. "
                                   f"{key}={_choices_example(field)}")
        low, high = (_number(part, item) for part in text.split(":", 1))
        if not low < high:
            raise SearchSpaceError(f"--space {item!r}: the range's low end must be below its high end")
        if log and low <= 0:
            raise SearchSpaceError(f"--space {item!r}: a log range must start above 0")
        for end in (low, high):
            _check_value(method_name, name, int(end) if base is int else end, item)
        if base is int:
            if low != int(low) or high != int(high):
                raise SearchSpaceError(f"--space {item!r}: {key} is an integer; give integer bounds")
            return Dimension(method_name, name, "int", int(low), int(high), log)
        return Dimension(method_name, name, "float", low, high, log)
    if log:
        raise SearchSpaceError(f"--space {item!r}: log: takes a range, log:LOW:HIGH")
    choices = tuple(_value(part.strip()) for part in text.split(",") if part.strip())
    if len(choices) < 2:
        raise SearchSpaceError(f"--space {item!r}: give a range LOW:HIGH or two or more choices A,B (a single value "
                               f"is fixed with --{name.replace('_', '-')} instead)")
    if len(set(map(json.dumps, choices))) != len(choices):
        raise SearchSpaceError(f"--space {item!r}: the choices must be distinct")
    for choice in choices:
        _check_value(method_name, name, choice, item)
    return Dimension(method_name, name, "categorical", choices=choices)


def _check_value(method_name: str, name: str, value: Any, item: str) -> None:
    """The method's own field judges a bound or a choice: its type and its declared bounds."""
    try:
        METHODS[method_name].params.model_validate({name: value})
    except ValidationError as error:
        own = [e for e in error.errors() if e["loc"][:1] == (name,)]
        if own:
            raise SearchSpaceError(f"--space {item!r}: {value!r} is outside what {method_name}.{name} takes: "
                                   f"{own[0]['msg'].removeprefix('Value error, ')}") from None


def _number(text: str, item: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SearchSpaceError(f"--space {item!r}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise SearchSpaceError(f"--space {item!r}: bounds must be finite")
    return value


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _plain(value: float) -> str:
    return f"{value:g}"


def _choices_example(field) -> str:
    args = typing.get_args(field.annotation)
    return ",".join(map(str, args)) if args and all(isinstance(a, str) for a in args) else "true,false"


def _example_values(d: Dimension) -> str:
    if d.log:
        return ",".join(_plain(d.low * (d.high / d.low) ** (i / 3)) for i in range(4))
    return ",".join(_plain(d.low + (d.high - d.low) * i / 3) for i in range(4))
