"""Errors raised by kdcore. Each message is one line meant for a human."""

import errno


class KDError(Exception):
    """Base class: a problem the user can fix (bad config, missing data, wrong checkpoint)."""


class ConfigError(KDError):
    """A run configuration is invalid."""


class DatasetError(KDError):
    """A dataset is missing, unreadable or unsuitable."""


class CheckpointError(KDError):
    """A checkpoint is missing, unreadable or unsuitable for this run."""


class RunCancelled(Exception):
    """Training stopped because the cancel flag was raised; the last epoch checkpoint stays."""


class NonFiniteLoss(KDError):
    """A training loss became NaN or infinite."""


class StorageFull(KDError):
    """A run's file could not be written: the device it goes to has no space left."""


# "No space left on device" and "disk quota exceeded": either way, space must be freed.
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


def out_of_space(exc: BaseException) -> OSError | None:
    """The OSError saying a device is full behind ``exc``, if any. torch.save hides it: a failed write
    surfaces as "RuntimeError: [enforce fail at inline_container.cc:672] . unexpected pos", with the
    OSError only as its context."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _NO_SPACE:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None
