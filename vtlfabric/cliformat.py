"""Human-readable renderings of control replies (``--json`` prints the reply as is)."""

from __future__ import annotations

from typing import Any

from vtlfabric.jobs.drillreport import report_text
from vtlfabric.units import format_bytes


def render(cmd: str, result: Any) -> str:
    return _RENDERERS.get(cmd, _operation)(result)


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)


PAGE_HINT = 1000  # a page this long may have more after it: say how to get it


def _jobs(jobs: list[dict[str, Any]]) -> str:
    if not jobs:
        return "no jobs yet"
    rows = [
        [
            str(j["id"]),
            j["client"],
            j["subclient"],
            j["type"],
            j["status"],
            format_bytes(j.get("nominal_bytes", j["bytes"])),
            j["started"],
            " ".join(f"{copy}={state}" for copy, state in sorted(j["copies"].items())),
        ]
        for j in jobs
    ]
    # Why a job is not simply where it should be: damaged, partially copied, marked bad...
    why = [
        f"  job {j['id']} on {copy}: {state}: {j.get('reasons', {})[copy]}"
        for j in jobs
        for copy, state in sorted(j["copies"].items())
        if state in _EXPLAINED and j.get("reasons", {}).get(copy)
    ]
    table = _table(rows, ["ID", "CLIENT", "SUBCLIENT", "TYPE", "STATUS", "SIZE", "STARTED", "COPIES"])
    more = [f"({len(jobs)} jobs; the next page: --after {jobs[-1]['id']})"] if len(jobs) >= PAGE_HINT else []
    return "\n".join([table, *(["", "why:", *why] if why else []), *more])


_EXPLAINED = ("partially_copied", "damaged", "bad", "do_not_copy")


def _status(s: dict[str, Any]) -> str:
    jobs = ", ".join(f"{n} {state}" for state, n in sorted(s["jobs"].items())) or "none"
    out = [
        f"vtlfabric pid {s['pid']}, up {s['uptime']}s, fabric time {s['fabric_time']}",
        f"config {s['config']}, state {s['state_dir']}"
        + "".join(f", {name} http://{address}/{name}" for name, address in sorted(s.get("endpoints", {}).items())),
        f"jobs: {jobs}",
        "running: " + (", ".join(op["id"] for op in s["running"]) or "nothing"),
        "faults in force: " + ("; ".join(s.get("faults", [])) or "none"),
        "",
        _table(
            [
                [
                    lib["id"],
                    "offline" if lib["offline"] else "online",
                    f"{lib['drives_in_use']}/{lib['drives']}",
                    " ".join(f"{k}={v}" for k, v in sorted(lib["cartridges"].items())),
                ]
                for lib in s["libraries"]
            ],
            ["LIBRARY", "STATE", "DRIVES", "CARTRIDGES"],
        ),
        "",
        _copies(s["copies"]),
    ]
    if s["links"]:
        out += [
            "",
            _table(
                [
                    [
                        link["name"],
                        "-".join(link["sites"]),
                        f"partitioned {link['partitioned']}" if link["partitioned"] else "up",
                        str(link["streams"]),
                        format_bytes(link["bytes_a_to_b"] + link["bytes_b_to_a"]),
                        str(link["retransmits"]),
                    ]
                    for link in s["links"]
                ],
                ["LINK", "SITES", "STATE", "STREAMS", "CARRIED", "RETRANSMITS"],
            ),
        ]
    return "\n".join(out)


def _copies(copies: list[dict[str, Any]]) -> str:
    rows = []
    for c in copies:
        role = "primary" if c["primary"] else f"{c['kind']} from {c['source']}"
        age = "-" if c["oldest_uncopied_age"] is None else f"{c['oldest_uncopied_age']:.0f}s"
        flag = "SUSPENDED " if c.get("suspended") else ""
        flag += f"INOPERATIVE: {c['inoperative']} " if c.get("inoperative") else ""
        flag += f"DAMAGED: {len(c['damaged'])} job(s), {c['heal']} " if c.get("damaged") else ""
        flag += "FALLEN BEHIND: " + "; ".join(c["fallen_behind"]) if c["fallen_behind"] else ""
        rows.append(
            [
                c["id"],
                role,
                c["library"],
                " ".join(f"{k}={v}" for k, v in sorted(c["states"].items())) or "-",
                format_bytes(c["bytes_to_copy"]),
                age,
                "-" if c["primary"] else c["last_auxcopy"] or "never",
                flag or "ok",
            ]
        )
    return _table(rows, ["COPY", "ROLE", "LIBRARY", "JOBS", "TO COPY", "OLDEST UNCOPIED", "LAST AUX COPY", "STATE"])


def _drives(r: dict[str, Any]) -> str:
    def took(seconds: float | None) -> str:
        return "-" if seconds is None else f"{seconds:.0f}s"

    libraries = r["libraries"]
    out = [
        f"fabric time {r['fabric_time']}",
        "",
        _table(
            [
                [d["name"], d["state"], d["barcode"] or "-", d["holder"] or "-", took(d["held_for"])]
                for lib in libraries
                for d in lib["drives"]
            ],
            ["DRIVE", "STATE", "CARTRIDGE", "HOLDER", "HELD FOR"],
        ),
        "",
    ]
    waiters = [
        [
            lib["library"],
            str(w["position"]),
            w["holder"],
            " ".join(f"{k}={v}" for k, v in sorted(w["needs"].items())),
            took(w["waited"]),
        ]
        for lib in libraries
        for w in lib["waiters"]
    ]
    out.append(_table(waiters, ["LIBRARY", "#", "WAITING", "NEEDS", "WAITED"]) if waiters else "nobody waits for a drive")
    out += [f"{lib['library']}: {lib['unavailable']}" for lib in libraries if lib["unavailable"]]
    return "\n".join(out)


def _drills(drills: list[dict[str, Any]]) -> str:
    if not drills:
        return "no drills yet"
    return _table(
        [[str(d["id"]), d["mode"], d["trigger"], d["started"], d["status"], d["summary"]] for d in drills],
        ["ID", "MODE", "TRIGGER", "STARTED", "STATUS", "SUMMARY"],
    )


def _operation(op: dict[str, Any]) -> str:
    if "kind" not in op:
        return "\n".join(f"{k}: {v}" for k, v in op.items())
    if op["status"] == "running":
        return f"{op['id']} started"
    if op["kind"] == "drill" and op.get("result"):
        return report_text(op["result"]).rstrip()
    result = op.get("result") or {}
    detail = {
        "backup": lambda r: (
            f"job {r.get('job_id')} {r.get('type')}: {r.get('objects', 0)} objects, {format_bytes(r.get('bytes', 0))}"
        ),
        "auxcopy": lambda r: (
            "; ".join(
                f"{c['copy']}: {c['jobs_copied']} jobs, {format_bytes(c['bytes'])} on {c['streams']} streams"
                + (f", {len(c['failed'])} failed" if c["failed"] else "")
                for c in r.get("copies", [])
            )
            or "nothing to copy"
        ),
        "aging": lambda r: (
            f"{len(r.get('aged', []))} job copies aged, cartridges back to scratch: "
            f"{', '.join(r.get('cartridges', [])) or 'none'}"
        ),
        "verify": lambda r: "; ".join(
            f"{c['copy']}: {c['jobs_verified']} jobs, {format_bytes(c['bytes'])} "
            + (c["status"] if c["status"] != "completed" else "verified")
            for c in r.get("copies", [])
        ),
        "restore": lambda r: (
            f"{r.get('objects', 0)} objects, {format_bytes(r.get('bytes', 0))} from {r.get('copy')} "
            f"at {r.get('site')} (jobs {', '.join(map(str, r.get('jobs', [])))}) into {r.get('dest')}"
        ),
    }.get(op["kind"], lambda r: str(r))(result)
    return f"{op['id']} {op['status']}: {detail}"


def _selection(r: dict[str, Any]) -> str:
    return f"job {r['job_id']} on {r['copy']}: {r['state']} ({r['action']} by {r['who']})"


def _media(libraries: list[dict[str, Any]]) -> str:
    """As IBM i's WRKMLBSTS (the device and its resources) and WRKMLMBRM (its volumes)."""
    parts = []
    for lib in libraries:
        head = f"{lib['device']}  {lib['library']}  site {lib['site']}  {lib['drive_type']} drives  {lib['status']}"
        resources = _table(
            [[r["resource"], r["status"].upper(), r["volume"], r["drive"]] for r in lib["resources"]],
            ["RESOURCE", "STATUS", "VOLUME", "DRIVE"],
        )
        volumes = _table(
            [
                [v["volume"], v["status"], v["location"], v["media"], f"{v['used'] / v['capacity']:4.0%}", v["state"], v["copy"]]
                for v in lib["volumes"]
            ],
            ["VOLUME", "STATUS", "LOCATION", "MEDIA", "USED", "STATE", "COPY"],
        )
        parts.append(f"{head}\n\n{resources}\n\n{volumes}")
    return "\n\n".join(parts)


_RENDERERS = {
    "jobs": _jobs,
    "status": _status,
    "select": _selection,
    "copies": _copies,
    "drills": _drills,
    "media": _media,
    "drives": _drives,
}


def progress_bar(op_id: str, progress: dict[str, Any], elapsed: float, width: int = 24) -> str:
    """``auxcopy:3 [#########-----]  48%  12.3 MiB / 25.6 MiB  4.1 MiB/s  2 jobs left``"""
    done, total = progress["bytes_done"], progress["bytes_total"]
    fraction = min(1.0, done / total) if total else 0.0
    filled = round(fraction * width)
    rate = done / elapsed if elapsed > 0 else 0.0
    left = progress["jobs_total"] - progress["jobs_done"]
    return (
        f"{op_id} [{'#' * filled}{'-' * (width - filled)}] {fraction:4.0%}  {format_bytes(done)} / {format_bytes(total)}  "
        f"{format_bytes(rate)}/s  {left} job{'s' if left != 1 else ''} left"
    )
