"""A speed path that raises is switched off for the run, which goes on on the plain eager path.

The speed paths are the CUDA graph of a step (kdcore.training.steps), the vmapped pack step
(kdcore.training.packing.trainer), bfloat16 autocast (kdcore.training.precision), the fused optimiser
(kdcore.training.recipe) and the channels-last layout (kdcore.training.networks). Most of them run on GPUs
only, where these sessions could seldom test them, and a user's first GPU run must not be where a broken
one is found. Each is tried where it starts (the capture, the first step, the constructor, the conversion,
one forward pass) so that the loop itself stays free of checks and host syncs. If it raises, the run
continues without it, with the arithmetic of a run that never used it, and says so once: a warning in the
log and a note in its result ("fallback: ..."), which the dashboard shows on the run's page.

Running out of memory is not a broken path: it has its own remedies (a pack retries in halves; a run's
error says to lower the batch size), so it is raised as it is.

Torch-free at import, as kdcore.training.recipe is.
"""

from __future__ import annotations

import logging
from typing import Callable, TypeVar

log = logging.getLogger(__name__)

# The paths, as the notes name them.
CUDA_GRAPHS = "CUDA graph capture"
VMAPPED = "vmapped pack step"
AUTOCAST = "bfloat16 autocast"
FUSED = "fused optimiser"
CHANNELS_LAST = "channels-last layout"

NOTE_PREFIX = "fallback: "
_REASON_LENGTH = 300

T = TypeVar("T")


class Fallbacks:
    """The paths a run (or a pack) fell back from: each noted and logged once, then never tried again
    (a pack that loses a run rebuilds its step without them). ``where``: the run's folder, for the log."""

    def __init__(self, where: str, notes: tuple[str, ...] = (), off: frozenset[str] = frozenset()):
        self.where, self.notes, self._off = where, list(notes), set(off)

    def copy(self) -> "Fallbacks":
        """The same decisions, for another attempt whose own decisions must not leak back."""
        return Fallbacks(self.where, tuple(self.notes), frozenset(self._off))

    def is_off(self, path: str) -> bool:
        return path in self._off

    def record(self, path: str, error: BaseException, instead: str) -> None:
        if path in self._off:
            return
        self._off.add(path)
        note = f"{NOTE_PREFIX}{path} raised {reason(error)}; {instead}"
        self.notes.append(note)
        log.warning("%s: %s", self.where, note)


def reason(error: BaseException) -> str:
    """The exception's type and first line, short enough for a note."""
    first = (str(error).strip().splitlines() or [""])[0]
    if len(first) > _REASON_LENGTH:
        first = first[: _REASON_LENGTH - 1] + "…"
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def out_of_memory(error: BaseException) -> bool:
    # torch.OutOfMemoryError by name: this module imports no torch.
    return any(kind.__name__ == "OutOfMemoryError" for kind in type(error).__mro__)


def attempt(fallbacks: Fallbacks, path: str, instead: str, fast: Callable[[], T], plain: Callable[[], T]) -> T:
    """``fast()``, or ``plain()`` when that path is off or ``fast()`` raises (not out of memory), which
    switches it off. ``plain`` must leave things as if ``fast`` had never been tried."""
    if fallbacks.is_off(path):
        return plain()
    try:
        return fast()
    except Exception as error:
        if out_of_memory(error):
            raise
        fallbacks.record(path, error, instead)
    return plain()
