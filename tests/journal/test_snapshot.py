"""Snapshots: round trip, atomic write, fallback past a corrupt newest file, keep-K; recover()."""

from __future__ import annotations

import os

import numpy as np
import pytest

from shardex.errors import JournalError
from shardex.journal import Journal, MemoryLog, SnapshotError, SnapshotStore, recover
from shardex.schema import EVENT_DTYPE

from .helpers import check_batches, make_batch


def state(k: int) -> dict[str, np.ndarray]:
    return {
        "balances": np.arange(10, dtype=np.int64) * k,
        "ladder": np.full((3, 4), k, dtype=np.int32),
        "events": np.zeros(5, EVENT_DTYPE),
        "empty": np.zeros(0, np.float64),
        "flags": np.array([True, False]),
    }


def assert_state(arrays, k):
    ref = state(k)
    assert list(arrays) == list(ref)
    for name, arr in ref.items():
        assert arrays[name].dtype == arr.dtype and arrays[name].shape == arr.shape
        assert np.array_equal(arrays[name], arr)


def test_round_trip(tmp_path):
    store = SnapshotStore(tmp_path / "snaps")
    assert store.latest() is None
    path = store.write(state(3), seq=42, state_hash="abc123", meta={"shards": 2})
    snap = store.latest()
    assert snap.path == path and snap.seq == 42 and snap.state_hash == "abc123" and snap.meta == {"shards": 2}
    assert_state(snap.arrays, 3)
    snap.arrays["balances"][0] = 7  # loaded arrays are writable
    with pytest.raises(TypeError, match="object dtype"):
        store.write({"x": np.array([object()])}, seq=1, state_hash="")


def test_keeps_last_k(tmp_path):
    store = SnapshotStore(tmp_path, keep=2)
    for seq in (10, 20, 30, 40):
        store.write(state(seq), seq=seq, state_hash=str(seq))
    assert [s for s, _ in store.list()] == [40, 30]


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "magic"])
def test_falls_back_to_older_snapshot(tmp_path, damage):
    store = SnapshotStore(tmp_path, keep=3)
    store.write(state(1), seq=100, state_hash="h100")
    newest = store.write(state(2), seq=200, state_hash="h200")
    data = bytearray(newest.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x20
    elif damage == "truncate":
        data = data[: len(data) - 8]
    elif damage == "empty":
        data = bytearray()
    else:
        data[0:4] = b"XXXX"
    newest.write_bytes(bytes(data))
    snap = store.latest()
    assert snap.seq == 100 and snap.state_hash == "h100"
    assert_state(snap.arrays, 1)
    assert store.skipped[0][0] == newest
    with pytest.raises(SnapshotError, match=str(newest)):
        store.load(newest)


def test_failed_write_leaves_previous_snapshots_untouched(tmp_path):
    def failing_fsync(fd):
        raise OSError(5, "Input/output error")

    SnapshotStore(tmp_path).write(state(1), seq=100, state_hash="h100")
    bad = SnapshotStore(tmp_path, fsync=failing_fsync)
    with pytest.raises(SnapshotError, match="Input/output error"):
        bad.write(state(2), seq=200, state_hash="h200")
    assert sorted(os.listdir(tmp_path)) == ["snapshot-00000000000000000100.snap"]  # no temp file, no new name
    assert SnapshotStore(tmp_path).latest().seq == 100


def test_crashed_writer_temp_file_is_ignored_and_cleaned(tmp_path):
    store = SnapshotStore(tmp_path)
    (tmp_path / ".snapshot-00000000000000000300.snap.tmp-99999").write_bytes(b"half written")
    store.write(state(1), seq=100, state_hash="h")
    assert store.latest().seq == 100
    assert not (tmp_path / ".snapshot-00000000000000000300.snap.tmp-99999").exists()


def test_recover_snapshot_plus_tail(tmp_path):
    store = SnapshotStore(tmp_path / "snapshots")
    with Journal(tmp_path / "journal", segment_bytes=8192) as j:
        seq = 1
        for _ in range(12):
            j.append(make_batch(seq, 20))
            seq += 20
        store.write(state(5), seq=130, state_hash="h130")
        j.truncate_before(131)
        rec = recover(j, store)
        assert rec.snapshot.seq == 130 and rec.from_seq == 131
        assert check_batches(rec, 131) == seq
        store.write(state(6), seq=seq - 1, state_hash="end")
        rec = recover(j, store)
        assert list(rec) == [] and rec.from_seq == seq


def test_recover_without_snapshot_replays_everything(tmp_path):
    log = MemoryLog()
    log.append(make_batch(1, 5))
    rec = recover(log, SnapshotStore(tmp_path))
    assert rec.snapshot is None and check_batches(rec, 1) == 6


def test_recover_refuses_when_snapshot_and_log_do_not_meet(tmp_path):
    store = SnapshotStore(tmp_path)
    log = MemoryLog()
    for first in (1, 11, 21):
        log.append(make_batch(first, 10))
    store.write(state(1), seq=40, state_hash="ahead")
    with pytest.raises(JournalError, match="journal ends at seq 30"):
        recover(log, store)
    store = SnapshotStore(tmp_path / "other")
    store.write(state(1), seq=5, state_hash="behind")
    log.truncate_before(25)
    with pytest.raises(JournalError, match="journal starts at seq 21"):
        recover(log, store)
    with pytest.raises(JournalError, match="dropped by retention"):
        recover(log, SnapshotStore(tmp_path / "none"))
