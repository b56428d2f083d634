"""Network architectures by name: every family file of this package that declares ``ARCHITECTURES``
(``{name: (factory, description)}``; a factory takes the class count and returns a model whose
forward gives ``(logits, {tap name: tensor})``), and whatever installed packages register under the
``kdcore.architectures`` entry-point group (a module or a dict of the same form).

The model files import torch. This module does not: a torch-free process (the web server) reads the
``catalog`` (names, descriptions, parameter counts, tap shapes), which a short-lived subprocess
computes once per set of architecture files and which is then kept on disk.

A network that was renamed keeps its former name as an alias (``ALIASES``): configurations, commands,
stored runs and checkpoints may name it either way, and RunConfig stores the current name.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import json
import logging
import os
import pkgutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from kdcore.flights import SingleFlight
from kdcore.plugins import add_plugins

ENTRY_POINT_GROUP = "kdcore.architectures"
_HELPERS = ("shapes", "staged", "cost", "latency", "__main__")
# Former names of renamed networks -> their names now. "seed" meant the tutorial the project started from,
# and read as a random seed; the tutorial's CNNs are named after it now.
ALIASES = {"seed_teacher": "tutorial_teacher", "seed_student": "tutorial_student"}
_catalogs: dict[tuple[str, int], dict[str, dict]] = {}
log = logging.getLogger(__name__)
# One description per class count at a time; a request for another count never waits on it.
_describing = SingleFlight()


def _declared(obj) -> dict[str, tuple[Any, str]]:
    return dict(obj if isinstance(obj, dict) else getattr(obj, "ARCHITECTURES", {}))


def canonical(name: str) -> str:
    """The current name of a network named by ``name`` (itself unless it is a former name)."""
    return ALIASES.get(name, name)


def first_name(name: str) -> str:
    """The name a network had when group keys were first stored (kdcore.studies.study.group_key): a renamed
    network keys its runs under its former name, so that runs stored before the rename group with new ones."""
    return next((old for old, new in ALIASES.items() if new == name), name)


def _built_in() -> dict[str, tuple[Any, str]]:
    found: dict[str, tuple[Any, str]] = {}
    # The tutorial's CNNs first: the forms list architectures in this order.
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: (m.name != "tutorial_cnn", m.name)):
        if module.name not in _HELPERS:
            found.update(_declared(importlib.import_module(f"{__name__}.{module.name}")))
    return found


def registry() -> dict[str, tuple[Any, str]]:
    """``{name: (factory, description)}``. Imports torch: for training processes only."""
    return add_plugins(_built_in(), ENTRY_POINT_GROUP, _declared)


def build(name: str, num_classes: int):
    """A fresh model (``name`` may be a former name); the caller seeds torch's RNG first for reproducible weights."""
    from kdcore.errors import ConfigError

    architectures = registry()
    name = canonical(name)
    if name not in architectures:
        raise ConfigError(f"unknown architecture {name!r}; choose one of: {', '.join(architectures)}")
    return architectures[name][0](num_classes)


def describe_all(num_classes: int) -> dict[str, dict]:
    """``{name: {"description", "parameters", "taps": {tap: shape}}}``, computed without training."""
    from kdcore.architectures.shapes import describe

    built_in, described = set(_built_in()), {}
    for name, (factory, description) in registry().items():
        try:
            described[name] = {"description": description, **describe(factory, num_classes)}
        except Exception as exc:
            if name in built_in:
                raise
            # A plugin's network that cannot be built or run is left out (its runs are refused as an unknown
            # architecture), not the whole catalog with it.
            log.warning("%s plugin network %r left out: it fails at %d classes: %s: %s", ENTRY_POINT_GROUP, name,
                        num_classes, type(exc).__name__, exc)
    return described


@functools.cache
def _fingerprint() -> str:
    """Changes whenever an architecture file, the set of plugins or a plugin's source does, so the disk copy
    stays true. Once per process: every RunConfig validation asks the catalog, and a process keeps the plugin
    code it imported anyway (a server is restarted after a plugin is edited; each run is a process of its own)."""
    digest = hashlib.sha256(sys.version.encode())
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        path = Path(module.module_finder.path) / f"{module.name}.py"
        stat = path.stat() if path.is_file() else None
        digest.update(f"{module.name}:{stat.st_mtime_ns if stat else 0}:{stat.st_size if stat else 0}".encode())
    for plugin in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda p: p.name):
        version = plugin.dist.version if plugin.dist else ""
        digest.update(f"{plugin.name}={plugin.value}@{version}:{_source_digest(plugin.module)}".encode())
    return digest.hexdigest()[:20]


def _source_digest(module: str) -> str:
    """The contents of the package a plugin's module belongs to (every .py file of its top-level package):
    an editable install changes its networks without changing its version, and their old shapes would crash
    its runs. Found without importing it, so the torch-free web process can ask."""
    digest = hashlib.sha256()
    try:
        spec = importlib.util.find_spec(module.partition(".")[0])
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return "missing"  # it fails to load, and is left out of the catalog until it is there
    folders = spec.submodule_search_locations or []
    files = sorted(p for folder in folders for p in Path(folder).rglob("*.py")) if folders else [Path(spec.origin or "")]
    for path in files:
        try:
            digest.update(f"{path}:".encode() + path.read_bytes())
        except OSError:
            digest.update(f"{path}:unreadable".encode())
    return digest.hexdigest()


def catalog(num_classes: int) -> dict[str, dict]:
    """``describe_all(num_classes)`` for any process: computed here where torch is already loaded,
    else in a subprocess, and kept in memory and on disk (under KD_CACHE_DIR or the data directory).
    Callers of a count being described wait for it; callers of other counts do not (each count's own
    subprocess). The web server asks only for the class counts of its datasets."""
    key = (_fingerprint(), num_classes)
    found = _catalogs.get(key)
    if found is None:
        found = _describing.run(key, lambda: _catalogs.get(key) or _catalogs.setdefault(key, _load_or_describe(*key)))
    return found


def names() -> tuple[str, ...]:
    return tuple(catalog(10))


def _load_or_describe(fingerprint: str, num_classes: int) -> dict[str, dict]:
    from kdcore.data.catalog import cache_dir

    file = cache_dir() / f"architectures-{fingerprint}-{num_classes}.json"
    if file.is_file():
        try:
            return json.loads(file.read_text())
        except (OSError, ValueError):
            pass  # a damaged copy: describe again
    if "torch" in sys.modules:
        described = describe_all(num_classes)
    else:
        result = subprocess.run([sys.executable, "-m", __name__, str(num_classes)], capture_output=True, text=True,
                                timeout=300, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
        if result.returncode != 0:
            raise RuntimeError(f"describing the architectures failed: {result.stderr.strip()[-2000:]}")
        if result.stderr.strip():  # its warnings: plugins left out, and why
            log.warning("describing the architectures at %d classes: %s", num_classes, result.stderr.strip()[-2000:])
        described = json.loads(result.stdout)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(described))
        tmp.replace(file)
    except OSError:
        pass  # a read-only cache directory costs a subprocess per process, nothing more
    return described
