"""Errors raised by kdcore. Each message is one line meant for a human."""


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
