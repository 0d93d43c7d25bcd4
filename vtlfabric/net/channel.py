"""The sealed records two MediaAgents exchange once the handshake (``secure``) is done.

Each record on the wire::

    u32 length | u32 CRC-32 of the length |
    AEAD(key_dir, nonce = 96-bit counter, ad = session id + direction + counter,
         plaintext = flags | u16 context length | context | payload)

The length's CRC is there for a damaged length, not a forged one: without it, a flipped
bit that made a length larger had the reader wait for bytes the sender never meant to
send, while the sender waited for its answer (the chaos sweep found such hangs). With
it, a damaged length fails at once, as a damaged record does.

Each direction has its own key (derived with HKDF) and its own counter, so no
nonce is ever used twice under one key. Context and the final flag travel
inside the ciphertext: only lengths are visible on the wire. A changed byte, a
replayed, reordered or dropped record, or a record from another session fails
authentication; a stream that ends, at a record boundary or not, is reported
as such. Every failure raises :class:`SecureChannelError` and the channel stays
failed: it never returns data it could not authenticate.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any, Final

import attrs
import trio
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from vtlfabric import blocking
from vtlfabric.bytequeue import ByteQueue, joined

MAX_PAYLOAD: Final = 16 * 2**20
MAX_CONTEXT: Final = 4096
_TAG = 16
_RECORD_HEADER = struct.Struct(">BH")  # flags, context length
_MAX_RECORD: Final = _RECORD_HEADER.size + MAX_CONTEXT + MAX_PAYLOAD + _TAG
_MIN_RECORD: Final = _RECORD_HEADER.size + _TAG
_LENGTH = struct.Struct(">II")  # a length, and its CRC-32
LENGTH_SIZE: Final = _LENGTH.size
_THREAD_THRESHOLD: Final = 64 * 1024  # below this a thread hand-off costs more than the sealing
_READ_SIZE: Final = 4 * 2**20
_FINAL = 0x01
_AEAD_CLASS: dict[str, Any] = {"aes-256-gcm": AESGCM, "chacha20-poly1305": ChaCha20Poly1305}


class SecureChannelError(Exception):
    """The peer could not be authenticated, or data failed authentication, or the session ended early."""


def length_prefix(n: int) -> bytes:
    """A length as it goes on the wire, with its CRC-32."""
    return _LENGTH.pack(n, zlib.crc32(n.to_bytes(4, "big")))


def parse_length(prefix: bytes, what: str) -> int:
    """The length a prefix gives, or SecureChannelError if it was damaged on the way."""
    n, check = _LENGTH.unpack(prefix)
    if zlib.crc32(n.to_bytes(4, "big")) != check:
        raise SecureChannelError(f"{what} length damaged on the way (its CRC does not match)")
    return n


@attrs.define(eq=False)
class StreamReader:
    """Exact reads over ``receive_some``. Bytes stay buffered until consumed, so a
    cancelled read loses nothing and the next one starts where it left off. They are
    kept in the pieces they came in (``ByteQueue``): a record is joined once, by its
    opener, off the loop."""

    stream: trio.abc.ReceiveStream
    queue: ByteQueue = attrs.Factory(ByteQueue)

    async def fill(self, n: int, during: str) -> None:
        # A WAN stream hands over its segments as they came (receive_parts): none is
        # copied on the loop; any other stream, what receive_some returns.
        receive = getattr(self.stream, "receive_parts", None)
        while self.queue.size < n:
            want = min(max(n - self.queue.size, 65536), _READ_SIZE)
            parts = await receive(want) if receive else [await self.stream.receive_some(want)]
            if not any(parts):
                where = "at a message boundary" if not self.queue.size else "in the middle of a message"
                raise SecureChannelError(f"peer closed the stream {during} ({where})")
            for part in parts:
                self.queue.append(part)

    def take(self, n: int) -> bytes:
        data = self.queue.peek(n)
        self.queue.consume(n)
        return data


@attrs.frozen
class Message:
    payload: bytes
    context: bytes
    final: bool


@attrs.define(eq=False)
class SecureChannel:
    """Sealed records in both directions over one stream. See the module docstring."""

    _stream: trio.abc.Stream
    _reader: StreamReader
    aead: str
    session_id: bytes
    _send_key: bytes = attrs.field(repr=False)
    _receive_key: bytes = attrs.field(repr=False)
    _side: bytes  # b"i" or b"r": which direction our sends are
    peer: str
    _sealer: Any = attrs.field(init=False, repr=False)
    _opener: Any = attrs.field(init=False, repr=False)
    _sent: int = 0
    _received: int = 0
    _send_failed: str | None = None
    _receive_failed: str | None = None
    _sending: bool = False
    _receiving: bool = False
    _closed: bool = False

    def __attrs_post_init__(self) -> None:
        self._sealer = _AEAD_CLASS[self.aead](self._send_key)
        self._opener = _AEAD_CLASS[self.aead](self._receive_key)

    def _ad(self, direction: bytes, counter: int) -> bytes:
        return b"vtlfabric record 1" + self.session_id + direction + counter.to_bytes(8, "big")

    @property
    def _their_side(self) -> bytes:
        return b"r" if self._side == b"i" else b"i"

    async def send(self, payload: bytes, *, context: bytes, final: bool = False) -> None:
        """Seal and send one record. ``final`` marks the last chunk of a job for the application."""
        if len(payload) > MAX_PAYLOAD:
            raise ValueError(f"a record holds at most {MAX_PAYLOAD} bytes, not {len(payload)}")
        if len(context) > MAX_CONTEXT:
            raise ValueError(f"a record context holds at most {MAX_CONTEXT} bytes")
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this channel")
        self._check_usable(self._send_failed)
        self._sending = True
        try:
            counter = self._sent
            if counter >= 2**64:
                raise SecureChannelError("too many records in one session")
            self._sent += 1  # a number is never reused, even if this send fails
            seal = _Sealer(self._sealer, counter, self._ad(self._side, counter), payload, context, final)
            big = len(payload) + len(context) + _MIN_RECORD >= _THREAD_THRESHOLD  # the same test as on receive
            frame = await blocking.run_sync(seal) if big else seal()
            await self._stream.send_all(frame)
        except BaseException as e:
            # Part of a frame may be on the wire: nothing sent after it could be read.
            self._send_failed = f"an earlier send failed ({type(e).__name__})"
            raise
        finally:
            self._sending = False

    async def receive(self) -> Message:
        """The next record, authenticated and in order, or SecureChannelError."""
        if self._receiving:
            raise trio.BusyResourceError("another task is receiving on this channel")
        self._check_usable(self._receive_failed)
        self._receiving = True
        try:
            await trio.lowlevel.checkpoint()  # even when a whole record is already buffered
            return await self._receive_record()
        except SecureChannelError as e:
            self._receive_failed = str(e)
            raise
        finally:
            self._receiving = False

    async def _receive_record(self) -> Message:
        reader = self._reader
        await reader.fill(_LENGTH.size, "between records")
        n = parse_length(reader.queue.peek(_LENGTH.size), "record")
        if not _MIN_RECORD <= n <= _MAX_RECORD:
            raise SecureChannelError(f"record length {n} is out of bounds (corrupt or hostile stream)")
        await reader.fill(_LENGTH.size + n, "inside a record")
        ciphertext = reader.queue.parts(_LENGTH.size, n)  # joined by the opener: off the loop
        counter = self._received
        unseal = _Opener(self._opener, counter, self._ad(self._their_side, counter), ciphertext)
        message = await blocking.run_sync(unseal) if n >= _THREAD_THRESHOLD else unseal()
        # Consumed only now: a cancelled receive leaves the record for the next call.
        reader.queue.consume(_LENGTH.size + n)
        self._received += 1
        return message

    def _check_usable(self, failure: str | None) -> None:
        if self._closed:
            raise trio.ClosedResourceError("this secure channel was closed")
        if failure is not None:
            raise SecureChannelError(f"channel unusable: {failure}")

    async def aclose(self) -> None:
        """Close the underlying stream."""
        self._closed = True
        await self._stream.aclose()


@attrs.frozen
class _Sealer:
    """One record's sealing, runnable inline or in a worker thread."""

    aead: Any
    counter: int
    ad: bytes
    payload: bytes
    context: bytes
    final: bool

    def __call__(self) -> bytes:
        plaintext = b"".join((_RECORD_HEADER.pack(_FINAL if self.final else 0, len(self.context)), self.context, self.payload))
        ciphertext = self.aead.encrypt(self.counter.to_bytes(12, "big"), plaintext, self.ad)
        return length_prefix(len(ciphertext)) + ciphertext


@attrs.frozen
class _Opener:
    aead: Any
    counter: int
    ad: bytes
    ciphertext: list[memoryview]  # in the pieces it arrived in

    def __call__(self) -> Message:
        ciphertext = joined(self.ciphertext)
        try:
            plaintext = self.aead.decrypt(self.counter.to_bytes(12, "big"), ciphertext, self.ad)
        except InvalidTag:
            raise SecureChannelError(
                f"record {self.counter} failed authentication (tampered, replayed, reordered or from another session)"
            ) from None
        flags, context_length = _RECORD_HEADER.unpack_from(plaintext)
        if flags & ~_FINAL or _RECORD_HEADER.size + context_length > len(plaintext):
            raise SecureChannelError(f"record {self.counter} is malformed")  # authentic, so a peer bug
        body = memoryview(plaintext)[_RECORD_HEADER.size :]
        return Message(bytes(body[context_length:]), bytes(body[:context_length]), bool(flags & _FINAL))
