"""An exclusive, process-wide lock on a journal directory (``fcntl.flock``)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from shardex.errors import JournalError
from shardex.journal.errors import JournalLockedError

__all__ = ["DirLock", "read_lock_pid"]


def read_lock_pid(path: Path) -> int | None:
    """Return the pid written in a lock file, or None if absent or unreadable."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class DirLock:
    """Hold ``flock(LOCK_EX)`` on ``directory/name`` for as long as the journal is open.

    flock locks belong to the open file, so the kernel releases them when the
    process dies, even by SIGKILL: a crashed engine never leaves a stale lock
    behind, and the pid in the file is only there to name the holder in errors.
    The file is never deleted, because unlinking a lock file races with a
    second process that has it open.
    """

    def __init__(self, directory: Path, name: str = "LOCK") -> None:
        self.path = Path(directory) / name
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise ``JournalLockedError`` naming the holder's pid."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise JournalError(f"cannot open lock file {self.path}: {exc.strerror} (is the directory writable?)") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = read_lock_pid(self.path)
            holder = f"process {pid}" if pid is not None else "another process"
            raise JournalLockedError(
                f"journal {self.path.parent} is locked by {holder} (lock file {self.path}); "
                "two engines may not share a journal",
                pid=pid,
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            os.close(fd)
            raise JournalError(f"cannot write lock file {self.path}: {exc.strerror}") from exc
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @property
    def held(self) -> bool:
        """Whether this object currently holds the lock."""
        return self._fd is not None
