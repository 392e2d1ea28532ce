"""Journal-specific refinements of ``shardex.errors.JournalError``.

Every class here is a ``JournalError`` (and so an ``OSError``), so the engine
can catch one type at its boundary; the subclasses let tests and operators
tell a corrupt log from a locked directory from a failed disk.
"""

from __future__ import annotations

from pathlib import Path

from shardex.errors import JournalError

__all__ = [
    "JournalCorruptError",
    "JournalFailedError",
    "JournalLockedError",
    "SequenceError",
    "SnapshotError",
]


class JournalCorruptError(JournalError):
    """The log on disk is damaged in a way recovery must not paper over.

    ``path`` and ``offset`` name the file and byte offset where reading
    stopped making sense (the start of the bad record or header).
    """

    def __init__(self, message: str, *, path: Path | str, offset: int) -> None:
        super().__init__(message)
        self.path = Path(path)
        self.offset = offset


class JournalLockedError(JournalError):
    """Another process holds the journal directory's lock; ``pid`` is its id if known."""

    def __init__(self, message: str, *, pid: int | None) -> None:
        super().__init__(message)
        self.pid = pid


class JournalFailedError(JournalError):
    """A write or fsync failed earlier; the journal refuses every later append.

    After a failed fsync the kernel may have dropped the dirty pages and
    marked them clean, so a retry could "succeed" without the data ever
    reaching the disk.  The only honest answer is to stop acknowledging.
    """


class SequenceError(JournalError, ValueError):
    """A batch's sequence numbers do not continue the log without a gap."""


class SnapshotError(JournalError):
    """A snapshot file cannot be written, or none of those present is valid."""
