"""Exchange.open: journal before matching, snapshots, recovery (any shard count), faults at open and at fsync."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from shardex.engine.durable import JOURNAL_ALONGSIDE_FROM, DurableExchange, EngineHaltedError, EngineOpenError
from shardex.engine.exchange import Exchange
from shardex.engine.loadgen import batches, instruments, order_flow
from shardex.engine.snapshotting import SnapshotLayoutError
from shardex.journal import Journal, JournalLockedError
from shardex.schema import Reason

N_INST = 8


def _fill(ex, count=40_000, seed=3, size=2048, oid_base=0):
    cmds = order_flow(count, n_instruments=N_INST, seed=seed)
    cmds["order_id"] += oid_base
    return [ex.process(b) for b in batches(cmds, size)]


def _reference(count=40_000, seed=3):
    ref = Exchange(instruments(N_INST), shards=1, clock=lambda: 1)
    for b in batches(order_flow(count, n_instruments=N_INST, seed=seed), 2048):
        ref.process(b)
    return ref


def test_open_creates_journal_and_initial_snapshot(tmp_path):
    with Exchange.open(tmp_path / "e", instruments(2)) as ex:
        assert isinstance(ex, DurableExchange)
        assert (tmp_path / "e" / "journal").is_dir()
        assert [seq for seq, _ in ex.snapshots.list()] == [0]
        assert ex.log.next_seq == 1


@pytest.mark.parametrize("size", [500, 2048])
def test_a_batch_is_written_before_it_is_applied_and_acknowledged_only_once_durable(tmp_path, size):
    """Small batches are fsynced before matching; large ones are matched while the journal thread fsyncs them."""
    written, syncs = [], []
    with Exchange.open(tmp_path, instruments(2), shards=2, fsync_policy="batch") as ex:
        real_apply, real_append = ex.apply, ex.log.append

        def apply(cmds):
            written.append(ex.log.next_seq > int(cmds["seq"][-1]))
            return real_apply(cmds)

        def append(cmds, *, sync=True):
            syncs.append(sync)
            return real_append(cmds, sync=sync)

        ex.apply, ex.log.append = apply, append
        for b in batches(order_flow(10_000, n_instruments=2, seed=3), size):
            ex.process(b)
            assert ex.log.durable_seq >= int(b["seq"][-1])  # acknowledged: durable
    assert written and all(written)
    assert set(syncs) == ({True} if size < JOURNAL_ALONGSIDE_FROM else {False})


@pytest.mark.parametrize("reopen_shards", [1, 2, 3, 4])
def test_recovery_equals_live_for_any_shard_count(tmp_path, reopen_shards):
    tail = order_flow(3_000, n_instruments=N_INST, seed=4)
    tail["order_id"] += 10**7
    with Exchange.open(tmp_path, instruments(N_INST), shards=4, snapshot_every=15_000,
                       snapshot_on_close=False, fsync_policy="off") as ex:
        _fill(ex)  # periodic snapshots while it runs (when one is still being written, the next is put off)
        # an on-demand snapshot, then a tail shorter than snapshot_every: whatever the periodic ones did on
        # a slow machine, recovery is this snapshot plus exactly the tail
        ex.snapshot()
        for b in batches(tail, 2048):
            ex.process(b)
        live = ex.state_hash()
        ex._wait_snapshot()
        assert ex.snapshot_error is None
    ref = _reference()
    for b in batches(tail, 2048):
        ref.process(b)
    assert live == ref.state_hash()
    with Exchange.open(tmp_path, shards=reopen_shards) as again:
        assert again.state_hash() == live
        assert again.recovered_commands == 3_000  # snapshot + tail
        assert again.redealt == (reopen_shards != 4)
        assert again.sequencer.next_seq == 43_001


def test_recovery_without_snapshot_replays_the_whole_journal(tmp_path):
    with Exchange.open(tmp_path, instruments(N_INST), shards=2, snapshot_every=0, snapshot_on_close=False) as ex:
        _fill(ex, 20_000)
        live = ex.state_hash()
    with Exchange.open(tmp_path, shards=1) as again:
        assert again.recovered_commands == 20_000
        assert again.state_hash() == live


def test_redealt_engine_continues_exactly_like_a_straight_one(tmp_path):
    with Exchange.open(tmp_path, instruments(N_INST), shards=4, snapshot_every=0, fsync_policy="off") as ex:
        _fill(ex)  # snapshot on close: reopening re-deals it
    ref = _reference()
    more = order_flow(20_000, n_instruments=N_INST, seed=11)
    more["order_id"] += 10**7
    with Exchange.open(tmp_path, shards=3) as ex:
        assert ex.redealt and ex.recovered_commands == 0
        got = np.concatenate([ex.process(b) for b in batches(more, 2048)])
    want = np.concatenate([ref.process(b) for b in batches(more, 2048)])
    for name in got.dtype.names:
        if name != "ts":
            assert np.array_equal(got[name], want[name]), name


def test_newest_snapshot_damaged_falls_back_to_an_older_one(tmp_path):
    with Exchange.open(tmp_path, instruments(N_INST), snapshot_every=10_000, snapshot_on_close=False,
                       fsync_policy="off") as ex:
        _fill(ex)
        ex._wait_snapshot()
        live = ex.state_hash()
        newest = ex.snapshots.list()[0][1]
    with open(newest, "r+b") as fh:
        fh.seek(os.path.getsize(newest) - 10)
        fh.write(b"\xff" * 4)
    with Exchange.open(tmp_path, shards=2) as again:
        assert again.state_hash() == live
        assert again.snapshots.skipped


def test_on_demand_snapshot_and_retention(tmp_path):
    with Exchange.open(tmp_path, instruments(N_INST), snapshot_every=0,
                       journal_options={"segment_bytes": 64 * 1024}) as ex:
        for k in range(3):
            _fill(ex, 10_000, seed=k, oid_base=k * 10**6)
            ex.snapshot()
        # keep=3: the initial snapshot (seq 0) is gone, the journal is kept back to the oldest kept one
        assert [seq for seq, _ in ex.snapshots.list()] == [30_000, 20_000, 10_000]
        assert 1 < ex.log.first_seq <= 10_001
        assert ex.log.first_seq <= ex.snapshots.list()[-1][0] + 1


@pytest.mark.parametrize("shards, size", [(1, 500), (2, 2048)])  # fsync before the shards, and beside them
def test_a_failed_fsync_halts_the_engine_and_hands_out_nothing_of_that_batch(tmp_path, shards, size, failing_fsync):
    ex = Exchange.open(tmp_path, instruments(2), shards=shards, journal_options={"fsync": failing_fsync(6)},
                       snapshot_on_close=False)
    acked, events = 0, []
    with pytest.raises(EngineHaltedError, match="halted") as info:
        for b in batches(order_flow(60_000, n_instruments=2), size):  # bounded: 30 or 120 batches
            events.append(ex.process(b))
            acked = int(b["seq"][-1])
    assert info.value.reason == Reason.ENGINE_HALTED
    assert ex.halted and acked > 0 and int(events[-1]["seq"][-1]) <= acked
    with pytest.raises(EngineHaltedError):
        ex.process(batches(order_flow(10, n_instruments=2, seed=5), 10)[0])
    with pytest.raises(EngineHaltedError, match="not durable"):
        ex.snapshot()  # the books may hold the failed batch
    ex.close()
    with Exchange.open(tmp_path) as again:
        assert again.log.next_seq - 1 >= acked


def test_locked_directory_is_refused_at_open(tmp_path):
    with Exchange.open(tmp_path, instruments(1)):
        with pytest.raises(JournalLockedError, match=str(os.getpid())):
            Exchange.open(tmp_path)


def test_bad_directories_are_refused_at_open(tmp_path):
    with pytest.raises(EngineOpenError, match="parent"):
        Exchange.open(tmp_path / "no" / "such", instruments(1))
    (tmp_path / "file").write_text("x")
    with pytest.raises(EngineOpenError, match="not a directory"):
        Exchange.open(tmp_path / "file", instruments(1))
    with pytest.raises(EngineOpenError, match="does not exist"):
        Exchange.open(tmp_path / "missing", instruments(1), create=False)
    if os.geteuid() != 0:  # root ignores permissions
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(EngineOpenError, match="not writable"):
            Exchange.open(ro, instruments(1))


def test_journal_without_snapshot_needs_instruments(tmp_path):
    with Exchange.open(tmp_path, instruments(2), snapshot_every=0, snapshot_on_close=False) as ex:
        _fill(ex, 1000)
    shutil.rmtree(tmp_path / "snapshots")
    with pytest.raises(EngineOpenError, match="pass the instruments"):
        Exchange.open(tmp_path)
    with Exchange.open(tmp_path, instruments(2)) as again:
        assert again.recovered_commands == 1000


def test_instruments_are_reconciled_and_new_listings_are_durable(tmp_path):
    from shardex.instruments import Instrument

    with Exchange.open(tmp_path, instruments(2)) as ex:
        ex.add_instrument(Instrument(7, "NEW"))
    with pytest.raises(SnapshotLayoutError, match="cannot change"):
        Exchange.open(tmp_path, [Instrument(0, "I0000", tick_size="0.5")])
    with Exchange.open(tmp_path, [Instrument(9, "LATER")], shards=2) as again:
        assert [i.id for i in again.instruments] == [0, 1, 7, 9]
    with Exchange.open(tmp_path) as third:
        assert [i.symbol for i in third.instruments] == ["I0000", "I0001", "NEW", "LATER"]


def test_journal_is_a_plain_journal(tmp_path):
    with Exchange.open(tmp_path, instruments(2), snapshot_on_close=False) as ex:
        _fill(ex, 3000, size=1000)
    with Journal(tmp_path / "journal") as j:
        assert sum(len(b) for b in j.read()) == 3000


@pytest.mark.parametrize("shards", [1, 2])
def test_submit_after_recovery_does_not_reuse_an_open_order_id(tmp_path, shards):
    with Exchange.open(tmp_path / "e", instruments(N_INST), shards=shards) as ex:
        ids = [int(ex.submit(1, "buy", 1, 100 + k, account=7)["order_id"][0]) for k in range(3)]
        assert ids == [1, 2, 3]
    with Exchange.open(tmp_path / "e", shards=shards) as ex:  # the journal replayed: counters start afresh
        ev = ex.submit(1, "buy", 1, 99, account=7)  # id 1 would be DUPLICATE_ORDER_ID
        assert int(ev["order_id"][0]) == 4
