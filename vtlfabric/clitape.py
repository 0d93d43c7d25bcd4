"""``vtlfabric tape ls`` and ``tape verify``: an AWSTAPE image read offline, no daemon and no
Trio (the tape modules load only when a tape command runs), printed for a person or as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from vtlfabric.errors import EXIT_BAD, EXIT_FAILED

if TYPE_CHECKING:
    from vtlfabric.tape.inspect import Inspection

EXIT_OK = 0


def cmd_tape(args: argparse.Namespace) -> int:
    """``tape ls`` and ``tape verify``: read an image file offline; no daemon, no Trio."""
    from vtlfabric.tape.inspect import Labels, inspect_image

    labels = Labels.NONE if args.unlabelled else {"ls": Labels.AUTO, "verify": Labels.STANDARD}[args.tape_cmd]
    try:
        with open(args.image, "rb") as f:
            found = inspect_image(f, labels=labels, list_blocks=getattr(args, "blocks", False))
    except OSError as e:
        print(f"vtlfabric: cannot read {args.image}: {e.strerror or e}", file=sys.stderr)
        return EXIT_BAD
    if args.json:
        print(json.dumps(_tape_json(args, found), indent=2, sort_keys=True, default=_iso_date))
    else:
        lines = _tape_ls_text(args.image, found) if args.tape_cmd == "ls" else []
        if found.problem is not None:
            lines.append(f"{args.image}: {found.problem}")
        elif args.tape_cmd == "verify":
            lines.append(f"{args.image}: OK: {_tape_summary(found)}")
        lines += [f"{args.image}: warning: {w}" for w in found.warnings]
        print("\n".join(lines))
    return EXIT_OK if found.ok else EXIT_FAILED


def _tape_json(args: argparse.Namespace, found: Inspection) -> dict[str, Any]:
    from vtlfabric.tojson import jsonable

    out = {"image": args.image, "ok": found.ok, **jsonable(found)}
    if not getattr(args, "blocks", False):
        del out["blocks"]
    return out


def _iso_date(value: Any) -> str:
    from datetime import date

    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _tape_summary(found: Inspection) -> str:
    what = "unlabelled" if found.vol1 is None else f"volume {found.vol1.volser}"
    files = _plural(len(found.files), "file")
    if open_files := [str(f.number) for f in found.files if not f.closed]:
        files += f" (file {', '.join(open_files)} not closed)"
    checked = "header and back link" if found.vol1 is None else "header, back link and label"
    return (
        f"{what}, {files}, {_plural(found.data_blocks, 'data block')} ({found.data_bytes} bytes); "
        f"{_plural(found.records, 'record')} in {found.size} bytes, every {checked} checked"
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _tape_ls_text(image: str, found: Inspection) -> list[str]:
    from vtlfabric.tape.records import BOR, COMPRESSION, EOR, TAPEMARK

    if found.vol1 is None:
        head = f"{image}: unlabelled"
    else:
        head = f"{image}: volume {found.vol1.volser}" + (f", owner {found.vol1.owner}" if found.vol1.owner else "")
    lines = [f"{head}; {_plural(len(found.files), 'file')}; {found.size} bytes"]
    rows = []
    for f in found.files:
        row = [str(f.number), str(f.offset), str(f.blocks), str(f.bytes)]
        if found.vol1 is not None:
            hdr1, hdr2 = f.hdr1, f.hdr2
            row += [
                "-" if f.data_offset is None else str(f.data_offset),
                hdr1.dsname if hdr1 else "-",
                str(hdr1.created or "-") if hdr1 else "-",
                f"{hdr2.recfm} {hdr2.block_size}" if hdr2 else "-",
            ]
        rows.append([*row, "" if f.closed else "not closed"])
    header = ["FILE", "OFFSET", "BLOCKS", "BYTES"]
    if found.vol1 is not None:
        header += ["DATA AT", "DSNAME", "CREATED", "RECFM/BLKSIZE"]
    if rows:
        lines.append(_columns([*header, ""], rows))
    if found.blocks:
        names = ((TAPEMARK, "TM"), (BOR, "BOR"), (EOR, "EOR"), (COMPRESSION, "COMPRESSED"))

        def flags(value: int) -> str:
            return "|".join(name for bit, name in names if value & bit) or "-"

        blocks = []
        for b in found.blocks:
            first, last = b.chunks[0], b.chunks[-1]
            shown = flags(first.flags) if len(b.chunks) == 1 else f"{flags(first.flags)} .. {flags(last.flags)}"
            blocks.append([str(b.offset), "tapemark" if b.tapemark else str(b.length), str(len(b.chunks)), shown, b.label or ""])
        lines.append(_columns(["OFFSET", "LENGTH", "CHUNKS", "FLAGS", "LABEL"], blocks))
    return lines


def _columns(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows])
