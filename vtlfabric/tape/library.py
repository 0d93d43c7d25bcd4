"""A VTL library: slots of cartridge images, drives, and a robot that moves between them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import attrs
import structlog
import trio

from vtlfabric.catalog import queries
from vtlfabric.catalog.db import Catalog
from vtlfabric.config import LibrarySpec
from vtlfabric.tape.blockfaults import BlockFaults
from vtlfabric.tape.image import TapeImage

T = TypeVar("T")
log = structlog.get_logger()


class LibraryOffline(Exception):
    pass


class OutOfMedia(Exception):
    pass


class MediaFailure(Exception):
    """A cartridge that can no longer be read or written."""


class MediaReadError(MediaFailure):
    """Part of a cartridge cannot be read: the drive reports a medium error on a block."""


class MediaWriteError(MediaFailure):
    """A write to a cartridge failed: nothing of it counts, and the cartridge is bad."""


@attrs.define(eq=False)
class Drive:
    library: Library
    number: int
    image: TapeImage | None = None
    barcode: str | None = None

    @property
    def name(self) -> str:
        return f"{self.library.spec.id}#{self.number}"

    async def io(self, fn: Callable[..., T], *args: Any) -> T:
        """Tape I/O moves large blocks: keep it off the event loop."""
        down = self.library.unavailable()
        if down:
            raise LibraryOffline(down)
        if self.barcode in self.library.failed_media:
            raise MediaFailure(f"cartridge {self.barcode} in {self.library.spec.id} has failed")
        return await trio.to_thread.run_sync(fn, *args)

    async def load(self, barcode: str) -> TapeImage:
        if self.barcode == barcode and self.image is not None:
            return self.image
        await self.unload()
        await trio.sleep(self.library.spec.robot_time)
        if barcode in self.library.failed_media:
            raise MediaFailure(f"cartridge {barcode} in {self.library.spec.id} has failed")
        self.image = await self.io(TapeImage.open, self.library.image_path(barcode), self.library.spec.capacity)
        self.barcode = barcode
        log.debug("drive.loaded", drive=self.name, barcode=barcode)
        return self.image

    async def unload(self) -> None:
        if self.image is None:
            return
        image, barcode = self.image, self.barcode
        self.image = self.barcode = None
        self.library.release_cartridge(barcode)
        with trio.CancelScope(shield=True):  # a half-unloaded drive would leak the cartridge
            await trio.to_thread.run_sync(image.close)
            await trio.sleep(self.library.spec.robot_time)
        log.debug("drive.unloaded", drive=self.name, barcode=barcode)


@attrs.define(eq=False)
class Library:
    spec: LibrarySpec
    root: Path
    catalog: Catalog
    offline: bool = False
    unreachable: bool = False  # its MediaAgent cannot be reached
    failed_media: dict[str, str | None] = attrs.field(factory=dict)  # failed barcode -> the copy it held data for
    block_faults: BlockFaults = attrs.field(factory=BlockFaults)  # unreadable blocks, writes to fail
    _free: list[Drive] = attrs.field(factory=list)
    _drive_slots: trio.Semaphore = attrs.field(init=False)
    _busy_cartridges: set[str] = attrs.field(factory=set)
    _cartridge_freed: trio.Event = attrs.field(factory=trio.Event)
    _claiming: trio.Lock = attrs.field(factory=trio.Lock)

    def __attrs_post_init__(self) -> None:
        self._free = [Drive(self, n) for n in range(1, self.spec.drives + 1)]
        self._drive_slots = trio.Semaphore(self.spec.drives)

    def image_path(self, barcode: str) -> Path:
        return self.root / f"{barcode}.aws"

    def unavailable(self) -> str:
        """Why no drive of this library can be used now ('' if they can)."""
        if self.offline:
            return f"library {self.spec.id} is offline"
        if self.unreachable:
            return f"the MediaAgent of {self.spec.id} is unreachable"
        return ""

    @property
    def drives_in_use(self) -> int:
        return self.spec.drives - len(self._free)

    async def start(self) -> None:
        """Register cartridges, label new ones, and trim each to what the catalog committed."""
        await trio.to_thread.run_sync(lambda: self.root.mkdir(parents=True, exist_ok=True))
        await self.catalog.call(queries.add_cartridges, self.spec.id, self.spec.barcodes)
        for cart in await self.catalog.call(queries.cartridges, self.spec.id):
            short = await trio.to_thread.run_sync(self._recover, cart.barcode, cart.eod)
            if short and cart.state != "bad":  # never append after data that is gone: it would take its file numbers
                await self.catalog.call(queries.set_cartridge_state, cart.barcode, "bad", cart.eod)

    def _recover(self, barcode: str, eod: int) -> bool:
        """Trim what was never committed; True if the image holds less than was (it was cut short)."""
        path = self.image_path(barcode)
        if eod == 0 or not path.exists():
            self._relabel(barcode)
            if eod:
                log.error("cartridge.short", barcode=barcode, library=self.spec.id, missing=eod, why="no image")
            return eod > 0
        image = TapeImage.open(path, self.spec.capacity, repair=True)  # a torn last record never counted
        try:
            if image.end_offset() > eod:
                log.warning("cartridge.trimmed", barcode=barcode, library=self.spec.id, bytes=image.end_offset() - eod)
                image.truncate(eod)
            elif image.end_offset() < eod:
                log.error("cartridge.short", barcode=barcode, library=self.spec.id, missing=eod - image.end_offset())
                return True
        finally:
            image.close()
        return False

    @asynccontextmanager
    async def drive(self) -> AsyncIterator[Drive]:
        """Reserve a drive; it is unloaded and handed back when the block ends.

        An offline library hands out no drive: a job that would write nothing (an
        incremental with no changes) must fail there too, not complete on a dead library."""
        async with self._drive_slots:
            down = self.unavailable()
            if down:
                raise LibraryOffline(down)
            drive = self._free.pop(0)
            try:
                yield drive
            finally:
                await drive.unload()
                self._free.append(drive)

    async def claim_for_append(self, copy_id: str) -> str:
        """A cartridge to write this copy's data on, reserved until released.

        Claims are serialised: the busy set must include every earlier claim before
        the catalog is asked, or two drives could be handed the same cartridge."""
        async with self._claiming:
            cart = await self.catalog.call(
                queries.claim_cartridge, self.spec.id, copy_id, (*self._busy_cartridges, *self.failed_media)
            )
            if cart is None:
                raise OutOfMedia(f"library {self.spec.id} has no appendable or scratch cartridge for {copy_id}")
            self._busy_cartridges.add(cart.barcode)
            return cart.barcode

    async def recycle_aged(self, now: float) -> list[str]:
        """Return cartridges that hold only aged (or never valid) data to scratch, and
        relabel them. Catalog first: a crash before the relabel is mended at start,
        where a cartridge with no committed data gets a fresh image."""
        async with self._claiming:  # no writer may claim one of them meanwhile
            barcodes = await self.catalog.call(
                queries.recycle_cartridges, self.spec.id, (*self._busy_cartridges, *self.failed_media), now
            )
            for barcode in barcodes:
                await trio.to_thread.run_sync(self._relabel, barcode)
                log.info("cartridge.scratch", barcode=barcode, library=self.spec.id)
        return barcodes

    def _relabel(self, barcode: str) -> None:
        TapeImage.create(self.image_path(barcode), barcode, self.spec.capacity).close()

    async def claim_for_read(self, barcode: str) -> None:
        """Wait until no other drive holds this cartridge, then hold it."""
        while barcode in self._busy_cartridges:
            await self._cartridge_freed.wait()
        self._busy_cartridges.add(barcode)

    def release_cartridge(self, barcode: str | None) -> None:
        self._busy_cartridges.discard(barcode)
        self._cartridge_freed.set()
        self._cartridge_freed = trio.Event()


@asynccontextmanager
async def reserve_drives(*libraries: Library) -> AsyncIterator[tuple[Drive, ...]]:
    """Reserve one drive in each library, always in the same global order (by library id),
    so two streams that each need a source and a destination drive can never deadlock."""
    order = sorted(range(len(libraries)), key=lambda i: libraries[i].spec.id)
    async with AsyncExitStack() as stack:
        held = {i: await stack.enter_async_context(libraries[i].drive()) for i in order}
        yield tuple(held[i] for i in range(len(libraries)))
