"""A site's MediaAgent: its libraries, its index cache and disk library, its identity."""

from __future__ import annotations

from pathlib import Path

import attrs

from vtlfabric.config import SiteSpec
from vtlfabric.net.secure import Identity
from vtlfabric.site.index import IndexStore, JobIndex
from vtlfabric.tape.library import Library


@attrs.define(eq=False)
class MediaAgent:
    site: SiteSpec
    identity: Identity
    libraries: dict[str, Library]  # by library id ("site/name")
    index_cache: IndexStore
    disk_library: IndexStore

    @property
    def name(self) -> str:
        return self.site.mediaagent.name

    @classmethod
    def build(cls, site: SiteSpec, identity: Identity, libraries: dict[str, Library], root: Path) -> MediaAgent:
        return cls(
            site=site,
            identity=identity,
            libraries=libraries,
            index_cache=IndexStore(root / site.mediaagent.index_cache),
            disk_library=IndexStore(root / site.mediaagent.disk_library),
        )

    async def index_for(self, job_id: int, copy_id: str, is_primary: bool) -> JobIndex:
        """The primary's index lives in the index cache; a secondary copy's in the disk library."""
        if is_primary:
            return await self.index_cache.load(job_id)
        return await self.disk_library.load(job_id, copy_id)
