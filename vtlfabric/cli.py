"""The ``vtlfabric`` command: ``run`` starts the daemon, ``ctl`` talks to it,
``tape`` looks at a cartridge image offline, ``report-html`` draws a report as a page.

Exit codes: 0 done, 1 the operation failed (or ``tape`` found damage), 2 a bad
request or config, 3 the daemon could not be reached (or is already running).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

from vtlfabric import config as config_mod
from vtlfabric.clicheck import add_parser as add_check_parser
from vtlfabric.cliformat import progress_bar, render
from vtlfabric.cliscenario import add_parser as add_scenario_parser
from vtlfabric.clitape import cmd_tape
from vtlfabric.sim.faultnames import USAGE as FAULT_USAGE

DEFAULT_CONFIG = "config/vtlfabric.toml"
PROGRESS_COMMANDS = ("auxcopy", "restore", "verify")  # --wait on a terminal draws a bar
BAR_EVERY = 0.25
EXIT_OK, EXIT_FAILED, EXIT_BAD, EXIT_UNREACHABLE = 0, 1, 2, 3


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.from_command_line = argv is None  # `scenario run` may re-execute itself (see cliscenario)
    return args.handler(args)


# ---------------------------------------------------------------- run


def cmd_run(args: argparse.Namespace) -> int:
    # The daemon's modules load here, not at the top: every `ctl` call is a new
    # process, and scripts and tests make many of them.
    import structlog
    import trio
    import trio.testing

    from vtlfabric import errors
    from vtlfabric.groups import first_leaf
    from vtlfabric.service import allocator, daemon, logs
    from vtlfabric.service.events import EventBus

    bus = EventBus()
    logs.configure(args.log_format, args.log_level, bus)
    log = structlog.get_logger()
    try:
        cfg = config_mod.load(args.config, state_dir=args.state_dir, socket=args.socket)
    except config_mod.ConfigError as e:
        print(f"vtlfabric: bad config: {e}", file=sys.stderr)
        return EXIT_BAD
    try:
        lock = daemon.StateLock.acquire(cfg.daemon.state_dir)
    except daemon.AlreadyRunning as e:
        print(f"vtlfabric: {e}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except OSError as e:  # the state dir is a file, or not ours to write
        print(f"vtlfabric: cannot use the state dir {cfg.daemon.state_dir}: {e.strerror or e}", file=sys.stderr)
        return EXIT_BAD
    log.info("daemon.allocator", **allocator.tune())
    try:
        clock = trio.testing.MockClock(autojump_threshold=0) if args.virtual_clock else None
        reload = partial(config_mod.load, args.config, state_dir=args.state_dir, socket=args.socket)
        trio.run(lambda: daemon.run(cfg, virtual_clock=args.virtual_clock, load_config=reload, bus=bus), clock=clock)
    except Exception as e:
        leaf = first_leaf(e)  # a service that cannot start raises from inside the daemon's nursery
        if isinstance(leaf, errors.FabricError):
            print(f"vtlfabric: cannot start: {leaf}", file=sys.stderr)
            return errors.exit_code(leaf)
        log.exception("daemon.crashed")
        return EXIT_FAILED
    finally:
        lock.release()
    return EXIT_OK


# ---------------------------------------------------------------- ctl


def cmd_ctl(args: argparse.Namespace) -> int:
    try:
        request = args.build(args)
        path = _socket_for(args)
    except config_mod.ConfigError as e:
        print(f"vtlfabric: cannot find the control socket: {e}", file=sys.stderr)
        return EXIT_BAD
    except ValueError as e:
        print(f"vtlfabric: {e}", file=sys.stderr)
        return EXIT_BAD
    if request["cmd"] == "events":
        return _print_events(path, request)
    try:
        bar = request.get("wait") and request["cmd"] in PROGRESS_COMMANDS and sys.stderr.isatty() and not args.json
        reply = _wait_with_bar(path, request) if bar else _call(path, request)
    except OSError as e:
        print(f"vtlfabric: cannot reach the daemon at {path}: {e.strerror or e} (is `vtlfabric run` running?)", file=sys.stderr)
        return EXIT_UNREACHABLE
    if not reply.get("ok"):
        print(f"vtlfabric: {reply.get('error', 'unknown error')}", file=sys.stderr)
        return int(reply.get("code", EXIT_FAILED))
    if args.json:
        print(json.dumps(reply["result"], indent=2, sort_keys=True))
    else:
        print(render(request["cmd"], reply["result"]))
    return EXIT_FAILED if _failed_drill(reply["result"]) else EXIT_OK


def _wait_with_bar(path: Path, request: dict[str, Any]) -> dict[str, Any]:
    """Start the operation, then poll it and draw a progress bar on the terminal until it ends."""
    reply = _call(path, {**request, "wait": False})
    began = time.monotonic()  # clock-ok: the CLI shows the operator's own elapsed time
    while reply.get("ok") and reply["result"]["status"] == "running":
        op = reply["result"]
        sys.stderr.write("\r\033[K" + progress_bar(op["id"], op["progress"], time.monotonic() - began))  # clock-ok
        sys.stderr.flush()
        time.sleep(BAR_EVERY)  # clock-ok
        reply = _call(path, {"cmd": "operation", "id": op["id"]})
    sys.stderr.write("\r\033[K")
    if reply.get("ok") and reply["result"]["status"] != "completed":
        op = reply["result"]
        return {"ok": False, "code": EXIT_FAILED, "error": op["error"] or f"{op['id']} {op['status']}: {op['result']}"}
    return reply


def _failed_drill(result: Any) -> bool:
    """A drill that ran and found failures: its report is printed, and the exit status says so."""
    return isinstance(result, dict) and result.get("kind") == "drill" and (result.get("result") or {}).get("passed") is False


def _socket_for(args: argparse.Namespace) -> Path:
    if args.socket:
        return Path(args.socket)
    spec = config_mod.load_daemon(args.config)
    state_dir = Path(args.state_dir).resolve() if args.state_dir else spec.state_dir
    return spec.socket or state_dir / "control.sock"


def _call(path: Path, request: dict[str, Any]) -> dict[str, Any]:
    """One request, one reply. Blocking is fine: the CLI does nothing else meanwhile."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(path))
        sock.sendall(json.dumps(request).encode() + b"\n")
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(1 << 16):
            chunks.append(chunk)
    data = b"".join(chunks)
    if not data:
        raise ConnectionResetError(0, "the daemon closed the connection without a reply")
    return json.loads(data)


def _print_events(path: Path, request: dict[str, Any]) -> int:
    """One JSON event a line, as they come, until the daemon ends the stream or Ctrl-C."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(path))
            sock.sendall(json.dumps(request).encode() + b"\n")
            lines = sock.makefile("r", encoding="utf-8")
            header = json.loads(lines.readline() or "{}")
            if not header.get("ok"):
                print(f"vtlfabric: {header.get('error', 'the daemon closed the connection')}", file=sys.stderr)
                return int(header.get("code", EXIT_FAILED))
            for line in lines:
                sys.stdout.write(line)
                sys.stdout.flush()
    except OSError as e:
        print(f"vtlfabric: cannot reach the daemon at {path}: {e.strerror or e}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def _simple(cmd: str) -> Any:
    return lambda args: {"cmd": cmd}


def _backup(args: argparse.Namespace) -> dict[str, Any]:
    return {"cmd": "backup", "client": args.client, "type": args.type, "subclient": args.subclient, "wait": args.wait}


def _kill(args: argparse.Namespace) -> dict[str, Any]:
    return {"cmd": "kill", "job_id": args.job}


def _auxcopy(args: argparse.Namespace) -> dict[str, Any]:
    return {"cmd": "auxcopy", "copy": args.copy, "streams": args.streams, "wait": args.wait}


def _restore(args: argparse.Namespace) -> dict[str, Any]:
    if (args.job is None) == (not args.latest):
        raise ValueError("restore: give either --job JOB or --latest")
    return {
        "cmd": "restore",
        "client": args.client,
        "job_id": args.job,
        "latest": args.latest,
        "copy": args.copy,
        "site": args.site,
        "to": str(Path(args.to).resolve()),
        "wait": args.wait,
    }


def _jobs(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "cmd": "jobs",
        "client": args.client,
        "status": args.status,
        "copy": args.copy,
        "state": args.state,
        "after": args.after,
        "limit": args.limit,
    }


def _select(action: str) -> Any:
    return lambda args: {"cmd": "select", "action": action, "job_id": args.job, "copy": args.copy}


def _fault(args: argparse.Namespace) -> dict[str, Any]:
    return {"cmd": "fault", "target": args.target, "action": args.action, "where": args.where}


# ---------------------------------------------------------------- report-html


def cmd_report_html(args: argparse.Namespace) -> int:
    """A scenario or drill report (JSON) as a self-contained HTML page beside it, or at -o."""
    # matplotlib loads here, not at the top: it takes longer to import than a `ctl` call takes.
    from vtlfabric import report as htmlreport

    out = args.output or args.report.with_suffix(".html")
    try:
        htmlreport.require_plotting()
        page = htmlreport.page(json.loads(args.report.read_text()))
    except htmlreport.MissingPlotting as e:
        print(f"vtlfabric: {e}", file=sys.stderr)
        return EXIT_BAD
    except htmlreport.NotAReport as e:
        print(f"vtlfabric: {args.report}: {e}", file=sys.stderr)
        return EXIT_BAD
    except OSError as e:
        print(f"vtlfabric: cannot read {args.report}: {e.strerror or e}", file=sys.stderr)
        return EXIT_BAD
    except ValueError as e:  # json's errors, and UnicodeDecodeError, are ValueErrors
        print(f"vtlfabric: {args.report}: not JSON: {e}", file=sys.stderr)
        return EXIT_BAD
    try:
        out.write_text(page)
    except OSError as e:
        print(f"vtlfabric: cannot write {out}: {e.strerror or e}", file=sys.stderr)
        return EXIT_BAD
    print(out)
    return EXIT_OK


# ---------------------------------------------------------------- parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vtlfabric", description="A multi-site VTL fabric with auxiliary copy.")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--config", default=os.environ.get("VTLFABRIC_CONFIG", DEFAULT_CONFIG))
    run.add_argument("--state-dir", help="override the config's state dir (systemd: ${STATE_DIRECTORY})")
    run.add_argument("--socket", help="override the config's control socket (systemd: ${RUNTIME_DIRECTORY}/control.sock)")
    run.add_argument(
        "--virtual-clock", action="store_true", help="run on Trio's mock clock: time jumps whenever the fabric is idle"
    )
    run.add_argument(
        "--log-format",
        choices=("auto", "json", "journal", "console"),
        default="auto",
        help="auto: journal under systemd, console on a terminal, else json",
    )
    run.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    run.set_defaults(handler=cmd_run)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", default=os.environ.get("VTLFABRIC_CONFIG", DEFAULT_CONFIG), help="find the socket from this config"
    )
    common.add_argument("--state-dir", help="the daemon's state dir, if overridden")
    common.add_argument(
        "--socket", default=os.environ.get("VTLFABRIC_SOCKET"), help="the control socket (default: <state-dir>/control.sock)"
    )
    common.add_argument("--json", action="store_true", help="print the reply as JSON")
    waits = argparse.ArgumentParser(add_help=False)
    waits.add_argument("--wait", action="store_true", help="wait until it ends; exit 1 if it fails")

    ctl = sub.add_parser("ctl", help="talk to the running daemon")
    cmds = ctl.add_subparsers(required=True, metavar="COMMAND")

    def add(name: str, build: Any, help: str, *parents: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p = cmds.add_parser(name, help=help, description=help, parents=[common, *parents])
        p.set_defaults(handler=cmd_ctl, build=build)
        return p

    add("status", _simple("status"), "the fabric at a glance")
    add("copies", _simple("copies"), "each copy's jobs and lag: bytes to copy, oldest uncopied job, last aux copy")
    add("drives", _simple("drives"), "each library's drives: free or held, by whom, and who waits for them, in order")
    jobs = add("jobs", _jobs, "jobs and their state on each copy, a page at a time, in id order")
    jobs.add_argument("--client")
    jobs.add_argument("--status", help="completed, failed, killed or running")
    jobs.add_argument("--copy", help="POLICY/COPY: only jobs with a state on this copy")
    jobs.add_argument("--state", help="with --copy: only jobs in this state there (e.g. to_be_copied, damaged)")
    jobs.add_argument("--after", type=int, default=0, help="the page after this job id (the last of the page before)")
    jobs.add_argument("--limit", type=_positive, default=1000, help="jobs a page (default 1000, at most 10000)")
    backup = add("backup", _backup, "back up an IBM i client", waits)
    backup.add_argument("client")
    backup.add_argument("--type", choices=config_mod.JOB_TYPES, default="incremental")
    backup.add_argument("--subclient", help="default: the client's first subclient")
    kill = add("kill", _kill, "kill a running backup")
    kill.add_argument("job", type=int)
    aux = add("auxcopy", _auxcopy, "run an auxiliary copy now", waits)
    aux.add_argument("--copy", help="POLICY/COPY (default: every secondary copy)")
    aux.add_argument("--streams", type=_positive, help="override the copy's number of streams")
    restore = add("restore", _restore, "restore a job or a client's latest point in time", waits)
    restore.add_argument("--client")
    restore.add_argument("--job", type=int)
    restore.add_argument("--latest", action="store_true")
    restore.add_argument("--copy", help="POLICY/COPY to restore from (default: the primary)")
    restore.add_argument(
        "--site", help="restore at this site, from its best copy of the policy (with --copy: check the copy is there)"
    )
    restore.add_argument("--to", required=True, help="the directory to restore into")
    drill = add(
        "drill",
        lambda a: {"cmd": "drill", "mode": a.mode, "wait": a.wait},
        "run a DR drill (also: SIGUSR1 to the daemon); --wait prints its report",
        waits,
    )
    drill.add_argument("--mode", choices=config_mod.DRILL_MODES, help="default: the config's [drill] mode")
    add("drills", _simple("drills"), "past drills and their results")
    verify = add(
        "verify",
        lambda a: {"cmd": "verify", "copy": a.copy, "wait": a.wait},
        "data verification: read back every available job and check it against its backup digest",
        waits,
    )
    verify.add_argument("--copy", help="POLICY/COPY (default: every copy)")
    events = add(
        "events",
        lambda a: {"cmd": "events", "follow": a.follow},
        "job, copy, media, fault and drill events, one JSON object a line (recent ones, or --follow)",
    )
    events.add_argument("--follow", "-f", action="store_true", help="print events as they happen until interrupted")
    age = add("age", lambda a: {"cmd": "age", "policy": a.policy, "wait": a.wait}, "run data aging now", waits)
    age.add_argument("--policy", help="only this storage policy's copies")
    promote = add(
        "promote",
        lambda a: {"cmd": "promote", "copy": a.copy, "yes": a.yes, "planned": a.planned},
        "make a secondary copy the primary (reports what it loses first)",
    )
    promote.add_argument("copy", help="POLICY/COPY")
    promote.add_argument("--yes", action="store_true", help="promote even though the old primary still works")
    promote.add_argument(
        "--planned",
        action="store_true",
        help="hold backups off and copy every missing job to the copy first, so nothing is lost (refused if it cannot)",
    )
    repair = add("repair", lambda a: {"cmd": "repair", "copy": a.copy}, "declare a copy usable again")
    repair.add_argument("copy", help="POLICY/COPY")
    suspend = add("suspend", lambda a: {"cmd": "suspend", "copy": a.copy}, "suspend a copy's aux copy (it stops at a checkpoint)")
    suspend.add_argument("--copy", required=True, help="POLICY/COPY")
    resume = add(
        "resume", lambda a: {"cmd": "resume", "copy": a.copy, "wait": a.wait}, "resume a copy's aux copy where it stopped", waits
    )
    resume.add_argument("--copy", required=True, help="POLICY/COPY")
    for action, text in (
        ("pick", "copy this job to the copy, whatever its type or the copy's rules"),
        ("do-not-copy", "never copy this job to the copy"),
        ("recopy", "copy this job to the copy again"),
        ("mark-bad", "the copy's data of this job is bad: never restore from it"),
    ):
        p = add(action, _select(action), text)
        p.add_argument("job", type=int)
        p.add_argument("--copy", required=True, help="POLICY/COPY")
    add("media", _simple("media"), "each library as IBM i shows it (WRKMLBSTS, WRKMLMBRM): device, drives, volumes")
    for action, text in (
        ("export", "vault cartridges out of their library through the mail station"),
        ("import", "bring exported cartridges back into their library through the mail station"),
    ):
        p = add(action, lambda a, action=action: {"cmd": action, "barcodes": a.barcodes}, text)
        p.add_argument("barcodes", nargs="+", metavar="BARCODE")
    fault = add("fault", _fault, f"inject a fault: {FAULT_USAGE}")
    fault.add_argument("target")
    fault.add_argument("action")
    fault.add_argument(
        "where",
        nargs="?",
        help="read-error: where on the cartridge (FILE.BLOCK or OFFSET); degrade: bandwidth=SIZE,latency=DURATION,loss=FRACTION",
    )

    tape = sub.add_parser("tape", help="look at a cartridge image offline (any AWSTAPE file; no daemon)")
    tapes = tape.add_subparsers(required=True, metavar="COMMAND", dest="tape_cmd")
    image_args = argparse.ArgumentParser(add_help=False)
    image_args.add_argument("image", metavar="IMAGE", help="an AWSTAPE image file")
    image_args.add_argument("--json", action="store_true", help="print what was found as JSON")
    image_args.add_argument(
        "--unlabelled", action="store_true", help="read no labels: a file is the blocks up to a tapemark, as hetmap counts"
    )

    def add_tape(name: str, help: str) -> argparse.ArgumentParser:
        p = tapes.add_parser(name, help=help, description=help, parents=[image_args])
        p.set_defaults(handler=cmd_tape)
        return p

    ls = add_tape("ls", "the volume label, each tape file (labels, blocks, bytes, offset) and, with --blocks, every block")
    ls.add_argument("--blocks", action="store_true", help="also list every block: offset, length, chunks, flags")
    add_tape(
        "verify",
        "check every block header, the previous-length chain and the labels (VOL1 first, unless --unlabelled); "
        "print the first problem with its byte offset and exit 1, or one OK line",
    )
    add_scenario_parser(sub)
    add_check_parser(sub)
    report = sub.add_parser(
        "report-html",
        help="write a scenario report or a drill report (JSON) as a self-contained HTML page with a plot",
        description="Write a scenario report (scenario run --report) or a drill report (a drill's JSON, or "
        "`ctl drill --wait --json`) as one self-contained HTML page: a plot and the report's tables. Needs matplotlib.",
    )
    report.add_argument("report", type=Path, metavar="REPORT.json", help="the JSON report")
    report.add_argument("-o", "--output", type=Path, metavar="OUT.html", help="where to write it (default: REPORT.html)")
    report.set_defaults(handler=cmd_report_html)
    return parser


if __name__ == "__main__":
    sys.exit(main())
