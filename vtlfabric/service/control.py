"""The control socket: a Unix socket (mode 0600), one JSON request per line, one JSON reply.

A reply is ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "...", "code": N}``
with the exit code the CLI should use (1: the operation failed, 2: a bad request).
Malformed, oversized or slow requests get an error; they never reach the fabric.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import socket as stdsocket
import struct
import tempfile
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import attrs
import structlog
import trio

from vtlfabric import blocking, errors
from vtlfabric.errors import BadRequest, Failed
from vtlfabric.groups import first_leaf
from vtlfabric.service.commands import Commands
from vtlfabric.service.events import EventFeed

log = structlog.get_logger()
MAX_REQUEST = 1 << 20
SO_PEERGROUPS = getattr(stdsocket, "SO_PEERGROUPS", 59)  # Linux's number, where Python lacks the name
MAX_PEER_GROUPS = 256  # Python's getsockopt buffer holds at most 1024 bytes
REQUEST_TIMEOUT = 10.0


async def read_line(stream: trio.abc.Stream, limit: int = MAX_REQUEST) -> bytes:
    buffer = bytearray()
    while b"\n" not in buffer:
        if len(buffer) > limit:
            raise BadRequest(f"request: longer than {limit} bytes")
        data = await stream.receive_some(65536)
        if not data:
            break
        buffer += data
    line, _, _ = bytes(buffer).partition(b"\n")
    if len(line) > limit:  # the newline came in the same read as the excess
        raise BadRequest(f"request: longer than {limit} bytes")
    return line


def parse_request(line: bytes) -> dict[str, Any]:
    """One request line as a JSON object; anything else is the client's mistake (exit 2)."""
    try:
        request = json.loads(line.decode("utf-8"))
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, an integer past Python's digit limit
        raise BadRequest(f"request: not valid JSON: {e}") from None
    except RecursionError:
        raise BadRequest("request: not valid JSON: nested too deeply") from None
    if not isinstance(request, dict):
        raise BadRequest(f"request: not valid JSON: expected an object, got {type(request).__name__}")
    return request


@attrs.frozen
class Peer:
    uid: int
    gid: int
    name: str
    groups: frozenset[int]


PeerLookup = Callable[[Any], Awaitable[Peer]]  # who is on the other end of a connection


class Dispatcher(Protocol):
    """What the handler needs of ``Commands``: one request in, a result (or an EventFeed) out."""

    async def dispatch(self, request: dict[str, Any]) -> Any: ...


async def peer_of(stream: trio.SocketStream) -> Peer:
    """Who is on the other end of the socket, as the kernel says (SO_PEERCRED)."""
    creds = stream.socket.getsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, gid = struct.unpack("3i", creds)
    name = await blocking.run_sync(_user_name, uid)  # NSS may ask a directory server
    groups = _peer_groups(stream.socket)
    if groups is None:  # more groups than Python lets getsockopt return: ask the group database
        groups = await blocking.run_sync(_listed_groups, name, gid)
    return Peer(uid, gid, name, frozenset(groups | {gid}))


def _peer_groups(sock: Any) -> set[int] | None:
    """The peer's supplementary groups as the kernel holds them (SO_PEERGROUPS, Linux 4.13+),
    not as the group database lists its name: a group dropped or granted at run time counts."""
    try:
        raw = sock.getsockopt(stdsocket.SOL_SOCKET, SO_PEERGROUPS, 4 * MAX_PEER_GROUPS)
    except OSError:  # ERANGE: too many to fit
        return None
    return set(struct.unpack(f"{len(raw) // 4}I", raw))


def _listed_groups(name: str, gid: int) -> set[int]:
    try:
        return set(os.getgrouplist(name, gid))
    except (KeyError, OSError):
        return {gid}


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def allowed(peer: Peer, group: int | None) -> bool:
    """The socket's owner (the daemon's user), root, or a member of the configured group."""
    return peer.uid in (os.geteuid(), 0) or (group is not None and group in peer.groups)


def _reply(ok: bool, payload: Any, code: int = 0) -> bytes:
    body = {"ok": True, "result": payload} if ok else {"ok": False, "error": payload, "code": code}
    return json.dumps(body, default=str).encode() + b"\n"


async def handle_connection(commands: Dispatcher, group: int | None, lookup: PeerLookup, stream: trio.abc.Stream) -> None:
    """Answer one request on ``stream``; ``lookup`` says who the peer is (``peer_of`` on a real socket).

    Errors are mapped once, by type: a domain error (``errors.FabricError``) is the
    request's answer, with its exit code; anything else is a bug, logged, and costs
    this one request, never the daemon.
    """
    async with stream:
        try:
            try:
                with trio.fail_after(REQUEST_TIMEOUT):  # only reading the request is bounded; --wait may take long
                    line = await read_line(stream)
            except trio.TooSlowError:
                raise BadRequest("request: not received in time") from None
            peer = await lookup(stream)
            if not allowed(peer, group):  # read first: closing on unread data would reset the reply
                log.warning("control.refused", uid=peer.uid, gid=peer.gid, user=peer.name)
                raise Failed(f"permission denied: {peer.name} is not the daemon's user nor in its socket_group")
            request = parse_request(line)
            request["who"] = peer.name  # from the kernel, never from the request
            result = await commands.dispatch(request)
            if isinstance(result, EventFeed):
                await _send_events(stream, result)
                return
            reply = _reply(True, result)
        except Exception as e:
            reply = _error_reply(e)
        try:
            await stream.send_all(reply)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


def _error_reply(error: Exception) -> bytes:
    """A domain error is the answer, with its exit code, even from inside a nursery's
    group; anything else is a bug: logged, and it costs this one request, never the daemon."""
    leaf = first_leaf(error)
    if isinstance(leaf, errors.FabricError):
        return _reply(False, str(leaf), errors.exit_code(leaf))
    log.error("control.error", error=f"{type(error).__name__}: {error}", exc_info=error)
    return _reply(False, f"internal error: {type(leaf).__name__}: {leaf}", errors.EXIT_FAILED)


async def _send_events(stream: trio.abc.Stream, feed: EventFeed) -> None:
    """The reply line, then one event a line; a reader that went away ends it."""
    try:
        await stream.send_all(_reply(True, "events"))
        if not feed.follow:
            for event in list(feed.bus.recent):
                await stream.send_all(_event_line(event))
            return
        async with feed.bus.follow() as follower:
            while True:
                await stream.send_all(_event_line(await follower.next()))
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


def _event_line(event: dict[str, Any]) -> bytes:
    return json.dumps(event, default=str, sort_keys=True).encode() + b"\n"


async def serve(commands: Commands, path: Path, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Serve the control socket: mode 0600, or 0660 owned by ``[daemon] socket_group``."""
    if path.exists() or path.is_symlink():
        path.unlink()  # a stale socket from a crash; the state-dir lock says no one else owns it
    group_name = commands.fabric.config.daemon.socket_group
    group = (await blocking.run_sync(grp.getgrnam, group_name)).gr_gid if group_name else None
    sock = trio.socket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
    try:
        await _bind_private(sock, path, group)
    except BaseException:
        sock.close()
        raise
    sock.listen(64)
    listener = trio.SocketListener(sock)
    log.info("control.listening", socket=str(path))
    try:
        async with trio.open_nursery() as nursery:
            task_status.started()
            await trio.serve_listeners(partial(handle_connection, commands, group, peer_of), [listener], handler_nursery=nursery)
    finally:
        path.unlink(missing_ok=True)


async def _bind_private(sock: Any, path: Path, group: int | None) -> None:
    """Bind ``sock`` at ``path`` already 0600 (or 0660 owned by ``group``), without the umask.

    The process umask is shared by every thread, so it is never touched: the socket
    is bound in a fresh 0700 directory beside ``path`` (no one else can connect
    through it), given its mode there, then renamed into place in one step.
    """
    # A short name ("." and 8 random characters, then "s"): an AF_UNIX path holds only
    # 107 bytes, and this one is no longer than ``<parent>/control.sock``.
    private = Path(tempfile.mkdtemp(prefix=".", dir=path.parent))
    try:
        staged = private / "s"
        await sock.bind(str(staged))
        if group is not None:  # the group gets in only once the group owns it
            os.chown(staged, -1, group)
            os.chmod(staged, 0o660)
        else:
            os.chmod(staged, 0o600)
        os.rename(staged, path)
    finally:
        shutil.rmtree(private, ignore_errors=True)
