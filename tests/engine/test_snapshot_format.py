"""Snapshots of engine formats 1 (24-byte order index cells) and 2 (no dead-row counts) restore into today's
engine, as laid out or re-dealt; captured snapshots carry no cancelled rows."""

from __future__ import annotations

import numpy as np
import pytest

from shardex.book.check import check_shard
from shardex.book.index import ROW_MASK
from shardex.book.layout import H_KEY, H_OID, L_DEAD, M_DEAD_ORDERS, O_ACCOUNT
from shardex.engine.exchange import Exchange
from shardex.engine.loadgen import batches, instruments, order_flow
from shardex.engine.snapshotting import SNAPSHOT_FORMAT, SnapshotLayoutError, capture, restore

N_INST = 6


def _live(shards):
    ex = Exchange(instruments(N_INST), shards=shards, clock=lambda: 1)
    for b in batches(order_flow(12_000, n_instruments=N_INST, seed=5), 2048):
        ex.process(b)
    return ex


def _as_format_1(arrays: dict, meta: dict) -> tuple[dict, dict]:
    """What shardex wrote before 2026-11-23: index cells (account, order id, row), -1 rows free."""
    old = dict(arrays)
    for name in [n for n in arrays if n.endswith(".index")]:
        k = name.split(".")[0]
        table, orders = arrays[name], arrays[f"{k}.orders"]
        cells = np.full((len(table), 3), -1, dtype=np.int64)
        live = table[:, H_KEY] >= 0
        rows = table[live, H_KEY] & ROW_MASK
        # any placement will do: the reader rebuilds the table from the entries
        cells[: live.sum(), 0] = orders[rows, O_ACCOUNT]
        cells[: live.sum(), 1] = table[live, H_OID]
        cells[: live.sum(), 2] = rows
        old[name] = cells
    return old, {**meta, "engine_format": 1}


@pytest.mark.parametrize("into", [2, 3])
def test_format_1_snapshot_restores_and_runs_on(into):
    ex = _live(2)
    arrays, meta = capture(ex.shards, ex.instruments, ex.sequencer.next_seq, 1)
    assert meta["engine_format"] == SNAPSHOT_FORMAT == 3
    old_arrays, old_meta = _as_format_1(arrays, meta)
    again = Exchange(instruments(N_INST), shards=into, clock=lambda: 1)
    redealt = restore(again.shards, old_arrays, old_meta)
    assert redealt == (into != 2)
    for shard in again.shards:
        check_shard(shard)
    assert again.state_hash() == ex.state_hash()
    more = order_flow(4_000, n_instruments=N_INST, seed=9)
    more["order_id"] += 10**7
    for b in batches(more, 1024):
        got, want = again.process(b.copy()), ex.process(b.copy())
        assert np.array_equal(got["order_id"], want["order_id"]) and np.array_equal(got["qty"], want["qty"])
    assert again.state_hash() == ex.state_hash()


def _as_format_2(arrays: dict, meta: dict) -> tuple[dict, dict]:
    """Format 2 left a stale free-list link where format 3 counts a live level's dead rows."""
    old = dict(arrays)
    for name in [n for n in arrays if n.endswith(".levels")]:
        k = name.split(".")[0]
        lad_n, lad_lv = arrays[f"{k}.lad_n"], arrays[f"{k}.lad_lv"]
        in_use = lad_lv[np.arange(lad_lv.shape[1])[None, :] < lad_n[:, None]]
        old[name] = arrays[name].copy()
        old[name][in_use, L_DEAD] = 12345
    return old, {**meta, "engine_format": 2}


@pytest.mark.parametrize("into", [2, 3])
def test_format_2_snapshot_restores_and_runs_on(into):
    ex = _live(2)
    arrays, meta = capture(ex.shards, ex.instruments, ex.sequencer.next_seq, 1)
    again = Exchange(instruments(N_INST), shards=into, clock=lambda: 1)
    restore(again.shards, *_as_format_2(arrays, meta))
    for shard in again.shards:
        check_shard(shard)
    assert again.state_hash() == ex.state_hash()


def test_capture_purges_dead_rows_and_leaves_the_live_state_alone():
    ex = _live(2)
    dead = [int(sh.state.meta[M_DEAD_ORDERS]) for sh in ex.shards]
    assert sum(dead) > 0  # the flow cancels orders behind others: their rows stay linked
    arrays, meta = capture(ex.shards, ex.instruments, ex.sequencer.next_seq, 1)
    assert [int(arrays[f"s{k}.meta"][M_DEAD_ORDERS]) for k in range(2)] == [0, 0]
    assert [int(sh.state.meta[M_DEAD_ORDERS]) for sh in ex.shards] == dead
    for into in (1, 2):
        again = Exchange(instruments(N_INST), shards=into, clock=lambda: 1)
        restore(again.shards, arrays, meta)
        for shard in again.shards:
            check_shard(shard)
        assert again.state_hash() == ex.state_hash()


def test_unknown_format_is_refused():
    ex = _live(1)
    arrays, meta = capture(ex.shards, ex.instruments, ex.sequencer.next_seq, 1)
    with pytest.raises(SnapshotLayoutError, match="format 7"):
        restore(Exchange(instruments(N_INST), shards=1).shards, arrays, {**meta, "engine_format": 7})
