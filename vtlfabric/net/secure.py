"""An authenticated, encrypted channel between two MediaAgents, over any ``trio.abc.Stream``.

Handshake (the responder is the receiving MediaAgent)::

    responder -> initiator   HELLO   responder name, aead, kem, challenge (32 fresh bytes)
    initiator -> responder   KEY     initiator, responder, aead, kem,
                                     enc = HPKE-seal(responder's KEM key, session key, info = names + aead + kem),
                                     sig = Ed25519(initiator's key, names + aead + kem + challenge + enc)
    responder -> initiator   ACCEPT  HMAC(confirm key, transcript)      (or REFUSE reason)

The initiator draws the session key; only the holder of the responder's KEM
private key can open it, and only the holder of the initiator's signing key
can have signed it together with this session's challenge, so a recorded
handshake cannot be replayed. ACCEPT proves to the initiator that the
responder opened the key before any job data is sent.

Records after the handshake::

    u32 length | AEAD(key_dir, nonce = 96-bit counter, ad = session id + direction + counter,
                      plaintext = flags | u16 context length | context | payload)

Each direction has its own key (derived with HKDF) and its own counter, so no
nonce is ever used twice under one key. Context and the final flag travel
inside the ciphertext: only lengths are visible on the wire. A changed byte, a
replayed, reordered or dropped record, or a record from another session fails
authentication; a stream that ends, at a record boundary or not, is reported
as such. Every failure raises :class:`SecureChannelError` and the channel stays
failed: it never returns data it could not authenticate.

Key material, session keys and challenges come from ``os.urandom`` (through
``cryptography``), deliberately *not* from the world's seeded RNG: a seed makes
a simulation reproducible, and must never make a key predictable.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import stat
import struct
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import attrs
import trio
from cryptography.exceptions import InvalidSignature, InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, hpke, serialization
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEMS: Final = ("x25519", "mlkem768-x25519")
AEADS: Final = ("aes-256-gcm", "chacha20-poly1305")

MAX_PAYLOAD: Final = 16 * 2**20
MAX_CONTEXT: Final = 4096
_TAG = 16
_RECORD_HEADER = struct.Struct(">BH")  # flags, context length
_MAX_RECORD: Final = _RECORD_HEADER.size + MAX_CONTEXT + MAX_PAYLOAD + _TAG
_MIN_RECORD: Final = _RECORD_HEADER.size + _TAG
_LENGTH = struct.Struct(">I")
_HS_LENGTH = struct.Struct(">H")
_MAX_HANDSHAKE: Final = 8192
_THREAD_THRESHOLD: Final = 64 * 1024  # below this a thread hand-off costs more than the sealing
_READ_SIZE: Final = 1 * 2**20
_FINAL = 0x01
_KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

_HELLO, _KEY, _ACCEPT, _REFUSE = b"vtlfabric hello 1", b"vtlfabric key 1", b"vtlfabric accept 1", b"vtlfabric refuse 1"
_HPKE_KEM = {"x25519": hpke.KEM.X25519, "mlkem768-x25519": hpke.KEM.MLKEM768_X25519}
_HPKE_AEAD = {"aes-256-gcm": hpke.AEAD.AES_256_GCM, "chacha20-poly1305": hpke.AEAD.CHACHA20_POLY1305}
_AEAD_CLASS: dict[str, Any] = {"aes-256-gcm": AESGCM, "chacha20-poly1305": ChaCha20Poly1305}


class SecureChannelError(Exception):
    """The peer could not be authenticated, or data failed authentication, or the session ended early."""


class KeystoreError(Exception):
    """A key file is missing, unreadable, corrupt or of the wrong kind (the message names it)."""


# ---------------------------------------------------------------- keys


KemPrivateKey = x25519.X25519PrivateKey | hpke.MLKEM768X25519PrivateKey
KemPublicKey = x25519.X25519PublicKey | hpke.MLKEM768X25519PublicKey


@attrs.frozen
class Identity:
    """What one MediaAgent holds: its signing key and the KEM key others seal session keys to."""

    name: str
    signing_key: Ed25519PrivateKey = attrs.field(repr=False)
    kem_key: KemPrivateKey = attrs.field(repr=False)
    kem: str


@attrs.frozen
class PublicKeys:
    """What everyone knows about one MediaAgent."""

    name: str
    verify_key: Ed25519PublicKey = attrs.field(repr=False)
    kem_key: KemPublicKey = attrs.field(repr=False)
    kem: str
    fingerprint: str  # of the verify key, for logs and status


@attrs.define(eq=False)
class Keystore:
    """The fabric's identity keys, one set per MediaAgent, kept as PEM files (mode 0600)."""

    directory: Path
    kem: str
    _identities: dict[str, Identity]
    _publics: dict[str, PublicKeys]

    @classmethod
    def load_or_create(cls, directory: Path, names: Iterable[str], kem: str) -> Keystore:
        """Load each name's keys, creating the missing ones. Blocking: run it in a thread.

        Files: ``<name>.ed25519.pem``, ``<name>.x25519.pem`` and, for the hybrid
        KEM, ``<name>.mlkem768.pem``. Switching the KEM keeps the X25519 key.
        """
        if kem not in KEMS:
            raise KeystoreError(f"unknown kem {kem!r}: expected one of {', '.join(KEMS)}")
        directory = Path(directory)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        identities = {name: _load_identity(directory, name, kem) for name in names}
        publics = {name: _public_of(identity) for name, identity in identities.items()}
        return cls(directory, kem, identities, publics)

    @property
    def names(self) -> list[str]:
        return sorted(self._identities)

    def identity(self, name: str) -> Identity:
        try:
            return self._identities[name]
        except KeyError:
            raise SecureChannelError(f"no identity for {name!r} in the keystore") from None

    def public(self, name: str) -> PublicKeys:
        try:
            return self._publics[name]
        except KeyError:
            raise SecureChannelError(f"{name!r} is not a known MediaAgent (not in the keystore)") from None


def _check_name(name: str) -> None:
    if not _KEY_NAME.match(name):
        raise KeystoreError(f"{name!r} cannot name a key file (ASCII letters, digits, '.', '-', '_'; at most 64)")


def _load_identity(directory: Path, name: str, kem: str) -> Identity:
    _check_name(name)
    signing = _key_file(directory / f"{name}.ed25519.pem", Ed25519PrivateKey, Ed25519PrivateKey.generate)
    x_key = _key_file(directory / f"{name}.x25519.pem", x25519.X25519PrivateKey, x25519.X25519PrivateKey.generate)
    kem_key: KemPrivateKey = x_key
    if kem == "mlkem768-x25519":
        m_key = _key_file(directory / f"{name}.mlkem768.pem", mlkem.MLKEM768PrivateKey, mlkem.MLKEM768PrivateKey.generate)
        kem_key = hpke.MLKEM768X25519PrivateKey(m_key, x_key)
    return Identity(name, signing, kem_key, kem)


def _public_of(identity: Identity) -> PublicKeys:
    verify = identity.signing_key.public_key()
    kem_public: KemPublicKey = identity.kem_key.public_key()
    raw = verify.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PublicKeys(identity.name, verify, kem_public, identity.kem, hashlib.sha256(raw).hexdigest()[:16])


def _key_file(path: Path, kind: type, generate: Any) -> Any:
    """Load a private key of ``kind`` from ``path``, or create it there if it does not exist."""
    if not path.exists():
        key = generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        _write_private(path, pem)
        return key
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as e:
        raise KeystoreError(f"{path}: cannot read key file: {e.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeystoreError(f"{path}: key file is accessible to others (mode {stat.S_IMODE(mode):04o}); chmod 600 it")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise KeystoreError(f"{path}: not a readable PEM private key ({type(e).__name__}: {e})") from None
    if not isinstance(key, kind):
        raise KeystoreError(f"{path}: holds a {type(key).__name__}, expected a {kind.__name__}")
    return key


def _write_private(path: Path, data: bytes) -> None:
    """Write atomically (temp file, fsync, rename) so a crash never leaves half a key; mode 0600 from the start."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mkstemp creates 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# ---------------------------------------------------------------- framing helpers


def _pack(*fields: bytes) -> bytes:
    return b"".join(_HS_LENGTH.pack(len(f)) + f for f in fields)


def _unpack(data: bytes, count: int, what: str) -> list[bytes]:
    fields, at = [], 0
    for _ in range(count):
        if at + 2 > len(data):
            raise SecureChannelError(f"malformed {what} message")
        (n,) = _HS_LENGTH.unpack_from(data, at)
        if at + 2 + n > len(data):
            raise SecureChannelError(f"malformed {what} message")
        fields.append(data[at + 2:at + 2 + n])
        at += 2 + n
    if at != len(data):
        raise SecureChannelError(f"malformed {what} message (trailing bytes)")
    return fields


def _text(field: bytes, what: str) -> str:
    try:
        return field.decode("ascii")
    except UnicodeDecodeError:
        raise SecureChannelError(f"malformed {what}") from None


@attrs.define(eq=False)
class _Reader:
    """Exact reads over ``receive_some``. Bytes stay buffered until consumed, so a
    cancelled read loses nothing and the next one starts where it left off."""

    stream: trio.abc.ReceiveStream
    buffer: bytearray = attrs.Factory(bytearray)

    async def fill(self, n: int, during: str) -> None:
        while len(self.buffer) < n:
            data = await self.stream.receive_some(min(max(n - len(self.buffer), 65536), _READ_SIZE))
            if not data:
                where = "at a message boundary" if not self.buffer else "in the middle of a message"
                raise SecureChannelError(f"peer closed the stream {during} ({where})")
            self.buffer += data

    def take(self, n: int) -> bytes:
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data


async def _send_handshake(stream: trio.abc.SendStream, *fields: bytes) -> None:
    body = _pack(*fields)
    assert len(body) <= _MAX_HANDSHAKE, "handshake message too big"
    await stream.send_all(_HS_LENGTH.pack(len(body)) + body)


async def _read_handshake(reader: _Reader, expect: bytes, count: int) -> list[bytes]:
    """Read one handshake message of kind ``expect`` with ``count`` fields (REFUSE is raised)."""
    await reader.fill(_HS_LENGTH.size, "during the handshake")
    (n,) = _HS_LENGTH.unpack(bytes(reader.buffer[:_HS_LENGTH.size]))
    if n > _MAX_HANDSHAKE:
        raise SecureChannelError(f"handshake message of {n} bytes is too big")
    await reader.fill(_HS_LENGTH.size + n, "during the handshake")
    body = reader.take(_HS_LENGTH.size + n)[_HS_LENGTH.size:]
    if body.startswith(_HS_LENGTH.pack(len(_REFUSE)) + _REFUSE):
        (_, reason) = _unpack(body, 2, "refusal")
        raise SecureChannelError(f"peer refused the handshake: {reason.decode('ascii', 'replace')}")
    fields = _unpack(body, count + 1, "handshake")
    if fields[0] != expect:
        raise SecureChannelError(f"unexpected handshake message (wanted {expect.decode()})")
    return fields[1:]


# ---------------------------------------------------------------- handshake


def _suite(kem: str, aead: str) -> hpke.Suite:
    return hpke.Suite(_HPKE_KEM[kem], hpke.KDF.HKDF_SHA256, _HPKE_AEAD[aead])


def _check_aead(aead: str) -> None:
    if aead not in AEADS:
        raise SecureChannelError(f"unknown aead {aead!r}: expected one of {', '.join(AEADS)}")


def _hkdf(key: bytes, salt: bytes, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"vtlfabric " + label).derive(key)


@attrs.frozen
class _Session:
    """What both sides derive from the session key and the transcript."""

    session_id: bytes
    initiator_key: bytes  # seals initiator -> responder records
    responder_key: bytes
    confirm_key: bytes

    @classmethod
    def derive(cls, session_key: bytes, transcript: bytes) -> _Session:
        session_id = hashlib.sha256(transcript).digest()[:16]
        return cls(
            session_id,
            _hkdf(session_key, session_id, b"initiator to responder"),
            _hkdf(session_key, session_id, b"responder to initiator"),
            _hkdf(session_key, session_id, b"key confirmation"),
        )

    def confirmation(self, transcript: bytes) -> bytes:
        return hmac.digest(self.confirm_key, transcript, "sha256")


def _transcript(initiator: bytes, responder: bytes, aead: bytes, kem: bytes, challenge: bytes, enc: bytes) -> bytes:
    return _pack(b"vtlfabric handshake 1", initiator, responder, aead, kem, challenge, enc)


def _hpke_info(initiator: bytes, responder: bytes, aead: bytes, kem: bytes) -> bytes:
    return _pack(b"vtlfabric session key 1", initiator, responder, aead, kem)


async def connect(
    stream: trio.abc.Stream, identity: Identity, peer: str, keystore: Keystore, *, aead: str = "aes-256-gcm"
) -> SecureChannel:
    """Open a channel as the sending side (initiator) to MediaAgent ``peer``."""
    _check_aead(aead)
    peer_keys = keystore.public(peer)
    reader = _Reader(stream)
    name_r, aead_r, kem_r, challenge = await _read_handshake(reader, _HELLO, 4)
    if _text(name_r, "responder name") != peer:
        raise SecureChannelError(f"expected to reach {peer!r}, but {_text(name_r, 'name')!r} answered")
    if _text(aead_r, "aead") != aead:
        raise SecureChannelError(f"aead mismatch: we use {aead}, {peer} uses {_text(aead_r, 'aead')}")
    if _text(kem_r, "kem") != peer_keys.kem:
        raise SecureChannelError(f"kem mismatch: the keystore has {peer_keys.kem}, {peer} uses {_text(kem_r, 'kem')}")
    if len(challenge) != 32:
        raise SecureChannelError("malformed challenge")
    me, them, aead_b, kem_b = identity.name.encode(), peer.encode(), aead.encode(), peer_keys.kem.encode()
    session_key = os.urandom(32)  # fresh per stream, from the OS: never from the seeded world RNG
    enc = _suite(peer_keys.kem, aead).encrypt(session_key, peer_keys.kem_key, info=_hpke_info(me, them, aead_b, kem_b))
    transcript = _transcript(me, them, aead_b, kem_b, challenge, enc)
    signature = identity.signing_key.sign(transcript)
    await _send_handshake(stream, _KEY, me, them, aead_b, kem_b, enc, signature)
    session = _Session.derive(session_key, transcript)
    (confirmation,) = await _read_handshake(reader, _ACCEPT, 1)
    if not hmac.compare_digest(confirmation, session.confirmation(transcript)):
        raise SecureChannelError(f"{peer} did not prove it holds its KEM key")
    return SecureChannel(stream, reader, aead, session.session_id, session.initiator_key, session.responder_key, b"i", peer)


async def accept(
    stream: trio.abc.Stream, identity: Identity, keystore: Keystore, *, aead: str = "aes-256-gcm"
) -> SecureChannel:
    """Accept a channel as the receiving side (responder): any MediaAgent in the keystore may connect."""
    _check_aead(aead)
    reader = _Reader(stream)
    challenge = os.urandom(32)  # fresh per handshake, so a recorded one cannot be replayed
    me, aead_b, kem_b = identity.name.encode(), aead.encode(), identity.kem.encode()
    await _send_handshake(stream, _HELLO, me, aead_b, kem_b, challenge)
    initiator_b, responder_b, aead_i, kem_i, enc, signature = await _read_handshake(reader, _KEY, 6)
    try:
        initiator, session_key = _check_key_message(
            identity, keystore, aead, challenge, initiator_b, responder_b, aead_i, kem_i, enc, signature
        )
    except SecureChannelError as e:
        await _refuse(stream, str(e))
        raise
    transcript = _transcript(initiator_b, me, aead_b, kem_b, challenge, enc)
    session = _Session.derive(session_key, transcript)
    await _send_handshake(stream, _ACCEPT, session.confirmation(transcript))
    return SecureChannel(stream, reader, aead, session.session_id, session.responder_key, session.initiator_key, b"r", initiator)


def _check_key_message(
    identity: Identity, keystore: Keystore, aead: str, challenge: bytes,
    initiator_b: bytes, responder_b: bytes, aead_i: bytes, kem_i: bytes, enc: bytes, signature: bytes,
) -> tuple[str, bytes]:
    """Who is this, did they sign this session's challenge, and what key did they send us?"""
    initiator = _text(initiator_b, "initiator name")
    if responder_b != identity.name.encode():
        raise SecureChannelError(f"{initiator} addressed {_text(responder_b, 'name')!r}, not {identity.name!r}")
    if aead_i != aead.encode():
        raise SecureChannelError(f"aead mismatch: we use {aead}, {initiator} uses {_text(aead_i, 'aead')}")
    if kem_i != identity.kem.encode():
        raise SecureChannelError(f"kem mismatch: we use {identity.kem}, {initiator} uses {_text(kem_i, 'kem')}")
    peer = keystore.public(initiator)
    try:
        peer.verify_key.verify(signature, _transcript(initiator_b, responder_b, aead_i, kem_i, challenge, enc))
    except InvalidSignature:
        raise SecureChannelError(f"handshake signature does not verify with {initiator}'s key") from None
    try:
        session_key = _suite(identity.kem, aead).decrypt(enc, identity.kem_key, info=_hpke_info(initiator_b, responder_b, aead_i, kem_i))
    except (InvalidTag, ValueError) as e:
        raise SecureChannelError(f"cannot open the session key from {initiator}: {type(e).__name__}") from None
    if len(session_key) != 32:
        raise SecureChannelError(f"session key from {initiator} has the wrong size")
    return initiator, session_key


async def _refuse(stream: trio.abc.Stream, reason: str) -> None:
    """Tell the initiator why, best effort (a broken stream must not hide the real error)."""
    try:
        await _send_handshake(stream, _REFUSE, reason.encode("ascii", "replace")[:1024])
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


# ---------------------------------------------------------------- records


@attrs.frozen
class Message:
    payload: bytes
    context: bytes
    final: bool


@attrs.define(eq=False)
class SecureChannel:
    """Sealed records in both directions over one stream. See the module docstring."""

    _stream: trio.abc.Stream
    _reader: _Reader
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
            frame = await trio.to_thread.run_sync(seal) if big else seal()
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
        (n,) = _LENGTH.unpack(bytes(reader.buffer[:_LENGTH.size]))
        if not _MIN_RECORD <= n <= _MAX_RECORD:
            raise SecureChannelError(f"record length {n} is out of bounds (corrupt or hostile stream)")
        await reader.fill(_LENGTH.size + n, "inside a record")
        ciphertext = bytes(reader.buffer[_LENGTH.size:_LENGTH.size + n])
        counter = self._received
        unseal = _Opener(self._opener, counter, self._ad(self._their_side, counter), ciphertext)
        message = await trio.to_thread.run_sync(unseal) if n >= _THREAD_THRESHOLD else unseal()
        # Consumed only now: a cancelled receive leaves the record for the next call.
        del reader.buffer[:_LENGTH.size + n]
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
        return _LENGTH.pack(len(ciphertext)) + ciphertext


@attrs.frozen
class _Opener:
    aead: Any
    counter: int
    ad: bytes
    ciphertext: bytes

    def __call__(self) -> Message:
        try:
            plaintext = self.aead.decrypt(self.counter.to_bytes(12, "big"), self.ciphertext, self.ad)
        except InvalidTag:
            raise SecureChannelError(
                f"record {self.counter} failed authentication (tampered, replayed, reordered or from another session)"
            ) from None
        flags, context_length = _RECORD_HEADER.unpack_from(plaintext)
        if flags & ~_FINAL or _RECORD_HEADER.size + context_length > len(plaintext):
            raise SecureChannelError(f"record {self.counter} is malformed")  # authentic, so a peer bug
        body = memoryview(plaintext)[_RECORD_HEADER.size:]
        return Message(bytes(body[context_length:]), bytes(body[:context_length]), bool(flags & _FINAL))
