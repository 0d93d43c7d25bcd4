"""A typed reader over parsed TOML: each table knows its file and dotted key, so any
problem becomes one ``ConfigError`` naming both.

Every key is read through one of the typed accessors below, which check the TOML
type first and the range second: a converter never sees a value of a type it was
not written for, so a wrong value is an error message, never a traceback.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import attrs

from vtlfabric import errors
from vtlfabric.units import parse_duration, parse_size
from vtlfabric.vocab import DAY

T = TypeVar("T")
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,31}")
MISSING: Any = object()

# TOML integers are 64-bit; tomllib reads longer ones, which nothing downstream
# (SQLite, struct, floats) could hold.
_INT_RANGE = (-(2**63), 2**63 - 1)
# Ceilings for keys with no tighter one of their own: sizes stay exact as floats and
# fit the catalog's 64-bit integers; a timer ten years out is a typo, and sums of
# fabric times stay finite.
MAX_BYTES = 2**53
MAX_SECONDS = 3650 * DAY
_SHOW = 60  # characters of a bad value an error message quotes


class ConfigError(errors.BadRequest):
    """One clear message on one line: the file, the key, what is wrong."""

    def __init__(self, file: Path | str, key: str, message: str) -> None:
        self.file, self.key, self.message = str(file), key, message
        where = f"{self.file}: {key}" if key else self.file
        super().__init__(_one_line(f"{where}: {message}"))


def show(value: Any) -> str:
    """A value as an error message quotes it: repr, cut short."""
    text = repr(value)
    return text if len(text) <= _SHOW else text[: _SHOW - 3] + "..."


def _one_line(text: str) -> str:
    # A key or value may hold a newline or a control character: escape it, so the
    # message stays one line for the terminal, the journal and scripts.
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def seconds_text(value: float) -> str:
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 0.001)):
        if value >= size and (value / size).is_integer():
            return f"{value / size:g}{unit}"
    return f"{value:g}s"


def bytes_text(value: int) -> str:
    units = (
        ("TiB", 2**40),
        ("TB", 10**12),
        ("GiB", 2**30),
        ("GB", 10**9),
        ("MiB", 2**20),
        ("MB", 10**6),
        ("KiB", 2**10),
        ("kB", 10**3),
    )
    for unit, size in units:
        if value >= size and value % size == 0:
            return f"{value // size}{unit}"
    return f"{value} bytes"


@attrs.define
class Table:
    """A TOML table that knows where it came from and which keys were read."""

    file: Path
    where: str
    data: dict[str, Any]
    seen: set[str] = attrs.field(factory=set)

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def error(self, name: str, message: str) -> ConfigError:
        return ConfigError(self.file, self.key(name), message)

    def has(self, name: str) -> bool:
        return name in self.data

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = MISSING) -> Any:
        """The raw value, if its TOML type is one of ``kind`` (a bool is never an int here)."""
        self.seen.add(name)
        if name not in self.data:
            if default is MISSING:
                raise self.error(name, "is required")
            return default
        value = self.data[name]
        if (isinstance(value, bool) and bool not in _as_tuple(kind)) or not isinstance(value, kind):
            raise self.error(name, f"expected {_kind_name(kind)}, got {_type_name(value)} {show(value)}")
        if isinstance(value, int) and not isinstance(value, bool) and not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
            raise self.error(name, f"{show(value)} does not fit in a 64-bit integer")
        return value

    def convert(self, name: str, fn: Callable[[Any], T], kind: type | tuple[type, ...], default: Any = MISSING) -> T:
        """``fn`` of the value, given only values of the TOML types in ``kind``."""
        raw = self.get(name, kind, default)
        try:
            return fn(raw)
        except (ValueError, OverflowError) as e:
            raise self.error(name, str(e) or f"{show(raw)} is not valid here") from None

    def name(self, name: str = "name") -> str:
        value = self.get(name, str)
        if not NAME.fullmatch(value):
            raise self.error(name, f"{show(value)} is not a valid name (a letter, then letters, digits, _ . -; 32 at most)")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: Any = MISSING) -> str:
        value = self.get(name, str, default)
        if value not in choices:
            raise self.error(name, f"{show(value)} is not one of {', '.join(choices)}")
        return value

    def number(self, name: str, low: float, high: float, default: Any = MISSING) -> float:
        """An integer or a float within ``low..high`` (NaN never is)."""
        value = self.get(name, (int, float), default)
        if not low <= value <= high:
            raise self.error(name, f"{show(value)} is outside {low:g}..{high:g}")
        return value

    def integer(self, name: str, low: int, high: int, default: Any = MISSING) -> int:
        value = self.get(name, int, default)
        if not low <= value <= high:
            raise self.error(name, f"{value} is outside {low}..{high}")
        return value

    def size(self, name: str, default: Any = MISSING, low: int = 0, high: int = MAX_BYTES) -> int:
        """Bytes, from an integer, a float or a string such as ``"64KiB"``, within ``low..high``."""
        raw = self.get(name, (int, float, str), default)
        try:
            if isinstance(raw, float):  # str() would write 1e16 as '1e+16', which no size pattern reads
                if not (math.isfinite(raw) and raw >= 0):
                    raise ValueError(f"{show(raw)} is not a size such as 65536 or '64KiB'")
                value = int(raw)
            else:
                value = parse_size(raw)
        except ValueError as e:  # a digit string too long to convert is one too
            raise self.error(name, _cut(str(e))) from None
        if not low <= value <= high:
            raise self.error(name, _out_of_range(raw, value, low, high, bytes_text))
        return value

    def duration(self, name: str, default: Any = MISSING, low: float = 0.0, high: float = MAX_SECONDS) -> float:
        """Seconds, from a number or a string such as ``"20ms"`` or ``"2h"``, within ``low..high``."""
        raw = self.get(name, (int, float, str), default)
        try:
            value = parse_duration(raw)
        except (ValueError, OverflowError) as e:  # an int too big for a float overflows
            raise self.error(name, _cut(str(e)) if isinstance(e, ValueError) else f"{show(raw)} is too long") from None
        if not low <= value <= high:  # NaN and infinities included
            raise self.error(name, _out_of_range(raw, value, low, high, seconds_text))
        return value

    def strings(self, name: str, default: Any = MISSING) -> tuple[str, ...]:
        value = self.get(name, list, default)
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise self.error(f"{name}[{i}]", f"expected a string, got {_type_name(item)} {show(item)}")
        return tuple(value)

    def table(self, name: str, required: bool = True) -> Table:
        raw = self.get(name, dict, MISSING if required else {})
        return Table(self.file, self.key(name), raw)

    def tables(self, name: str) -> list[Table]:
        raw = self.get(name, list, [])
        out = []
        for i, item in enumerate(raw):
            if not isinstance(item, dict):
                raise self.error(f"{name}[{i}]", f"expected a table, got {_type_name(item)} {show(item)}")
            out.append(Table(self.file, f"{self.key(name)}[{i}]", item))
        return out

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            raise self.error(unknown[0], "unknown key")


def _out_of_range(raw: Any, value: float, low: float, high: float, text: Callable[[Any], str]) -> str:
    if value <= 0 < low:
        return f"must be positive, at most {text(high)}, not {show(raw)}"
    return f"must be between {text(low)} and {text(high)}, not {show(raw)}"


def _cut(message: str) -> str:
    # units' messages quote the whole value: a 5000-character one stays readable cut short.
    return message if len(message) <= 3 * _SHOW else message[: 3 * _SHOW - 3] + "..."


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


_KINDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list", dict: "a table"}


def _kind_name(kind: type | tuple[type, ...]) -> str:
    return " or ".join(_KINDS.get(k, f"a {k.__name__}") for k in _as_tuple(kind))


def _type_name(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "list", dict: "table"}
    return names.get(type(value), type(value).__name__)


def read_toml(path: Path, key: str = "", origin: Path | None = None) -> Table:
    """A TOML file as a Table. ``origin`` and ``key``: the file and key that named this
    one, blamed when it cannot be opened (the naming is what is wrong then)."""
    problem = ""
    try:
        if path.exists() and not path.is_file():  # a directory, or a FIFO that would block forever
            problem = f"{path} cannot be read: it is not a regular file"
        else:
            data = path.read_bytes()
    except FileNotFoundError:
        problem = f"file {path} does not exist"
    except (OSError, ValueError) as e:  # ValueError: a NUL in the path
        problem = f"{path} cannot be read: {getattr(e, 'strerror', None) or e}"
    if problem:
        raise ConfigError(origin or path, key if origin else "", problem)
    try:
        return Table(path, "", tomllib.loads(data.decode()))
    except UnicodeDecodeError as e:
        raise ConfigError(path, "", f"not UTF-8 text (byte {e.start})") from None
    except (ValueError, RecursionError) as e:  # TOMLDecodeError, an integer too long to read, arrays nested too deep
        raise ConfigError(path, "", f"not valid TOML: {_cut(str(e))}") from None


def unique(t: Table, key: str, names: list[str]) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise ConfigError(t.file, f"{t.key(key)}[{i}].name", f"duplicate name {name!r}")
        seen.add(name)
