"""The control socket's handler, in process: what each kind of request gets back, and who may ask.

The handler is driven over an in-memory stream with a stand-in peer lookup and a
stand-in for Commands, so every answer is checked without a daemon; ``serve`` is
checked on a real Unix socket for the mode it ends up with.
"""

from __future__ import annotations

import grp
import json
import os
import stat
import types
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import structlog
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from vtlfabric import errors
from vtlfabric.service import control
from vtlfabric.service.control import MAX_REQUEST, REQUEST_TIMEOUT, Peer, handle_connection, read_line, serve
from vtlfabric.service.events import EventBus, EventFeed

STRANGER_UID = 54_321 if os.geteuid() != 54_321 else 54_322  # neither the daemon's user nor root
OWNER = Peer(os.geteuid(), os.getegid(), "owner", frozenset({os.getegid()}))
STRANGER = Peer(STRANGER_UID, 4_242, "mallory", frozenset({4_242, 4_343}))


class FakeCommands:
    """Stands in for Commands: records each request it is asked, and answers with ``answer``."""

    def __init__(self, answer: Callable[[dict[str, Any]], Awaitable[Any]] | None = None, socket_group: str | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answer = answer
        self.fabric = types.SimpleNamespace(config=types.SimpleNamespace(daemon=types.SimpleNamespace(socket_group=socket_group)))

    async def dispatch(self, request: dict[str, Any]) -> Any:
        self.requests.append(request)
        if self.answer is None:
            return {"echo": request}
        return await self.answer(request)


def raising(error: BaseException) -> Callable[[dict[str, Any]], Awaitable[Any]]:
    async def answer(request: dict[str, Any]) -> Any:
        raise error

    return answer


async def exchange(
    commands: FakeCommands, payload: bytes, *, peer: Peer = OWNER, group: int | None = None, eof: bool = False
) -> bytes:
    """Send ``payload`` on a fresh connection and return all the handler sends before it closes."""

    async def lookup(stream: trio.abc.Stream) -> Peer:
        return peer

    client, server = trio.testing.memory_stream_pair()
    received = bytearray()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(handle_connection, commands, group, lookup, server)
        if payload:
            await client.send_all(payload)
        if eof:
            await client.send_eof()
        while data := await client.receive_some():
            received += data
    return bytes(received)


async def ask(commands: FakeCommands, payload: bytes, **kwargs: Any) -> dict[str, Any]:
    raw = await exchange(commands, payload, **kwargs)
    assert raw.endswith(b"\n") and raw.count(b"\n") == 1, raw
    return json.loads(raw)


# ------------------------------------------------------------------ requests


async def test_a_good_request_reaches_the_commands_with_the_peers_name_and_its_result_comes_back():
    commands = FakeCommands()
    reply = await ask(commands, b'{"cmd": "status", "who": "root"}\n')
    assert reply == {"ok": True, "result": {"echo": {"cmd": "status", "who": "owner"}}}
    assert commands.requests == [{"cmd": "status", "who": "owner"}], "who comes from the kernel, never from the request"


async def test_a_request_without_a_newline_is_taken_at_end_of_file():
    commands = FakeCommands()
    reply = await ask(commands, b'{"cmd": "jobs"}', eof=True)
    assert reply["ok"] and commands.requests == [{"cmd": "jobs", "who": "owner"}]


@pytest.mark.parametrize(
    "payload, words",
    [
        (b'{"cmd": "status"\n', "not valid JSON: Expecting ',' delimiter"),
        (b'{"cmd": "status"', "not valid JSON"),  # no newline, then end of file
        (b"\n", "not valid JSON: Expecting value"),
        (b"\xff\xfe garbage\n", "not valid JSON: 'utf-8' codec can't decode"),
        (b'[{"cmd": "status"}]\n', "not valid JSON: expected an object, got list"),
        (b'"status"\n', "not valid JSON: expected an object, got str"),
        (b"null\n", "not valid JSON: expected an object, got NoneType"),
        (b"[" * 100_000 + b"\n", "not valid JSON: nested too deeply"),
        (b'{"n": ' + b"1" * 5_000 + b"}\n", "not valid JSON"),  # past Python's integer digit limit
    ],
    ids=["unclosed", "unclosed-eof", "empty", "not-utf8", "array", "string", "null", "deep", "huge-int"],
)
async def test_a_malformed_request_is_a_bad_request_and_never_reaches_the_commands(payload, words):
    commands = FakeCommands()
    reply = await ask(commands, payload, eof=not payload.endswith(b"\n"))
    assert reply["ok"] is False and reply["code"] == errors.EXIT_BAD
    assert reply["error"].startswith("request: ") and words in reply["error"]
    assert commands.requests == []


async def test_an_oversized_request_is_refused_without_reading_it_all():
    commands = FakeCommands()
    reply = await ask(commands, b"x" * (3 * MAX_REQUEST))
    assert reply == {"ok": False, "error": f"request: longer than {MAX_REQUEST} bytes", "code": errors.EXIT_BAD}
    assert commands.requests == []


async def test_a_line_longer_than_the_limit_is_refused_even_when_its_newline_arrives_with_it():
    client, server = trio.testing.memory_stream_pair()
    await client.send_all(b"x" * 11 + b"\n")  # one read holds all of it, newline included
    with pytest.raises(errors.BadRequest, match="longer than 10 bytes"):
        await read_line(server, limit=10)
    await client.send_all(b"y" * 10 + b"\n")
    assert await read_line(server, limit=10) == b"y" * 10


async def test_a_slow_request_is_answered_with_an_error_once_its_time_is_up(autojump_clock):
    commands = FakeCommands()
    began = trio.current_time()
    reply = await ask(commands, b'{"cmd": "sta')  # and then nothing more
    assert reply == {"ok": False, "error": "request: not received in time", "code": errors.EXIT_BAD}
    assert trio.current_time() - began == pytest.approx(REQUEST_TIMEOUT)
    assert commands.requests == []


async def test_only_reading_the_request_is_bounded_in_time_not_the_command(autojump_clock):
    async def slow(request: dict[str, Any]) -> str:
        await trio.sleep(3600)  # a --wait on a long job
        return "done"

    reply = await ask(FakeCommands(slow), b'{"cmd": "backup", "wait": true}\n')
    assert reply == {"ok": True, "result": "done"}


async def test_an_event_feed_is_sent_as_a_reply_line_then_one_event_a_line():
    bus = EventBus()
    bus.recent.extend([{"event": "backup.completed", "job_id": 1}, {"event": "copy.completed", "job_id": 1}])

    async def events(request: dict[str, Any]) -> EventFeed:
        return EventFeed(bus, follow=False)

    lines = (await exchange(FakeCommands(events), b'{"cmd": "events"}\n')).splitlines()
    assert [json.loads(line) for line in lines] == [{"ok": True, "result": "events"}, *bus.recent]


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200).filter(lambda b: b"\n" not in b))
def test_any_line_is_either_a_json_object_handed_on_as_is_or_a_bad_request(line):
    commands = FakeCommands()
    reply = trio.run(ask, commands, line + b"\n")
    try:
        sent = json.loads(line.decode())
    except (ValueError, RecursionError):
        sent = None
    if isinstance(sent, dict):
        assert reply["ok"] and commands.requests == [{**sent, "who": "owner"}]
    else:
        assert reply["code"] == errors.EXIT_BAD and reply["error"].startswith("request: not valid JSON")
        assert commands.requests == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text().filter(lambda k: k != "who"), json_values, max_size=6))
def test_any_json_object_reaches_the_commands_unchanged_but_for_who(request):
    commands = FakeCommands()
    reply = trio.run(ask, commands, json.dumps(request).encode() + b"\n")
    assert reply["ok"] and commands.requests == [{**request, "who": "owner"}]


# ------------------------------------------------------------------ who may ask


async def test_a_peer_that_is_not_the_owner_root_or_in_the_group_is_refused_and_logged():
    commands = FakeCommands()
    with structlog.testing.capture_logs() as logs:
        reply = await ask(commands, b'{"cmd": "status"}\n', peer=STRANGER, group=1_000_000)
    assert reply["ok"] is False and reply["code"] == errors.EXIT_FAILED
    assert reply["error"] == "permission denied: mallory is not the daemon's user nor in its socket_group"
    assert commands.requests == []
    refused = [e for e in logs if e["event"] == "control.refused"]
    assert refused == [{"event": "control.refused", "log_level": "warning", "uid": STRANGER_UID, "gid": 4_242, "user": "mallory"}]


async def test_a_refused_peer_is_told_so_even_when_its_request_is_malformed():
    reply = await ask(FakeCommands(), b"not json\n", peer=STRANGER)
    assert reply["code"] == errors.EXIT_FAILED and reply["error"].startswith("permission denied")


@pytest.mark.parametrize(
    "peer, group",
    [
        (OWNER, None),
        (Peer(0, 0, "root", frozenset({0})), None),
        (STRANGER, 4_343),  # a supplementary group of the peer's is the socket's group
    ],
    ids=["owner", "root", "group-member"],
)
async def test_the_owner_root_and_members_of_the_socket_group_are_served(peer, group):
    commands = FakeCommands()
    reply = await ask(commands, b'{"cmd": "status"}\n', peer=peer, group=group)
    assert reply["ok"] and commands.requests == [{"cmd": "status", "who": peer.name}]


# ------------------------------------------------------------------ errors, by type


class DriveJammed(errors.Failed):
    """A domain error of some layer: a subclass of one of errors.py's kinds."""


@pytest.mark.parametrize(
    "error, code, message",
    [
        (errors.NotFound("copy", "P/nope", ["P/dr", "P/primary"]), 2, "no copy 'P/nope' (known: P/dr, P/primary)"),
        (errors.BadRequest("streams: expected int, got 'two'"), 2, "streams: expected int, got 'two'"),
        (errors.Refused("a drill is running"), 1, "a drill is running"),
        (errors.Failed("restore: 2 objects did not verify"), 1, "restore: 2 objects did not verify"),
        (DriveJammed("drive dr/DVTL/1 jammed"), 1, "drive dr/DVTL/1 jammed"),
    ],
    ids=["not-found", "bad-request", "refused", "failed", "subclass"],
)
async def test_a_domain_error_is_the_answer_with_its_own_exit_code(error, code, message):
    with structlog.testing.capture_logs() as logs:
        reply = await ask(FakeCommands(raising(error)), b'{"cmd": "anything"}\n')
    assert reply == {"ok": False, "error": message, "code": code}
    assert not [e for e in logs if e["event"] == "control.error"], "a domain error is no bug"


async def test_a_domain_error_inside_a_nurserys_group_is_still_the_answer():
    """A job's nursery wraps what its tasks raise; the error under the group is the answer."""
    group = ExceptionGroup("from a nursery", [ExceptionGroup("inner", [errors.Refused("suspended meanwhile")])])
    with structlog.testing.capture_logs() as logs:
        reply = await ask(FakeCommands(raising(group)), b'{"cmd": "promote"}\n')
    assert reply == {"ok": False, "error": "suspended meanwhile", "code": errors.EXIT_FAILED}
    assert not [e for e in logs if e["event"] == "control.error"]


@pytest.mark.parametrize(
    "error",
    [
        ValueError("invalid literal for int() with base 10: 'x'"),  # once reported as "not valid JSON"
        KeyError("copies"),
        trio.TooSlowError(),  # a command's own deadline, not the request's
    ],
    ids=["value-error", "key-error", "too-slow"],
)
async def test_any_other_exception_is_a_bug_answered_as_an_internal_error_and_logged(error):
    with structlog.testing.capture_logs() as logs:
        reply = await ask(FakeCommands(raising(error)), b'{"cmd": "status"}\n')
    assert reply["ok"] is False and reply["code"] == errors.EXIT_FAILED
    assert reply["error"].startswith(f"internal error: {type(error).__name__}")
    assert "not valid JSON" not in reply["error"] and "not received in time" not in reply["error"]
    logged = [e for e in logs if e["event"] == "control.error"]
    assert len(logged) == 1 and logged[0]["log_level"] == "error" and logged[0]["exc_info"]


# ------------------------------------------------------------------ the socket itself


@pytest.fixture
def no_umask(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The process umask is shared by every thread: serving the socket must not touch it."""
    calls: list[int] = []

    def umask(mask: int) -> int:
        calls.append(mask)
        raise AssertionError("os.umask called: it changes the mode of files other threads create")

    monkeypatch.setattr(os, "umask", umask)
    return calls


async def request_over(path: Path, payload: bytes) -> dict[str, Any]:
    stream = await trio.open_unix_socket(str(path))
    async with stream:
        await stream.send_all(payload)
        received = bytearray()
        while data := await stream.receive_some():
            received += data
    return json.loads(received)


@pytest.mark.parametrize("own_group", [False, True], ids=["0600", "0660-group"])
async def test_the_socket_is_created_with_its_mode_without_the_umask_and_serves(tmp_path, no_umask, own_group):
    group = grp.getgrgid(os.getegid()) if own_group else None
    commands = FakeCommands(socket_group=group.gr_name if group else None)
    path = tmp_path / "control.sock"
    path.write_text("stale")  # left by a crash
    async with trio.open_nursery() as nursery:
        await nursery.start(serve, commands, path)
        info = path.lstat()
        assert stat.S_ISSOCK(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == (0o660 if group else 0o600)
        if group:
            assert info.st_gid == group.gr_gid
        assert sorted(p.name for p in tmp_path.iterdir()) == ["control.sock"], "the private directory is gone"
        reply = await request_over(path, b'{"cmd": "status"}\n')
        assert reply["ok"] and commands.requests[0]["who"] == control._user_name(os.geteuid())
        nursery.cancel_scope.cancel()
    assert not path.exists(), "removed when the daemon stops"
    assert no_umask == []
