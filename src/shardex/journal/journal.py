"""``Journal``: the local write-ahead log of command batches (segments on disk).

Layout of a journal directory::

    LOCK                          flock'd by the open journal; holds its pid
    00000000000000000001.wal      segment whose first command has seq 1
    00000000000000262145.wal      the next segment, and so on

Each segment is a 32-byte header followed by records; each record is one
appended batch: a 32-byte header (magic, version, first seq, count, payload
length, CRC32C) and the batch's structured-array bytes.  docs/journal.md
holds the byte-level specification and the recovery algorithm.
"""

from __future__ import annotations

import bisect
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from shardex.errors import JournalError
from shardex.journal import _format as fmt
from shardex.journal.errors import JournalCorruptError, JournalFailedError, SequenceError
from shardex.journal.lock import DirLock
from shardex.journal.policy import FsyncPolicy
from shardex.journal.segment import SegmentIndex, TornTail, list_segments, read_record, scan_segment
from shardex.schema import COMMAND_DTYPE

__all__ = ["Journal", "fsync_directory"]

log = logging.getLogger("shardex.journal")

#: Default segment size.  Big enough that rolling (a create plus two fsyncs)
#: is rare (about every 800k commands), small enough that retention frees
#: space in useful steps.
DEFAULT_SEGMENT_BYTES = 64 << 20


def fsync_directory(directory: Path, fsync: Callable[[int], None] = os.fsync) -> None:
    """fsync a directory so that files created, renamed or deleted in it stay so after a crash."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """A local, segmented, checksummed log of command batches; implements ``CommandLog``.

    Opening takes the directory's exclusive lock, scans the segments, cuts a
    torn last record (``torn_tail`` says what was cut) and refuses corruption
    elsewhere with ``JournalCorruptError`` naming the file and byte offset.

    Parameters
    ----------
    path
        The journal directory; created (with parents) if missing.
    fsync_policy
        ``FsyncPolicy`` or its text: ``"batch"`` (default), ``"interval:MS"``,
        ``"off"``.
    segment_bytes
        Roll to a new segment when the next record would make the current one
        larger than this (a single bigger record gets a segment of its own).
    start_seq
        The first sequence number of a brand-new journal; ignored when
        segments exist.
    dtype
        The record dtype; must have an int64 ``seq`` field.  Default
        ``COMMAND_DTYPE``.
    fsync
        The function called to make a file or directory durable (default
        ``os.fdatasync``); tests inject a failing one.
    min_free_bytes
        Refuse to open when the file system has less free space than this
        (default: ``segment_bytes``), so a full disk is reported at start.
    verify_on_open
        Check the CRC32C of every record at open, not only of the last
        segment's (``read`` checks each record it returns either way).

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from shardex.schema import COMMAND_DTYPE
    >>> d = tempfile.mkdtemp()
    >>> with Journal(d, segment_bytes=1 << 20) as j:
    ...     b = np.zeros(3, COMMAND_DTYPE); b["seq"] = [1, 2, 3]
    ...     j.append(b)
    ...     [len(x) for x in j.read(2)]
    3
    [2]
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync_policy: FsyncPolicy | str = "batch",
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        start_seq: int = 1,
        dtype: np.dtype = COMMAND_DTYPE,
        fsync: Callable[[int], None] = os.fdatasync,
        min_free_bytes: int | None = None,
        verify_on_open: bool = False,
    ) -> None:
        self.path = Path(path)
        self.policy = FsyncPolicy.parse(fsync_policy)
        self.dtype = np.dtype(dtype)
        if "seq" not in (self.dtype.names or ()) or self.dtype["seq"] != np.dtype("<i8"):
            raise ValueError(f"journal dtype needs an int64 'seq' field, got {self.dtype}")
        if self.dtype.itemsize % fmt.RECORD_ALIGN:
            raise ValueError(f"journal dtype itemsize must be a multiple of {fmt.RECORD_ALIGN}, got {self.dtype.itemsize}")
        if segment_bytes < 4096:
            raise ValueError(f"segment_bytes must be at least 4096, got {segment_bytes}")
        if start_seq < 0:
            raise ValueError(f"start_seq must be >= 0, got {start_seq}")
        self.segment_bytes = segment_bytes
        self._fsync = fsync
        self._mutex = threading.RLock()  # append, sync, roll and the interval thread
        self._segments: list[SegmentIndex] = []
        self._fd: int | None = None  # the active (last) segment, opened for append
        self._failed: BaseException | None = None
        self._closed = False
        self._dirty = False
        #: What was cut from the end of the log at open (None if nothing).
        self.torn_tail: TornTail | None = None

        self._prepare_directory(min_free_bytes if min_free_bytes is not None else segment_bytes)
        self._lock = DirLock(self.path, fmt.LOCK_NAME)
        self._lock.acquire()
        try:
            self._load(start_seq, verify_on_open)
            self._durable_seq = self.next_seq - 1
        except BaseException:
            self._release()
            raise
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        if self.policy.mode == "interval":
            self._flusher = threading.Thread(target=self._flush_loop, name=f"journal-fsync {self.path}", daemon=True)
            self._flusher.start()

    # ------------------------------------------------------------------ open

    def _prepare_directory(self, min_free: int) -> None:
        """Create the directory and check it is usable, so problems show at open."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(f"cannot create journal directory {self.path}: {exc.strerror or exc}") from exc
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise JournalError(f"journal directory {self.path} is not writable")
        free = shutil.disk_usage(self.path).free
        if free < min_free:
            raise JournalError(
                f"journal directory {self.path} has {free} bytes free, fewer than the {min_free} needed "
                "for one segment; free space or lower segment_bytes / min_free_bytes"
            )

    def _load(self, start_seq: int, verify_all: bool) -> None:
        """Scan the segments, cut a torn tail, open the last segment for appending."""
        found = list_segments(self.path)
        for i, (base, seg_path) in enumerate(found):
            last = i == len(found) - 1
            if self._segments and base != self._segments[-1].next_seq:
                prev = self._segments[-1]
                missing = fmt.segment_name(prev.next_seq)
                raise JournalCorruptError(
                    f"{seg_path}: segment starts at seq {base} (byte offset 0) but {prev.path.name} ends before "
                    f"seq {prev.next_seq}: segment {missing} is missing or the log overlaps",
                    path=seg_path,
                    offset=0,
                )
            # Only the last segment can hold a torn write, and only there does
            # open need every CRC; older segments were fsynced before the roll
            # and are checked record by record when read.
            index, torn = scan_segment(seg_path, base, self.dtype, last=last, verify_crc=last or verify_all)
            self._segments.append(index)
            if torn is not None:
                self._cut_torn_tail(index, torn)
        if not self._segments:
            try:
                self._create_segment(start_seq)
            except OSError as exc:
                raise JournalError(f"cannot create the first segment in {self.path}: {exc.strerror or exc}") from exc
        else:
            active = self._segments[-1]
            self._fd = self._open_for_append(active.path)

    def _cut_torn_tail(self, index: SegmentIndex, torn: TornTail) -> None:
        """Truncate the last segment to its last good record (rewriting a torn header)."""
        log.warning("%s: cutting torn tail at byte offset %d (%d bytes): %s", torn.path, torn.offset, torn.bytes_cut, torn.reason)
        try:
            fd = os.open(torn.path, os.O_RDWR)
            try:
                if index.header_ok:
                    os.ftruncate(fd, torn.offset)
                else:
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, fmt.pack_segment_header(index.base_seq, self.dtype), 0)
                    index.header_ok, index.end = True, fmt.SEGMENT_HEADER_SIZE
                self._fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise JournalError(f"{torn.path}: cannot cut torn tail at byte offset {torn.offset}: {exc.strerror or exc}") from exc
        self.torn_tail = torn

    def _open_for_append(self, path: Path) -> int:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        except OSError as exc:
            raise JournalError(f"cannot open segment {path} for writing: {exc.strerror or exc}") from exc
        return fd

    def _create_segment(self, base_seq: int) -> None:
        """Create, fsync and register a new empty segment, then fsync the directory."""
        seg_path = self.path / fmt.segment_name(base_seq)
        fd = os.open(seg_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        try:
            os.write(fd, fmt.pack_segment_header(base_seq, self.dtype))
            self._fsync(fd)
            # Without the directory fsync a power loss could forget the file
            # itself, leaving a hole that reopen reports as a missing segment.
            fsync_directory(self.path, self._fsync)
        except BaseException:
            os.close(fd)
            raise
        self._segments.append(SegmentIndex(path=seg_path, base_seq=base_seq))
        self._fd = fd

    # ------------------------------------------------------------ properties

    @property
    def first_seq(self) -> int:
        """The lowest sequence number held (the first segment's base)."""
        return self._segments[0].base_seq

    @property
    def next_seq(self) -> int:
        """The sequence number the next appended batch must start with."""
        return self._segments[-1].next_seq

    @property
    def durable_seq(self) -> int:
        """The highest seq known to be on stable storage (what may be acknowledged under ``interval``)."""
        return self._durable_seq

    @property
    def failed(self) -> bool:
        """True once a write or fsync failed; every later append raises."""
        return self._failed is not None

    @property
    def segments(self) -> list[Path]:
        """The segment files, oldest first."""
        return [s.path for s in self._segments]

    # ---------------------------------------------------------------- append

    def _ensure_usable(self) -> None:
        if self._closed:
            raise JournalError(f"journal {self.path} is closed")
        if self._failed is not None:
            raise JournalFailedError(
                f"journal {self.path} stopped accepting appends after an earlier failure: {self._failed}"
            ) from self._failed

    def _fail(self, what: str, exc: OSError, path: Path, offset: int) -> JournalFailedError:
        """Enter the failed state and build the error to raise."""
        self._failed = exc
        log.error("%s: %s failed at byte offset %d: %s; journal refuses further appends", path, what, offset, exc)
        return JournalFailedError(
            f"{path}: {what} failed at byte offset {offset}: {exc.strerror or exc}; "
            "the journal refuses further appends (stop acknowledging commands)"
        )

    def append(self, batch: np.ndarray, *, sync: bool = True) -> int:
        """Append ``batch`` as one record and return its last ``seq``.

        The batch must be a 1-d array of the journal's dtype whose ``seq``
        runs ``next_seq, next_seq + 1, ...`` without a gap (``SequenceError``
        otherwise).  With the ``batch`` policy the record is fsynced before
        this returns (one fsync per batch: group commit), unless ``sync`` is
        False: then the caller's next ``sync()`` makes it durable, and the
        caller must not acknowledge the batch before that returns.  A failed
        write or fsync raises ``JournalFailedError`` now and on every later call.

        Runtime complexity: O(len(batch)) to check and checksum, one write,
        one fsync.
        """
        if not isinstance(batch, np.ndarray) or batch.dtype != self.dtype or batch.ndim != 1:
            raise TypeError(f"append takes a 1-d numpy array of dtype {self.dtype}, got {getattr(batch, 'dtype', type(batch))}")
        n = len(batch)
        with self._mutex:
            self._ensure_usable()
            expect = self.next_seq
            if n == 0:
                return expect - 1
            seqs = batch["seq"]
            first = int(seqs[0])
            if first != expect:
                raise SequenceError(f"journal {self.path}: batch starts at seq {first}, expected {expect} (gap or overlap)")
            if int(seqs[-1]) != first + n - 1 or (n > 1 and not bool((np.diff(seqs) == 1).all())):
                raise SequenceError(f"journal {self.path}: batch starting at seq {first} has non-consecutive seq values")
            payload = np.ascontiguousarray(batch).view(np.uint8)
            length = fmt.RECORD_HEADER_SIZE + payload.nbytes
            active = self._segments[-1]
            if active.counts and active.end + length > self.segment_bytes:
                self._roll(expect)
                active = self._segments[-1]
            header = fmt.pack_record_header(first, n, self.dtype.itemsize, payload)
            offset = active.end
            self._write_all(active.path, offset, header, payload)
            active.add(offset, first, n, length)
            self._dirty = True
            if sync and self.policy.mode == "batch":
                self._sync_locked()
            return first + n - 1

    def _write_all(self, path: Path, offset: int, header: bytes, payload: np.ndarray) -> None:
        """writev header and payload, looping over short writes."""
        assert self._fd is not None
        bufs: list = [header, payload]
        written = 0
        try:
            while bufs:
                done = os.writev(self._fd, bufs)
                written += done
                # drop what was written; keep the rest of a partly written buffer
                while bufs and done >= len(bufs[0]):
                    done -= len(bufs[0])
                    bufs.pop(0)
                if bufs and done:
                    bufs[0] = bufs[0][done:]
        except OSError as exc:
            raise self._fail("write", exc, path, offset + written) from exc

    def _roll(self, base_seq: int) -> None:
        """Seal the active segment (fsync unless policy is off) and start a new one."""
        active = self._segments[-1]
        if self.policy.mode != "off":
            self._sync_locked()
        assert self._fd is not None
        os.close(self._fd)
        self._fd = None
        try:
            self._create_segment(base_seq)
        except OSError as exc:
            raise self._fail("creating the next segment", exc, self.path / fmt.segment_name(base_seq), 0) from exc
        log.info("%s: sealed at %d bytes; rolled to %s", active.path, active.end, self._segments[-1].path.name)

    # ------------------------------------------------------------------ sync

    def sync(self) -> None:
        """fsync everything appended so far, whatever the policy; raises if the journal failed."""
        with self._mutex:
            self._ensure_usable()
            self._sync_locked()

    def _sync_locked(self) -> None:
        if not self._dirty or self._fd is None:
            return
        target = self.next_seq - 1
        active = self._segments[-1]
        try:
            self._fsync(self._fd)
        except OSError as exc:
            raise self._fail("fsync", exc, active.path, active.end) from exc
        self._dirty = False
        self._durable_seq = target

    def _flush_loop(self) -> None:
        """The ``interval`` policy's thread: fsync when dirty, every interval_ms."""
        period = self.policy.interval_ms / 1000.0
        while not self._stop.wait(period):
            with self._mutex:
                if self._closed or self._failed is not None:
                    return
                try:
                    self._sync_locked()
                except JournalFailedError:
                    return  # the next append reports it

    # ------------------------------------------------------------------ read

    def read(self, from_seq: int | None = None, *, verify: bool = True) -> Iterator[np.ndarray]:
        """Yield the batches from ``from_seq`` (default ``first_seq``) to the end, in order.

        Each yielded array is a fresh, writable array of the journal's dtype
        (one read per record, no memory map); the first is sliced to start at
        ``from_seq``.  With ``verify`` each record's CRC32C is checked and a
        mismatch raises ``JournalCorruptError`` naming file and offset.  The
        records read are those present when the call is made.

        Runtime complexity: O(log records) to find the start, then one read
        and one CRC per record (>= 20 M commands/s, see docs/journal.md).
        """
        with self._mutex:
            if self._closed:
                raise JournalError(f"journal {self.path} is closed")
            start = self.first_seq if from_seq is None else from_seq
            if start < self.first_seq or start > self.next_seq:
                raise JournalError(
                    f"journal {self.path} holds seq {self.first_seq}..{self.next_seq - 1}; cannot read from seq {start}"
                )
            # Copy the index so appends during iteration do not disturb it.
            plan = [
                (s.path, list(s.offsets), list(s.first_seqs), list(s.counts))
                for s in self._segments
                if s.counts and s.next_seq > start
            ]
        return self._read_plan(plan, start, verify)

    def _read_plan(self, plan: list, start: int, verify: bool) -> Iterator[np.ndarray]:
        dtype, itemsize = self.dtype, self.dtype.itemsize
        for seg_path, offsets, first_seqs, counts in plan:
            i = max(bisect.bisect_right(first_seqs, start) - 1, 0)
            fd = os.open(seg_path, os.O_RDONLY)
            try:
                for offset, first, count in zip(offsets[i:], first_seqs[i:], counts[i:]):
                    buf = read_record(fd, seg_path, offset, fmt.RECORD_HEADER_SIZE + count * itemsize)
                    rec = fmt.unpack_record_header(buf)
                    if rec.magic != fmt.RECORD_MAGIC or rec.first_seq != first or rec.count != count or (
                        verify and not fmt.record_crc_ok(buf)
                    ):
                        raise JournalCorruptError(
                            f"{seg_path}: corrupt record at byte offset {offset} (seq {first}..{first + count - 1}): "
                            "CRC32C or header mismatch",
                            path=seg_path,
                            offset=offset,
                        )
                    batch = buf[fmt.RECORD_HEADER_SIZE :].view(dtype)
                    yield batch[start - first :] if first < start else batch
            finally:
                os.close(fd)

    # ------------------------------------------------------------- retention

    def truncate_before(self, seq: int) -> int:
        """Delete every segment whose commands all lie below ``seq``; return how many went.

        Call it with the seq after the newest durable snapshot's: the active
        segment is never deleted, so ``first_seq <= seq`` may not hold after.

        Runtime complexity: O(segments).
        """
        with self._mutex:
            self._ensure_usable()
            doomed = [s for s in self._segments[:-1] if s.next_seq <= seq]
            for seg in doomed:
                try:
                    seg.path.unlink()
                except OSError as exc:
                    raise JournalError(f"cannot delete segment {seg.path} (retention below seq {seq}): {exc.strerror or exc}") from exc
                self._segments.remove(seg)
                log.info("%s: deleted by retention (all seq < %d)", seg.path, seq)
            if doomed:
                fsync_directory(self.path, self._fsync)
            return len(doomed)

    # ---------------------------------------------------------------- close

    def close(self) -> None:
        """Stop the fsync thread, sync (unless failed), and release the lock; idempotent."""
        if self._closed:
            return
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join()
        with self._mutex:
            try:
                if self._failed is None:
                    self._sync_locked()
            finally:
                self._closed = True
                self._release()

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._lock.release()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r}, seq {self.first_seq}..{self.next_seq - 1}, {len(self._segments)} segments, {self.policy})"

    def _check(self) -> None:
        """Assert the in-memory index is consistent (called by stress tests)."""
        expect = self.first_seq
        for seg in self._segments:
            assert seg.base_seq == expect, (seg.path, seg.base_seq, expect)
            assert seg.path.name == fmt.segment_name(seg.base_seq)
            end = fmt.SEGMENT_HEADER_SIZE
            for off, first, count in zip(seg.offsets, seg.first_seqs, seg.counts):
                assert off == end and first == expect and count > 0
                end += fmt.RECORD_HEADER_SIZE + count * self.dtype.itemsize
                expect += count
            assert seg.end == end
            if self._fd is None or seg is not self._segments[-1]:
                assert seg.path.stat().st_size == end
        assert expect == self.next_seq
        assert self._durable_seq <= self.next_seq - 1
        if self._fd is not None:
            assert os.fstat(self._fd).st_size == self._segments[-1].end
