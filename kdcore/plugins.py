"""What installed packages add to kdcore through entry points (methods, architectures). Torch-free."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import Any, Callable

log = logging.getLogger(__name__)


def add_plugins(found: dict[str, Any], group: str, declared: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """Add to ``found`` the ``{name: entry}`` that each plugin of ``group`` declares. A plugin that fails to
    load, or a name already taken, is logged and left out: it must not take the built-in ones down."""
    for plugin in entry_points(group=group):
        try:
            entries = declared(plugin.load())
        except Exception as exc:
            log.warning("%s plugin %s could not be loaded: %s", group, plugin.value, exc)
            continue
        for name, entry in entries.items():
            if name in found:
                log.warning("%s plugin %s: %r is already registered; ignored", group, plugin.value, name)
            else:
                found[name] = entry
    return found
