"""Same history, same events and state hash: across runs, replays, batch splits and shard counts."""

from __future__ import annotations

import numpy as np
import pytest

from shardex import Exchange, Instrument
from shardex.book.check import check_shard
from shardex.engine.commands import batch, mass_cancel, new_order

from .flows import exchange, random_flow


def run_flow(cmds, shards, chunks=1):
    ex = exchange(5, shards)
    parts = [ex.process(c.copy()) for c in np.array_split(cmds, chunks)]
    for shard in ex.shards:
        check_shard(shard)
    h = ex.state_hash()
    ex.close()
    return np.concatenate(parts), h


def test_state_hash_equal_for_equal_histories_and_different_for_different_ones():
    cmds = random_flow(1, 400)
    ev1, h1 = run_flow(cmds, 1)
    ev2, h2 = run_flow(cmds, 1)
    assert h1 == h2 and np.array_equal(ev1, ev2)
    # one more resting order far from the market
    extra = np.concatenate([cmds, batch([new_order(0, "buy", 1, 1, order_id=10**9, account=0)])])
    assert run_flow(extra, 1)[1] != h1
    # the same resting order at another price, or with another quantity
    moved = extra.copy()
    moved["price"][-1] = 2
    assert run_flow(moved, 1)[1] not in (h1, run_flow(extra, 1)[1])
    bigger = extra.copy()
    bigger["qty"][-1] = 2
    assert run_flow(bigger, 1)[1] not in (h1, run_flow(extra, 1)[1])
    assert run_flow(random_flow(99, 400), 1)[1] != h1


def test_state_hash_covers_last_price_and_queue_order():
    def hashed(*recs):
        ex = Exchange([Instrument(0, "X")], clock=lambda: 1)
        ex.process(batch(list(recs)))
        return ex.state_hash()

    a = new_order(0, "buy", 1, 100, order_id=1, account=1)
    b = new_order(0, "buy", 1, 100, order_id=2, account=1)
    assert hashed(a, b) != hashed(b, a)
    assert hashed(a, b) == hashed(a, b)
    empty = hashed()
    traded = hashed(new_order(0, "buy", 1, 100, order_id=1, account=1), new_order(0, "sell", 1, 100, order_id=2, account=2))
    assert empty != traded


def test_batch_splitting_does_not_change_the_outcome():
    cmds = random_flow(2, 600)
    ev1, h1 = run_flow(cmds, 1, chunks=1)
    ev2, h2 = run_flow(cmds, 1, chunks=37)
    assert h1 == h2
    assert np.array_equal(ev1, ev2)


@pytest.mark.parametrize("seed", [3, 4])
def test_same_events_and_state_hash_with_1_2_4_shards(seed):
    cmds = random_flow(seed, 1500)
    ev1, h1 = run_flow(cmds, 1, chunks=3)
    assert (ev1["kind"] == 3).sum() > 50  # the flow trades
    for shards in (2, 4):
        evn, hn = run_flow(cmds, shards, chunks=3)
        assert hn == h1, f"{shards} shards"
        assert np.array_equal(evn, ev1), f"{shards} shards"


def test_replay_of_stamped_commands_gives_the_same_events():
    cmds = random_flow(5, 500)
    ex = exchange(5, 2)
    ev = ex.process(cmds)  # stamps cmds in place
    ex2 = exchange(5, 4)
    ev2 = ex2.apply(cmds.copy())
    assert np.array_equal(ev, ev2) and ex.state_hash() == ex2.state_hash()


def test_order_id_reuse_across_instruments_is_shard_independent():
    recs = [new_order(0, "buy", 1, 100, order_id=5, account=1), new_order(1, "buy", 1, 100, order_id=5, account=1)]
    out = []
    for shards in (1, 2):
        ex = exchange(2, shards)
        ev = ex.process(batch(recs))
        out.append(ev["kind"].tolist())
    assert out[0] == out[1]


def test_mass_cancel_all_order_is_shard_independent_when_listed_out_of_id_order():
    streams = []
    for shards in (1, 2):
        ex = Exchange([Instrument(5, "A")], shards=shards, clock=lambda: 1)
        ex.add_instrument(Instrument(2, "B"))
        ex.process(batch([new_order(5, "buy", 1, 100, order_id=1, account=1),
                          new_order(2, "buy", 1, 100, order_id=2, account=1)]))
        streams.append(ex.process(batch([mass_cancel(1)]))["instrument"].tolist())
    assert streams[0] == streams[1]
