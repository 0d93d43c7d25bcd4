"""The faults there are: each kind of target, how it is named, and its actions.
Kept apart from the code that applies them, so the CLI can list them without
loading the fabric."""

ACTIONS = {
    "client": ("fail-backup", "kill-backup"),
    "link": ("partition", "partition-a-b", "partition-b-a", "heal", "corrupt", "degrade", "restore"),
    "library": ("offline", "online", "robot-fail", "robot-repair"),
    "mediaagent": ("unreachable", "reachable", "crash", "restart", "disk-full", "disk-freed"),
    "cartridge": ("fail", "repair", "read-error", "write-error", "wrong-label", "clear"),
    "drive": ("fail", "repair", "offline", "online"),
    "site": ("skew", "sync"),
    "daemon": ("kill-9", "restart", "state-full", "state-freed"),
}
NAMED_BY = {
    "client": "NAME",
    "link": "NAME",
    "library": "SITE/NAME",
    "mediaagent": "SITE",
    "cartridge": "BARCODE",
    "drive": "SITE/LIBRARY#N",
    "site": "NAME",
    "daemon": "self",
}
# The action that undoes each fault that has one (a scenario's `heal` uses it).
HEALED_BY = {
    ("link", "partition"): "heal",
    ("link", "partition-a-b"): "heal",
    ("link", "partition-b-a"): "heal",
    ("link", "degrade"): "restore",
    ("library", "offline"): "online",
    ("library", "robot-fail"): "robot-repair",
    ("mediaagent", "unreachable"): "reachable",
    ("mediaagent", "crash"): "restart",
    ("mediaagent", "disk-full"): "disk-freed",
    ("cartridge", "fail"): "repair",
    ("cartridge", "read-error"): "clear",
    ("cartridge", "write-error"): "clear",
    ("cartridge", "wrong-label"): "clear",
    ("drive", "fail"): "repair",
    ("drive", "offline"): "online",
    ("site", "skew"): "sync",
    ("daemon", "kill-9"): "restart",
    ("daemon", "state-full"): "state-freed",
}
HEALING = frozenset(HEALED_BY.values())  # an action that undoes a fault: it logs fault.healed
# Actions that take an argument. read-error: FILE.BLOCK (a tape file's data block, from 1)
# or OFFSET (the block holding that byte of the image); without one, every data block.
# degrade: what the link becomes; without it, a tenth of its bandwidth, four times its
# latency and 2% loss. skew: how far the site's clock is off (ahead, or behind with -);
# without it, 5 minutes ahead.
PLACED = {
    ("cartridge", "read-error"): "[FILE.BLOCK|OFFSET]",
    ("link", "degrade"): "[bandwidth=SIZE][,latency=DURATION][,loss=FRACTION]",
    ("site", "skew"): "[+|-]DURATION",
}
USAGE = " | ".join(f"{kind}:{NAMED_BY[kind]} {'|'.join(actions)}" for kind, actions in ACTIONS.items()) + "".join(
    f" ({action} {where})" for (_, action), where in PLACED.items()
)
