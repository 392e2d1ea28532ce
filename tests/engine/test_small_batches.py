"""Batches that do not need the crew skip it: one shard's batch runs as a lone engine, a small one on the caller.

Both paths must give exactly the events and state of one shard; the crew's
round counter shows which path a batch took.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shardex.engine.exchange as exchange
from shardex.engine.commands import batch, mass_cancel, new_order
from shardex.engine.exchange import Exchange
from shardex.engine.loadgen import batches, instruments, order_flow

N_INST = 8


def _rounds(ex: Exchange) -> int:
    return ex._crew._round if ex._crew is not None else 0


def _on_shard(cmds: np.ndarray, shard: int, shards: int) -> np.ndarray:
    """The commands of ``cmds`` whose instrument the ``shard``-th of ``shards`` shards holds (round-robin by id)."""
    return cmds[cmds["instrument"] % shards == shard]


@pytest.mark.parametrize("shards", (2, 4))
def test_a_batch_on_one_shard_runs_there_alone_with_one_shards_events(shards):
    flow = order_flow(6000, n_instruments=N_INST, seed=21)
    parts = [_on_shard(b, i % shards, shards) for i, b in enumerate(batches(flow, 1000))]
    parts.append(batch([new_order(N_INST + 5, "buy", 1, 100, order_id=1, account=1)]))  # unlisted: shard 0 rejects
    parts.append(batch([new_order(1, "buy", 1, 100, order_id=77, account=3)]))  # one order, the submit path's size
    out = []
    for n in (1, shards):
        with Exchange(instruments(N_INST), shards=n, clock=lambda: 5) as ex:
            stamped = [p.copy() for p in parts]
            events = [ex.process(p) for p in stamped]
            if n > 1:
                assert _rounds(ex) == 0  # no batch went through the crew
            out.append((np.concatenate(events), np.concatenate(stamped), ex.state_hash()))
    (ev1, cmds1, h1), (evn, cmdsn, hn) = out
    assert (ev1["kind"] == 3).sum() > 100  # the flow trades
    assert ev1[-2]["reason"] != 0  # the unlisted instrument's order was rejected
    assert np.array_equal(ev1, evn) and np.array_equal(cmds1, cmdsn) and h1 == hn


def test_a_mass_cancel_of_every_instrument_still_reaches_every_shard():
    recs = [new_order(i, "buy", 1, 100, order_id=i + 1, account=4) for i in range(N_INST)]
    got = []
    for n in (1, 2):
        with Exchange(instruments(N_INST), shards=n, clock=lambda: 5) as ex:
            ex.process(batch(recs))
            got.append((ex.process(batch([mass_cancel(4)])), ex.state_hash()))
    assert (got[0][0]["kind"] == got[1][0]["kind"]).all() and len(got[1][0]) == N_INST
    assert np.array_equal(got[0][0], got[1][0]) and got[0][1] == got[1][1]


@pytest.mark.parametrize("size", (1, 5, 64, 127, 128, 300))
def test_small_batches_run_on_the_caller_and_large_ones_on_the_crew_with_the_same_events(size):
    flow = order_flow(3000, n_instruments=N_INST, seed=22)
    out = []
    for n in (1, 2):
        with Exchange(instruments(N_INST), shards=n, clock=lambda: 5) as ex:
            events = np.concatenate([ex.process(b.copy()) for b in batches(flow, size)])
            if n == 2:
                crewed = _rounds(ex)
                big = [b for b in batches(flow, size) if len(b) >= exchange.SERIAL_BELOW]
                assert crewed == sum(len(set((b["instrument"] % 2).tolist())) > 1 for b in big)
                assert (crewed > 0) == (size >= exchange.SERIAL_BELOW)
            out.append((events, ex.state_hash()))
    assert np.array_equal(out[0][0], out[1][0]) and out[0][1] == out[1][1]


def test_replay_without_events_takes_the_same_paths_to_the_same_state():
    flow = order_flow(4000, n_instruments=N_INST, seed=23)
    with Exchange(instruments(N_INST), shards=1, clock=lambda: 5) as one:
        stamped = [one.sequencer.stamp(b.copy()) for b in batches(flow, 100)]
        stamped += [_on_shard(b, 1, 2) for b in stamped[:5]]
        for b in stamped:
            one.apply(b.copy(), events=False)
        for size in (3, 1000):  # small batches on the caller, large ones on the crew
            with Exchange(instruments(N_INST), shards=2, clock=lambda: 5) as two:
                for b in stamped:
                    for part in batches(b, size):
                        two.apply(part.copy(), events=False)
                assert two.state_hash() == one.state_hash()


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.lists(st.integers(1, 300), min_size=1, max_size=12))
def test_any_split_into_batches_gives_one_shards_events_on_2_and_4_shards(seed, sizes):
    """Random batch sizes mix the three paths (one shard's batch, a small one on the caller, the crew)."""
    from .flows import exchange, random_flow

    cmds = random_flow(seed, 1200)
    cuts = np.cumsum(sizes)
    cuts = cuts[cuts < len(cmds)]
    cmds[int(seed % 1000) + 50]["instrument"] = -1  # a mass cancel of every instrument somewhere
    cmds[int(seed % 1000) + 50]["kind"] = 4
    got = []
    for shards in (1, 2, 4):
        ex = exchange(5, shards)
        try:
            events = [ex.process(part.copy()) for part in np.split(cmds, cuts)]
            got.append((np.concatenate(events), ex.state_hash()))
        finally:
            ex.close()
    for events, h in got[1:]:
        assert np.array_equal(events, got[0][0]) and h == got[0][1]
