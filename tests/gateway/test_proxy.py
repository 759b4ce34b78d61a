"""Which X-Forwarded-For hop is the client (gateway/proxy.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.proxy import TrustedProxies
from gateway.settings import ServerSettings


def test_the_client_is_the_right_most_untrusted_hop() -> None:
    p = TrustedProxies(["10.0.0.0/8", "192.168.1.5"])
    # Not from a proxy: the header is the client's own claim and is ignored.
    assert p.client("203.0.113.9", ["1.2.3.4"]) == "203.0.113.9"
    # From a proxy: hops are walked from the right; trusted proxies are skipped.
    assert p.client("10.0.0.1", ["198.51.100.7"]) == "198.51.100.7"
    assert p.client("10.0.0.1", ["6.6.6.6, 198.51.100.7, 192.168.1.5"]) == "198.51.100.7"
    assert p.client("10.0.0.1", ["6.6.6.6", "198.51.100.7:4431, 10.2.3.4"]) == "198.51.100.7"
    assert p.client("10.0.0.1", ["[2001:db8::1]:443"]) == "2001:db8::1"
    # Every hop a proxy: the left-most. A hop that is no address: the last trusted one stands.
    assert p.client("10.0.0.1", ["10.9.9.9, 10.0.0.2"]) == "10.9.9.9"
    assert p.client("10.0.0.1", ["evil\r\nX: y, 10.0.0.2"]) == "10.0.0.2"
    assert p.client("10.0.0.1", [""]) == "10.0.0.1"
    assert not TrustedProxies([]).trusts("127.0.0.1")


def test_trusted_proxies_must_be_addresses_or_networks() -> None:
    assert ServerSettings(trusted_proxies=["10.0.0.0/8", "::1", "192.168.1.7/24"]).trusted_proxies == [
        "10.0.0.0/8",
        "::1/128",
        "192.168.1.0/24",
    ]
    with pytest.raises(ValidationError, match="trusted_proxies"):
        ServerSettings(trusted_proxies=["proxy.example.org"])
