"""The error types users see: each message says what arrived, where, and how to fix it.

Every error the package raises on purpose derives from RetrievalFTError (a ValueError), so a
caller can catch one type; the CLI turns these into a one-line message and exit code 2.
"""

from __future__ import annotations


class RetrievalFTError(ValueError):
    """Base class for the package's documented errors."""


class ConfigError(RetrievalFTError):
    """A setting has a wrong name, type or value."""


class DataError(RetrievalFTError):
    """A dataset file is missing, malformed or inconsistent."""


class ModelError(RetrievalFTError):
    """A model cannot be found or loaded."""


class IndexMismatchError(RetrievalFTError):
    """An index is used with an encoder or settings other than those that built it."""


class UnknownAdapterError(ConfigError):
    """An adapter name that is not loaded; the message lists the loaded ones."""


class MissingExtraError(RetrievalFTError):
    """An optional dependency is needed; the message names the pip command."""


def where(path: object, line: int | None = None, field: str | None = None) -> str:
    """`file:line (field 'x')`, the location prefix every data error starts with."""
    loc = str(path)
    if line is not None:
        loc += f":{line}"
    if field is not None:
        loc += f" (field {field!r})"
    return loc
