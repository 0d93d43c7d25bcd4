"""A tap on the WAN's wire that looks for plaintext in what it carries.

Every job that crosses a link travels with its metadata: the offer names the job, its
digest and its index, with each object's IBM i path. Sealed, none of that can be read
on the wire; a segment that carries one of these markers in clear means the channel
let plaintext out. (The objects' own bytes are a keystream, as random as ciphertext,
so it is the metadata that tells.) The tap logs ``wan.plaintext`` when it finds one,
and ``wan.scanned`` when asked, for the no-plaintext-on-wan invariant to judge.
"""

from __future__ import annotations

import attrs
import structlog

log = structlog.get_logger()
MARKERS = (b"/QSYS.LIB/", b'"job_id"', b'"digest"', b'"entries"', b'"sha256"')
_OVERLAP = max(len(m) for m in MARKERS) - 1  # a marker may straddle two segments


@attrs.define
class WireTap:
    link: str
    segments: int = 0
    bytes: int = 0
    found: int = 0
    _tails: dict[str, bytes] = attrs.field(factory=dict)  # direction -> the end of its last segment

    def __call__(self, direction: str, segment: bytes) -> None:
        self.segments += 1
        self.bytes += len(segment)
        # The segment itself, and the seam with the last one: no copy of the whole segment.
        tail = self._tails.get(direction, b"")
        seam = tail + segment[:_OVERLAP]
        self._tails[direction] = (tail + segment[-_OVERLAP:])[-_OVERLAP:]
        for marker in MARKERS:
            if marker in segment or marker in seam:
                self.found += 1
                log.error("wan.plaintext", link=self.link, direction=direction, marker=marker.decode())
                return

    def report(self) -> None:
        log.info("wan.scanned", link=self.link, segments=self.segments, bytes=self.bytes, plaintext=self.found)
