"""Joining the Ray cluster: the token it asks for, and a connection that fails said in one line.

Ray 2.59 turned token authentication on for local clusters (`ray start --head` turns it on when this
machine has a saved token, ~/.ray/auth_token, which `ray get-auth-token --generate` and a local
``ray.init()`` write) and 2.61 for all. A driver that names the head's address sends no token unless told
(RAY_AUTH_MODE=token), even with the head on the same machine; it then retries for about 20 s, printing a
warning each second, and fails with a ConnectionError. So ``use_saved_token`` tells Ray to send the token at
hand, and ``connect`` holds Ray's retry log back and says a refusal in one line naming RAY_AUTH_TOKEN and
``ray get-auth-token``.

Ray reads RAY_AUTH_MODE when it is imported: ``use_saved_token`` must run first (app.cli does). This
module imports Ray only inside ``connect``.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

AUTH_MODE = "RAY_AUTH_MODE"
TOKEN = "RAY_AUTH_TOKEN"
TOKEN_PATH = "RAY_AUTH_TOKEN_PATH"
# What Ray's errors say when the cluster refuses a driver's token, or it has none.
_REFUSALS = ("AuthenticationError", "InvalidAuthToken", "Authentication token is missing or incorrect",
             "no authentication token was found")


class ClusterUnreachable(RuntimeError):
    """The Ray cluster refused or did not answer; the message is one line for a person."""


def saved_token_path() -> Path:
    """Where Ray keeps this machine's token: RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token."""
    return Path(os.environ.get(TOKEN_PATH) or Path.home() / ".ray" / "auth_token")


def token_source() -> str | None:
    """Where the token Ray would send comes from (RAY_AUTH_TOKEN, or the saved file), or None without one."""
    if os.environ.get(TOKEN):
        return TOKEN
    path = saved_token_path()
    return str(path) if path.is_file() else None


def use_saved_token() -> str | None:
    """Before Ray is imported: unless RAY_AUTH_MODE says otherwise, send the token at hand (RAY_AUTH_TOKEN,
    or the one saved on this machine). A cluster without authentication ignores it. Returns its source."""
    if os.environ.get(AUTH_MODE):
        return token_source() if os.environ[AUTH_MODE].lower() == "token" else None
    source = token_source()
    if source is not None:
        os.environ[AUTH_MODE] = "token"
    return source


def refused(exc: BaseException) -> bool:
    """Whether ``exc`` (a failed ray.init) comes from the cluster's token authentication."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if any(words in f"{type(exc).__name__}: {exc}" for words in _REFUSALS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def refusal_message(address: str) -> str:
    source = token_source() if (os.environ.get(AUTH_MODE) or "").lower() == "token" else None
    sent = f"refused the token from {source}" if source else "got none from this server"
    return (f"the Ray cluster at {address} requires a token and {sent}: set {TOKEN} to the cluster's token "
            "(`ray get-auth-token` on the head prints it) and start again")


@contextmanager
def _held_stderr() -> Iterator[list[str]]:
    """Collect what is written to file descriptor 2 (Ray's C++ core writes its warnings there) meanwhile;
    the list gets the text at the end."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as held:
        os.dup2(held.fileno(), 2)
        text: list[str] = []
        try:
            yield text
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text.append(held.read().decode(errors="replace"))


def connect(address: str | None) -> bool:
    """Join the cluster at ``address`` (None: start a local one). Returns whether this call connected;
    ClusterUnreachable when the cluster refuses this server or does not answer."""
    import ray

    if ray.is_initialized():
        return False
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    if address is None:
        ray.init()  # starts daemons, which must keep the real stderr
    else:
        with _held_stderr() as said:
            try:
                ray.init(address=address)
            except Exception as exc:  # noqa: BLE001  (any failure to join is said in one line)
                failure = exc
            else:
                failure = None
        if failure is not None:
            if refused(failure):
                raise ClusterUnreachable(refusal_message(address)) from None
            first = (str(failure).strip().splitlines() or [type(failure).__name__])[0]
            raise ClusterUnreachable(f"cannot join the Ray cluster at {address}: {first} (is `ray start --head` "
                                     "running there?)") from None
        sys.stderr.write(said[0])  # what Ray said while it connected, now that it did
    if main:
        # ray.init makes SIGTERM exit the process at once; the server's own handler stops it gracefully
        # (running runs back to the queue), and ray.shutdown in stop() then ends a local cluster.
        signal.signal(signal.SIGTERM, previous)
    return True
