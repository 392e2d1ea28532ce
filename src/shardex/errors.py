"""The exception hierarchy of the Python API.

Kernels never raise: they return reason codes (``shardex.schema.Reason``).
The Python layer turns those codes, and bad arguments, into these exceptions,
each refining the built-in it resembles so ``except ValueError`` still works.
"""

from __future__ import annotations

__all__ = [
    "ShardexError",
    "OffGridError",
    "InvalidInstrumentError",
    "UnknownInstrumentError",
    "OrderRejected",
    "MalformedInputError",
    "JournalError",
]


class ShardexError(Exception):
    """Base class of every error shardex raises on purpose."""


class OffGridError(ShardexError, ValueError):
    """A price or quantity is not a whole number of ticks or lots."""


class InvalidInstrumentError(ShardexError, ValueError):
    """An instrument specification is inconsistent."""


class UnknownInstrumentError(ShardexError, KeyError):
    """No instrument is listed under this id or symbol."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class OrderRejected(ShardexError, ValueError):
    """The engine rejected a command; ``reason`` is its ``Reason`` code."""

    def __init__(self, reason: int, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class MalformedInputError(ShardexError, ValueError):
    """A row of an input file cannot be parsed; the message names file and line."""


class JournalError(ShardexError, OSError):
    """The journal cannot be opened, written or read back; names file and offset."""
