"""A site's MediaAgent: its libraries, its index cache and disk library, its identity."""

from __future__ import annotations

from pathlib import Path

import attrs

from vtlfabric.config import SiteSpec
from vtlfabric.net.secure import Identity
from vtlfabric.site.index import IndexFormatError, IndexStore, JobIndex
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
        """A backup's index lives in the index cache of the MediaAgent that wrote it; a
        copied job's in the disk library of the one that received it. After a promotion
        a copy's role and where its jobs' indexes are can differ, so look in both."""
        stores = [(self.index_cache, ""), (self.disk_library, copy_id)]
        if not is_primary:
            stores.reverse()
        try:
            return await stores[0][0].load(job_id, stores[0][1])
        except IndexFormatError as first:
            try:
                return await stores[1][0].load(job_id, stores[1][1])
            except IndexFormatError:
                raise first from None
