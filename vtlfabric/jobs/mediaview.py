"""The fabric's libraries as an IBM i operator knows them from WRKMLBSTS and WRKMLMBRM:
each library a tape media library device (TAPMLB01, ...), its drives as resources
(TAP01, ...), and its volumes with status, location and the copy that owns them.

Devices and resources are numbered per site, in config order, as each site is its
own IBM i system."""

from __future__ import annotations

import attrs

from vtlfabric import media
from vtlfabric.catalog import queries
from vtlfabric.catalog.records import CartridgeRecord
from vtlfabric.fabric import Fabric
from vtlfabric.tape.library import Library


@attrs.frozen
class Resource:
    resource: str  # TAP01
    drive: str  # prod/PVTL#1
    status: str  # the drive's state
    volume: str  # mounted, or ""


@attrs.frozen
class Volume:
    volume: str  # the barcode
    status: str  # *AVAILABLE, *MOUNTED, *EJECTED (WRKMLMBRM), and the catalog's state
    location: str  # SLOT n, TAPnn, *OUTSIDE
    media: str  # LTO-8, LTO-8 WORM, ...
    state: str  # scratch, appendable, full, bad
    copy: str  # the copy whose data it holds ("" while scratch)
    capacity: int  # nominal bytes: the library's nominal_capacity, else the media type's native one
    used: int  # nominal bytes written: its share of the real image, scaled to the nominal capacity


@attrs.frozen
class MediaLibrary:
    device: str  # TAPMLB01
    library: str
    site: str
    drive_type: str
    status: str  # *ACTIVE, or why it is not
    resources: tuple[Resource, ...]
    volumes: tuple[Volume, ...]


async def media_view(fabric: Fabric) -> list[MediaLibrary]:
    carts = await fabric.catalog.call(queries.cartridges)
    out = []
    for site in fabric.config.sites:
        for n, spec in enumerate(site.libraries, 1):
            library = fabric.libraries[spec.id]
            mine = [c for c in carts if c.library == spec.id]
            out.append(_library(library, f"TAPMLB{n:02d}", mine, first_tap=1 + sum(s.drives for s in site.libraries[: n - 1])))
    return out


def _library(library: Library, device: str, carts: list[CartridgeRecord], first_tap: int) -> MediaLibrary:
    drives = library.drives()
    taps = {d.number: f"TAP{first_tap + i:02d}" for i, d in enumerate(drives)}
    resources = tuple(Resource(taps[d.number], d.name, d.state.value, d.barcode or "") for d in drives)
    mounted = {d.barcode: taps[d.number] for d in drives if d.barcode}
    volumes = tuple(_volume(c, mounted, library) for c in sorted(carts, key=lambda c: c.barcode))
    status = library.unavailable() or "*ACTIVE"
    return MediaLibrary(device, library.spec.id, library.spec.site, library.spec.drive_type, status, resources, volumes)


def _volume(cart: CartridgeRecord, mounted: dict[str, str], library: Library) -> Volume:
    if cart.barcode in library.outside:
        status, location = "*EJECTED", "*OUTSIDE"
    elif cart.barcode in mounted:
        status, location = "*MOUNTED", mounted[cart.barcode]
    else:
        status, location = "*AVAILABLE", f"SLOT {cart.slot}"
    kind = media.media_of(cart.barcode)
    capacity = library.spec.nominal_capacity or kind.capacity
    used = round(cart.eod / library.spec.capacity * capacity)
    return Volume(cart.barcode, status, location, kind.name, cart.state, cart.copy_id or "", capacity, used)
