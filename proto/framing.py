"""Framing of the E2-like protocol on a byte stream, shared by the E2 node and the xApp.

A frame is a 4-byte big-endian unsigned length followed by that many bytes: one serialized
`ranpd.e2.Envelope` (e2ap.proto). Two readers are offered:

- `read_frame(reader)` for an asyncio `StreamReader` (clients such as the E2 node),
- `FrameDecoder.feed(data)` for an `asyncio.Protocol` (the xApp's server: no coroutine per frame).

Errors carry the E2AP-style cause to report back. `FrameError.fatal` tells whether the stream is
still in sync: a payload that does not parse is skipped (the next frame is intact), while an
oversized length or a stream that ends mid-frame leaves nothing to resynchronise on.
"""
from __future__ import annotations

import asyncio
import struct

from google.protobuf.message import DecodeError, Message

from ranpd.proto import e2ap_pb2

PROTOCOL_VERSION = e2ap_pb2.PROTOCOL_VERSION_1
MAX_FRAME_BYTES = 1 << 20          # 1 MiB: a 64-UE link-adaptation indication is under 1 kB
_LENGTH = struct.Struct(">I")
HEADER_BYTES = _LENGTH.size

# Envelope oneof: message type (full protobuf name) -> field name, e.g.
# "ranpd.e2.RICIndication" -> "ric_indication".
_FIELD_BY_TYPE = {f.message_type.full_name: f.name
                  for f in e2ap_pb2.Envelope.DESCRIPTOR.oneofs_by_name["message"].fields}


class FrameError(Exception):
    """A frame that cannot be accepted; `cause` is an `e2ap_pb2.Cause` value."""

    def __init__(self, cause: int, text: str, fatal: bool = False):
        super().__init__(text)
        self.cause, self.text, self.fatal = cause, text, fatal


class CodecError(ValueError):
    """A service-model payload (indication/control header or message) that cannot be used;
    `cause` is an `e2ap_pb2.Cause` value."""

    def __init__(self, cause: int, text: str):
        super().__init__(text)
        self.cause, self.text = cause, text


def wrap(message: Message, transaction_id: int = 0) -> e2ap_pb2.Envelope:
    """Put one E2AP message (e.g. an `E2SetupRequest`) into an envelope of this version."""
    envelope = e2ap_pb2.Envelope(protocol_version=PROTOCOL_VERSION, transaction_id=transaction_id)
    getattr(envelope, _FIELD_BY_TYPE[message.DESCRIPTOR.full_name]).CopyFrom(message)
    return envelope


def message_type(envelope: e2ap_pb2.Envelope) -> str | None:
    """Field name of the message the envelope carries, or None for a type this version lacks."""
    return envelope.WhichOneof("message")


def encode_frame(envelope: e2ap_pb2.Envelope) -> bytes:
    payload = envelope.SerializeToString()
    return _LENGTH.pack(len(payload)) + payload


def decode_envelope(payload: bytes) -> e2ap_pb2.Envelope:
    """Parse one frame's payload; raises FrameError(MALFORMED_MESSAGE), never DecodeError."""
    try:
        return e2ap_pb2.Envelope.FromString(payload)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise FrameError(e2ap_pb2.CAUSE_MALFORMED_MESSAGE,
                         f"frame of {len(payload)} bytes is not an Envelope: {exc}") from exc


def _check_length(length: int, max_bytes: int) -> None:
    if length > max_bytes:
        raise FrameError(e2ap_pb2.CAUSE_MESSAGE_TOO_LARGE,
                         f"frame of {length} bytes exceeds the limit of {max_bytes}", fatal=True)


def write_frame(writer: asyncio.StreamWriter | asyncio.WriteTransport,
                envelope: e2ap_pb2.Envelope) -> None:
    """Queue one frame on a StreamWriter or transport (await `writer.drain()` for backpressure)."""
    writer.write(encode_frame(envelope))


async def read_frame(reader: asyncio.StreamReader,
                     max_bytes: int = MAX_FRAME_BYTES) -> e2ap_pb2.Envelope:
    """Read one envelope. EOF before a frame starts raises `asyncio.IncompleteReadError` with
    no partial bytes (a clean close); EOF inside a frame raises a fatal FrameError."""
    header = await reader.readexactly(HEADER_BYTES)
    (length,) = _LENGTH.unpack(header)
    _check_length(length, max_bytes)
    try:
        payload = await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise FrameError(e2ap_pb2.CAUSE_MALFORMED_MESSAGE,
                         f"stream ended {len(exc.partial)} bytes into a {length}-byte frame",
                         fatal=True) from exc
    return decode_envelope(payload)


class FrameDecoder:
    """Incremental decoder for `asyncio.Protocol.data_received`: bytes in, envelopes out.

    `push(data)` buffers bytes; `pop()` returns the next complete frame's result (an Envelope,
    or a FrameError for a payload that does not parse: later frames still decode) or None when
    no complete frame is buffered. An oversized length raises a fatal FrameError: the connection
    must be closed. `feed(data)` is push + every pop. `pending` counts buffered bytes, so a
    stream that closes with `pending > 0` was truncated. A receiver that pops a few frames per
    turn bounds the work one peer's burst costs before others are served.
    """

    def __init__(self, max_bytes: int = MAX_FRAME_BYTES):
        self.max_bytes = max_bytes
        self._buffer = bytearray()
        self._start = 0

    @property
    def pending(self) -> int:
        return len(self._buffer) - self._start

    def push(self, data: bytes) -> None:
        self._buffer += data

    def complete(self) -> bool:
        """Whether a whole frame (or an oversized length, which `pop` raises on) is buffered."""
        buffer, start = self._buffer, self._start
        if len(buffer) - start < HEADER_BYTES:
            return False
        (length,) = _LENGTH.unpack_from(buffer, start)
        return length > self.max_bytes or start + HEADER_BYTES + length <= len(buffer)

    def pop(self) -> e2ap_pb2.Envelope | FrameError | None:
        buffer, start = self._buffer, self._start
        if len(buffer) - start >= HEADER_BYTES:
            (length,) = _LENGTH.unpack_from(buffer, start)
            _check_length(length, self.max_bytes)
            end = start + HEADER_BYTES + length
            if end <= len(buffer):
                payload = bytes(buffer[start + HEADER_BYTES:end])
                self._consumed(end)
                try:
                    return decode_envelope(payload)
                except FrameError as exc:
                    return exc
        del buffer[:start]
        self._start = 0
        return None

    def _consumed(self, end: int) -> None:
        """Mark the bytes before `end` as handled and release them once they are at least half
        the buffer (amortised O(1) per byte), or all of it. Without this, a reader that pops one
        frame per turn and stops when no whole frame is left (the xApp's server) would never reach
        the release in `pop`, and the buffer would keep every byte the peer ever sent."""
        buffer = self._buffer
        if end == len(buffer):
            buffer.clear()
            end = 0
        elif end >= len(buffer) - end:
            del buffer[:end]
            end = 0
        self._start = end

    def take_rest(self) -> bytes:
        """The bytes buffered and not yet popped, removed from the decoder (a connection handed
        to another process carries them along)."""
        rest = bytes(self._buffer[self._start:])
        self._buffer.clear()
        self._start = 0
        return rest

    def feed(self, data: bytes) -> list[e2ap_pb2.Envelope | FrameError]:
        self.push(data)
        out: list[e2ap_pb2.Envelope | FrameError] = []
        while (item := self.pop()) is not None:
            out.append(item)
        return out
