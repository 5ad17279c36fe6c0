"""The provider kind: pure transforms plus I/O through one pooled client per endpoint.

A provider turns MUSUBI's canonical request (the OpenAI Chat Completions / Completions /
Embeddings body) into its own wire format (:meth:`Provider.transform_request`), its
answer back into the canonical OpenAI shape (:meth:`Provider.transform_response`), and
its stream events into ``chat.completion.chunk`` dicts (:meth:`Provider.decode_stream`).
Those three are pure and unit-tested on dicts; :meth:`send` and :meth:`stream` do the I/O.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import aiohttp
import certifi
from yarl import URL

from musubi.egress import EgressPolicy, EgressRefused
from musubi.egress.clients import EgressResolver, check_literal
from musubi.errors import UpstreamError, UpstreamTimeout
from musubi.kinds import Kind

__all__ = [
    "PROVIDERS",
    "ClientPool",
    "Credential",
    "Op",
    "Provider",
    "StreamCut",
    "UpstreamStatus",
    "one_line",
    "sse_events",
]

Op = Literal["chat", "completion", "embedding"]
_EGRESS_OK_MAX = 64  # accepted URLs remembered per provider (a few per model and op)


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
    trusted: bool = False  # set up by the server itself (a detected Ollama), not a tenant


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
    """One pooled aiohttp session per egress policy (in practice one, plus one per tenant
    the operator allowed more), shared by every upstream endpoint under that policy:
    keep-alive connections, at most ``max_connections`` per endpoint, connect and read
    timeouts, no redirects. The session's resolver applies the policy to every new
    connection (:mod:`musubi.egress.clients`); a connection is never shared between
    policies. ``egress`` is the policy of providers built without one.

    aiohttp rather than httpx: measured on this machine, an httpx.AsyncClient request costs
    ~1.9 ms of CPU and an aiohttp one ~0.26 ms (``bench/http_clients.py``), and the
    upstream call is most of the gateway's own work per request.
    """

    def __init__(
        self,
        *,
        max_connections: int = 96,
        connect_timeout: float = 5.0,
        read_timeout: float = 120,
        egress: EgressPolicy | None = None,
    ) -> None:
        self.max_connections = max_connections
        self.egress = egress or EgressPolicy()
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._sessions: dict[EgressPolicy, aiohttp.ClientSession] = {}
        self._tls: ssl.SSLContext | None = None

    def tls(self, url: str) -> ssl.SSLContext | bool:
        """TLS settings for ``url``: certifi's CA bundle, loaded on the first ``https``
        request (~1 MB, not spent by a gateway whose upstreams are all local)."""
        if not url.startswith("https:"):
            return True  # aiohttp's default; unused for plain http
        if self._tls is None:
            self._tls = ssl.create_default_context(cafile=certifi.where())
        return self._tls

    def get(self, egress: EgressPolicy | None = None) -> aiohttp.ClientSession:
        """The session of ``egress`` (made on first use, inside the running event loop)."""
        policy = egress or self.egress
        session = self._sessions.get(policy)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=0,
                limit_per_host=self.max_connections,
                keepalive_timeout=60,
                resolver=EgressResolver(policy),
            )
            session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, auto_decompress=True
            )
            self._sessions[policy] = session
        return session

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()


@dataclass
class UpstreamRequest:
    """What goes to the provider; :meth:`Provider.sign` may add headers."""

    method: str
    url: str  # already percent-encoded: sent as is (SigV4 signs these exact bytes)
    headers: dict[str, str]
    content: bytes


async def _lines(response: aiohttp.ClientResponse) -> AsyncIterator[str]:
    """The body's lines without their line ends, whatever their length."""
    rest = b""
    async for data in response.content.iter_any():
        parts = (rest + data).split(b"\n")
        rest = parts.pop()
        for part in parts:
            yield part.rstrip(b"\r").decode("utf-8", "replace")
    if rest:
        yield rest.rstrip(b"\r").decode("utf-8", "replace")


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


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
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
    server_only: ClassVar[bool] = False  # made by the server only; no tenant may configure it

    def __init__(
        self, credential: Credential, pool: ClientPool, egress: EgressPolicy | None = None
    ) -> None:
        self.credential = credential
        self.pool = pool
        self.egress = egress or pool.egress
        self.base_url = (credential.base_url or self.default_base_url).rstrip("/")
        # URLs this provider's policy accepted: kept with the provider (so with its
        # tenant's routing table), not in one process-wide LRU that 10,000 tenants, each
        # with its own endpoint, would churn through on every call (issue 24)
        self._egress_ok: set[str] = set()

    # -- pure parts --------------------------------------------------------------------
    def url(self, op: Op, model: str, stream: bool) -> str:
        raise NotImplementedError

    def headers(self) -> dict[str, str]:
        return {"content-type": "application/json"}

    def destination(self) -> str | None:
        """Where this provider's requests (and its secret) go: the URL of a chat call, or
        None for a provider that does not use the network."""
        try:
            return self.url("chat", "model", False)
        except NotImplementedError:
            return None

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

    def sign(self, request: UpstreamRequest) -> None:
        """Add request signatures (AWS SigV4) after the body is final."""

    def error_message(self, body: bytes) -> str:
        """A safe summary of an error body: the provider's error type and message when
        the body is JSON shaped like an error (``{"error": {"type", "message"}}``,
        ``{"error": "…"}`` or ``{"message": "…"}``), on one line and at most 300
        characters; never the body itself (an HTML page, another service's answer)."""
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        err = parsed.get("error") if isinstance(parsed, dict) else None
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            kind = err.get("type") or err.get("code") or err.get("status")
            text = f"{kind}: {err['message']}" if isinstance(kind, str) and kind else err["message"]
            return one_line(text)
        if isinstance(err, str):
            return one_line(err)
        if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
            return one_line(parsed["message"])
        return f"an error body of {len(body)} bytes, not shown"

    # -- I/O ---------------------------------------------------------------------------
    def _request(self, op: Op, body: dict[str, Any], model: str, stream: bool) -> UpstreamRequest:
        payload = json.dumps(self.transform_request(op, body, model), separators=(",", ":"))
        request = UpstreamRequest(
            "POST", self.url(op, model, stream), dict(self.headers()), payload.encode()
        )
        self.sign(request)
        return request

    async def _open(self, request: UpstreamRequest) -> aiohttp.ClientResponse:
        """Send the request: only where the egress policy allows, following no redirect."""
        name = self.credential.name
        try:
            if request.url not in self._egress_ok:
                check_literal(self.egress, request.url)
                if len(self._egress_ok) < _EGRESS_OK_MAX:
                    self._egress_ok.add(request.url)
            return await self.pool.get(self.egress).request(
                request.method,
                URL(request.url, encoded=True),
                data=request.content,
                headers=request.headers,
                ssl=self.pool.tls(request.url),
                allow_redirects=False,
            )
        except EgressRefused as exc:
            raise UpstreamError(name, str(exc)) from exc
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, EgressRefused):  # refused (or unknown) by the resolver
                raise UpstreamError(name, str(exc.os_error)) from exc
            raise UpstreamError(name, f"{type(exc).__name__}: {exc}") from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamTimeout(name, f"timed out ({type(exc).__name__})") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(name, f"{type(exc).__name__}: {exc}") from exc

    async def _failed(self, response: aiohttp.ClientResponse) -> UpstreamStatus:
        if response.status < 400:
            message = "answered a redirect, which is not followed (check base_url)"
            return UpstreamStatus(self.credential.name, response.status, message, None)
        body = await response.read()
        return UpstreamStatus(
            self.credential.name,
            response.status,
            self.error_message(body),
            _retry_after(response.headers),
        )

    async def send(self, op: Op, body: dict[str, Any], model: str) -> dict[str, Any]:
        name = self.credential.name
        response = await self._open(self._request(op, body, model, stream=False))
        try:
            if response.status >= 300:
                raise await self._failed(response)
            raw = await response.read()
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamTimeout(name, "timed out reading the answer") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(name, f"{type(exc).__name__}: {exc}") from exc
        finally:
            response.release()
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise UpstreamError(name, "answered with invalid JSON") from exc
        return self.transform_response(op, data, model)

    def stream_events(
        self, response: aiohttp.ClientResponse
    ) -> AsyncIterator[tuple[str | None, str]]:
        """The (event, data) pairs of a streamed answer: server-sent events by default."""
        return sse_events(_lines(response))

    async def stream(
        self, op: Op, body: dict[str, Any], model: str
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Canonical chunks; the upstream request is closed when the caller stops."""
        name = self.credential.name
        response = await self._open(self._request(op, body, model, stream=True))
        finished = False
        try:
            if response.status >= 300:
                raise await self._failed(response)
            async for item in self.decode_stream(self.stream_events(response), model):
                yield item
            finished = True
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamTimeout(name, "stream timed out") from exc
        except aiohttp.ClientError as exc:
            raise StreamCut(name, f"stream broke: {type(exc).__name__}") from exc
        finally:
            if finished:
                response.release()  # read to the end: the connection is reused
            else:
                response.close()  # the caller went away or it broke: drop the connection


def one_line(text: str, limit: int = 300) -> str:
    """``text`` as one line of printable characters, cut at ``limit``."""
    flat = "".join(c if c.isprintable() else " " for c in text)
    flat = " ".join(flat.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


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


PROVIDERS: Kind[Provider] = Kind("providers", Provider)
"""Entry points of ``musubi.providers``: a :class:`Provider` subclass whose ``name`` is the
entry point's name, built as ``cls(credential, pool, egress)``."""
