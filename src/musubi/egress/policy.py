"""The egress policy: which addresses the server may connect to for a tenant.

A tenant chooses URLs that the server then fetches: a provider credential's ``base_url``,
an OIDC issuer and the endpoints its discovery document names. Unchecked, that lets a
tenant admin make the server call its own loopback services, the cloud metadata address
(169.254.169.254) or the private network (server-side request forgery).

The rules:

* only ``http`` and ``https`` URLs, with a host and no user-info part;
* an IP address in a URL is checked when the URL is saved; every address a destination
  resolves to is checked when the connection is opened
  (:mod:`musubi.egress.clients`), so a name that resolves to a public address once and
  to 127.0.0.1 the next time (DNS rebinding) is still refused;
* :data:`DENIED_NETWORKS` (loopback, private, link-local, unique-local, multicast,
  unspecified, reserved, shared and documentation ranges) and any address Python does
  not consider global are refused;
* the operator lifts that for self-hosted models with ``MUSUBI_EGRESS_ALLOW``: addresses,
  CIDR ranges or host names (``gpu.corp.example``, ``*.corp.example``), for every tenant
  or, written ``<tenant id>=<entry>``, for one.

Connections the server sets up itself (a detected local Ollama, the offline model) do not
come from a tenant and use :data:`UNRESTRICTED`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from musubi.errors import InvalidInput

__all__ = [
    "DENIED_NETWORKS",
    "SCHEMES",
    "UNRESTRICTED",
    "EgressDenied",
    "EgressPolicy",
    "EgressRefused",
    "EgressRules",
    "is_denied",
    "parse_ip",
    "refusal_message",
    "resolve",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = frozenset({"http", "https"})

DENIED_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network", unspecified
        "10.0.0.0/8",  # private (RFC 1918)
        "100.64.0.0/10",  # shared address space (carrier-grade NAT)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, cloud metadata (169.254.169.254)
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
        "::/128",  # unspecified
        "::1/128",  # loopback
        "::ffff:0:0/96",  # IPv4-mapped (checked again as IPv4)
        "64:ff9b::/96",  # NAT64 (checked again as IPv4)
        "100::/64",  # discard
        "2001:db8::/32",  # documentation
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)

_NUMERIC_HOST = re.compile(r"[0-9a-fA-FxX.]+")


class EgressDenied(InvalidInput):
    """A URL the policy refuses, found when it is saved (answered 422 naming the field)."""


class EgressRefused(OSError):
    """A connection the policy refuses, found when it is opened. An ``OSError`` so that
    HTTP clients report it like any failed name resolution or connect."""


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in ipaddress.ip_network("64:ff9b::/96"):
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_denied(address: IPAddress) -> bool:
    """Whether ``address`` is in a range no tenant may reach unless the operator allows it."""
    inner = _embedded_ipv4(address)
    if inner is not None:
        return is_denied(inner)
    if address.is_multicast or not address.is_global:
        return True
    return any(address in n for n in DENIED_NETWORKS if n.version == address.version)


@dataclass(frozen=True)
class EgressPolicy:
    """What one tenant may reach. Hashable: HTTP clients keep one connection pool per
    policy, so a connection opened under one policy is never reused under another."""

    networks: tuple[IPNetwork, ...] = ()  # allowed although in a denied range
    hosts: tuple[str, ...] = ()  # names allowed to resolve anywhere: "a.b" or "*.b"
    unrestricted: bool = False

    def host_allowed(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        for pattern in self.hosts:
            if pattern.startswith("*."):
                if host.endswith(pattern[1:]):
                    return True
            elif host == pattern:
                return True
        return False

    def address_allowed(self, host: str, address: IPAddress) -> bool:
        if self.unrestricted or self.host_allowed(host):
            return True
        inner = _embedded_ipv4(address)
        if any(address in n or (inner is not None and inner in n) for n in self.networks):
            return True
        return not is_denied(address)

    def check_url(self, url: str, *, field: str = "url") -> str:
        """The host of ``url`` if its form is acceptable and, when it is an IP address (or
        ``localhost``), the address is allowed; raises :class:`EgressDenied`. A name is
        not resolved here but when each connection opens: resolving it when a URL is
        saved would tell its writer which internal names exist."""
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError as exc:
            raise EgressDenied(f"{field}: not a valid URL ({exc})", field=field) from exc
        if parts.scheme.lower() not in SCHEMES:
            raise EgressDenied(
                f"{field}: the scheme must be http or https, not {parts.scheme or '(none)'!r}",
                field=field,
            )
        if "@" in parts.netloc:
            raise EgressDenied(f"{field}: a user name or password in the URL", field=field)
        host = (parts.hostname or "").rstrip(".")
        if not host:
            raise EgressDenied(f"{field}: the URL has no host", field=field)
        if self.unrestricted:
            return host
        address = parse_ip(host)
        if address is None:
            if _NUMERIC_HOST.fullmatch(host) and _legacy_ipv4(host):
                raise EgressDenied(f"{field}: {host!r} is not a canonical IP address", field=field)
            if host.lower() == "localhost" or host.lower().endswith(".localhost"):
                address = ipaddress.IPv4Address("127.0.0.1")  # RFC 6761
        if address is not None and not self.address_allowed(host, address):
            raise EgressDenied(_denied_message(field, host), field=field)
        return host

    async def allowed_addresses(self, host: str, port: int) -> list[str]:
        """The addresses of ``host`` this policy allows, for opening a connection now;
        raises :class:`EgressRefused` when there are none (or the name does not resolve:
        the same answer, so a refusal does not tell which internal names exist)."""
        try:
            addresses = await resolve(host, port)
        except OSError as exc:
            raise EgressRefused(refusal_message(host)) from exc
        allowed = [str(a) for a in addresses if self.address_allowed(host, a)]
        if not allowed:
            raise EgressRefused(refusal_message(host))
        return allowed


UNRESTRICTED = EgressPolicy(unrestricted=True)


def _denied_message(field: str, host: str) -> str:
    return (
        f"{field}: {host!r} is a loopback, private, link-local or reserved address, which "
        "the server's egress policy does not allow (an operator can allow it with "
        "MUSUBI_EGRESS_ALLOW)"
    )


def refusal_message(host: str) -> str:
    return f"cannot connect to {host!r}: it does not resolve to an address the egress policy allows"


def parse_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _legacy_ipv4(host: str) -> bool:
    """Whether the C library would read ``host`` as an IPv4 address (127.1, 0x7f.1,
    2130706433): forms a string check would miss."""
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (an IP literal resolves to itself)."""
    literal = parse_ip(host)
    if literal is not None:
        return [literal]
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    out: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = parse_ip(str(sockaddr[0]))
        if address is not None and address not in out:
            out.append(address)
    return out


@dataclass(frozen=True)
class EgressRules:
    """The operator's ``MUSUBI_EGRESS_ALLOW``, read once: the policy of each tenant."""

    everyone: EgressPolicy = field(default_factory=EgressPolicy)
    tenants: tuple[tuple[str, EgressPolicy], ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> EgressRules:
        """``"10.0.0.0/8, gpu.corp.example, ten_abc=192.168.5.0/24"``; raises ValueError."""
        common: list[str] = []
        per_tenant: dict[str, list[str]] = {}
        for raw in (text or "").split(","):
            entry = raw.strip()
            if not entry:
                continue
            tenant, sep, rest = entry.partition("=")
            if sep:
                if not tenant.strip() or not rest.strip():
                    raise ValueError(f"egress allow entry {entry!r}: expected <tenant id>=<entry>")
                per_tenant.setdefault(tenant.strip(), []).append(rest.strip())
            else:
                common.append(entry)
        everyone = _policy(common)
        tenants = tuple(
            (tenant, _policy([*common, *entries])) for tenant, entries in per_tenant.items()
        )
        return cls(everyone, tenants)

    def for_tenant(self, tenant_id: str) -> EgressPolicy:
        for tenant, policy in self.tenants:
            if tenant == tenant_id:
                return policy
        return self.everyone


_HOST_PATTERN = re.compile(
    r"(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*"
)


def _policy(entries: Iterable[str]) -> EgressPolicy:
    networks: list[IPNetwork] = []
    hosts: list[str] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
            continue
        except ValueError:
            pass
        name = entry.lower().rstrip(".")
        if not _HOST_PATTERN.fullmatch(name):
            raise ValueError(
                f"egress allow entry {entry!r}: not an address, a CIDR range or a host name"
            )
        hosts.append(name)
    return EgressPolicy(tuple(networks), tuple(hosts))
