"""An IBM i client's workload: libraries and IFS objects that change over time.

Everything is a pure function of the client's seed, an object's path and a
*generation* (fabric time divided by ``change_every``). So a backup never has
to keep the client's data anywhere, and a test can recreate exactly what any
backup saw in order to check a restore byte for byte.
"""

from __future__ import annotations

import hashlib

import attrs
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from vtlfabric.config import ClientSpec, SubclientSpec

_LIB_TYPES = ("FILE", "PGM", "SRVPGM", "DTAARA", "MSGF", "CMD")
_IFS_SUFFIXES = ("dat", "csv", "xml", "log", "json")
PIECE = 1 << 20  # bytes of an object synthesised at a time
_ZEROS = bytes(PIECE)


def _draw(*parts: object) -> int:
    """A stable 64-bit number for these parts (not Python's salted hash)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@attrs.frozen
class SourceObject:
    """One object as it stands at some generation."""

    subclient: str
    path: str
    version: int  # the generation at which it last changed
    size: int


@attrs.frozen
class Workload:
    client: ClientSpec
    scale: int = 1  # an object's size is nominal; its content is one real byte per `scale`
    # path -> (the latest generation asked, its version): each backup asks the next
    # generation, so a walk back stops where the last one ended instead of at 0
    _latest: dict[str, tuple[int, int]] = attrs.field(factory=dict, init=False, eq=False, repr=False)

    def generation(self, fabric_time: float) -> int:
        return int(fabric_time // self.client.change_every)

    def paths(self, sub: SubclientSpec) -> list[str]:
        out = []
        for item in sub.content:
            kind, _, where = item.partition(":")
            for n in range(1, sub.objects + 1):
                if kind == "LIB":
                    obj_type = _LIB_TYPES[_draw(self.client.seed, where, n) % len(_LIB_TYPES)]
                    out.append(f"/QSYS.LIB/{where}.LIB/OBJ{n:04d}.{obj_type}")
                else:
                    suffix = _IFS_SUFFIXES[_draw(self.client.seed, where, n) % len(_IFS_SUFFIXES)]
                    out.append(f"{where.rstrip('/')}/file{n:04d}.{suffix}")
        return out

    def _changed(self, path: str, generation: int) -> bool:
        return _draw(self.client.seed, path, generation, "change") < self.client.change_rate * 2**64

    def version(self, path: str, generation: int) -> int:
        """The last generation at or before ``generation`` in which ``path`` changed (0: never)."""
        if self.client.change_rate <= 0:
            return 0
        seen_at, seen = self._latest.get(path, (0, 0))
        floor, below = (seen_at, seen) if seen_at <= generation else (0, 0)
        g = generation
        while g > floor and not self._changed(path, g):
            g -= 1
        found = g if g > floor else below
        if generation >= seen_at:
            self._latest[path] = (generation, found)
        return found

    def objects(self, subclient: str, generation: int, since: int | None = None) -> list[SourceObject]:
        """All objects at ``generation``; with ``since``, only those changed after it."""
        sub = self.client.subclient(subclient)
        out = []
        for path in self.paths(sub):
            version = self.version(path, generation)
            if since is not None and version <= since:
                continue
            size = sub.min_size + _draw(self.client.seed, path, version, "size") % (sub.max_size - sub.min_size + 1)
            out.append(SourceObject(subclient, path, version, size))
        return out

    def content(self, obj: SourceObject) -> bytes:
        """The object's bytes (``pieces`` joined)."""
        return b"".join(self.pieces(obj))

    def pieces(self, obj: SourceObject) -> list[bytes]:
        """The object's bytes, in pieces of at most PIECE: a big object is never one
        allocation or copy, which holds the GIL (14 ms for 24 MiB) and stalls the loop.

        Data synthesis, not the fabric's chance, so it draws from no RNG: an AES-256-CTR
        keystream keyed by the object's identity. Incompressible like real data, ten
        times as fast as randbytes, and it leaves the GIL free while it runs."""
        key = hashlib.blake2b(repr((self.client.seed, obj.path, obj.version, "data")).encode(), digest_size=32).digest()
        keystream = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
        size = -(-obj.size // self.scale)
        return [keystream.update(_ZEROS[: min(PIECE, size - at)]) for at in range(0, size, PIECE)]
