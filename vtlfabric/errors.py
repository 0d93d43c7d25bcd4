"""Domain errors: what went wrong, in an operator's words, and one exit code each.

Every layer raises these (or subclasses of them) where it meets a problem; the
control API maps them to exit codes once, by type (see ``exit_code``). Anything
else that escapes a request is a bug.
"""

from __future__ import annotations

EXIT_FAILED = 1  # the operation ran and failed, or the fabric's state refuses it now
EXIT_BAD = 2  # the request (or config) is malformed or names something that does not exist


class FabricError(Exception):
    """Base of every domain error."""

    exit_code = EXIT_FAILED


class BadRequest(FabricError, ValueError):
    """The request is malformed: a missing or mistyped field, a value out of range."""

    exit_code = EXIT_BAD


class NotFound(BadRequest, LookupError):
    """A request or config names something that does not exist."""

    def __init__(self, kind: str, name: object, known: list[str] | tuple[str, ...] | None = None) -> None:
        self.kind, self.name = kind, name
        text = f"no {kind} {name!r}"
        if known is not None:
            text += f" (known: {', '.join(known) if known else 'none'})"
        super().__init__(text)


class Refused(FabricError):
    """The fabric's state does not allow it now; nothing was changed."""


class Failed(FabricError):
    """The operation ran and failed."""


def exit_code(error: BaseException) -> int:
    return error.exit_code if isinstance(error, FabricError) else EXIT_FAILED
