"""Write-ahead journal, snapshots and recovery.

The engine uses four names: ``Journal`` (the local ``CommandLog``),
``SnapshotStore``, ``recover`` and the errors; see docs/journal.md.
"""

from shardex.journal.beside import SyncBeside
from shardex.journal.errors import (
    JournalCorruptError,
    JournalFailedError,
    JournalLockedError,
    SequenceError,
    SnapshotError,
)
from shardex.journal.journal import Journal
from shardex.journal.log import CommandLog
from shardex.journal.memory import MemoryLog
from shardex.journal.policy import FsyncPolicy
from shardex.journal.recover import Recovery, recover
from shardex.journal.segment import TornTail
from shardex.journal.snapshot import Snapshot, SnapshotStore
from shardex.journal.verify import JOURNAL_DIRNAME, SNAPSHOT_DIRNAME, VerifyReport, verify_journal

__all__ = [
    "JOURNAL_DIRNAME",
    "SNAPSHOT_DIRNAME",
    "CommandLog",
    "FsyncPolicy",
    "Journal",
    "JournalCorruptError",
    "JournalFailedError",
    "JournalLockedError",
    "MemoryLog",
    "Recovery",
    "SequenceError",
    "Snapshot",
    "SnapshotError",
    "SnapshotStore",
    "SyncBeside",
    "TornTail",
    "VerifyReport",
    "recover",
    "verify_journal",
]
