"""The catalog's own refusal: a change the rows' state does not allow."""

from __future__ import annotations

from vtlfabric import errors


class Refused(errors.Refused):
    """A manual change the job's state does not allow; nothing was changed."""
