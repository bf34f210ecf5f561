"""The client's address, as far as it can be trusted.

``REMOTE_ADDR`` is the peer of the TCP connection. Only when that peer is one of
``SOFIIA_TRUSTED_PROXIES`` (addresses or CIDR networks) is ``X-Forwarded-For`` consulted,
and then from the right: the first address that is not itself a trusted proxy is the
client. Anything further left was written by the client and proves nothing.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def trusted_networks() -> tuple[Network, ...]:
    return _networks(tuple(settings.SOFIIA_TRUSTED_PROXIES))


def _parse(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    address = address.strip()
    if address.startswith("[") and "]" in address:  # [v6]:port
        address = address[1 : address.index("]")]
    elif address.count(":") == 1:  # v4:port
        address = address.split(":", 1)[0]
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return None


def _is_trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: tuple[Network, ...]) -> bool:
    return any(address in network for network in networks)


def from_trusted_proxy(request: HttpRequest) -> bool:
    """Did the request come from one of ``SOFIIA_TRUSTED_PROXIES`` (so its forwarding headers
    were written by the proxy, not by the client)?"""
    peer = _parse(request.META.get("REMOTE_ADDR", ""))
    networks = trusted_networks()
    return peer is not None and bool(networks) and _is_trusted(peer, networks)


def client_ip(request: HttpRequest) -> str | None:
    peer = _parse(request.META.get("REMOTE_ADDR", ""))
    if peer is None:
        return None
    networks = trusted_networks()
    if not networks or not _is_trusted(peer, networks):
        return str(peer)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    for hop in reversed([part for part in forwarded.split(",") if part.strip()]):
        address = _parse(hop)
        if address is None:
            break  # a garbled hop: stop at the last address we could trust
        if not _is_trusted(address, networks):
            return str(address)
        peer = address
    return str(peer)
