"""The one place that knows which methods exist: every file of ``kdcore.methods`` that declares one,
and every method an installed package registers under the ``kdcore.methods`` entry-point group.

Everything else asks the registry instead of branching on a method's name. It is torch-free: method
files import torch only inside the functions that train.
"""

from __future__ import annotations

import importlib
import pkgutil

from kdcore import methods as _methods_package
from kdcore.declarations import method_problem
from kdcore.methods.base import Method
from kdcore.plugins import FailedPlugin, add_plugins, failed_plugins

ENTRY_POINT_GROUP = "kdcore.methods"


def _declared(obj) -> list[Method]:
    """The methods a module (or an entry point's object) declares: METHOD, METHODS, or itself."""
    if isinstance(obj, Method):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [m for m in obj if isinstance(m, Method)]
    found = getattr(obj, "METHODS", None) or ([obj.METHOD] if hasattr(obj, "METHOD") else [])
    return [m for m in found if isinstance(m, Method)]


def _discover() -> dict[str, Method]:
    found: dict[str, Method] = {}
    for module in pkgutil.iter_modules(_methods_package.__path__):
        if module.name != "base":
            for method in _declared(importlib.import_module(f"{_methods_package.__name__}.{module.name}")):
                if (problem := method_problem(method)) is not None:
                    # A built-in's mistake is kdcore's own: fail loudly (the tests import the registry).
                    raise TypeError(f"kdcore.methods.{module.name}: method {method.name!r}: {problem}")
                found[method.name] = method
    return add_plugins(found, ENTRY_POINT_GROUP, lambda obj: {method.name: method for method in _declared(obj)},
                       lambda name, method: method_problem(method))


def failed_method_plugins() -> list[FailedPlugin]:
    """Method plugins this process left out (they failed to load, or their declaration was refused), and why."""
    return failed_plugins(ENTRY_POINT_GROUP)


def _ordered(found: dict[str, Method]) -> dict[str, Method]:
    # The tutorial experiment's methods first, in its order, then the others by name.
    seed = [name for name in SEED_EXPERIMENT if name in found]
    return {name: found[name] for name in [*seed, *sorted(set(found) - set(seed))]}


# The tutorial experiment, in launch order: the teacher first, since the rest distil from it.
SEED_EXPERIMENT: tuple[str, ...] = ("teacher", "student", "kd", "cosine", "fitnet")
METHODS: dict[str, Method] = _ordered(_discover())
KINDS: tuple[str, ...] = tuple(METHODS)
EXPERIMENT_KINDS: tuple[str, ...] = tuple(name for name in SEED_EXPERIMENT if name in METHODS)
TEACHER_KINDS: tuple[str, ...] = tuple(name for name, method in METHODS.items() if method.teaches)
# The student trained alone: what studies and the leaderboard measure distillation against.
BASELINE_KIND: str | None = next((name for name, method in METHODS.items() if method.baseline), None)
