"""The faults there are: each kind of target, how it is named, and its actions.
Kept apart from the code that applies them, so the CLI can list them without
loading the fabric."""

ACTIONS = {
    "client": ("fail-backup",),
    "link": ("partition", "partition-a-b", "partition-b-a", "heal", "corrupt"),
    "library": ("offline", "online"),
    "mediaagent": ("unreachable", "reachable"),
    "cartridge": ("fail", "repair", "read-error", "write-error", "clear"),
    "drive": ("fail", "repair", "offline", "online"),
}
NAMED_BY = {
    "client": "NAME",
    "link": "NAME",
    "library": "SITE/NAME",
    "mediaagent": "SITE",
    "cartridge": "BARCODE",
    "drive": "SITE/LIBRARY#N",
}
# The action that undoes each fault that has one (a scenario's `heal` uses it).
HEALED_BY = {
    ("link", "partition"): "heal",
    ("link", "partition-a-b"): "heal",
    ("link", "partition-b-a"): "heal",
    ("library", "offline"): "online",
    ("mediaagent", "unreachable"): "reachable",
    ("cartridge", "fail"): "repair",
    ("cartridge", "read-error"): "clear",
    ("cartridge", "write-error"): "clear",
    ("drive", "fail"): "repair",
    ("drive", "offline"): "online",
}
HEALING = frozenset(HEALED_BY.values())  # an action that undoes a fault: it logs fault.healed
# Actions that take a place: read-error FILE.BLOCK (a tape file's data block, from 1) or
# OFFSET (the block holding that byte of the image); without one, every data block.
PLACED = {("cartridge", "read-error"): "[FILE.BLOCK|OFFSET]"}
USAGE = " | ".join(f"{kind}:{NAMED_BY[kind]} {'|'.join(actions)}" for kind, actions in ACTIONS.items()) + "".join(
    f" ({action} {where})" for (_, action), where in PLACED.items()
)
