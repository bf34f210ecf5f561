from __future__ import annotations

import pytest
from django.test import RequestFactory

from sofiia.lib.client_ip import client_ip


@pytest.fixture
def proxies(settings):
    def set_proxies(*networks):
        settings.SOFIIA_TRUSTED_PROXIES = list(networks)

    return set_proxies


def request(remote, forwarded=None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


def test_without_trusted_proxies_the_peer_is_the_client(proxies):
    proxies()
    assert client_ip(request("203.0.113.7", forwarded="127.0.0.1")) == "203.0.113.7"


def test_a_header_from_an_untrusted_peer_is_ignored(proxies):
    proxies("10.0.0.0/8")
    assert client_ip(request("198.51.100.9", forwarded="10.0.0.1, 127.0.0.1")) == "198.51.100.9"


def test_through_a_trusted_proxy_the_rightmost_untrusted_hop_is_the_client(proxies):
    proxies("10.0.0.0/8", "127.0.0.1")
    # The client wrote the leftmost entry itself; the proxy appended the real peer.
    assert client_ip(request("127.0.0.1", forwarded="1.2.3.4, 198.51.100.20, 10.1.2.3")) == "198.51.100.20"


def test_a_trusted_proxy_without_a_header_is_itself_the_client(proxies):
    proxies("127.0.0.1")
    assert client_ip(request("127.0.0.1")) == "127.0.0.1"


def test_a_garbled_hop_stops_the_walk(proxies):
    proxies("10.0.0.0/8")
    assert client_ip(request("10.0.0.2", forwarded="198.51.100.1, not-an-ip, 10.0.0.3")) == "10.0.0.3"


def test_ipv6_and_ports_are_understood(proxies):
    proxies("::1")
    assert client_ip(request("::1", forwarded="[2001:db8::5]:4711")) == "2001:db8::5"
    assert client_ip(request("::1", forwarded="192.0.2.1:80")) == "192.0.2.1"


def test_a_missing_peer_is_unknown(proxies):
    proxies()
    assert client_ip(request("")) is None
