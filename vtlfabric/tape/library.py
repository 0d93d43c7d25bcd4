"""A VTL library: slots of cartridge images, drives, and a robot that moves between them."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import attrs
import structlog
import trio

from vtlfabric import blocking, errors, media
from vtlfabric.catalog import queries
from vtlfabric.catalog.db import Catalog
from vtlfabric.config import LibrarySpec
from vtlfabric.tape.blockfaults import BlockFaults
from vtlfabric.tape.broker import DriveBroker, Holder, LibraryDrives
from vtlfabric.tape.image import Mapped, TapeImage
from vtlfabric.vocab import DriveState

T = TypeVar("T")
log = structlog.get_logger()


class LibraryOffline(Exception):
    pass


class OutOfMedia(Exception):
    pass


class MediaFailure(Exception):
    """A cartridge that can no longer be read or written."""


class WrongCartridge(errors.Refused):
    """The cartridge's VOL1 label names another volume: it is never written over."""


class CartridgeOutside(errors.Refused):
    """The cartridge was exported: it is outside the library until it is imported again."""


class DriveFailed(errors.Failed):
    """The drive failed under the job; the job goes on on another drive from its checkpoint."""


class RobotFailed(errors.Failed):
    """The library's robot failed a move: the cartridge stayed where it was."""


class MediaReadError(MediaFailure):
    """Part of a cartridge cannot be read: the drive reports a medium error on a block."""


class MediaWriteError(MediaFailure):
    """A write to a cartridge failed: nothing of it counts, and the cartridge is bad."""


@attrs.define(eq=False)
class Drive:
    """One drive: its state, the cartridge in it, and where the tape is.

    With the library's ``timing`` on, every mechanical step takes the model's time on
    Trio's clock (vtlfabric/media.py): the robot's move and the load and thread, a
    locate that grows with the distance, data at the drive's native rate for the
    cartridge, and the rewind and unload."""

    library: Library
    number: int
    image: TapeImage | None = None
    barcode: str | None = None
    state: DriveState = DriveState.EMPTY
    position: float = 0.0  # where the tape is, as a fraction of its length
    why: str = ""  # why it failed, or was varied off
    _mechanism: trio.Lock = attrs.field(factory=trio.Lock)  # one load or unload at a time

    @property
    def name(self) -> str:
        return f"{self.library.spec.id}#{self.number}"

    @property
    def kind(self) -> media.DriveType:
        return media.DRIVES[self.library.spec.drive_type]

    async def io(self, fn: Callable[..., T], *args: Any) -> T:
        """Tape I/O moves large blocks: keep it off the event loop."""
        down = self.library.unavailable()
        if down:
            raise LibraryOffline(down)
        if self.state == DriveState.FAILED:
            raise DriveFailed(f"drive {self.name} has failed: {self.why}")
        if self.barcode in self.library.failed_media:
            raise MediaFailure(f"cartridge {self.barcode} in {self.library.spec.id} has failed")
        return await blocking.run_sync(fn, *args)

    async def mount_for_read(self, barcode: str) -> None:
        """Have ``barcode`` in this drive to read it: kept if it is here already, else claimed
        (waiting while another drive's holder uses it) and loaded."""
        if self.barcode != barcode or self.image is None:
            await self.unload()
            await self.library.claim_for_read(barcode)
        await self.load(barcode)

    def leave(self) -> None:
        """Its holder is done with the cartridge in it for now. It stays loaded, for the
        holder's next job may want it, but whoever else needs it has it put back first:
        a cartridge left in a drive must not hold anyone up (see Library.claim_for_read)."""
        if self.barcode is not None and self.image is not None:
            self.library.left_in(self)

    async def load(self, barcode: str, *, write: bool = False) -> TapeImage:
        """Mount ``barcode``, which the caller has claimed: the robot brings it, the drive
        threads it, and the label is read. A cartridge this drive cannot read (or write) is
        refused before the robot moves. If the load fails, the claim is let go here, once
        the cartridge is back in its slot: never while it is still in the drive."""
        if self.barcode == barcode and self.image is not None:
            self.library.taken_back(barcode)
            return self.image
        try:
            image = await self._thread(barcode, write)
        except BaseException:
            self._show(DriveState.EMPTY)
            self.library.release_cartridge(barcode)
            raise
        self.image, self.barcode, self.position = image, barcode, 0.0
        self._show(DriveState.READY)
        try:
            label = self.library.mislabelled.get(barcode, image.barcode)
            if label != barcode:  # never write over another volume: unloaded below
                log.warning("drive.wrong_label", site=self.library.spec.site, barcode=barcode, label=label, drive=self.name)
                raise WrongCartridge(f"cartridge {barcode} in {self.library.spec.id} is labelled {label}: not mounted")
            await self.library.catalog.call(queries.set_location, [barcode], "drive", self.number, self.library.now())
        except BaseException:
            await self.unload()  # in the drive: unloaded, and only then let go
            raise
        log.debug("drive.loaded", site=self.library.spec.site, library=self.library.spec.id, barcode=barcode, drive=self.name)
        return image

    async def _thread(self, barcode: str, write: bool) -> TapeImage:
        """Empty the drive, have the robot bring ``barcode``, and thread it: its image, open."""
        if self.state == DriveState.FAILED:
            raise DriveFailed(f"drive {self.name} has failed: {self.why}")
        media.check_mount(self.kind, barcode, write)
        self.library.check_inside(barcode)
        await self.unload()
        self._show(DriveState.LOADING)
        await self.library.robot_move(picking=barcode)
        await self._take(self.kind.load)
        if barcode in self.library.failed_media:
            raise MediaFailure(f"cartridge {barcode} in {self.library.spec.id} has failed")
        path, mapped = self.library.image_path(barcode), self.library.maps.pop(barcode, None)
        return await self.io(partial(TapeImage.open, path, self.library.spec.capacity, mapped=mapped))

    async def locate(self, offset: int) -> None:
        """Move the tape to ``offset`` bytes of the image before reading or appending there."""
        target = min(1.0, offset / self.library.spec.capacity)
        if abs(target - self.position) > 1e-9:
            await self._busy(media.locate_time(self.kind, self.position, target))
            self.position = target

    async def moved(self, nbytes: int) -> None:
        """``nbytes`` (real) of the job's data went through the heads: the time the drive's
        rate takes for the nominal bytes they stand for."""
        if nbytes and self.barcode is not None:
            await self._busy(nbytes * self.library.scale / self.kind.transfer_rate(media.media_of(self.barcode)))
            self.position = min(1.0, self.position + nbytes / self.library.spec.capacity)

    async def unload(self) -> None:
        """Put the cartridge back in its slot. Another task may unload a cartridge left in
        this drive (``leave``): it is detached here before any checkpoint, so its holder
        can never take it back half unloaded, and the mechanism does one thing at a time."""
        image, barcode = self.image, self.barcode
        self.image = self.barcode = None
        if barcode is not None:
            self.library.taken_back(barcode)
        with trio.CancelScope(shield=True):  # a half-unloaded drive would leak the cartridge
            async with self._mechanism:
                if image is not None:
                    await self._put_back(image, barcode)

    async def _put_back(self, image: TapeImage, barcode: str) -> None:
        try:
            mapped = await blocking.run_sync(image.close_mapped)
            if mapped is not None:
                self.library.maps[barcode] = mapped
            await self._take(media.rewind_time(self.kind, self.position) + self.kind.unload)
            await self.library.robot_move()
            try:
                await self.library.catalog.call(queries.set_location, [barcode], "slot", None, self.library.now())
            except OSError as e:  # a full state dir: it is in its slot all the same (the next start says so)
                log.warning("cartridge.location_not_recorded", barcode=barcode, drive=self.name, error=str(e))
        finally:
            # Only back in its slot can another drive have it: released before the rewind,
            # it was loaded in a second drive while the first still held it (the
            # drives-held-once invariant found this in the wan-partition scenario).
            self.library.release_cartridge(barcode)
        self.position = 0.0
        self._show(DriveState.EMPTY)
        log.debug("drive.unloaded", site=self.library.spec.site, library=self.library.spec.id, barcode=barcode, drive=self.name)

    def set_state(self, state: DriveState, why: str = "") -> None:
        """Fail a drive or vary it off (the broker grants it to no one meanwhile), or bring it
        back. A failed drive fails its holder's next I/O; one varied off lets its holder finish."""
        self.state, self.why = state, why
        out = state in (DriveState.FAILED, DriveState.OFFLINE)
        self.library.broker.set_out(self.library.spec.id, self.number, out)
        if not out:
            self.state = DriveState.READY if self.image else DriveState.EMPTY

    def _show(self, state: DriveState) -> None:
        """The drive's working state; a failed or varied-off drive keeps showing that."""
        if self.state not in (DriveState.FAILED, DriveState.OFFLINE):
            self.state = state

    async def _busy(self, seconds: float) -> None:
        before = self.state
        self._show(DriveState.BUSY)
        try:
            await self._take(seconds)
        finally:
            if self.state == DriveState.BUSY:
                self.state = before

    async def _take(self, seconds: float) -> None:
        if self.library.spec.timing and seconds > 0:
            await trio.sleep(seconds)


@attrs.define(eq=False)
class Library:
    spec: LibrarySpec
    root: Path
    catalog: Catalog
    offline: bool = False
    unreachable: bool = False  # its MediaAgent cannot be reached
    crashed: str = ""  # its MediaAgent is down: why, until it restarts
    state_full: bool = False  # the state directory its images lie in has no room: writes fail
    robot_failing: bool = False  # every pick of a cartridge fails until the robot is repaired
    mislabelled: dict[str, str] = attrs.field(factory=dict)  # barcode -> the label a mount of it reads
    failed_media: dict[str, str | None] = attrs.field(factory=dict)  # failed barcode -> the copy it held data for
    broker: DriveBroker = attrs.field(factory=DriveBroker)  # hands out its drives; one per fabric
    _drives: tuple[Drive, ...] = attrs.field(init=False)  # by number, from 1
    block_faults: BlockFaults = attrs.field(factory=BlockFaults)  # unreadable blocks, writes to fail
    _busy_cartridges: set[str] = attrs.field(factory=set)  # claimed: in a drive, or on their way to one
    _left: dict[str, Drive] = attrs.field(factory=dict)  # busy cartridges their holder is done with: where
    _cartridge_freed: trio.Event = attrs.field(factory=trio.Event)
    _claiming: trio.Lock = attrs.field(factory=trio.Lock)
    _robot: trio.Lock = attrs.field(factory=trio.Lock)  # one move at a time
    pools: dict[str, frozenset[str]] = attrs.field(factory=dict)  # copy id -> its own scratch pool
    now: Callable[[], float] = trio.current_time  # fabric time, for the journal
    scale: int = 1  # nominal bytes per real byte: the timing model runs on nominal bytes
    maps: dict[str, Mapped] = attrs.field(factory=dict)  # barcode -> its image's map at its last unload
    outside: set[str] = attrs.field(factory=set)  # exported: not in the library until imported

    def __attrs_post_init__(self) -> None:
        self._drives = tuple(Drive(self, n) for n in range(1, self.spec.drives + 1))
        self.broker.add_library(self.spec.id, self.spec.drives)

    async def robot_move(self, picking: str | None = None) -> None:
        """One move of the robot (slot, drive, mail station); moves queue in order. A pick
        (``picking``: the cartridge taken from its slot) fails while the robot is failing;
        a cartridge on its way back to a slot always gets there (the robot retries)."""
        async with self._robot:
            await trio.sleep(self.spec.robot_time)
            if picking is not None and self.robot_failing:
                log.warning("fault.fired", fault="robot-fail", site=self.spec.site, library=self.spec.id, barcode=picking)
                raise RobotFailed(f"the robot of library {self.spec.id} failed to pick cartridge {picking}")

    def image_path(self, barcode: str) -> Path:
        return self.root / f"{barcode}.aws"

    def unavailable(self) -> str:
        """Why no drive of this library can be used now ('' if they can)."""
        if self.offline:
            return f"library {self.spec.id} is offline"
        if self.unreachable:
            return f"the MediaAgent of {self.spec.id} is unreachable"
        return self.crashed

    def drives(self) -> tuple[Drive, ...]:
        return self._drives

    @property
    def drives_in_use(self) -> int:
        return self.broker.in_use(self.spec.id)

    async def start(self) -> None:
        """Register cartridges, label new ones, and trim each to what the catalog committed."""
        await blocking.run_sync(lambda: self.root.mkdir(parents=True, exist_ok=True))
        await self.catalog.call(queries.add_cartridges, self.spec.id, self.spec.barcodes)
        await self.catalog.call(queries.home_cartridges, self.spec.id)
        outside: set[str] = set()
        for cart in await self.catalog.call(queries.cartridges, self.spec.id):
            if cart.location == "outside":
                outside.add(cart.barcode)
                continue
            short = await blocking.run_sync(self._recover, cart.barcode, cart.eod)
            if short and cart.state != "bad":  # never append after data that is gone: it would take its file numbers
                await self.catalog.call(queries.set_cartridge_state, cart.barcode, "bad", cart.eod)
        self.outside = outside  # only now: a start that fails part way leaves what was known

    async def drained(self) -> None:
        """Wait until no drive holds a cartridge (after a crash, its work unloads them)."""
        while any(d.image is not None for d in self._drives) or self._busy_cartridges:
            await self._cartridge_freed.wait()

    async def reload(self) -> None:
        """Forget what was kept in memory and open the library again from disk, as a start does."""
        self.maps.clear()
        await self.start()

    def _recover(self, barcode: str, eod: int) -> bool:
        """Trim what was never committed; True if the image holds less than was (it was cut short)."""
        path = self.image_path(barcode)
        if eod == 0 or not path.exists():
            if path.exists():  # what it holds past a label was never committed (the journal shows it went)
                log.debug("cartridge.relabelled", site=self.spec.site, library=self.spec.id, barcode=barcode)
            self._relabel(barcode)
            if eod:
                log.error("cartridge.short", barcode=barcode, library=self.spec.id, missing=eod, why="no image")
            return eod > 0
        image = TapeImage.open(path, self.spec.capacity, repair=True)  # a torn last record never counted
        try:
            if image.end_offset() > eod:
                log.warning(
                    "cartridge.trimmed",
                    site=self.spec.site,
                    library=self.spec.id,
                    barcode=barcode,
                    bytes=image.end_offset() - eod,
                )
                image.truncate(eod)
            elif image.end_offset() < eod:
                log.error("cartridge.short", barcode=barcode, library=self.spec.id, missing=eod - image.end_offset())
                return True
        finally:
            image.close()
        return False

    @asynccontextmanager
    async def drive(self, holder: Holder = "") -> AsyncIterator[Drive]:
        """Reserve a drive through the fabric's broker; it is unloaded and handed back when
        the block ends. ``holder`` names who holds it, for ctl drives.

        An offline library hands out no drive: a job that would write nothing (an
        incremental with no changes) must fail there too, not complete on a dead library."""
        async with reserve_drives(self, holder=holder) as (drive,):
            yield drive

    def drive_states(self) -> LibraryDrives:
        """Each drive (free or held, by whom, what it has loaded) and who waits, for ctl drives."""
        report = self.broker.report(self.spec.id, {d.number: d.barcode for d in self._drives}, self.unavailable())
        condition = {d.number: d.state for d in self._drives if d.state in (DriveState.FAILED, DriveState.OFFLINE)}
        views = tuple(attrs.evolve(v, state=condition[v.number].value) if v.number in condition else v for v in report.drives)
        return attrs.evolve(report, drives=views)

    async def claim_for_append(self, copy_id: str) -> str:
        """A cartridge to write this copy's data on, reserved until released.

        Claims are serialised: the busy set must include every earlier claim before
        the catalog is asked, or two drives could be handed the same cartridge."""
        async with self._claiming:
            cart = await self.catalog.call(queries.claim_cartridge, self.spec.id, copy_id, self._not_for(copy_id))
            if cart is None:
                raise OutOfMedia(f"library {self.spec.id} has no appendable or scratch cartridge for {copy_id}")
            self._busy_cartridges.add(cart.barcode)
            log.debug("cartridge.claimed", site=self.spec.site, library=self.spec.id, barcode=cart.barcode, copy=copy_id)
            return cart.barcode

    async def recycle_aged(self, now: float) -> list[str]:
        """Return cartridges that hold only aged (or never valid) data to scratch, and
        relabel them. Catalog first: a crash before the relabel is mended at start,
        where a cartridge with no committed data gets a fresh image."""
        async with self._claiming:  # no writer may claim one of them meanwhile
            worm = [b for b in self.spec.barcodes if media.media_of(b).worm]  # write once: never recycled
            keep = (*self._busy_cartridges, *self.failed_media, *self.outside, *worm)
            barcodes = await self.catalog.call(queries.recycle_cartridges, self.spec.id, keep, now)
            for barcode in barcodes:
                await blocking.run_sync(self._relabel, barcode)
                log.info("cartridge.scratch", site=self.spec.site, library=self.spec.id, barcode=barcode)
        return barcodes

    def check_inside(self, barcode: str) -> None:
        if barcode in self.outside:
            raise CartridgeOutside(
                f"cartridge {barcode} is outside library {self.spec.id}: import it with `vtlfabric ctl import {barcode}`"
            )

    async def export(self, barcodes: list[str]) -> None:
        """Vault cartridges: through the mail station, a batch of ``station`` at a time, to outside.
        Each must be in its slot, idle; nothing moves unless all of them can."""
        for barcode in barcodes:
            self._check_known(barcode)
            if barcode in self.outside:
                raise errors.Refused(f"cartridge {barcode} is already outside library {self.spec.id}")
            if barcode in self._busy_cartridges:
                raise errors.Refused(f"cartridge {barcode} is in use in library {self.spec.id}: export it when it is idle")
        async with self._claiming:  # no writer claims one of them meanwhile
            for batch in _batches(barcodes, self.spec.station):
                for barcode in batch:
                    await self.robot_move(picking=barcode)  # slot -> station; the operator empties the station
                await self.catalog.call(queries.set_location, batch, "outside", None, self.now())
                self.outside.update(batch)
                log.info("cartridge.exported", library=self.spec.id, barcodes=batch)

    async def import_(self, barcodes: list[str]) -> None:
        """Bring exported cartridges back through the mail station into their slots."""
        for barcode in barcodes:
            self._check_known(barcode)
            if barcode not in self.outside:
                raise errors.Refused(f"cartridge {barcode} is not outside library {self.spec.id}: nothing to import")
        for batch in _batches(barcodes, self.spec.station):
            for _ in batch:
                await self.robot_move()  # station -> its slot
            await self.catalog.call(queries.set_location, batch, "slot", None, self.now())
            self.outside.difference_update(batch)
            log.info("cartridge.imported", library=self.spec.id, barcodes=batch)

    def _check_known(self, barcode: str) -> None:
        if barcode not in self.spec.barcodes:
            raise errors.NotFound(f"cartridge in library {self.spec.id}", barcode)

    def _not_for(self, copy_id: str) -> set[str]:
        """Cartridges this copy may not write on now: in use, failed, not writable by this
        library's drives, or outside its own scratch pool (or inside another copy's)."""
        drive = media.DRIVES[self.spec.drive_type]
        out = {*self._busy_cartridges, *self.failed_media, *self.outside}
        out |= {b for b in self.spec.barcodes if not drive.can_write(media.media_of(b))}
        own = self.pools.get(copy_id)
        if own is not None:
            return out | (set(self.spec.barcodes) - own)
        return out.union(*self.pools.values())

    def _relabel(self, barcode: str) -> None:
        TapeImage.create(self.image_path(barcode), barcode, self.spec.capacity).close()

    async def claim_for_read(self, barcode: str) -> None:
        """Wait until no other drive holds this cartridge, then hold it. One left in a drive
        by a holder done with it is put back in its slot now: waiting for that holder to
        let go could wait for good, as it may itself wait for a cartridge we left (two aux
        copy streams did, in the chaos sweep)."""
        while barcode in self._busy_cartridges:
            drive = self._left.get(barcode)
            if drive is not None and drive.barcode == barcode:
                await drive.unload()
            else:
                self._left.pop(barcode, None)  # no longer where it was left: whoever has it lets go
                await self._cartridge_freed.wait()
        self._busy_cartridges.add(barcode)

    def left_in(self, drive: Drive) -> None:
        assert drive.barcode is not None
        self._left[drive.barcode] = drive
        self._wake()  # whoever waits for it may have it now

    def taken_back(self, barcode: str) -> None:
        """The cartridge's holder uses it again, or it leaves its drive: no longer left."""
        self._left.pop(barcode, None)

    def release_cartridge(self, barcode: str | None) -> None:
        self._busy_cartridges.discard(barcode)
        self._wake()

    def _wake(self) -> None:
        """Every claim_for_read waiting in this library looks again."""
        self._cartridge_freed.set()
        self._cartridge_freed = trio.Event()


def _batches(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


@asynccontextmanager
async def reserve_drives(*libraries: Library, holder: Holder = "") -> AsyncIterator[tuple[Drive, ...]]:
    """Reserve one drive for each library named (the same library twice: two of its drives),
    in ONE request to the broker: all at once or none, so nothing holds one drive while it
    waits for another, and no topology can deadlock (see tape/broker.py).

    No drive is handed out on an unavailable library: LibraryOffline is raised instead,
    before waiting and again when the drives are granted. Every drive is unloaded before
    it goes back."""
    brokers = {id(lib.broker) for lib in libraries}
    if len(brokers) != 1:
        raise ValueError("reserve_drives: the libraries must share one broker (one fabric)")
    for lib in libraries:
        if lib.unavailable():
            raise LibraryOffline(lib.unavailable())
    needs = Counter(lib.spec.id for lib in libraries)
    async with libraries[0].broker.reserve(needs, holder) as grant, AsyncExitStack() as unloads:
        numbers = {lib_id: list(granted) for lib_id, granted in grant.drives.items()}
        drives = tuple(lib._drives[numbers[lib.spec.id].pop(0) - 1] for lib in libraries)
        for drive in drives:
            unloads.push_async_callback(drive.unload)
        for lib in libraries:
            if lib.unavailable():
                raise LibraryOffline(lib.unavailable())
        yield drives
