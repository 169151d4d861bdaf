"""Who a request of ``colorize serve`` comes from: the client its fair share is counted for.

    who = ClientId("forwarded", trusted_proxy="10.0.0.1")
    who(key=None, peer="10.0.0.1", forwarded_for=["203.0.113.7"])     # "address:203.0.113.7"

Modes (``ServeConfig.client_id``):

* ``auto``: the API key (its HMAC identity, ``auth.ApiKeys.identify``) when the
  server has keys; without keys every request is one client, ``all``, since
  a single caller (a web application, a batch job, a reverse proxy) is the usual
  deployment.
* ``address``: the TCP peer's address; request headers are ignored.
* ``forwarded``: the client address a trusted proxy passed on in
  ``X-Forwarded-For``; from any other peer, the peer's address. The header is
  read from the right, past the trusted proxies' own entries, so a client cannot
  pick its identity by sending the header itself.
* ``single``: every request is one client (first come, first served).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

MODES = ("auto", "address", "forwarded", "single")
ALL = "all"  # the one client of ``single``, and of ``auto`` without keys
_MAX_LABEL = 64  # an unparseable X-Forwarded-For entry is kept as a label, this long at most

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_proxies(text: str) -> tuple[Network, ...]:
    """Comma-separated addresses or networks (``10.0.0.1``, ``10.0.0.0/8``, ``::1``).

    Raises:
        ValueError: an entry that is neither, named.
    """
    out = []
    for entry in text.split(","):
        entry = entry.strip()
        if not entry:
            continue
        try:
            out.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or network (e.g. 10.0.0.1, 10.0.0.0/8, ::1)") from None
    if not out:
        raise ValueError("no address in it (comma-separated IP addresses or networks, e.g. 10.0.0.1)")
    return tuple(out)


def _host(entry: str) -> str:
    """The host of an X-Forwarded-For entry: ``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80`` or ``::1``."""
    entry = entry.strip()
    if entry.startswith("["):
        return entry[1:].partition("]")[0]
    if entry.count(":") == 1:
        return entry.partition(":")[0]
    return entry


class ClientId:
    """The client identity of a request under one ``mode`` (``MODES``)."""

    def __init__(self, mode: str = "auto", trusted_proxy: str | None = None):
        if mode not in MODES:
            raise ValueError(f"client id mode {mode!r}: expected one of {', '.join(MODES)}")
        self.mode = mode
        self.proxies = parse_proxies(trusted_proxy) if trusted_proxy else ()
        if mode == "forwarded" and not self.proxies:
            raise ValueError("client id mode 'forwarded' needs the trusted proxy's address (trusted_proxy)")

    def _trusted(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in net for net in self.proxies)

    def __call__(self, key: str | None, peer: str | None, forwarded_for: Sequence[str] = ()) -> str:
        """The identity of a request with API key identity ``key`` (None: no keys), from TCP peer address
        ``peer``, with these ``X-Forwarded-For`` header values."""
        if self.mode == "single" or (self.mode == "auto" and key is None):
            return ALL
        if self.mode == "auto":
            return key
        host = peer or "unknown"
        if self.mode == "forwarded" and self._trusted(host):
            hops = [_host(e) for value in forwarded_for for e in value.split(",") if e.strip()]
            while hops and self._trusted(hops[-1]):
                host = hops.pop()
            if hops:
                host = hops[-1][:_MAX_LABEL]
        return "address:" + host
