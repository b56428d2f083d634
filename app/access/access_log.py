"""Keep tokens out of the access log: the sign-in URL that ``kd serve`` prints carries one
(``/signin?token=…``), and uvicorn logs every request's path with its query string."""

from __future__ import annotations

import logging
import re

ACCESS_LOGGER = "uvicorn.access"
REDACTED = "[redacted]"
_TOKEN_PARAMETER = re.compile(r"([?&]token=)[^&\s\"]*", re.IGNORECASE)


def redact(text: str) -> str:
    return _TOKEN_PARAMETER.sub(rf"\g<1>{REDACTED}", text)


class RedactTokens(logging.Filter):
    """Rewrites a record's message and arguments (uvicorn passes the path as one) before any handler sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        return True


def redact_access_log() -> None:
    """Install the filter on uvicorn's access logger, once however many apps start in this process."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, RedactTokens) for f in logger.filters):
        logger.addFilter(RedactTokens())
