"""``merge_by_command`` (a walk over the commands) against the k-way merge on (seq, instrument) it replaces."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from shardex.engine.commands import batch, mass_cancel, new_order
from shardex.engine.merge import merge_by_command, merge_events, partition, regions
from shardex.schema import EVENT_DTYPE

N_INST = 6


def _streams(draw, shards: int):
    """A batch, an instrument-to-shard map and per-shard event streams as the shards' kernels write them."""
    shard_of = np.array(draw(st.lists(st.integers(0, shards - 1), min_size=N_INST, max_size=N_INST)), dtype=np.int64)
    n = draw(st.integers(0, 40))
    records = []
    for k in range(n):
        if draw(st.integers(0, 9)) == 0:
            records.append(mass_cancel(k, -1))
        else:
            records.append(new_order(draw(st.integers(-2, N_INST + 1)), "buy", 1, 100, order_id=k))
    cmds = batch(records)
    gaps = draw(st.lists(st.integers(1, 3), min_size=n, max_size=n))
    cmds["seq"] = np.cumsum(gaps) + 10 if n else []
    streams = [[] for _ in range(shards)]
    for c in cmds:
        inst, seq = int(c["instrument"]), int(c["seq"])
        if inst == -1 and c["kind"] == 4:
            for s in range(shards):  # a mass cancel of every instrument: each shard its books, in id order
                for i in np.flatnonzero(shard_of == s):
                    streams[s] += [(seq, int(i))] * draw(st.integers(0, 2))
        else:
            owner = int(shard_of[inst]) if 0 <= inst < N_INST else 0
            streams[owner] += [(seq, inst)] * draw(st.integers(0, 3))
    parts = []
    for s, evs in enumerate(streams):
        p = np.zeros(len(evs), dtype=EVENT_DTYPE)
        for j, (seq, inst) in enumerate(evs):
            p[j]["seq"], p[j]["instrument"], p[j]["order_id"], p[j]["account"] = seq, inst, j, s
        parts.append(p)
    return cmds, shard_of, parts


@st.composite
def consistent(draw):
    return _streams(draw, draw(st.integers(1, 4)))


@settings(max_examples=300, deadline=None)
@given(consistent())
def test_the_walk_over_commands_equals_the_k_way_merge(case):
    cmds, shard_of, parts = case
    assert np.array_equal(merge_by_command(cmds, shard_of, *regions(parts)), merge_events(parts))


@settings(max_examples=200, deadline=None)
@given(consistent(), st.data())
def test_streams_it_cannot_walk_fall_back_to_the_k_way_merge(case, data):
    """Seqs out of order, events of no command, events on the wrong shard: still the k-way merge's answer."""
    cmds, shard_of, parts = case
    how = data.draw(st.sampled_from(["reverse", "duplicate", "stray", "wrong shard"]))
    if how == "reverse" and len(cmds) > 1:
        cmds["seq"] = cmds["seq"][::-1].copy()
    elif how == "duplicate" and len(cmds) > 1:
        cmds["seq"][-1] = cmds["seq"][0]
    elif how == "stray":
        s = data.draw(st.integers(0, len(parts) - 1))
        extra = np.zeros(1, dtype=EVENT_DTYPE)
        extra["seq"] = 10_000
        parts[s] = np.concatenate([parts[s], extra])
    elif how == "wrong shard" and len(parts) > 1 and len(parts[0]):
        parts[1] = np.sort(np.concatenate([parts[1], parts[0][:1]]), order="seq", kind="stable")
        parts[0] = parts[0][1:]
    assert np.array_equal(merge_by_command(cmds, shard_of, *regions(parts)), merge_events(parts))


def test_a_mass_cancel_of_every_instrument_comes_out_in_instrument_order():
    cmds = batch([new_order(0, "buy", 1, 100, order_id=1), mass_cancel(7, -1), new_order(1, "buy", 1, 100, order_id=2)])
    cmds["seq"] = [1, 2, 3]
    shard_of = np.array([0, 1, 0, 1], dtype=np.int64)

    def ev(seq, inst):
        e = np.zeros(1, dtype=EVENT_DTYPE)
        e["seq"], e["instrument"] = seq, inst
        return e

    parts = [np.concatenate([ev(1, 0), ev(2, 0), ev(2, 2), ev(2, 2)]), np.concatenate([ev(2, 1), ev(2, 3), ev(3, 1)])]
    out = merge_by_command(cmds, shard_of, *regions(parts))
    assert list(zip(out["seq"].tolist(), out["instrument"].tolist())) == [
        (1, 0), (2, 0), (2, 1), (2, 2), (2, 2), (2, 3), (3, 1)]


def test_regions_in_a_shared_buffer_with_room_to_spare():
    """The engine's layout: regions at fixed strides with free rows after them, garbage beyond."""
    cmds = batch([new_order(i % 3, "buy", 1, 100, order_id=i) for i in range(6)])
    cmds["seq"] = np.arange(100, 106)
    shard_of = np.array([0, 1, 0], dtype=np.int64)
    buffer = np.zeros(30, dtype=EVENT_DTYPE)
    buffer["seq"] = 103  # stale rows from an earlier batch, with a seq of this one
    parts = [[(100, 0), (102, 2), (103, 0), (105, 2)], [(101, 1), (101, 1), (104, 1)]]
    for s, evs in enumerate(parts):
        for j, (seq, inst) in enumerate(evs):
            buffer[10 * s + j]["seq"], buffer[10 * s + j]["instrument"] = seq, inst
    out = merge_by_command(cmds, shard_of, buffer, np.array([0, 10]), np.array([4, 3]))
    assert out["seq"].tolist() == [100, 101, 101, 102, 103, 104, 105]


def test_partition_still_deals_commands_as_the_shards_skip_them():
    """``partition`` (benchmarks' pre-split streams) and the shards' own skipping agree on who runs what."""
    cmds = batch([new_order(i % 5 - 1, "buy", 1, 100, order_id=i) for i in range(20)] + [mass_cancel(1, -1)])
    shard_of = np.array([0, 1, 0, 1], dtype=np.int64)
    parts = partition(cmds, shard_of, 2)
    assert sorted(parts[1]["instrument"].tolist()) == [-1] + [1] * 4 + [3] * 4
    assert len(parts[0]) == len(cmds) - 8  # unlisted ids (-1 orders, 4) go to shard 0, the mass cancel to both
