"""``recover``: the newest valid snapshot plus the journal tail after it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from shardex.errors import JournalError
from shardex.journal.log import CommandLog
from shardex.journal.snapshot import Snapshot, SnapshotStore

__all__ = ["Recovery", "recover"]


@dataclass
class Recovery:
    """What an engine restarts from: load ``snapshot`` (if any), then apply ``batches``.

    Iterating a ``Recovery`` iterates its batches: the commands with
    ``seq >= from_seq`` in order, the first batch sliced to start exactly
    at ``from_seq``.
    """

    snapshot: Snapshot | None
    from_seq: int
    batches: Iterator[np.ndarray] = field(repr=False)

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.batches


def recover(log: CommandLog, snapshots: SnapshotStore | None = None, *, start_seq: int = 1) -> Recovery:
    """Pick the newest valid snapshot and the part of ``log`` that follows it.

    Invalid snapshots are skipped (``snapshots.skipped`` lists them).  With no
    valid snapshot the whole log is replayed, which needs the log to still
    start at ``start_seq``.  Raises ``JournalError`` when the snapshot and the
    log do not meet: retention dropped commands the snapshot does not cover,
    or the snapshot is ahead of the log (the log lost acknowledged commands).
    """
    snap = snapshots.latest() if snapshots is not None else None
    if snap is None:
        if log.first_seq != start_seq:
            skipped = "" if snapshots is None or not snapshots.skipped else f" ({len(snapshots.skipped)} invalid snapshots skipped)"
            raise JournalError(
                f"no valid snapshot{skipped} and the journal starts at seq {log.first_seq}, not {start_seq}: "
                "the commands before it were dropped by retention, so the state cannot be rebuilt"
            )
        from_seq = start_seq
    else:
        from_seq = snap.seq + 1
        if from_seq < log.first_seq:
            raise JournalError(
                f"snapshot {snap.path} covers seq <= {snap.seq} but the journal starts at seq {log.first_seq}: "
                f"commands {from_seq}..{log.first_seq - 1} are missing"
            )
        if from_seq > log.next_seq:
            raise JournalError(
                f"snapshot {snap.path} covers seq <= {snap.seq} but the journal ends at seq {log.next_seq - 1}: "
                "the journal lost commands the snapshot had applied (was fsync off?)"
            )
    return Recovery(snapshot=snap, from_seq=from_seq, batches=log.read(from_seq))
