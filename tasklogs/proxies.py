"""Forwarded headers, believed only from the proxies in `TASKLOGS_TRUSTED_PROXIES`.

`TrustedProxies` wraps the WSGI app. It keeps the TCP peer (`REMOTE_ADDR` as the server saw it) in
`environ["tasklogs.peer"]`; when that peer is a trusted proxy it takes the client address from
`X-Forwarded-For` and the scheme from `X-Forwarded-Proto`. The client address is the rightmost
address of `X-Forwarded-For` that is not itself a trusted proxy: everything left of it was written by
the client and proves nothing (a client that rotates it stays one client). From any other peer the
headers are ignored and the peer is the client.
"""

import ipaddress
from collections.abc import Iterable

from .config import Network

PEER = "tasklogs.peer"


def is_trusted(address: str, networks: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def client_address(forwarded_for: str, peer: str, networks: tuple[Network, ...]) -> str:
    """The first address, from the right, that is not a trusted proxy (`peer` if there is none)."""
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop, networks):
            return hop if _is_address(hop) else peer
    return hops[0] if hops and _is_address(hops[0]) else peer


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def peer_of(environ: dict) -> str:
    """The TCP peer of the request, before any forwarded header was believed."""
    return environ.get(PEER, environ.get("REMOTE_ADDR", ""))


class TrustedProxies:
    """WSGI middleware: client address and scheme from trusted proxies' forwarded headers only."""

    def __init__(self, app, networks: tuple[Network, ...]):
        self.app, self.networks = app, networks

    def __call__(self, environ, start_response):
        peer = environ.setdefault(PEER, environ.get("REMOTE_ADDR", ""))
        if self.networks and is_trusted(peer, self.networks):
            forwarded_for = environ.get("HTTP_X_FORWARDED_FOR", "")
            environ["REMOTE_ADDR"] = client_address(forwarded_for, peer, self.networks)
            proto = environ.get("HTTP_X_FORWARDED_PROTO", "").split(",")[-1].strip().lower()
            if proto in ("http", "https"):
                environ["wsgi.url_scheme"] = proto
        return self.app(environ, start_response)
