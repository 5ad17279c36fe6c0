"""The provider kind: pure transforms plus I/O through one pooled client per endpoint.

A provider turns MUSUBI's canonical request (the OpenAI Chat Completions / Completions /
Embeddings body) into its own wire format (:meth:`Provider.transform_request`), its
answer back into the canonical OpenAI shape (:meth:`Provider.transform_response`), and
its stream events into ``chat.completion.chunk`` dicts (:meth:`Provider.decode_stream`).
Those three are pure and unit-tested on dicts; :meth:`send` and :meth:`stream` do the I/O.
"""

from __future__ import annotations

import itertools
import json
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import certifi
import httpx

from musubi.errors import UpstreamError, UpstreamTimeout

__all__ = [
    "ClientPool",
    "Credential",
    "Op",
    "Provider",
    "StreamCut",
    "UpstreamStatus",
    "sse_events",
]

Op = Literal["chat", "completion", "embedding"]


@dataclass(frozen=True)
class Credential:
    """One configured endpoint of a tenant: ``name`` is the tenant's label for it."""

    name: str
    provider: str
    api_key: str = ""
    base_url: str = ""
    options: dict[str, Any] = field(default_factory=dict)  # api_version, region, secrets…
    models: tuple[str, ...] = ()  # empty: every catalogue model of the provider
    weight: float = 1.0


class UpstreamStatus(UpstreamError):
    """The provider answered an HTTP error; ``retry_after`` from its header if given."""

    def __init__(self, provider: str, status: int, message: str, retry_after: float | None):
        super().__init__(provider, f"HTTP {status}: {message}", status=status)
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.status in (408, 409, 429) or (self.status or 0) >= 500


class StreamCut(UpstreamError):
    """The upstream stream ended without its end marker."""


class ClientPool:
    """Pooled ``httpx.AsyncClient``s per endpoint (scheme://host:port), kept alive and bounded.

    httpcore scans every connection of a pool on each request, so one client with 100
    connections costs O(100) per call (measured: a third of the gateway's CPU at 50
    concurrent). Each endpoint gets a few small clients used in turn instead: the same
    connection bound, a short scan.
    """

    SHARD = 8  # connections per client

    def __init__(
        self, *, max_connections: int = 96, connect_timeout: float = 5.0, read_timeout: float = 120
    ) -> None:
        self._clients: dict[str, list[httpx.AsyncClient]] = {}
        self._turn = itertools.count()
        self._shards = max(1, -(-max_connections // self.SHARD))
        self._limits = httpx.Limits(
            max_connections=self.SHARD, max_keepalive_connections=self.SHARD
        )
        self._timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        self._tls: ssl.SSLContext | None = None  # one for all clients: each costs ~10 ms

    def get(self, url: str) -> httpx.AsyncClient:
        u = httpx.URL(url)
        origin = f"{u.scheme}://{u.host}:{u.port or (443 if u.scheme == 'https' else 80)}"
        clients = self._clients.get(origin)
        if clients is None:
            if self._tls is None:
                self._tls = ssl.create_default_context(cafile=certifi.where())
            clients = [
                httpx.AsyncClient(
                    limits=self._limits, timeout=self._timeout, http2=False, verify=self._tls
                )
                for _ in range(self._shards)
            ]
            self._clients[origin] = clients
        return clients[next(self._turn) % len(clients)]

    async def close(self) -> None:
        for clients in self._clients.values():
            for client in clients:
                await client.aclose()
        self._clients.clear()


async def sse_events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str | None, str]]:
    """Server-sent events as (event name, data) pairs."""
    event: str | None = None
    data: list[str] = []
    async for line in lines:
        if line == "":
            if data:
                yield event, "\n".join(data)
            event, data = None, []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
    if data:
        yield event, "\n".join(data)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class Provider:
    """Base of every provider. Subclasses set ``name`` and implement the transforms."""

    name: ClassVar[str] = ""
    default_base_url: ClassVar[str] = ""
    needs_key: ClassVar[bool] = True

    def __init__(self, credential: Credential, pool: ClientPool) -> None:
        self.credential = credential
        self.pool = pool
        self.base_url = (credential.base_url or self.default_base_url).rstrip("/")

    # -- pure parts --------------------------------------------------------------------
    def url(self, op: Op, model: str, stream: bool) -> str:
        raise NotImplementedError

    def headers(self) -> dict[str, str]:
        return {"content-type": "application/json"}

    def transform_request(self, op: Op, body: dict[str, Any], model: str) -> dict[str, Any]:
        raise NotImplementedError

    def transform_response(self, op: Op, data: dict[str, Any], model: str) -> dict[str, Any]:
        raise NotImplementedError

    async def decode_stream(
        self, events: AsyncIterator[tuple[str | None, str]], model: str
    ) -> AsyncIterator[dict[str, Any]]:
        """Canonical chunks from the provider's stream; raises :class:`StreamCut`."""
        raise NotImplementedError
        yield {}  # pragma: no cover

    def sign(self, request: httpx.Request) -> None:
        """Add request signatures (AWS SigV4) after the body is final."""

    def error_message(self, response: httpx.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return response.text[:200]
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict):
            return str(err.get("message", err))[:500]
        if isinstance(err, str):
            return err[:500]
        return str(body)[:300]

    # -- I/O ---------------------------------------------------------------------------
    def _request(self, op: Op, body: dict[str, Any], model: str, stream: bool) -> httpx.Request:
        client = self.pool.get(self.base_url or "http://localhost")
        payload = json.dumps(self.transform_request(op, body, model), separators=(",", ":"))
        request = client.build_request(
            "POST", self.url(op, model, stream), content=payload.encode(), headers=self.headers()
        )
        self.sign(request)
        return request

    async def send(self, op: Op, body: dict[str, Any], model: str) -> dict[str, Any]:
        request = self._request(op, body, model, stream=False)
        client = self.pool.get(str(request.url))
        try:
            response = await client.send(request)
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(
                self.credential.name, f"timed out ({type(exc).__name__})"
            ) from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(self.credential.name, f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise UpstreamStatus(
                self.credential.name,
                response.status_code,
                self.error_message(response),
                _retry_after(response),
            )
        try:
            data = response.json()
        except ValueError as exc:
            raise UpstreamError(self.credential.name, "answered with invalid JSON") from exc
        return self.transform_response(op, data, model)

    async def stream(
        self, op: Op, body: dict[str, Any], model: str
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Canonical chunks; the upstream request is closed when the caller stops."""
        request = self._request(op, body, model, stream=True)
        client = self.pool.get(str(request.url))
        name = self.credential.name
        try:
            response = await client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(name, f"timed out ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(name, f"{type(exc).__name__}: {exc}") from exc
        try:
            if response.status_code >= 400:
                await response.aread()
                raise UpstreamStatus(
                    name, response.status_code, self.error_message(response), _retry_after(response)
                )
            async for chunk in self.decode_stream(sse_events(response.aiter_lines()), model):
                yield chunk
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(name, "stream timed out") from exc
        except httpx.HTTPError as exc:
            raise StreamCut(name, f"stream broke: {type(exc).__name__}") from exc
        finally:
            await response.aclose()


def chunk(
    id_: str, model: str, delta: dict[str, Any], finish: str | None = None, created: int = 0
) -> dict[str, Any]:
    """A canonical ``chat.completion.chunk`` with one choice."""
    return {
        "id": id_,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def text_of(content: Any) -> str:
    """The text of an OpenAI message content (a string or a list of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts: Iterable[Any] = content if isinstance(content, list) else [content]
    return "".join(p.get("text", "") for p in parts if isinstance(p, dict))
