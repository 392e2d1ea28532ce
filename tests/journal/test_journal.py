"""Journal basics: round trip, reopen, reading from a seq, rolling, retention, sequence rules, policies."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from shardex.errors import JournalError
from shardex.journal import CommandLog, FsyncPolicy, Journal, MemoryLog, SequenceError
from shardex.schema import COMMAND_DTYPE

from .helpers import check_batches, make_batch

SMALL = 8192  # segment_bytes small enough that a few batches roll


def fill(log, sizes, first=1):
    seq = first
    for n in sizes:
        assert log.append(make_batch(seq, n)) == seq + n - 1
        seq += n
    return seq


def test_round_trip_and_reopen(tmp_path):
    with Journal(tmp_path, segment_bytes=SMALL) as j:
        end = fill(j, [1, 5, 40, 3, 100, 7])
        j._check()
        assert check_batches(j.read(), 1) == end
        assert j.durable_seq == end - 1
    with Journal(tmp_path, segment_bytes=SMALL) as j:
        j._check()
        assert j.torn_tail is None
        assert (j.first_seq, j.next_seq) == (1, end)
        assert check_batches(j.read(), 1) == end
        end = fill(j, [9, 9], first=end)  # appending continues after reopen
        assert check_batches(j.read(), 1) == end
        assert len(j.segments) > 1, "small segments should have rolled"


@pytest.mark.parametrize("start", [1, 2, 6, 7, 46, 150, 156, 157])
def test_read_from_any_seq(tmp_path, start):
    with Journal(tmp_path, segment_bytes=SMALL) as j:
        end = fill(j, [1, 5, 40, 3, 100, 7])
        batches = list(j.read(start))
        assert batches[0]["seq"][0] == start if start < end else batches == []
        assert check_batches(batches, start) == end


def test_read_outside_range_refused(tmp_path):
    with Journal(tmp_path) as j:
        fill(j, [3])
        with pytest.raises(JournalError, match="cannot read from seq 5"):
            list(j.read(5))
        with pytest.raises(JournalError, match="cannot read from seq 0"):
            list(j.read(0))


def test_sequence_rules(tmp_path):
    with Journal(tmp_path) as j:
        fill(j, [3])
        with pytest.raises(SequenceError, match="starts at seq 5, expected 4"):
            j.append(make_batch(5, 2))
        with pytest.raises(SequenceError, match="starts at seq 3, expected 4"):
            j.append(make_batch(3, 2))
        bad = make_batch(4, 3)
        bad["seq"][2] = 9
        with pytest.raises(SequenceError, match="non-consecutive"):
            j.append(bad)
        bad = make_batch(4, 3)
        bad["seq"] = [4, 6, 6]  # right ends, wrong middle
        with pytest.raises(SequenceError, match="non-consecutive"):
            j.append(bad)
        with pytest.raises(TypeError):
            j.append(np.zeros(2, np.int64))
        assert j.append(make_batch(4, 0)) == 3  # empty batch: nothing written
        j._check()
        assert j.next_seq == 4
        assert isinstance(SequenceError("x"), ValueError)


def test_start_seq_of_new_journal(tmp_path):
    with Journal(tmp_path, start_seq=1000) as j:
        assert (j.first_seq, j.next_seq, j.durable_seq) == (1000, 1000, 999)
        with pytest.raises(SequenceError):
            j.append(make_batch(1, 1))
        fill(j, [4], first=1000)
    with Journal(tmp_path) as j:  # start_seq only applies to a new journal
        assert (j.first_seq, j.next_seq) == (1000, 1004)


def test_non_contiguous_batch_view_is_written_correctly(tmp_path):
    with Journal(tmp_path) as j:
        big = make_batch(1, 20)
        stride = np.concatenate([big[:10], big[10:]])[::1]
        j.append(stride[:10])
        two = np.zeros(20, COMMAND_DTYPE)
        two[::2] = make_batch(11, 10)
        j.append(two[::2])  # strided view: must be copied to contiguous bytes
        assert check_batches(j.read(), 1) == 21


def test_rolling_and_retention(tmp_path):
    with Journal(tmp_path, segment_bytes=SMALL) as j:
        end = fill(j, [20] * 30)  # 32 + 5 * 1632 bytes = 8192: five records (100 commands) per segment
        segs = j.segments
        assert len(segs) == 6
        assert j.truncate_before(1) == 0
        assert j.truncate_before(200) == 1  # seq 200 still sits in the second segment
        assert j.truncate_before(201) == 1
        assert j.first_seq == 201 and not segs[0].exists() and not segs[1].exists()
        assert check_batches(j.read(250), 250) == end
        with pytest.raises(JournalError):
            list(j.read(200))
        assert j.truncate_before(10**9) == 3  # never the active segment
        assert j.segments == [segs[-1]]
        j._check()
    with Journal(tmp_path, segment_bytes=SMALL) as j:
        assert j.first_seq == 501 and j.next_seq == end
        assert check_batches(j.read(), 501) == end


def test_record_larger_than_segment_gets_its_own(tmp_path):
    with Journal(tmp_path, segment_bytes=4096) as j:
        fill(j, [2, 200, 2])
        assert len(j.segments) == 3
        j._check()
        assert check_batches(j.read(), 1) == 205


def test_interval_policy_syncs_in_background(tmp_path):
    calls = []

    def fsync(fd):
        calls.append(fd)
        os.fdatasync(fd)

    with Journal(tmp_path, fsync_policy="interval:5", fsync=fsync) as j:
        n0 = len(calls)
        fill(j, [10])
        deadline = time.monotonic() + 5
        while j.durable_seq < 10 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert j.durable_seq == 10 and len(calls) > n0


@pytest.mark.parametrize("log_kind", ["journal", "memory"])
def test_an_append_without_sync_is_readable_and_durable_after_the_next_sync(tmp_path, log_kind):
    calls = []

    def fsync(fd):
        calls.append(fd)
        os.fdatasync(fd)

    log = Journal(tmp_path, fsync_policy="batch", fsync=fsync) if log_kind == "journal" else MemoryLog()
    try:
        fill(log, [4])
        n0 = len(calls)
        assert log.append(make_batch(5, 6), sync=False) == 10
        assert check_batches(log.read(), 1) == 11  # written: readable at once
        if log_kind == "journal":
            assert len(calls) == n0 and log.durable_seq == 4  # not yet durable
        log.sync()
        assert log.durable_seq == 10
        if log_kind == "journal":
            assert len(calls) == n0 + 1
    finally:
        log.close()


def test_off_policy_never_fsyncs_appends(tmp_path):
    calls = []
    with Journal(tmp_path, fsync_policy="off", fsync=calls.append, segment_bytes=SMALL) as j:
        n0 = len(calls)
        fill(j, [20] * 10)  # rolls too; still no fsync of records, only of new segment headers
        assert all(isinstance(c, int) for c in calls)
        assert j.durable_seq < j.next_seq - 1
        roll_syncs = len(calls) - n0
        assert roll_syncs == 2 * (len(j.segments) - 1)  # new file + directory per roll
        j.sync()
        assert j.durable_seq == j.next_seq - 1


def test_fsync_policy_parsing():
    assert FsyncPolicy.parse("batch") == FsyncPolicy()
    assert FsyncPolicy.parse("interval:2.5") == FsyncPolicy("interval", 2.5)
    assert str(FsyncPolicy.parse("interval:5")) == "interval:5"
    for bad in ["sometimes", "interval", "interval:0", "interval:x", "off:3"]:
        with pytest.raises(ValueError):
            FsyncPolicy.parse(bad)


def test_closed_journal_refuses(tmp_path):
    j = Journal(tmp_path)
    j.close()
    j.close()
    with pytest.raises(JournalError, match="closed"):
        j.append(make_batch(1, 1))


@pytest.mark.parametrize("kind", ["journal", "memory"])
def test_command_log_protocol(tmp_path, kind):
    log = Journal(tmp_path, segment_bytes=SMALL) if kind == "journal" else MemoryLog()
    assert isinstance(log, CommandLog)
    end = fill(log, [3, 50, 50, 50, 50, 4])
    assert check_batches(log.read(60), 60) == end
    dropped = log.truncate_before(104)
    assert dropped >= 1 and log.first_seq <= 104
    assert check_batches(log.read(104), 104) == end
    with pytest.raises(SequenceError):
        log.append(make_batch(end + 1, 1))
    log.close()


def test_random_operations_keep_invariants(tmp_path):
    """Stress: random appends, reads, retention and reopens, with ``_check()`` after each step."""
    import random

    rng = random.Random(1234)
    j = Journal(tmp_path, segment_bytes=SMALL)
    for _ in range(300):
        op = rng.random()
        if op < 0.6:
            j.append(make_batch(j.next_seq, rng.randint(1, 120)))
        elif op < 0.75:
            start = rng.randint(j.first_seq, j.next_seq)
            assert check_batches(j.read(start), start) == j.next_seq
        elif op < 0.85:
            j.truncate_before(rng.randint(j.first_seq, j.next_seq))
        else:
            j.close()
            j = Journal(tmp_path, segment_bytes=SMALL)
            assert j.torn_tail is None
        j._check()
    j.close()


def test_public_names():
    import shardex.journal as pkg

    assert sorted(pkg.__all__) == sorted(
        [
            "JOURNAL_DIRNAME", "SNAPSHOT_DIRNAME", "CommandLog", "FsyncPolicy", "Journal", "JournalCorruptError",
            "JournalFailedError", "JournalLockedError", "MemoryLog", "Recovery", "SequenceError", "Snapshot",
            "SnapshotError", "SnapshotStore", "SyncBeside", "TornTail", "VerifyReport", "recover", "verify_journal",
        ]
    )
    for name in pkg.__all__:
        assert getattr(pkg, name).__doc__ if callable(getattr(pkg, name)) else True


def test_sync_beside_returns_the_work_once_synced_and_raises_either_side_s_error():
    import doctest
    import threading

    import shardex.journal.beside as mod
    from shardex.journal import SyncBeside

    assert doctest.testmod(mod).failed == 0
    synced = threading.Event()

    def slow_sync():
        time.sleep(0.05)
        synced.set()

    with SyncBeside() as beside:
        assert beside.run(slow_sync, sum, [1, 2]) == 3 and synced.is_set()  # the result waits for the sync
        with pytest.raises(OSError, match="EIO"):
            beside.run(lambda: (_ for _ in ()).throw(OSError("EIO")), sum, [1])
        synced.clear()
        with pytest.raises(ZeroDivisionError):
            beside.run(slow_sync, lambda: 1 // 0)
        assert synced.is_set()  # the work's error is raised only once the sync is done
