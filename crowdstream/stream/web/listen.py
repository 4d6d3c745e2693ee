"""The HTTP listening socket, bound before anything else of the service starts: a port in use or an
address this machine does not have is then a one-line error at once, not after Redis, the model and
every camera were brought up (and torn down again)."""

from __future__ import annotations

import socket

from crowdstream.engines.errors import CrowdstreamError
from crowdstream.stream.web.auth import check_bind
from crowdstream.stream.web.config import HttpConfig


class ListenError(CrowdstreamError):
    """The HTTP server cannot listen where it was asked to."""


def bind_socket(http: HttpConfig) -> socket.socket:
    """A TCP socket bound to `http.host`:`http.port` (not listening yet: aiohttp's site does that).
    Refuses a non-loopback address without credentials first (`check_bind`)."""
    check_bind(http)
    where = f"{http.host}:{http.port}"
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            http.host, http.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ListenError(
            f"--host / http.host: {http.host!r} is not an address or a known host name ({exc.strerror})"
        ) from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {where}: {_advice(exc)}") from None
    return sock


def _advice(exc: OSError) -> str:
    """What went wrong, and which setting to change."""
    reason = (exc.strerror or str(exc)).lower()
    if isinstance(exc, PermissionError):
        return f"{reason}; ports below 1024 need privileges: choose another --port / http.port"
    if "in use" in reason:
        return f"{reason} (another program listens there): choose another --port / http.port"
    if "assign" in reason:
        return f"{reason}: --host / http.host must be an address of this machine, or 0.0.0.0 for all"
    return f"{reason}: check --host and --port (http.host, http.port)"
