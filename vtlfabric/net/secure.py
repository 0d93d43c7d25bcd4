"""Opening an authenticated, encrypted channel between two MediaAgents, over any ``trio.abc.Stream``.

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

Records after the handshake are the sealed records of ``channel``.

Key material, session keys and challenges come from ``os.urandom`` (through
``cryptography``), deliberately *not* from the world's seeded RNG: a seed makes
a simulation reproducible, and must never make a key predictable.

The names a caller needs with ``connect`` and ``accept`` are importable from
here too (``__all__``), so ``secure`` remains the one import for the channel.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from typing import Final

import attrs
import trio
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vtlfabric.net.channel import (
    LENGTH_SIZE,
    MAX_CONTEXT,
    MAX_PAYLOAD,
    Message,
    SecureChannel,
    SecureChannelError,
    StreamReader,
    length_prefix,
    parse_length,
)
from vtlfabric.net.keystore import Identity, Keystore, KeystoreError
from vtlfabric.vocab import AEADS, DEFAULT_AEAD, KEMS

__all__ = [
    "AEADS",
    "KEMS",
    "MAX_CONTEXT",
    "MAX_PAYLOAD",
    "Identity",
    "Keystore",
    "KeystoreError",
    "Message",
    "SecureChannel",
    "SecureChannelError",
    "accept",
    "connect",
]

_HS_LENGTH = struct.Struct(">H")
_MAX_HANDSHAKE: Final = 8192
_HELLO, _KEY, _ACCEPT, _REFUSE = b"vtlfabric hello 1", b"vtlfabric key 1", b"vtlfabric accept 1", b"vtlfabric refuse 1"
_HPKE_KEM = {"x25519": hpke.KEM.X25519, "mlkem768-x25519": hpke.KEM.MLKEM768_X25519}
_HPKE_AEAD = {"aes-256-gcm": hpke.AEAD.AES_256_GCM, "chacha20-poly1305": hpke.AEAD.CHACHA20_POLY1305}


# ---------------------------------------------------------------- handshake messages


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
        fields.append(data[at + 2 : at + 2 + n])
        at += 2 + n
    if at != len(data):
        raise SecureChannelError(f"malformed {what} message (trailing bytes)")
    return fields


def _text(field: bytes, what: str) -> str:
    try:
        return field.decode("ascii")
    except UnicodeDecodeError:
        raise SecureChannelError(f"malformed {what}") from None


async def _send_handshake(stream: trio.abc.SendStream, *fields: bytes) -> None:
    body = _pack(*fields)
    assert len(body) <= _MAX_HANDSHAKE, "handshake message too big"
    await stream.send_all(length_prefix(len(body)) + body)


async def _read_handshake(reader: StreamReader, expect: bytes, count: int) -> list[bytes]:
    """Read one handshake message of kind ``expect`` with ``count`` fields (REFUSE is raised)."""
    await reader.fill(LENGTH_SIZE, "during the handshake")
    n = parse_length(reader.queue.peek(LENGTH_SIZE), "handshake message")
    if n > _MAX_HANDSHAKE:
        raise SecureChannelError(f"handshake message of {n} bytes is too big")
    await reader.fill(LENGTH_SIZE + n, "during the handshake")
    body = reader.take(LENGTH_SIZE + n)[LENGTH_SIZE:]
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
    stream: trio.abc.Stream, identity: Identity, peer: str, keystore: Keystore, *, aead: str = DEFAULT_AEAD
) -> SecureChannel:
    """Open a channel as the sending side (initiator) to MediaAgent ``peer``."""
    _check_aead(aead)
    peer_keys = keystore.public(peer)
    reader = StreamReader(stream)
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


async def accept(stream: trio.abc.Stream, identity: Identity, keystore: Keystore, *, aead: str = DEFAULT_AEAD) -> SecureChannel:
    """Accept a channel as the receiving side (responder): any MediaAgent in the keystore may connect."""
    _check_aead(aead)
    reader = StreamReader(stream)
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
    identity: Identity,
    keystore: Keystore,
    aead: str,
    challenge: bytes,
    initiator_b: bytes,
    responder_b: bytes,
    aead_i: bytes,
    kem_i: bytes,
    enc: bytes,
    signature: bytes,
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
        session_key = _suite(identity.kem, aead).decrypt(
            enc, identity.kem_key, info=_hpke_info(initiator_b, responder_b, aead_i, kem_i)
        )
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
