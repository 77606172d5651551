"""Classify ``sourceIPAddress``: public v4/v6, private, AWS service, "AWS Internal", unparseable.

CloudTrail writes an address, a service host name (``ec2.amazonaws.com``) when a service acted
for the caller, the literal ``AWS Internal``, and occasionally two comma-joined addresses (a
proxy chain: the first is the client). Octets with leading zeros (``035.249.0.1``) never come
from AWS but do appear in anonymised public samples; they are read as decimal so that such data
still yields networks, and the verbatim text is kept in ``source_ip``.

Results are memoised: a trail has few distinct source IPs, so classification is nearly free.
Imports: the standard library only.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

__all__ = ["classify_source_ip"]

# Private means "inside a network the caller controls": RFC 1918, CGNAT, loopback, link-local
# and IPv6 ULA. Documentation ranges (203.0.113.0/24, ...) count as public, as sample data
# uses them for internet clients.
_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
    )
)


def _parse_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    parts = text.split(".")
    if len(parts) == 4 and all(p.isdigit() and len(p) <= 3 for p in parts):
        try:
            return ipaddress.IPv4Address(".".join(str(int(p)) for p in parts))
        except ValueError:
            return None
    return None


@lru_cache(maxsize=65536)
def classify_source_ip(raw: str | None) -> tuple[str, str | None]:
    """``(kind, canonical address or None)`` for one ``sourceIPAddress`` value."""
    if raw is None or raw == "":
        return "missing", None
    if raw == "AWS Internal":
        return "aws_internal", None
    text = raw.split(",", 1)[0].strip()
    address = _parse_address(text)
    if address is None:
        if text.endswith(".amazonaws.com") or text.endswith(".amazonaws.com.cn"):
            return "aws_service", None
        return "unparseable", None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in _PRIVATE_NETWORKS):
        return "private", str(address)
    if address.is_unspecified or address.is_multicast:
        return "unparseable", str(address)
    kind = "public_ipv4" if address.version == 4 else "public_ipv6"
    return kind, str(address)
