"""Cross-file rules, once every file has loaded: names unique fabric-wide, references
resolve, barcode ranges disjoint."""

from __future__ import annotations

from pathlib import Path

from vtlfabric.config.reader import ConfigError, Table, show, unique
from vtlfabric.config.specs import FabricConfig, PolicySpec


def check_fabric(t: Table, config: FabricConfig) -> None:
    unique(t, "sites", [s.name for s in config.sites])
    unique(t, "link", [link.name for link in config.links])
    unique(t, "policy", [p.name for p in config.policies])
    unique(t, "schedule", [s.name for s in config.schedules])
    _check_sites(config)
    site_names = {s.name for s in config.sites}
    for i, link in enumerate(config.links):
        for end in (link.a, link.b):
            if end not in site_names:
                raise ConfigError(t.file, f"link[{i}].sites", f"no site named {show(end)}")
    _check_policies(t, config)
    _check_schedules(t, config)
    secondaries = {c.id for c in config.copies() if not c.primary}
    for target in config.drill.copies:
        if target not in secondaries:
            raise ConfigError(t.file, "drill.copies", f"{show(target)} is not a secondary copy (POLICY/COPY)")


def _check_sites(config: FabricConfig) -> None:
    owners: dict[str, str] = {}
    names: dict[str, Path] = {}
    for site in config.sites:
        for kind, items in (("mediaagent", [site.mediaagent]), ("client", site.clients)):
            for i, item in enumerate(items):
                if item.name in names:
                    key = "mediaagent.name" if kind == "mediaagent" else f"client[{i}].name"
                    raise ConfigError(site.file, key, f"{show(item.name)} is already defined in {names[item.name]}")
                names[item.name] = site.file
        for i, lib in enumerate(site.libraries):
            for barcode in lib.barcodes:
                if barcode in owners:
                    raise ConfigError(site.file, f"library[{i}].barcodes", f"{barcode} overlaps library {owners[barcode]}")
                owners[barcode] = lib.id


def _check_policies(t: Table, config: FabricConfig) -> None:
    libraries = {lib.id for s in config.sites for lib in s.libraries}
    clients = {c.name for s in config.sites for c in s.clients}
    claimed: dict[str, str] = {}
    for i, policy in enumerate(config.policies):
        for client in policy.clients:
            if client not in clients:
                raise ConfigError(t.file, f"policy[{i}].clients", f"no client named {show(client)}")
            if client in claimed:
                raise ConfigError(t.file, f"policy[{i}].clients", f"{show(client)} already belongs to policy {claimed[client]}")
            claimed[client] = policy.name
        names = {c.name for c in policy.copies}
        for j, copy in enumerate(policy.copies):
            if copy.library not in libraries:
                raise ConfigError(
                    t.file, f"policy[{i}].copy[{j}].library", f"no library {show(copy.library)} (write it as site/library)"
                )
            if copy.source is not None and (copy.source not in names or copy.source == copy.name):
                raise ConfigError(
                    t.file, f"policy[{i}].copy[{j}].source", f"no other copy named {show(copy.source)} in policy {policy.name}"
                )
            if copy.source is not None:
                src = next(c for c in policy.copies if c.name == copy.source)
                if src.site != copy.site and config.link_between(src.site, copy.site) is None:
                    raise ConfigError(
                        t.file, f"policy[{i}].copy[{j}].library", f"no link joins site {src.site} to site {copy.site}"
                    )
                if src.kind == "selective":
                    raise ConfigError(
                        t.file,
                        f"policy[{i}].copy[{j}].source",
                        f"copy {src.name} is selective: a copy's source must be the primary or a synchronous copy",
                    )
        _check_acyclic(t, i, policy)
    _check_pools(t, config)


def _check_pools(t: Table, config: FabricConfig) -> None:
    """A copy's scratch pool is cartridges of its own library, and no two copies share one."""
    libraries = {lib.id: set(lib.barcodes) for s in config.sites for lib in s.libraries}
    owner: dict[str, str] = {}
    for i, policy in enumerate(config.policies):
        for j, copy in enumerate(policy.copies):
            key = f"policy[{i}].copy[{j}].media"
            for barcode in copy.media:
                if barcode not in libraries[copy.library]:
                    raise ConfigError(t.file, key, f"{barcode} is not a cartridge of library {copy.library}")
                if barcode in owner:
                    raise ConfigError(t.file, key, f"{barcode} is already in the pool of copy {owner[barcode]}")
                owner[barcode] = copy.id


def _check_acyclic(t: Table, index: int, policy: PolicySpec) -> None:
    sources = {c.name: c.source for c in policy.copies}
    for j, copy in enumerate(policy.copies):
        seen, name = set(), copy.name
        while name is not None:
            if name in seen:
                raise ConfigError(t.file, f"policy[{index}].copy[{j}].source", "copy sources form a loop")
            seen.add(name)
            name = sources[name]


def _check_schedules(t: Table, config: FabricConfig) -> None:
    clients = {c.name for s in config.sites for c in s.clients}
    copies = {c.id for c in config.copies() if not c.primary}
    for i, sched in enumerate(config.schedules):
        known, what = {
            "backup": (clients, "client"),
            "auxcopy": (copies, "secondary copy (POLICY/COPY)"),
            "age": ({p.name for p in config.policies}, "policy"),
        }[sched.action]
        for target in sched.targets:
            if target not in known:
                raise ConfigError(t.file, f"schedule[{i}].{sched.action}", f"{show(target)} is not a known {what}")
        if sched.action == "backup":
            for target in sched.targets:
                if not any(target in p.clients for p in config.policies):
                    raise ConfigError(t.file, f"schedule[{i}].backup", f"client {show(target)} belongs to no policy")
