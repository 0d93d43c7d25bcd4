"""Exception groups, as Trio's strict nurseries raise them."""

from __future__ import annotations


def first_leaf(error: BaseException) -> BaseException:
    """The first real exception inside (possibly nested) groups: the one worth reporting."""
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error
