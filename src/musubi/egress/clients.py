"""The egress policy inside the HTTP clients, where connections are opened.

* aiohttp (the gateway's upstream calls): :class:`EgressResolver` resolves each host with
  the system resolver and keeps only the addresses the policy allows; the connector then
  connects to one of those, so what was checked is what is connected to. aiohttp does not
  resolve IP literals, so :func:`check_literal` is called on every request's URL (an
  address in the URL cannot change between the check and the connect).
* httpx (the OIDC fetches): :func:`egress_client` gives an ``AsyncClient`` whose network
  backend resolves, checks and connects to the checked address (TLS still verifies the
  name), and which ignores proxy variables and follows no redirects.

A refusal is raised as :class:`~musubi.egress.policy.EgressRefused` (an ``OSError``), which
each client reports as its own connection error.
"""

from __future__ import annotations

import socket
import ssl
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

from aiohttp import ThreadedResolver
from aiohttp.abc import AbstractResolver, ResolveResult

from musubi.egress.policy import (
    EgressDenied,
    EgressPolicy,
    EgressRefused,
    parse_ip,
    refusal_message,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["EgressResolver", "check_literal", "egress_client", "egress_transport"]


class EgressResolver(AbstractResolver):
    """aiohttp resolver: the system's answers, less the addresses the policy refuses."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy
        self._inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            found = await self._inner.resolve(host, port, family)
        except OSError as exc:
            raise EgressRefused(refusal_message(host)) from exc
        kept = []
        for r in found:
            address = parse_ip(r["host"])
            if address is not None and self.policy.address_allowed(host, address):
                kept.append(r)
        if not kept:
            raise EgressRefused(refusal_message(host))
        return kept

    async def close(self) -> None:
        await self._inner.close()


def check_literal(policy: EgressPolicy, url: str) -> None:
    """Refuse ``url`` if its form or its literal address is not allowed (raises
    :class:`EgressRefused`); names are checked by :class:`EgressResolver`. An accepted
    URL is remembered: what is checked here cannot change."""
    try:
        _accepted(policy, url)
    except EgressDenied as exc:
        raise EgressRefused(exc.message.removeprefix("url: ")) from exc


@lru_cache(maxsize=4096)
def _accepted(policy: EgressPolicy, url: str) -> str:
    return policy.check_url(url)


@cache
def tls_context() -> ssl.SSLContext:
    """The process's one TLS client context (certifi's roots, as httpx's default).

    httpx builds a new one for every client it creates, reading and parsing the whole CA
    bundle each time: ~35-70 ms of CPU here, paid by every OIDC fetch, chat post and sync
    that opens a client. One context serves any number of clients and connections."""
    import httpx

    return httpx.create_ssl_context()


def egress_client(policy: EgressPolicy, *, timeout: float) -> httpx.AsyncClient:
    """An httpx client that connects only where ``policy`` allows, follows no redirect
    and ignores proxy variables (a proxy would be connected to instead)."""
    import httpx

    return httpx.AsyncClient(transport=egress_transport(policy), timeout=timeout, trust_env=False)


def egress_transport(policy: EgressPolicy) -> httpx.AsyncBaseTransport:
    """The transport of :func:`egress_client`, for other httpx-based clients;
    give them ``trust_env=False`` too."""
    import httpcore
    import httpx

    class Backend(httpcore.AsyncNetworkBackend):
        def __init__(self) -> None:
            self._inner = httpcore.AnyIOBackend()

        async def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
            local_address: str | None = None,
            socket_options: Any = None,
        ) -> httpcore.AsyncNetworkStream:
            try:
                addresses = await policy.allowed_addresses(host, port)
            except EgressRefused as exc:
                raise httpcore.ConnectError(str(exc)) from exc
            last: Exception | None = None
            for address in addresses:
                try:
                    return await self._inner.connect_tcp(
                        address, port, timeout, local_address, socket_options
                    )
                except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                    last = exc
            assert last is not None
            raise last

        async def connect_unix_socket(
            self,
            path: str,
            timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
            socket_options: Any = None,
        ) -> httpcore.AsyncNetworkStream:
            raise httpcore.ConnectError("unix sockets are not allowed by the egress policy")

        async def sleep(self, seconds: float) -> None:
            await self._inner.sleep(seconds)

    transport = httpx.AsyncHTTPTransport(verify=tls_context(), trust_env=False)
    # httpx builds its httpcore pool without a way to pass a network backend: rebuild it
    # with the same TLS context and ours.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=tls_context(), network_backend=Backend()
    )
    return transport
