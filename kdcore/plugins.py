"""What installed packages add to kdcore through entry points (methods, architectures). Torch-free."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Callable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FailedPlugin:
    """An entry point left out, and why: the dashboard lists these (GET /api/methods, the launch page)."""

    group: str
    name: str  # the entry point's name
    value: str  # what it points at, "package.module:attribute"
    reason: str


# Every plugin left out in this process, by (group, entry point, what it declared): each is warned about once,
# however often a registry is read (the architectures' is read per model built).
_failed: dict[tuple[str, str, str], FailedPlugin] = {}


def failed_plugins(group: str | None = None) -> list[FailedPlugin]:
    """The plugins (of ``group``, or of every group) that this process left out, in the order found."""
    return [failure for failure in _failed.values() if group is None or failure.group == group]


def _leave_out(group: str, plugin, what: str, reason: str) -> None:
    key = (group, plugin.value, what)
    if key not in _failed:
        _failed[key] = FailedPlugin(group, plugin.name, plugin.value, reason)
        log.warning("%s plugin %s left out: %s", group, plugin.value, reason)


def add_plugins(found: dict[str, Any], group: str, declared: Callable[[Any], dict[str, Any]],
                problem: Callable[[str, Any], str | None] = lambda name, entry: None) -> dict[str, Any]:
    """Add to ``found`` the ``{name: entry}`` that each plugin of ``group`` declares. A plugin that fails to
    load, an entry whose declaration has a ``problem`` (a sentence, or None), or a name already taken is
    warned about once and left out: it must not take the built-in ones, or the other plugins, down."""
    for plugin in entry_points(group=group):
        try:
            entries = declared(plugin.load())
        except Exception as exc:
            _leave_out(group, plugin, "", f"could not be loaded: {type(exc).__name__}: {exc}")
            continue
        for name, entry in entries.items():
            if name in found:
                _leave_out(group, plugin, name, f"{name!r} is already registered")
            elif (trouble := problem(name, entry)) is not None:
                _leave_out(group, plugin, name, f"{name!r}: {trouble}")
            else:
                found[name] = entry
    return found
