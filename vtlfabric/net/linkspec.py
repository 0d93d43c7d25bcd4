"""What a WAN link is, as the config describes it. Apart from the link model in
``wan``, so loading a config (as every ``ctl`` call does) needs no Trio."""

from __future__ import annotations

import attrs

MiB = 2**20
KiB = 2**10


def _positive(_: object, attribute: attrs.Attribute, value: float) -> None:  # type: ignore[type-arg]
    if not value > 0:
        raise ValueError(f"link {attribute.name} must be positive, not {value!r}")


def _not_negative(_: object, attribute: attrs.Attribute, value: float) -> None:  # type: ignore[type-arg]
    if not value >= 0:
        raise ValueError(f"link {attribute.name} cannot be negative ({value!r})")


def _probability(_: object, attribute: attrs.Attribute, value: float) -> None:  # type: ignore[type-arg]
    if not 0 <= value < 1:
        raise ValueError(f"link {attribute.name} must be in [0, 1), not {value!r}")


@attrs.frozen
class LinkSpec:
    """What a link is, as the config describes it. Sizes in bytes, times in seconds."""

    name: str
    a: str
    b: str
    bandwidth: float = attrs.field(validator=_positive)  # bytes/s per direction, shared by all streams
    latency: float = attrs.field(validator=_not_negative)  # one way
    jitter: float = attrs.field(default=0.0, validator=_not_negative)
    loss: float = attrs.field(default=0.0, validator=_probability)
    window: int = attrs.field(default=4 * MiB, validator=_positive)  # per stream, bytes in flight
    stall_timeout: float = attrs.field(default=30.0, validator=_positive)
    mss: int = attrs.field(default=64 * KiB, validator=_positive)

    @property
    def rtt(self) -> float:
        return 2 * self.latency
