"""LTO media and drive generations: capacities, native rates, which drive mounts which
cartridge, and how long a drive takes to load, locate, move data, rewind and unload.

Pure: no I/O, no Trio. The figures are the LTO Consortium's native (uncompressed)
ones; the mechanical times are typical of full-height LTO drives (IBM TS2280-class):
load and thread about 15 s, a full-length locate or rewind about 100 s, unload 20 s.
"""

from __future__ import annotations

import attrs

from vtlfabric import errors

TB = 10**12
MB = 10**6


@attrs.frozen
class MediaType:
    generation: int  # 7, 8, 9
    worm: bool
    capacity: int  # native bytes
    rate: float  # native bytes per second

    @property
    def name(self) -> str:
        return f"LTO-{self.generation}" + (" WORM" if self.worm else "")


# The barcode's last two characters name the media (LTO-7/8/9, and their WORM kinds).
MEDIA: dict[str, MediaType] = {
    "L7": MediaType(7, False, 6 * TB, 300 * MB),
    "LW": MediaType(7, True, 6 * TB, 300 * MB),
    "L8": MediaType(8, False, 12 * TB, 360 * MB),
    "LX": MediaType(8, True, 12 * TB, 360 * MB),
    "L9": MediaType(9, False, 18 * TB, 400 * MB),
    "LY": MediaType(9, True, 18 * TB, 400 * MB),
}


@attrs.frozen
class DriveType:
    generation: int
    reads: frozenset[int]  # media generations it can read
    writes: frozenset[int]  # ...and write
    rate: float  # native bytes per second on its own generation's media
    load: float = 15.0  # seconds from the drive's throat to ready, threading included
    unload: float = 20.0
    full_locate: float = 100.0  # seconds to locate (or rewind) the whole length of a tape
    base_locate: float = 2.0  # seconds any locate costs, however short

    @property
    def name(self) -> str:
        return f"LTO-{self.generation}"

    def can_read(self, media: MediaType) -> bool:
        return media.generation in self.reads

    def can_write(self, media: MediaType) -> bool:
        return media.generation in self.writes

    def transfer_rate(self, media: MediaType) -> float:
        """An older cartridge in a newer drive streams at the older generation's rate."""
        return min(self.rate, media.rate)


# LTO's compatibility rule from LTO-8 on: a drive reads and writes its own generation and
# the one before (LTO-8 also reads and writes L7; LTO-9 reads and writes L8).
DRIVES: dict[str, DriveType] = {
    "LTO-7": DriveType(7, frozenset({7}), frozenset({7}), 300 * MB),
    "LTO-8": DriveType(8, frozenset({7, 8}), frozenset({7, 8}), 360 * MB),
    "LTO-9": DriveType(9, frozenset({8, 9}), frozenset({8, 9}), 400 * MB),
}


class Incompatible(errors.Refused):
    """A cartridge the drive cannot mount for what was asked."""


def media_of(barcode: str) -> MediaType:
    try:
        return MEDIA[barcode[-2:]]
    except KeyError:
        raise errors.NotFound("media type for barcode suffix", barcode[-2:], list(MEDIA)) from None


def check_mount(drive: DriveType, barcode: str, write: bool) -> None:
    media = media_of(barcode)
    if not drive.can_read(media) or (write and not drive.can_write(media)):
        raise Incompatible(f"an {drive.name} drive cannot {'write' if write else 'read'} {media.name} cartridge {barcode}")


def default_drive(barcodes: tuple[str, ...]) -> str:
    """The oldest generation that reads and writes every cartridge the library holds, if any."""
    generations = {media_of(b).generation for b in barcodes}
    for name, drive in DRIVES.items():
        if generations <= drive.writes:
            return name
    return max(DRIVES, key=lambda n: DRIVES[n].generation)


def locate_time(drive: DriveType, from_fraction: float, to_fraction: float) -> float:
    """Seconds to move the tape between two positions, each a fraction of its length."""
    return drive.base_locate + abs(to_fraction - from_fraction) * drive.full_locate


def rewind_time(drive: DriveType, at_fraction: float) -> float:
    return at_fraction * drive.full_locate
