"""AWS's binary event stream (``application/vnd.amazon.eventstream``), pure and incremental.

Bedrock's ConverseStream answers in this framing rather than server-sent events. Each
message is::

    total length (u32 BE) | headers length (u32 BE) | prelude CRC32 (of the 8 bytes before)
    headers | payload | message CRC32 (of every byte of the message before it)

and each header is ``name length (u8) | name | type (u8) | value``, the value's size set by
its type. :class:`Decoder` is fed the body as it arrives, in pieces of any size (a socket
read may end anywhere inside a message), and returns the messages it completes; a message
whose CRCs or lengths do not hold raises :class:`EventStreamError`, since a corrupt length
would otherwise make every later message unreadable. :func:`encode` writes messages (the
tests' fake Bedrock serves real frames with it).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

__all__ = ["Decoder", "EventStreamError", "HeaderValue", "Message", "encode", "frame"]

HeaderValue = bool | int | bytes | str | datetime | UUID

_PRELUDE = 12  # the two lengths and the prelude CRC
_OVERHEAD = _PRELUDE + 4  # and the message CRC
# AWS caps a message at 16 MiB and its headers at 128 KiB; a larger length is corrupt.
MAX_MESSAGE = 16 * 1024 * 1024
MAX_HEADERS = 128 * 1024
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Fixed-size header value types: struct format by type code.
_FIXED = {2: ">b", 3: ">h", 4: ">i", 5: ">q"}


class EventStreamError(ValueError):
    """The bytes are not a valid event stream (bad CRC, impossible length, bad header)."""


@dataclass(frozen=True)
class Message:
    headers: dict[str, HeaderValue]
    payload: bytes

    def header(self, name: str) -> str | None:
        """A string header's value (``:event-type``, ``:message-type``…), else None."""
        value = self.headers.get(name)
        return value if isinstance(value, str) else None


def _headers(block: bytes) -> dict[str, HeaderValue]:
    out: dict[str, HeaderValue] = {}
    pos, end = 0, len(block)

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > end:
            raise EventStreamError("a header runs past the end of the headers section")
        part = block[pos : pos + n]
        pos += n
        return part

    while pos < end:
        name = take(take(1)[0]).decode("utf-8", "replace")
        kind = take(1)[0]
        value: HeaderValue
        if kind == 0:
            value = True
        elif kind == 1:
            value = False
        elif kind in _FIXED:
            fmt = _FIXED[kind]
            value = int(struct.unpack(fmt, take(struct.calcsize(fmt)))[0])
        elif kind in (6, 7):
            raw = take(struct.unpack(">H", take(2))[0])
            value = raw if kind == 6 else raw.decode("utf-8", "replace")
        elif kind == 8:  # milliseconds since the epoch
            millis = struct.unpack(">q", take(8))[0]
            try:
                value = _EPOCH + timedelta(milliseconds=millis)
            except OverflowError as exc:
                raise EventStreamError(f"header {name!r}: timestamp {millis} out of range") from exc
        elif kind == 9:
            value = UUID(bytes=take(16))
        else:
            raise EventStreamError(f"header {name!r} has unknown value type {kind}")
        out[name] = value
    return out


class Decoder:
    """Feed it bytes as they arrive; it returns every message they complete, in order.

    After an error it stays failed: the position of the next message is unknown.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._error: EventStreamError | None = None

    @property
    def pending(self) -> int:
        """Bytes held of a message not yet complete (non-zero at the end: a cut stream)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Message]:
        if self._error is not None:
            raise self._error
        self._buf += data
        out: list[Message] = []
        try:
            while (message := self._next()) is not None:
                out.append(message)
        except EventStreamError as exc:
            self._error = exc
            raise
        return out

    def _next(self) -> Message | None:
        buf = self._buf
        if len(buf) < _PRELUDE:
            return None
        total, hlen, crc = struct.unpack_from(">III", buf)
        if zlib.crc32(buf[:8]) != crc:
            raise EventStreamError("prelude CRC mismatch")
        if total < _OVERHEAD or total > MAX_MESSAGE or hlen > MAX_HEADERS:
            raise EventStreamError(f"impossible lengths: message {total}, headers {hlen}")
        if hlen > total - _OVERHEAD:
            raise EventStreamError(f"headers ({hlen} bytes) overrun the message ({total})")
        if len(buf) < total:
            return None
        (expected,) = struct.unpack_from(">I", buf, total - 4)
        if zlib.crc32(buf[: total - 4]) != expected:
            raise EventStreamError("message CRC mismatch")
        headers = _headers(bytes(buf[_PRELUDE : _PRELUDE + hlen]))
        payload = bytes(buf[_PRELUDE + hlen : total - 4])
        del buf[:total]
        return Message(headers, payload)


def _encode_header(name: str, value: HeaderValue) -> bytes:
    raw_name = name.encode()
    head = bytes([len(raw_name)]) + raw_name
    if isinstance(value, bool):
        return head + bytes([0 if value else 1])
    if isinstance(value, int):
        if -(2**31) <= value < 2**31:
            return head + bytes([4]) + struct.pack(">i", value)
        return head + bytes([5]) + struct.pack(">q", value)
    if isinstance(value, bytes | str):
        raw = value if isinstance(value, bytes) else value.encode()
        kind = 6 if isinstance(value, bytes) else 7
        return head + bytes([kind]) + struct.pack(">H", len(raw)) + raw
    if isinstance(value, datetime):
        millis = (value - _EPOCH) // timedelta(milliseconds=1)
        return head + bytes([8]) + struct.pack(">q", millis)
    return head + bytes([9]) + value.bytes


def frame(header_block: bytes, payload: bytes) -> bytes:
    """One message around an already encoded headers section: lengths and both CRCs."""
    total = _OVERHEAD + len(header_block) + len(payload)
    prelude = struct.pack(">II", total, len(header_block))
    head = prelude + struct.pack(">I", zlib.crc32(prelude)) + header_block + payload
    return head + struct.pack(">I", zlib.crc32(head))


def encode(headers: Mapping[str, HeaderValue], payload: bytes) -> bytes:
    """One message: ints are sent as int32 (int64 when larger), bytes as a byte array."""
    return frame(b"".join(_encode_header(k, v) for k, v in headers.items()), payload)
