"""Scanning segment files: the record index, torn-tail detection, corruption.

One function, ``scan_segment``, decides what a segment file holds.  Opening a
journal, reading it and ``shardex journal verify`` all go through it, so the
three can never disagree about what counts as torn and what as corrupt.

The rule: a damaged record is a *torn tail* (a write cut short by a crash)
only if it sits in the last segment and no valid record follows it anywhere
in the file; everything else is corruption and is refused.  A crash can only
damage the end of what was being written, so a valid record after the damage
proves the damage is not from a crash.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shardex.journal import _format as fmt
from shardex.journal.errors import JournalCorruptError, JournalError

__all__ = ["SegmentIndex", "TornTail", "list_segments", "read_record", "scan_segment"]


@dataclass
class TornTail:
    """A damaged end of the last segment: bytes from ``offset`` to ``size`` are not a record."""

    path: Path
    offset: int
    size: int
    reason: str

    @property
    def bytes_cut(self) -> int:
        """How many bytes cutting the tail removes."""
        return self.size - self.offset


@dataclass
class SegmentIndex:
    """Where each record of one segment lies; built by ``scan_segment``.

    ``offsets[i]`` is the byte offset of record i's header, which holds
    commands ``first_seqs[i] .. first_seqs[i] + counts[i] - 1``.  ``end`` is
    the offset just past the last good record (the file size once a torn tail
    is cut).  ``header_ok`` is False only for a last segment whose own header
    was torn while it was being created.
    """

    path: Path
    base_seq: int
    offsets: list[int] = field(default_factory=list)
    first_seqs: list[int] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    end: int = fmt.SEGMENT_HEADER_SIZE
    header_ok: bool = True

    @property
    def next_seq(self) -> int:
        """The sequence number the next record after this segment must start with."""
        if not self.counts:
            return self.base_seq
        return self.first_seqs[-1] + self.counts[-1]

    @property
    def commands(self) -> int:
        """How many commands the segment holds."""
        return self.next_seq - self.base_seq

    def add(self, offset: int, first_seq: int, count: int, length: int) -> None:
        """Record that a record of ``length`` bytes now lies at ``offset``."""
        self.offsets.append(offset)
        self.first_seqs.append(first_seq)
        self.counts.append(count)
        self.end = offset + length


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    """Return ``(base_seq, path)`` of every segment file in ``directory``, oldest first.

    Runtime complexity: O(n log n) in the number of directory entries.
    """
    found = []
    for entry in os.scandir(directory):
        base = fmt.parse_segment_name(entry.name)
        if base is not None and entry.is_file():
            found.append((base, Path(entry.path)))
    return sorted(found)


def read_record(fd: int, path: Path, offset: int, length: int) -> np.ndarray:
    """Read ``length`` bytes of one record at ``offset`` into a fresh uint8 array.

    The array owns its memory (no memory map), so a caller may keep batches
    after the file is truncated or deleted without risking SIGBUS.
    """
    buf = np.empty(length, dtype=np.uint8)
    got = os.preadv(fd, [buf], offset)
    if got != length:
        raise JournalCorruptError(
            f"{path}: record at byte offset {offset} is {length} bytes but only {got} could be read "
            "(the file shrank while it was being read?)",
            path=path,
            offset=offset,
        )
    return buf


def _check_header(path: Path, header: fmt.SegmentHeader, expect_base: int, dtype: np.dtype) -> None:
    """Refuse a segment header that is intact but does not belong to this journal."""
    if header.version != fmt.VERSION:
        raise JournalError(f"{path}: segment format version {header.version} at byte offset 4; this shardex reads version {fmt.VERSION}")
    if header.record_size != dtype.itemsize or header.schema_crc != fmt.schema_crc(dtype):
        raise JournalError(
            f"{path}: segment at byte offset 0 was written for a different command layout "
            f"(record size {header.record_size}, schema {header.schema_crc:#010x}; expected {dtype.itemsize}, "
            f"{fmt.schema_crc(dtype):#010x})"
        )
    if header.base_seq != expect_base:
        raise JournalCorruptError(
            f"{path}: segment header at byte offset 0 says it starts at seq {header.base_seq} but its name says {expect_base}",
            path=path,
            offset=0,
        )


def _record_problem(
    fd: int, path: Path, offset: int, size: int, expect_seq: int, dtype: np.dtype, verify_crc: bool
) -> tuple[str | None, int, int]:
    """Check the record at ``offset``; return (problem or None, count, length)."""
    if size - offset < fmt.RECORD_HEADER_SIZE:
        return f"incomplete record header ({size - offset} of {fmt.RECORD_HEADER_SIZE} bytes)", 0, 0
    head = os.pread(fd, fmt.RECORD_HEADER_SIZE, offset)
    rec = fmt.unpack_record_header(head)
    if rec.magic != fmt.RECORD_MAGIC:
        return f"bad record magic {rec.magic!r}", 0, 0
    if rec.version != fmt.VERSION or rec.record_size != dtype.itemsize:
        return f"record version {rec.version} / record size {rec.record_size} do not match the segment", 0, 0
    if rec.count == 0 or rec.payload_len != rec.count * dtype.itemsize:
        return f"record length {rec.payload_len} does not match its count {rec.count}", 0, 0
    length = fmt.RECORD_HEADER_SIZE + rec.payload_len
    if offset + length > size:
        return f"incomplete record ({size - offset} of {length} bytes present)", 0, 0
    if verify_crc and not fmt.record_crc_ok(read_record(fd, path, offset, length)):
        return "CRC32C mismatch", 0, 0
    if rec.first_seq != expect_seq:
        return f"record starts at seq {rec.first_seq}, expected {expect_seq} (gap or overlap)", 0, 0
    return None, rec.count, length


def _valid_record_after(fd: int, path: Path, start: int, size: int, dtype: np.dtype) -> int | None:
    """Return the offset of the first CRC-valid record after ``start``, or None.

    Only called on a damaged last segment (rare), so a linear search of the
    remaining bytes for the record magic is cheap enough and simple.
    """
    data = os.pread(fd, size - start, start)
    pos = data.find(fmt.RECORD_MAGIC, 1)
    while pos != -1:
        offset = start + pos
        if offset % fmt.RECORD_ALIGN == 0:
            rec = fmt.unpack_record_header(data, pos) if len(data) - pos >= fmt.RECORD_HEADER_SIZE else None
            if rec is not None and rec.count and rec.payload_len == rec.count * dtype.itemsize:
                length = fmt.RECORD_HEADER_SIZE + rec.payload_len
                if offset + length <= size and fmt.record_crc_ok(read_record(fd, path, offset, length)):
                    return offset
        pos = data.find(fmt.RECORD_MAGIC, pos + 1)
    return None


def scan_segment(
    path: Path, base_seq: int, dtype: np.dtype, *, last: bool, verify_crc: bool
) -> tuple[SegmentIndex, TornTail | None]:
    """Index the records of one segment file without changing it.

    ``base_seq`` comes from the file name; ``last`` says whether this is the
    newest segment (only there may a torn tail be forgiven); ``verify_crc``
    reads every payload and checks its CRC32C (otherwise only the headers are
    walked, one 32-byte read per record).

    Returns the index of the good records and the torn tail, if any.  Raises
    ``JournalCorruptError`` naming the file and byte offset for damage that a
    crash cannot explain.

    Runtime complexity: O(records) reads; O(bytes) with ``verify_crc``.
    """
    index = SegmentIndex(path=path, base_seq=base_seq)
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        head = os.pread(fd, fmt.SEGMENT_HEADER_SIZE, 0)
        header = fmt.unpack_segment_header(head) if len(head) == fmt.SEGMENT_HEADER_SIZE else None
        if header is None or header.magic != fmt.SEGMENT_MAGIC or not header.crc_ok:
            # The header is written and fsynced before any record, so a bad header
            # with nothing after it is a crash during segment creation.
            if last and size <= fmt.SEGMENT_HEADER_SIZE:
                index.header_ok = False
                index.end = 0
                return index, TornTail(path, 0, size, "segment header incomplete or invalid")
            raise JournalCorruptError(f"{path}: invalid segment header at byte offset 0", path=path, offset=0)
        _check_header(path, header, base_seq, dtype)
        offset = fmt.SEGMENT_HEADER_SIZE
        while offset < size:
            problem, count, length = _record_problem(fd, path, offset, size, index.next_seq, dtype, verify_crc)
            if problem is None:
                index.add(offset, index.next_seq, count, length)
                offset += length
                continue
            later = _valid_record_after(fd, path, offset, size, dtype) if last else None
            if not last or later is not None:
                where = "" if later is None else f"; a valid record follows at byte offset {later}"
                raise JournalCorruptError(f"{path}: corrupt record at byte offset {offset}: {problem}{where}", path=path, offset=offset)
            return index, TornTail(path, offset, size, problem)
        return index, None
    finally:
        os.close(fd)
