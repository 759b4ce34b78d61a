"""Whether the gateway may listen where it is told: beyond loopback only with TLS, or when told
``--insecure`` (``server.insecure``), and then loudly.

Without TLS, passwords (the login form), bearer tokens, session cookies and stream tokens cross
the network in clear; on a loopback address only this machine can see them.
"""

from __future__ import annotations

import ipaddress
import socket

__all__ = ["ListenRefused", "check_listen", "is_loopback"]


class ListenRefused(Exception):
    """The gateway would listen beyond loopback without TLS; the message says what to do."""


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` stands for is a loopback address (``0.0.0.0``, ``::`` and
    names that do not resolve count as beyond loopback)."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(str(i[4][0]).split("%")[0]).is_loopback for i in infos)


def check_listen(host: str, *, tls: bool, insecure: bool) -> str | None:
    """None when listening on ``host`` is fine; a warning to show loudly when it is allowed only by
    ``insecure``; :class:`ListenRefused` when refused."""
    if tls or is_loopback(host):
        return None
    what = (
        f"listening on {host} (beyond loopback) without TLS: passwords, tokens and session cookies "
        "would cross the network in clear"
    )
    if insecure:
        return f"WARNING: {what}, as --insecure (server.insecure) asks."
    raise ListenRefused(
        f"refusing {what}. Give --ssl-certfile and --ssl-keyfile (server.ssl_certfile/ssl_keyfile), listen on "
        "127.0.0.1 behind a TLS-terminating proxy, or pass --insecure (server.insecure = true) to accept the risk."
    )
