"""``verify_journal``: a read-only inspection of a journal directory and its snapshots.

It never takes the lock, never cuts a torn tail and never creates anything,
so it is safe to point at the journal of a running engine (whose last
record may then show as a torn tail: it is being written).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shardex.errors import JournalError
from shardex.journal import _format as fmt
from shardex.journal.errors import JournalCorruptError, SnapshotError
from shardex.journal.lock import read_lock_pid
from shardex.journal.segment import list_segments, scan_segment
from shardex.journal.snapshot import SnapshotStore
from shardex.schema import COMMAND_DTYPE

__all__ = ["JOURNAL_DIRNAME", "SNAPSHOT_DIRNAME", "SegmentReport", "SnapshotReport", "VerifyReport", "verify_journal"]

#: Where ``Exchange.open(path)`` keeps its journal and snapshots under ``path``.
JOURNAL_DIRNAME = "journal"
SNAPSHOT_DIRNAME = "snapshots"


@dataclass
class SegmentReport:
    """What one segment file holds; ``status`` is ``ok``, ``torn`` or ``corrupt``."""

    file: str
    bytes: int
    base_seq: int
    records: int
    commands: int
    status: str = "ok"
    problem: str | None = None
    offset: int | None = None


@dataclass
class SnapshotReport:
    """One snapshot file: its seq, state hash and whether it validates."""

    file: str
    seq: int
    valid: bool
    state_hash: str | None = None
    problem: str | None = None


@dataclass
class VerifyReport:
    """Everything ``verify_journal`` found; ``ok`` is False on any corruption."""

    journal_dir: str
    snapshot_dir: str | None
    lock_pid: int | None
    segments: list[SegmentReport] = field(default_factory=list)
    snapshots: list[SnapshotReport] = field(default_factory=list)
    first_seq: int | None = None
    last_seq: int | None = None
    torn_tail: dict[str, Any] | None = None
    corruption: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no segment or snapshot is corrupt or missing (a torn tail is not corruption)."""
        return not self.corruption

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready data (``ok`` included)."""
        return {"ok": self.ok, **asdict(self)}


def _layout(path: Path) -> tuple[Path, Path | None]:
    """Accept an engine directory (with journal/ inside) or a journal directory itself."""
    journal_dir = path / JOURNAL_DIRNAME if (path / JOURNAL_DIRNAME).is_dir() else path
    for candidate in (path / SNAPSHOT_DIRNAME, journal_dir.parent / SNAPSHOT_DIRNAME, journal_dir):
        if candidate.is_dir() and SnapshotStore(candidate).list():
            return journal_dir, candidate
    return journal_dir, None


def verify_journal(path: str | Path, *, dtype: np.dtype = COMMAND_DTYPE) -> VerifyReport:
    """Inspect the journal at ``path`` (CRC of every record) and the snapshots beside it.

    Raises ``JournalError`` only if ``path`` is not a directory; everything
    found inside is reported, not raised.

    Runtime complexity: O(bytes of the journal + bytes of the snapshots).
    """
    path = Path(path)
    if not path.is_dir():
        raise JournalError(f"{path} is not a directory")
    journal_dir, snap_dir = _layout(path)
    report = VerifyReport(str(journal_dir), str(snap_dir) if snap_dir else None, read_lock_pid(journal_dir / fmt.LOCK_NAME))
    found = list_segments(journal_dir)
    expect: int | None = None
    for i, (base, seg_path) in enumerate(found):
        entry = SegmentReport(seg_path.name, seg_path.stat().st_size, base, 0, 0)
        report.segments.append(entry)
        if expect is not None and base != expect:
            report.corruption.append(
                {"file": str(seg_path), "offset": 0, "problem": f"segment {fmt.segment_name(expect)} missing: expected seq {expect}, found {base}"}
            )
        try:
            index, torn = scan_segment(seg_path, base, dtype, last=i == len(found) - 1, verify_crc=True)
        except JournalCorruptError as exc:
            entry.status, entry.problem, entry.offset = "corrupt", str(exc), exc.offset
            report.corruption.append({"file": str(seg_path), "offset": exc.offset, "problem": str(exc)})
            expect = None
            continue
        except JournalError as exc:
            entry.status, entry.problem, entry.offset = "corrupt", str(exc), 0
            report.corruption.append({"file": str(seg_path), "offset": 0, "problem": str(exc)})
            expect = None
            continue
        entry.records, entry.commands = len(index.counts), index.commands
        if torn is not None:
            entry.status, entry.problem, entry.offset = "torn", torn.reason, torn.offset
            report.torn_tail = {"file": str(seg_path), "offset": torn.offset, "bytes": torn.bytes_cut, "reason": torn.reason}
        if report.first_seq is None:
            report.first_seq = base
        if index.commands:
            report.last_seq = index.next_seq - 1
        expect = index.next_seq
    if snap_dir is not None:
        store = SnapshotStore(snap_dir)
        for seq, snap_path in store.list():
            try:
                snap = store.load(snap_path)
                report.snapshots.append(SnapshotReport(snap_path.name, seq, True, snap.state_hash))
            except SnapshotError as exc:
                report.snapshots.append(SnapshotReport(snap_path.name, seq, False, problem=str(exc)))
                # Recovery would fall back past it, but a damaged file is still damage to report.
                report.corruption.append({"file": str(snap_path), "offset": None, "problem": str(exc)})
    return report
