"""Prometheus metrics on a loopback port: GET /metrics.

prometheus_client writes the exposition format (names, escaping, types) so we do
not; h11 parses HTTP so a scraper or a stray client cannot confuse a hand-rolled
parser. Both serve from the Trio loop: the values are read at scrape time from
the catalog (in its worker thread) and the fabric, never kept twice.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import h11
import structlog
import trio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from vtlfabric import blocking, errors
from vtlfabric.catalog import queries
from vtlfabric.config import MetricsSpec
from vtlfabric.jobs.copystatus import CopyStatus, copy_statuses
from vtlfabric.service.commands import Commands

log = structlog.get_logger()
REQUEST_TIMEOUT = 10.0
MAX_REQUEST = 16 * 1024


async def serve_metrics(commands: Commands, spec: MetricsSpec, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    try:
        listeners = await trio.open_tcp_listeners(spec.port, host=spec.host)
    except OSError as e:  # a port in use is the operator's to fix: say so in one line
        raise errors.Failed(f"[metrics] listen = {spec.host}:{spec.port}: {e.strerror or e}") from None
    address = listeners[0].socket.getsockname()
    log.info("metrics.listening", host=address[0], port=address[1])
    task_status.started(f"{address[0]}:{address[1]}")
    await trio.serve_listeners(lambda stream: _handle(commands, stream), listeners)


async def _handle(commands: Commands, stream: trio.SocketStream) -> None:
    async with stream:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST)
        try:
            with trio.fail_after(REQUEST_TIMEOUT):
                request = await _read_request(conn, stream)
            status, body, ctype = 404, b"not found: try /metrics\n", "text/plain; charset=utf-8"
            if request.method not in (b"GET", b"HEAD"):
                status, body = 405, b"GET only\n"
            elif request.target.split(b"?")[0] == b"/metrics":
                status, body, ctype = 200, await render(commands), CONTENT_TYPE_LATEST
            await _respond(conn, stream, status, b"" if request.method == b"HEAD" else body, ctype, len(body))
        except (h11.RemoteProtocolError, trio.TooSlowError):
            await _respond(conn, stream, 400, b"bad request\n", "text/plain; charset=utf-8", None)
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError):
            pass
        except Exception:  # a failed scrape costs that scrape, never the daemon
            log.exception("metrics.error")
            await _respond(conn, stream, 500, b"internal error: see the daemon's log\n", "text/plain; charset=utf-8", None)


async def _read_request(conn: h11.Connection, stream: trio.SocketStream) -> h11.Request:
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(4096))
        elif isinstance(event, h11.Request):
            return event
        else:
            raise h11.RemoteProtocolError("expected a request")


async def _respond(
    conn: h11.Connection, stream: trio.SocketStream, status: int, body: bytes, ctype: str, length: int | None
) -> None:
    if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return
    headers = [("content-type", ctype), ("connection", "close"), ("content-length", str(len(body) if length is None else length))]
    try:
        data = conn.send(h11.Response(status_code=status, headers=headers))
        data += conn.send(h11.Data(data=body)) if body else b""
        data += conn.send(h11.EndOfMessage())
        await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError):
        pass


async def render(commands: Commands) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    metrics = await collect(commands)
    registry.register(_Fixed(metrics))
    return generate_latest(registry)


class _Fixed:
    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self.metrics


async def collect(commands: Commands) -> list[Metric]:
    """Every metric, read now."""
    fabric = commands.fabric
    counts = await fabric.catalog.call(queries.job_counts)
    backed_up = await fabric.catalog.call(queries.valid_bytes)
    runs = await fabric.catalog.call(queries.run_summary)
    copies = await copy_statuses(fabric)
    carts = await fabric.catalog.call(queries.cartridges)
    drill = await _last_drill(commands)
    return [
        *_job_metrics(counts, backed_up, fabric.config),
        *_copy_metrics(copies, runs),
        *_library_metrics(fabric, carts),
        *_wan_metrics(fabric),
        *_drill_metrics(drill),
        _gauge(
            "vtlfabric_operations_running",
            "Operations running now, by kind",
            ["kind"],
            Counter(w.kind for w in commands.ops.running()),
        ),
    ]


def _gauge(name: str, doc: str, labels: list[str], values: dict[Any, float], unit: str = "") -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels, unit=unit)
    for key, value in sorted(values.items()):
        family.add_metric(list(key) if isinstance(key, tuple) else [key] if labels else [], value)
    return family


def _counter(name: str, doc: str, labels: list[str], values: dict[Any, float], unit: str = "") -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels, unit=unit)
    for key, value in sorted(values.items()):
        family.add_metric(list(key) if isinstance(key, tuple) else [key], value)
    return family


def _job_metrics(counts: dict[tuple[str, str], int], backed_up: dict[str, int], config: Any) -> list[Metric]:
    by_policy = {**{p.name: 0 for p in config.policies}, **backed_up}
    return [
        _gauge("vtlfabric_jobs", "Backup jobs by type and status", ["type", "status"], counts),
        _counter("vtlfabric_backup_bytes", "Bytes of valid backups written, by storage policy", ["policy"], by_policy, "bytes"),
    ]


def _copy_metrics(copies: list[CopyStatus], runs: dict[str, tuple[int, int, float | None]]) -> list[Metric]:
    copied = {c.id: runs.get(c.id, (0, 0, None))[0] for c in copies}
    streams = {c.id: runs.get(c.id, (0, 0, None))[1] for c in copies}
    return [
        _gauge(
            "vtlfabric_copy_available_bytes",
            "Bytes of jobs available on each copy",
            ["copy"],
            {c.id: c.available_bytes for c in copies},
        ),
        _counter(
            "vtlfabric_auxcopy_copied_bytes",
            "Bytes copied by finished aux copy runs, by destination copy",
            ["copy"],
            copied,
            "bytes",
        ),
        _gauge("vtlfabric_copy_lag_bytes", "Bytes a copy still has to copy", ["copy"], {c.id: c.bytes_to_copy for c in copies}),
        _gauge("vtlfabric_copy_lag_jobs", "Jobs a copy still has to copy", ["copy"], {c.id: c.to_copy for c in copies}),
        _gauge(
            "vtlfabric_copy_lag_seconds",
            "Age of the oldest job a copy still has to copy (0: none)",
            ["copy"],
            {c.id: c.oldest_uncopied_age or 0 for c in copies},
        ),
        _gauge(
            "vtlfabric_copy_primary", "1 for the primary copy of its policy", ["copy"], {c.id: int(c.primary) for c in copies}
        ),
        _gauge(
            "vtlfabric_copy_inoperative",
            "1 while a copy is inoperative",
            ["copy"],
            {c.id: int(bool(c.inoperative)) for c in copies},
        ),
        _gauge("vtlfabric_auxcopy_streams_running", "Aux copy streams running now, by destination copy", ["copy"], streams),
    ]


def _library_metrics(fabric: Any, carts: list[Any]) -> list[Metric]:
    libs = fabric.libraries
    return [
        _gauge(
            "vtlfabric_library_drives", "Drives in each library", ["library"], {k: lib.spec.drives for k, lib in libs.items()}
        ),
        _gauge(
            "vtlfabric_library_drives_in_use", "Drives in use now", ["library"], {k: lib.drives_in_use for k, lib in libs.items()}
        ),
        _gauge(
            "vtlfabric_library_offline",
            "1 while a library cannot be used",
            ["library"],
            {k: int(bool(lib.unavailable())) for k, lib in libs.items()},
        ),
        _gauge(
            "vtlfabric_library_cartridges",
            "Cartridges by library and state",
            ["library", "state"],
            Counter((c.library, c.state) for c in carts),
        ),
    ]


def _wan_metrics(fabric: Any) -> list[Metric]:
    links = fabric.links
    goodput = {}
    for name, link in links.items():
        goodput[(name, f"{link.spec.a}->{link.spec.b}")] = link.stats.bytes_a_to_b
        goodput[(name, f"{link.spec.b}->{link.spec.a}")] = link.stats.bytes_b_to_a
    return [
        _counter(
            "vtlfabric_wan_goodput_bytes",
            "Payload bytes carried by each WAN link, first transmissions only",
            ["link", "direction"],
            goodput,
            "bytes",
        ),
        _counter(
            "vtlfabric_wan_retransmits",
            "Segments sent again after loss, a partition or a lost ack",
            ["link"],
            {k: link.stats.retransmits for k, link in links.items()},
        ),
        _counter(
            "vtlfabric_wan_corrupted_segments",
            "Segments corrupted on the wire",
            ["link"],
            {k: link.stats.corrupted for k, link in links.items()},
        ),
        _counter(
            "vtlfabric_wan_streams_broken",
            "Streams broken by a stall",
            ["link"],
            {k: link.stats.streams_broken for k, link in links.items()},
        ),
        _gauge(
            "vtlfabric_wan_streams",
            "Streams open on each link now",
            ["link"],
            {k: link.active_streams for k, link in links.items()},
        ),
        _gauge(
            "vtlfabric_wan_partitioned",
            "1 while a link is cut in either direction",
            ["link"],
            {k: int(link.partitioned is not None) for k, link in links.items()},
        ),
    ]


async def _last_drill(commands: Commands) -> dict[str, Any] | None:
    finished = [
        d for d in await commands.fabric.catalog.call(queries.drills) if d["status"] in ("passed", "failed") and d["report"]
    ]
    if not finished:
        return None
    try:
        text = await blocking.run_sync(Path(finished[-1]["report"]).read_text)
        return json.loads(text)
    except (OSError, ValueError):
        return None


def _drill_metrics(report: dict[str, Any] | None) -> list[Metric]:
    clients = report["clients"] if report else []
    key = [(c["client"], c["copy"]) for c in clients]
    return [
        _gauge(
            "vtlfabric_drill_passed",
            "1 if the last DR drill passed (absent before the first)",
            [],
            {(): int(report["passed"])} if report else {},
        ),
        _gauge(
            "vtlfabric_drill_rpo_seconds",
            "RPO per client in the last DR drill",
            ["client", "copy"],
            dict(zip(key, (c["rpo"] for c in clients))),
        ),
        _gauge(
            "vtlfabric_drill_rto_seconds",
            "RTO per client in the last DR drill",
            ["client", "copy"],
            dict(zip(key, (c["rto"] for c in clients))),
        ),
        _gauge(
            "vtlfabric_drill_client_passed",
            "1 if the client passed the last DR drill",
            ["client", "copy"],
            dict(zip(key, (int(c["passed"]) for c in clients))),
        ),
    ]
