"""``merge_by_command`` (a walk over the commands) against the k-way merge on (seq, instrument) it replaces."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from shardex.engine.commands import batch, mass_cancel, new_order
from shardex.engine.merge import deal, merge_by_command, merge_events, partition, regions
from shardex.engine.sequencer import Sequencer
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


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(-2, 6), st.booleans()), max_size=60), st.integers(1, 4), st.data())
def test_deal_lists_each_shards_commands_and_stamps_as_the_sequencer_does(spec, shards, data):
    """``deal``: shard_of's shard for listed ids, shard 0 for ids outside it, every shard for a mass cancel of all."""
    cmds = batch([mass_cancel(i, inst) if mc else new_order(inst, "buy", 1, 100, order_id=i)
                  for i, (inst, mc) in enumerate(spec)])
    shard_of = np.array(data.draw(st.lists(st.integers(0, shards - 1), min_size=5, max_size=5)), dtype=np.int64)
    todo = np.full((shards, len(cmds) + 1), -7, dtype=np.int64)
    counts = np.zeros(shards, dtype=np.int64)
    expected = Sequencer(next_seq=41, clock=lambda: 5_000).stamp(cmds.copy())
    deal(cmds, shard_of, todo, counts, 41, 5_000)
    assert cmds.tobytes() == expected.tobytes()
    for s in range(shards):
        want = [i for i, (inst, mc) in enumerate(spec)
                if (inst == -1 and mc) or (shard_of[inst] if 0 <= inst < 5 else 0) == s]
        assert todo[s, :counts[s]].tolist() == want
    before = cmds.copy()
    deal(cmds, shard_of, todo, counts, 0, 0)  # replay: positions only, the stamps left alone
    assert cmds.tobytes() == before.tobytes()


# -- merge_chunks: the engine's merge, by chunks of commands, on several threads ---------------------------

def _marks_as_published(cmds, shard_of, parts, chunk):
    """Every shard's marks row as ``matching.process_commands_marked`` leaves it at the end of the batch."""
    nch = -(-len(cmds) // chunk)
    width = -(-(nch + 2) // 8) * 8
    marks = np.zeros(len(parts) * width, dtype=np.int64)
    for s, p in enumerate(parts):
        for c in range(nch):  # events of the commands before chunk c: those with a lower seq
            marks[s * width + 1 + c] = np.searchsorted(p["seq"], cmds["seq"][c * chunk], side="left")
        marks[s * width + 1 + nch] = len(p)
        marks[s * width] = nch + 1
    return marks, width


def _merge_in_chunks(cmds, shard_of, parts, chunk, threads=1, marks=None, by_seq=False):
    from concurrent.futures import ThreadPoolExecutor

    from shardex.engine.merge import MC_BY_SEQ, MC_SIZE, merge_chunks

    buffer, starts, counts = regions(parts)
    if marks is None:
        marks, width = _marks_as_published(cmds, shard_of, parts, chunk)
    else:
        marks, width = marks
    ctl = np.zeros(MC_SIZE, dtype=np.int64)
    ctl[MC_BY_SEQ] = by_seq
    out = np.zeros(int(counts.sum()), dtype=EVENT_DTYPE)
    args = (cmds, shard_of, buffer, starts, marks, width, chunk, ctl, out)
    with ThreadPoolExecutor(threads) as pool:
        for f in [pool.submit(merge_chunks, *args) for _ in range(threads)]:
            f.result()
    return out, ctl


@settings(max_examples=200, deadline=None)
@given(consistent(), st.integers(1, 9), st.integers(1, 3), st.booleans())
def test_merging_in_chunks_on_threads_equals_the_k_way_merge(case, chunk, threads, by_seq):
    """By walking each chunk's commands or on seq (``MC_BY_SEQ``, two shards, seqs rising with the commands): one order."""
    from shardex.engine.merge import MC_ABORT, MC_BAD

    cmds, shard_of, parts = case
    out, ctl = _merge_in_chunks(cmds, shard_of, parts, chunk, threads, by_seq=by_seq)
    assert ctl[MC_BAD] == 0 and ctl[MC_ABORT] == 0
    assert np.array_equal(out, merge_events(parts))


def test_a_chunk_that_breaks_the_rules_is_reported_not_merged_wrong():
    from shardex.engine.merge import MC_BAD

    cmds = batch([new_order(i % 2, "buy", 1, 100, order_id=i) for i in range(6)])
    cmds["seq"] = [1, 2, 3, 3, 5, 6]  # a seq repeated in the second chunk
    shard_of = np.array([0, 1], dtype=np.int64)
    parts = [np.zeros(3, dtype=EVENT_DTYPE), np.zeros(3, dtype=EVENT_DTYPE)]
    parts[0]["seq"], parts[1]["seq"] = [1, 3, 5], [2, 3, 6]
    _, ctl = _merge_in_chunks(cmds, shard_of, parts, chunk=3)
    assert ctl[MC_BAD] == 1


def test_mergers_wait_for_marks_and_stop_on_an_abandoned_shard():
    """A merger waits for a shard's marks as they come, and gives up (MC_ABORT) when the shard abandons them."""
    import threading
    import time

    from shardex.book.shard import MARKS_ABANDONED
    from shardex.engine.merge import MC_ABORT

    cmds = batch([new_order(i % 2, "buy", 1, 100, order_id=i) for i in range(8)])
    cmds["seq"] = np.arange(1, 9)
    shard_of = np.array([0, 1], dtype=np.int64)
    parts = [np.zeros(4, dtype=EVENT_DTYPE), np.zeros(4, dtype=EVENT_DTYPE)]
    parts[0]["seq"], parts[1]["seq"] = [1, 3, 5, 7], [2, 4, 6, 8]
    final, width = _marks_as_published(cmds, shard_of, parts, chunk=2)
    for abandon in (False, True):
        marks = final.copy()
        marks[width] = 1  # shard 1 has published only its first mark
        result = {}
        t = threading.Thread(target=lambda: result.update(zip(("out", "ctl"), _merge_in_chunks(
            cmds, shard_of, parts, 2, 1, (marks, width)))))
        t.start()
        time.sleep(0.05)
        assert t.is_alive()  # waiting for shard 1
        marks[width] = MARKS_ABANDONED if abandon else final[width]
        t.join(10)
        assert not t.is_alive()
        if abandon:
            assert result["ctl"][MC_ABORT] == 1
        else:
            assert result["ctl"][MC_ABORT] == 0 and np.array_equal(result["out"], merge_events(parts))
