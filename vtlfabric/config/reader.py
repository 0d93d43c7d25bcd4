"""A typed reader over parsed TOML: each table knows its file and dotted key, so any
problem becomes one ``ConfigError`` naming both."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from datetime import date
from datetime import time as dtime
from pathlib import Path
from typing import Any, TypeVar

import attrs

from vtlfabric import errors

T = TypeVar("T")
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,31}$")
MISSING: Any = object()


class ConfigError(errors.BadRequest):
    """One clear message: the file, the key, what is wrong."""

    def __init__(self, file: Path | str, key: str, message: str) -> None:
        self.file, self.key, self.message = str(file), key, message
        where = f"{self.file}: {key}" if key else self.file
        super().__init__(f"{where}: {message}")


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

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = MISSING) -> Any:
        self.seen.add(name)
        if name not in self.data:
            if default is MISSING:
                raise self.error(name, "is required")
            return default
        value = self.data[name]
        if isinstance(value, bool) and bool not in _as_tuple(kind) or not isinstance(value, kind):
            raise self.error(name, f"expected {_kind_name(kind)}, got {type(value).__name__} {value!r}")
        return value

    def has(self, name: str) -> bool:
        return name in self.data

    def convert(self, name: str, fn: Callable[[Any], T], default: Any = MISSING) -> T:
        raw = self.get(name, (int, float, str, date, dtime), default)  # TOML dates are datetime.date (or datetime) values
        try:
            return fn(raw)
        except ValueError as e:
            raise self.error(name, str(e)) from None

    def name(self, name: str = "name") -> str:
        value = self.get(name, str)
        if not NAME.match(value):
            raise self.error(name, f"{value!r} is not a valid name (letters, digits, _ . -; 32 at most)")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: Any = MISSING) -> str:
        value = self.get(name, str, default)
        if value not in choices:
            raise self.error(name, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def number(self, name: str, low: float, high: float, default: Any = MISSING, kind: type | tuple = (int, float)) -> Any:
        value = self.get(name, kind, default)
        if not low <= value <= high:
            raise self.error(name, f"{value} is outside {low}..{high}")
        return value

    def table(self, name: str, required: bool = True) -> Table:
        raw = self.get(name, dict, MISSING if required else {})
        return Table(self.file, self.key(name), raw)

    def tables(self, name: str) -> list[Table]:
        raw = self.get(name, list, [])
        out = []
        for i, item in enumerate(raw):
            if not isinstance(item, dict):
                raise self.error(f"{name}[{i}]", "expected a table")
            out.append(Table(self.file, f"{self.key(name)}[{i}]", item))
        return out

    def strings(self, name: str, default: Any = MISSING) -> tuple[str, ...]:
        value = self.get(name, list, default)
        if not all(isinstance(v, str) for v in value):
            raise self.error(name, "expected a list of strings")
        return tuple(value)

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            raise self.error(unknown[0], "unknown key")


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list", dict: "a table"}
    return " or ".join(names.get(k, k.__name__) for k in _as_tuple(kind))


def read_toml(path: Path, key: str = "", origin: Path | None = None) -> Table:
    try:
        with path.open("rb") as f:
            return Table(path, "", tomllib.load(f))
    except FileNotFoundError:
        raise ConfigError(origin or path, key, f"file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(path, "", f"cannot be read: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, "", f"not valid TOML: {e}") from None


def unique(t: Table, key: str, names: list[str]) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise ConfigError(t.file, f"{t.key(key)}[{i}].name", f"duplicate name {name!r}")
        seen.add(name)
