"""Refuse requests that another web site makes the user's browser send.

Two attacks reach a dashboard that listens only on this machine. A page on any site can make the
browser POST a form (or a simple fetch) to http://127.0.0.1:8000 and so launch or cancel runs:
state-changing requests must therefore come from the dashboard's own pages, which browsers prove with
the ``Origin`` (or ``Referer``) and ``Sec-Fetch-Site`` headers. And a DNS-rebinding page
(evil.example first resolving to its own server, then to 127.0.0.1) reads and writes the dashboard
under its own name: every request must therefore name, in its ``Host`` header, a host this server
answers to, as Jupyter checks. Programs (curl, scripts) send neither Origin nor Referer nor
Sec-Fetch-Site and keep working; a token (app.access.auth) is checked on top of this, not instead of it.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_BINDS = ("", "0.0.0.0", "::")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def split_host(host: str) -> tuple[str, int | None]:
    """``"[::1]:8000"`` -> ``("::1", 8000)``; names are lower-cased and lose a trailing dot."""
    host = host.strip().lower()
    port: int | None = None
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    else:
        name, sep, tail = host.rpartition(":")
        if sep and tail.isdigit() and ":" not in name:
            port = int(tail)
        else:
            name = host
    return name.rstrip("."), port


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def is_loopback(bind_host: str) -> bool:
    """Whether a server bound to ``bind_host`` is reachable from this machine only."""
    name = split_host(bind_host)[0]
    if name in WILDCARD_BINDS:
        return False
    address = _ip(name)
    if address is not None:
        return address.is_loopback
    if name == "localhost":
        return True
    try:
        infos = socket.getaddrinfo(name, None)
    except OSError:
        return False  # cannot tell: treat it as exposed
    addresses = [_ip(info[4][0].split("%")[0]) for info in infos]
    return bool(addresses) and all(address is not None and address.is_loopback for address in addresses)


@dataclass(frozen=True)
class HostPolicy:
    """The names a request's Host header may carry."""

    names: frozenset[str]
    any_ip: bool = False
    any_host: bool = False

    @classmethod
    def for_server(cls, bind_host: str, allowed_hosts: tuple[str, ...] = ()) -> "HostPolicy":
        bound = split_host(bind_host)[0]
        names = {*LOOPBACK_NAMES, *(split_host(h)[0] for h in allowed_hosts if h != "*")}
        wildcard = bound in WILDCARD_BINDS
        if wildcard:
            # Reached through any of this machine's addresses: its own names are its own.
            names.update(n.lower() for n in (socket.gethostname(), socket.getfqdn()) if n)
        else:
            names.add(bound)
        # A literal IP address cannot be rebound by DNS, so on a wildcard bind any of them is fine.
        return cls(frozenset(names), any_ip=wildcard, any_host="*" in allowed_hosts)

    def allows(self, host_header: str) -> bool:
        if self.any_host:
            return True
        name = split_host(host_header)[0]
        if name in self.names:
            return True
        address = _ip(name)
        return address is not None and (self.any_ip or address.is_loopback)


def _same_origin(source: str, host_header: str) -> bool:
    parts = urlsplit(source)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return False  # "null" (sandboxed frames, file: pages) or garbage
    default = DEFAULT_PORTS[parts.scheme]
    name, port = split_host(host_header)
    # A TLS proxy in front may pass on a Host without the port the browser used: take the default.
    return (parts.hostname.rstrip("."), parts.port or default) == (name, port or default)


def cross_site_reason(method: str, headers: dict[str, str]) -> str | None:
    """Why a request must be refused as cross-site, or None. ``headers`` are lower-cased names."""
    if method in SAFE_METHODS:
        return None
    fetch_site = headers.get("sec-fetch-site", "")
    if fetch_site in ("cross-site", "same-site"):
        return f"this request came from another site (Sec-Fetch-Site: {fetch_site})"
    host = headers.get("host", "")
    for header in ("origin", "referer"):
        value = headers.get(header)
        if value is not None:  # Origin wins; Referer counts only where a browser sent no Origin
            if _same_origin(value, host):
                return None
            return f"this request came from another origin ({header.title()}: {value[:200]})"
    return None


class CrossSiteGuard:
    """ASGI middleware: 403 for foreign Host headers, and for cross-site state-changing requests."""

    def __init__(self, app, policy: HostPolicy):
        self.app, self.policy = app, policy

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if not self.policy.allows(host):
            reason = (f"this server does not answer to the host name {split_host(host)[0]!r}; "
                      "add it with --allowed-host or KD_ALLOWED_HOSTS if it is yours")
        else:
            reason = cross_site_reason(scope.get("method", "GET"), headers)
        if reason is None:
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        body = json.dumps({"detail": f"refused: {reason}"}).encode()
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
