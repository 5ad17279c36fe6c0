"""The HTTP/1.1 protocol ``musubi serve`` runs: uvicorn's httptools one, with a limit on
the size of a request's head (request line and headers).

uvicorn bounds the head only for its h11 implementation
(``h11_max_incomplete_event_size``); with httptools, the faster one it picks when it is
installed, a client could send headers without end and the server kept them all in
memory, anonymously. :class:`LimitedHttpTools` counts the head while it arrives and, past
the limit, answers ``431 Request Header Fields Too Large`` and closes the connection
before any of it reaches the application. It takes its limit from the same uvicorn
setting, so one number (``MUSUBI_MAX_HEADER_BYTES``) bounds both implementations.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

__all__ = ["LimitedHttpTools", "http_protocol"]

DEFAULT_LIMIT = 65_536
LINGER_S = 2.0
"""After a 431, how long what the client still sends is read and dropped before closing:
closing with unread data makes the kernel reset the connection, and the client would
lose the answer (nginx's "lingering close")."""


class LimitedHttpTools(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.head_limit = config.h11_max_incomplete_event_size or DEFAULT_LIMIT
        self._in_head = False
        self._parsed = 0  # bytes of url and headers the parser has handed over
        self._raw = 0  # bytes of later packets that arrived while the head was incomplete
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering: dropped unread
        continuing = self._in_head
        super().data_received(data)
        if not self._in_head:
            return
        if continuing:  # all of this packet belongs to the unfinished head
            self._raw += len(data)
        size = max(self._parsed, self._raw)
        if size > self.head_limit and not self.transport.is_closing():
            self._refuse(size)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._parsed, self._raw = True, 0, 0

    def on_url(self, url: bytes) -> None:
        self._parsed += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._parsed += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def _refuse(self, size: int) -> None:
        self._in_head, self._refused = False, True
        message = f"request headers exceed the limit of {self.head_limit} bytes".encode()
        self.logger.warning("refused a request head of over %d bytes (431)", size)
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: text/plain; charset=utf-8\r\n"
            b"content-length: " + str(len(message)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + message
        )
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)


def http_protocol() -> str:
    """The ``http`` setting for uvicorn: this module's protocol where httptools is
    installed, else h11 (bounded by ``h11_max_incomplete_event_size`` itself)."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return f"{__name__}:LimitedHttpTools"
