"""The encrypted channel: handshake, records, tamper detection, and the keystore."""

from __future__ import annotations

import os
import random
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vtlfabric.net import secure
from vtlfabric.net.channel import length_prefix
from vtlfabric.net.linkspec import LinkSpec, MiB
from vtlfabric.net.secure import Keystore, KeystoreError, Message, SecureChannel, SecureChannelError
from vtlfabric.net.wan import Link, local_stream_pair

NAMES = ["prodma", "drma"]


@pytest.fixture(scope="module")
def keystores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Keystore]:
    root = tmp_path_factory.mktemp("keys")
    return {kem: Keystore.load_or_create(root / kem, NAMES, kem) for kem in secure.KEMS}


@pytest.fixture(scope="module")
def keystore(keystores: dict[str, Keystore]) -> Keystore:
    return keystores["x25519"]


def wan_pair(seed: int = 1) -> tuple[Link, trio.abc.Stream, trio.abc.Stream]:
    link = Link(
        LinkSpec(name="wan", a="prod", b="dr", bandwidth=50e6, latency=0.02, jitter=0.002, loss=0.01), random.Random(seed)
    )
    near, far = link.open_stream("prod")
    return link, near, far


async def open_channels(
    near: trio.abc.Stream,
    far: trio.abc.Stream,
    keystore: Keystore,
    *,
    aead: str = "aes-256-gcm",
    initiator: secure.Identity | None = None,
    responder_aead: str | None = None,
) -> tuple[SecureChannel, SecureChannel]:
    """Handshake both ends concurrently: (sender's channel, receiver's channel)."""
    result: dict[str, SecureChannel] = {}

    async def responder() -> None:
        result["r"] = await secure.accept(far, keystore.identity("drma"), keystore, aead=responder_aead or aead)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(responder)
        result["i"] = await secure.connect(near, initiator or keystore.identity("prodma"), "drma", keystore, aead=aead)
    return result["i"], result["r"]


async def handshake_errors(
    near: trio.abc.Stream, far: trio.abc.Stream, keystore: Keystore, **kwargs: Any
) -> dict[str, BaseException]:
    """Run a handshake expected to fail; each side closes its stream when it fails, as auxcopy does."""
    errors: dict[str, BaseException] = {}

    async def side(name: str, stream: trio.abc.Stream, run: Callable[[], Awaitable[Any]]) -> None:
        try:
            await run()
        except SecureChannelError as e:
            errors[name] = e
            await stream.aclose()

    responder_aead = kwargs.pop("responder_aead", None)
    initiator = kwargs.pop("initiator", None) or keystore.identity("prodma")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            side,
            "responder",
            far,
            lambda: secure.accept(far, keystore.identity("drma"), keystore, aead=responder_aead or "aes-256-gcm"),
        )
        nursery.start_soon(side, "initiator", near, lambda: secure.connect(near, initiator, "drma", keystore, **kwargs))
    return errors


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("kem", secure.KEMS)
@pytest.mark.parametrize("aead", secure.AEADS)
@pytest.mark.parametrize("transport", ["wan", "local"])
async def test_round_trip(keystores: dict[str, Keystore], kem: str, aead: str, transport: str, autojump_clock: Any) -> None:
    keystore = keystores[kem]
    near, far = wan_pair()[1:] if transport == "wan" else local_stream_pair()
    sender, receiver = await open_channels(near, far, keystore, aead=aead)
    assert sender.session_id == receiver.session_id and sender.peer == "drma" and receiver.peer == "prodma"
    records = [
        (b"", b"control", False),
        (os.urandom(100), b"job 1 chunk 0", False),
        (os.urandom(3 * MiB), b"job 1 chunk 1", True),
        (b"x" * 65536, b"", False),
    ]
    async with trio.open_nursery() as nursery:

        async def send_all() -> None:
            for payload, context, final in records:
                await sender.send(payload, context=context, final=final)

        nursery.start_soon(send_all)
        for payload, context, final in records:
            assert await receiver.receive() == Message(payload, context, final)
    await receiver.send(b"done", context=b"control")  # both directions
    assert await sender.receive() == Message(b"done", b"control", False)
    await sender.aclose()
    with pytest.raises(SecureChannelError, match="peer closed"):
        await receiver.receive()


async def test_biggest_record_and_limits(keystore: Keystore) -> None:
    near, far = local_stream_pair()
    sender, receiver = await open_channels(near, far, keystore)
    big = os.urandom(secure.MAX_PAYLOAD)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: sender.send(big, context=b"max", final=True))
        message = await receiver.receive()
    assert message.payload == big and message.final
    with pytest.raises(ValueError):
        await sender.send(bytes(secure.MAX_PAYLOAD + 1), context=b"")
    with pytest.raises(ValueError):
        await sender.send(b"", context=bytes(secure.MAX_CONTEXT + 1))


async def test_the_wire_never_shows_plaintext(keystores: dict[str, Keystore], autojump_clock: Any) -> None:
    link, near, far = wan_pair()
    carried: list[bytes] = []
    link.add_tap(lambda _direction, segment: carried.append(segment))
    plaintext = b"".join(b"vtlfabric plaintext line %010d\n" % i for i in range(MiB // 32))[:MiB]
    context = b"job 4242 chunk 17 secret-context"
    sender, receiver = await open_channels(near, far, keystores["mlkem768-x25519"], aead="chacha20-poly1305")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: sender.send(plaintext, context=context, final=True))
        assert (await receiver.receive()).payload == plaintext
    wire = b"".join(carried)
    assert len(wire) > len(plaintext)
    # Every 32-byte window of the plaintext contains a whole 16-byte block at a multiple
    # of 16; if none of those blocks is on the wire, no 32-byte window is either.
    blocks = {plaintext[i : i + 16] for i in range(0, len(plaintext) - 15, 16)}
    assert not any(wire[j : j + 16] in blocks for j in range(len(wire) - 15))
    assert context not in wire and b"job 4242" not in wire


# ---------------------------------------------------------------- tampering


@attrs.define(eq=False)
class Interceptor(trio.abc.Stream):
    """Wraps the sender's end. Once armed, it can flip one byte of what is sent, or
    hold each send_all (one record each) for the test to deliver as it likes."""

    inner: trio.abc.Stream
    flip_at: int | None = None
    xor: int = 0x01
    hold: bool = False
    held: list[bytes] = attrs.Factory(list)
    _sent: int = 0

    def arm_flip(self, position: int, xor: int) -> None:
        self.flip_at, self.xor, self._sent = position, xor, 0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        data = bytes(data)
        if self.hold:
            self.held.append(data)
            return
        if self.flip_at is not None and self._sent <= self.flip_at < self._sent + len(data):
            damaged = bytearray(data)
            damaged[self.flip_at - self._sent] ^= self.xor
            data = bytes(damaged)
        self._sent += len(data)
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def intercepted_channels(keystore: Keystore) -> tuple[Interceptor, trio.abc.Stream, SecureChannel, SecureChannel]:
    near, far = local_stream_pair()
    interceptor = Interceptor(near)
    sender, receiver = await open_channels(interceptor, far, keystore)
    return interceptor, far, sender, receiver


async def receive_until_failure(receiver: SecureChannel, expected: list[Message]) -> Exception:
    """Read everything; each message returned must be the one sent. Returns the error."""
    for want in expected:
        try:
            got = await receiver.receive()
        except SecureChannelError as e:
            return e
        assert got == want, "returned data that was not sent"
    try:
        await receiver.receive()
    except SecureChannelError as e:
        return e
    raise AssertionError("no error after the sender closed")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(sizes=st.lists(st.integers(0, 3000), min_size=1, max_size=4), data=st.data())
def test_any_flipped_byte_is_detected(keystore: Keystore, sizes: list[int], data: st.DataObject) -> None:
    messages = [Message(bytes([i]) * n, b"ctx %d" % i, i == len(sizes) - 1) for i, n in enumerate(sizes)]
    frame_bytes = sum(4 + 3 + len(m.context) + len(m.payload) + 16 for m in messages)
    position = data.draw(st.integers(0, frame_bytes - 1), label="position")
    xor = data.draw(st.integers(1, 255), label="xor")

    async def main() -> Exception:
        interceptor, _far, sender, receiver = await intercepted_channels(keystore)
        interceptor.arm_flip(position, xor)
        for m in messages:
            await sender.send(m.payload, context=m.context, final=m.final)
        await sender.aclose()  # a longer length field must not leave the receiver waiting forever
        return await receive_until_failure(receiver, messages)

    error = trio.run(main)
    assert isinstance(error, SecureChannelError)


@pytest.mark.parametrize(
    "deliver",
    [
        pytest.param(lambda r: [r[1], r[0], r[2]], id="reordered"),
        pytest.param(lambda r: [r[0], r[0], r[1], r[2]], id="replayed"),
        pytest.param(lambda r: [r[0], r[2]], id="dropped"),
        pytest.param(lambda r: [r[0], r[1]], id="truncated-at-boundary"),
        pytest.param(lambda r: [r[0], r[1], r[2][:-5]], id="truncated-mid-record"),
        pytest.param(lambda r: [r[0], r[1][:4] + r[1][5:] + b"\x00"], id="shifted"),
    ],
)
async def test_reorder_replay_drop_and_truncation_are_detected(
    keystore: Keystore, deliver: Callable[[list[bytes]], list[bytes]]
) -> None:
    interceptor, _far, sender, receiver = await intercepted_channels(keystore)
    messages = [Message(b"chunk %d" % i, b"job 9 chunk %d" % i, i == 2) for i in range(3)]
    interceptor.hold = True
    for m in messages:
        await sender.send(m.payload, context=m.context, final=m.final)
    frames = interceptor.held
    assert len(frames) == 3
    for frame in deliver(frames):
        await interceptor.inner.send_all(frame)
    await interceptor.inner.aclose()
    error = await receive_until_failure(receiver, messages)
    assert isinstance(error, SecureChannelError)
    with pytest.raises(SecureChannelError):  # and the channel stays failed
        await receiver.receive()


async def test_record_from_another_session_is_refused(keystore: Keystore) -> None:
    first, _, sender1, _receiver1 = await intercepted_channels(keystore)
    second, _, _sender2, receiver2 = await intercepted_channels(keystore)
    first.hold = True
    await sender1.send(b"hello", context=b"control")
    await second.inner.send_all(first.held[0])
    with pytest.raises(SecureChannelError, match="authentication"):
        await receiver2.receive()


async def test_a_huge_length_prefix_is_refused_at_once(keystore: Keystore) -> None:
    interceptor, _far, _sender, receiver = await intercepted_channels(keystore)
    await interceptor.inner.send_all(length_prefix(0xFFFF_FFF0) + b"junk")
    with trio.fail_after(1):
        with pytest.raises(SecureChannelError, match="out of bounds"):
            await receiver.receive()


@given(byte=st.integers(0, 7), flip=st.integers(1, 255))
@settings(max_examples=40, deadline=None)
async def test_a_damaged_length_fails_at_once_never_waits_for_bytes_that_never_come(
    keystores: dict[str, Keystore], byte: int, flip: int
) -> None:
    """A flipped byte in a record's length (or its check) used to leave the reader waiting
    for a longer record while the sender waited for its answer: a hang, found by the
    chaos sweep. Every such flip now fails the record at once."""
    interceptor, _far, _sender, receiver = await intercepted_channels(keystores["x25519"])
    damaged = bytearray(length_prefix(600) + bytes(600))
    damaged[byte] ^= flip
    await interceptor.inner.send_all(bytes(damaged))
    with trio.fail_after(5):
        with pytest.raises(SecureChannelError, match="length damaged"):
            await receiver.receive()


async def test_final_does_not_end_the_channel(keystore: Keystore) -> None:
    near, far = local_stream_pair()
    sender, receiver = await open_channels(near, far, keystore)
    for i in range(3):
        await sender.send(b"%d" % i, context=b"c", final=True)
    assert [(await receiver.receive()).payload for _ in range(3)] == [b"0", b"1", b"2"]


async def test_concurrent_sends_are_refused(keystore: Keystore) -> None:
    near, far = local_stream_pair()
    sender, _receiver = await open_channels(near, far, keystore)
    with pytest.RaisesGroup(trio.BusyResourceError):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: sender.send(bytes(MiB), context=b"a"))
            nursery.start_soon(lambda: sender.send(bytes(MiB), context=b"b"))


# ---------------------------------------------------------------- handshake refusals


async def test_initiator_with_a_key_not_in_the_keystore_is_refused(keystore: Keystore, tmp_path: Path) -> None:
    impostor = Keystore.load_or_create(tmp_path / "other", NAMES, "x25519").identity("prodma")
    errors = await handshake_errors(*local_stream_pair(), keystore, initiator=impostor)
    assert "does not verify" in str(errors["responder"])
    assert "refused" in str(errors["initiator"])


async def test_unknown_initiator_is_refused(keystore: Keystore, tmp_path: Path) -> None:
    stranger = Keystore.load_or_create(tmp_path / "other", ["evilma"], "x25519").identity("evilma")
    errors = await handshake_errors(*local_stream_pair(), keystore, initiator=stranger)
    assert "not a known MediaAgent" in str(errors["responder"])
    assert "refused" in str(errors["initiator"])


async def test_aead_mismatch_is_refused(keystore: Keystore) -> None:
    errors = await handshake_errors(*local_stream_pair(), keystore, aead="chacha20-poly1305", responder_aead="aes-256-gcm")
    assert "aead mismatch" in str(errors["initiator"])
    assert "peer closed" in str(errors["responder"])


async def test_wrong_peer_is_refused(keystore: Keystore) -> None:
    near, far = local_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: secure.accept(far, keystore.identity("prodma"), keystore))
        with pytest.raises(SecureChannelError, match="expected to reach 'drma'"):
            await secure.connect(near, keystore.identity("drma"), "drma", keystore)
        nursery.cancel_scope.cancel()


async def test_a_recorded_handshake_cannot_be_replayed(keystore: Keystore, autojump_clock: Any) -> None:
    # Record a genuine initiator's handshake message.
    near, far = local_stream_pair()
    recorder = Interceptor(near, hold=True)

    async def genuine() -> None:
        with trio.move_on_after(1):
            await secure.connect(recorder, keystore.identity("prodma"), "drma", keystore)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(genuine)
        with trio.move_on_after(1):
            await secure.accept(far, keystore.identity("drma"), keystore)
    (key_message,) = recorder.held

    # Play it back to a fresh responder: the challenge is new, so the signature fails.
    near, far = local_stream_pair()

    async def attacker() -> None:
        await near.receive_some()  # the HELLO with a fresh challenge
        await near.send_all(key_message)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(attacker)
        with pytest.raises(SecureChannelError, match="does not verify"):
            await secure.accept(far, keystore.identity("drma"), keystore)


async def test_peer_closing_mid_handshake(keystore: Keystore) -> None:
    near, far = local_stream_pair()

    async def hang_up_after_hello() -> None:
        await near.receive_some()
        await near.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(hang_up_after_hello)
        with pytest.raises(SecureChannelError, match="peer closed the stream during the handshake"):
            await secure.accept(far, keystore.identity("drma"), keystore)

    near, far = local_stream_pair()
    await far.aclose()  # the responder never answers
    with pytest.raises(SecureChannelError, match="peer closed"):
        await secure.connect(near, keystore.identity("prodma"), "drma", keystore)


async def test_oversized_handshake_message_is_refused(keystore: Keystore) -> None:
    near, far = local_stream_pair()
    await far.send_all(length_prefix(0xFFFF) + b"x" * 10)
    with pytest.raises(SecureChannelError, match="too big"):
        await secure.connect(near, keystore.identity("prodma"), "drma", keystore)


# ---------------------------------------------------------------- keystore


def test_keystore_files_are_private_and_reload_the_same(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    store = Keystore.load_or_create(directory, NAMES, "mlkem768-x25519")
    files = sorted(p.name for p in directory.iterdir())
    assert files == sorted(f"{n}.{k}.pem" for n in NAMES for k in ("ed25519", "x25519", "mlkem768"))
    for path in directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700

    again = Keystore.load_or_create(directory, NAMES, "mlkem768-x25519")
    for name in NAMES:
        assert again.public(name).fingerprint == store.public(name).fingerprint
        # The reloaded hybrid public key opens what the original private key sealed to, and back.
        suite = secure._suite("mlkem768-x25519", "aes-256-gcm")
        assert suite.decrypt(suite.encrypt(b"k", again.public(name).kem_key), store.identity(name).kem_key) == b"k"
    # Switching to plain X25519 keeps the same X25519 key.
    plain = Keystore.load_or_create(directory, NAMES, "x25519")
    raw = plain.public("drma").kem_key
    assert isinstance(raw, x25519.X25519PublicKey)
    assert raw.public_bytes(Encoding.Raw, PublicFormat.Raw) == x25519.X25519PrivateKey.from_private_bytes(
        _x25519_private_bytes(directory / "drma.x25519.pem")
    ).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _x25519_private_bytes(path: Path) -> bytes:
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat, load_pem_private_key

    key = load_pem_private_key(path.read_bytes(), None)
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())  # type: ignore[union-attr]


def test_corrupt_key_file_is_named(tmp_path: Path) -> None:
    Keystore.load_or_create(tmp_path, NAMES, "x25519")
    bad = tmp_path / "drma.ed25519.pem"
    bad.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n")
    with pytest.raises(KeystoreError, match=str(bad)):
        Keystore.load_or_create(tmp_path, NAMES, "x25519")


def test_key_of_the_wrong_kind_is_named(tmp_path: Path) -> None:
    Keystore.load_or_create(tmp_path, NAMES, "x25519")
    wrong = tmp_path / "prodma.ed25519.pem"
    wrong.write_bytes((tmp_path / "prodma.x25519.pem").read_bytes())
    with pytest.raises(KeystoreError, match=rf"{wrong}.*X25519PrivateKey.*Ed25519PrivateKey"):
        Keystore.load_or_create(tmp_path, NAMES, "x25519")


def test_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    Keystore.load_or_create(tmp_path, NAMES, "x25519")
    loose = tmp_path / "drma.x25519.pem"
    loose.chmod(0o644)
    with pytest.raises(KeystoreError, match=rf"{loose}.*0644"):
        Keystore.load_or_create(tmp_path, NAMES, "x25519")


def test_unknown_names_and_kems(tmp_path: Path, keystore: Keystore) -> None:
    with pytest.raises(SecureChannelError, match="nobody"):
        keystore.identity("nobody")
    with pytest.raises(SecureChannelError, match="nobody"):
        keystore.public("nobody")
    with pytest.raises(KeystoreError, match="kem"):
        Keystore.load_or_create(tmp_path, NAMES, "rsa")
    with pytest.raises(KeystoreError, match="cannot name a key file"):
        Keystore.load_or_create(tmp_path, ["../escape"], "x25519")
    assert "signing_key" not in repr(keystore.identity("prodma"))  # keys stay out of logs
