"""``Exchange.process_many``: shards streaming through many batches give what ``process`` gives batch by batch.

Every test compares, per batch, the events, the stamps written into the
caller's commands and the state hash with one shard running ``process``
on each batch in turn; the growth tests also check that the threads really
stopped and went on (the crew's round counter).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shardex.engine.exchange as exchange
from shardex.engine.commands import batch, mass_cancel, new_order
from shardex.engine.durable import EngineHaltedError
from shardex.engine.exchange import Exchange
from shardex.engine.loadgen import batches, instruments, order_flow
from shardex.sync import usable_cores

from .flows import instruments as mixed_instruments
from .flows import random_flow

N_INST = 8

#: The growth tests count the crew's rounds, which only a machine with a second core has.
needs_crew = pytest.mark.skipif(usable_cores() < 2, reason="one core: process_many runs process batch by batch")


def _rounds(ex: Exchange) -> int:
    return ex._crew._round if ex._crew is not None else 0


def _one_by_one(parts: list[np.ndarray], listed, **options) -> tuple[list[np.ndarray], list[np.ndarray], str]:
    """One shard, ``process`` on each batch: (events per batch, stamped commands per batch, state hash)."""
    stamped = [p.copy() for p in parts]
    with Exchange(listed, shards=1, clock=lambda: 5, **options) as ex:
        return [ex.process(p) for p in stamped], stamped, ex.state_hash()


def _streamed(parts: list[np.ndarray], listed, shards: int, chunk: int = 0,
              **options) -> tuple[list[np.ndarray], list[np.ndarray], str, int]:
    """``process_many`` on ``chunk`` batches at a time (0: all): as ``_one_by_one``, and the crew's rounds."""
    stamped = [p.copy() for p in parts]
    with Exchange(listed, shards=shards, clock=lambda: 5, **options) as ex:
        events = []
        step = chunk or max(len(stamped), 1)
        for i in range(0, len(stamped), step):
            events += ex.process_many(stamped[i:i + step])
        return events, stamped, ex.state_hash(), _rounds(ex)


def _assert_same(one, many) -> None:
    ev1, cmds1, h1 = one
    evn, cmdsn, hn = many[:3]
    assert len(ev1) == len(evn)
    for a, b in zip(ev1, evn):
        assert np.array_equal(a, b)
    for a, b in zip(cmds1, cmdsn):
        assert np.array_equal(a, b)
    assert h1 == hn


@pytest.mark.parametrize("shards", (2, 3, 4))
@pytest.mark.parametrize("size", (1, 37, 512, 4096))
def test_process_many_gives_each_batch_the_events_process_gives_it(shards, size):
    flow = order_flow(20_000, n_instruments=N_INST, seed=31)
    parts = batches(flow, size)[:400]
    one = _one_by_one(parts, instruments(N_INST))
    assert sum((e["kind"] == 3).sum() for e in one[0]) > 20  # the flow trades
    _assert_same(one, _streamed(parts, instruments(N_INST), shards))


def test_process_many_goes_on_where_process_left_off_and_back():
    flow = order_flow(12_000, n_instruments=N_INST, seed=32)
    parts = batches(flow, 1000)
    one = _one_by_one(parts, instruments(N_INST))
    stamped = [p.copy() for p in parts]
    with Exchange(instruments(N_INST), shards=2, clock=lambda: 5) as ex:
        events = [ex.process(stamped[0]), *ex.process_many(stamped[1:6]), ex.process(stamped[6]),
                  *ex.process_many(stamped[7:])]
        assert ex.sequencer.next_seq == 12_001
        _assert_same(one, (events, stamped, ex.state_hash()))


@needs_crew
def test_a_shard_that_must_grow_stops_every_thread_and_all_go_on():
    """Pools of 16 orders grow many times mid-stream; each growth is a stop and one more round of the crew."""
    parts = batches(order_flow(30_000, n_instruments=N_INST, seed=33), 2048)
    one = _one_by_one(parts, instruments(N_INST), order_capacity=16)
    many = _streamed(parts, instruments(N_INST), 2, order_capacity=16)
    _assert_same(one, many)
    assert many[3] > 1  # the threads stopped for growth and went on


@needs_crew
def test_events_that_outgrow_their_slot_and_the_output_array_are_kept():
    """One market order sweeps 3,000 resting orders: far more events than its slot or the output array was given."""
    resting = [new_order(0, "sell", 1, 100 + i % 50, order_id=i + 1, account=1) for i in range(3000)]
    resting += [new_order(1, "sell", 1, 100, order_id=i + 1, account=2) for i in range(50)]
    sweep = batch([new_order(0, "buy", 3000, 0, order_id=1, account=9, type="market", tif="ioc"),
                   new_order(1, "buy", 50, 0, order_id=2, account=9, type="market", tif="ioc")])
    parts = [batch(resting[:1500]), batch(resting[1500:]), sweep, batch([mass_cancel(1)])]
    one = _one_by_one(parts, instruments(2))
    stamped = [p.copy() for p in parts]
    with Exchange(instruments(2), shards=2, clock=lambda: 5) as ex:
        events = [ex.process(stamped[0])]
        before = _rounds(ex)
        events += ex.process_many(stamped[1:])
        assert _rounds(ex) - before >= 3  # stopped for the slot, and for the output array
        assert ex._ring_slot >= 3000
        assert (events[2]["kind"] == 3).sum() == 3050
        _assert_same(one, (events, stamped, ex.state_hash()))


def test_one_shard_matches_a_sweep_that_outgrows_the_lists_array():
    resting = batch([new_order(0, "sell", 1, 100 + i % 50, order_id=i + 1, account=1) for i in range(3000)])
    sweep = batch([new_order(0, "buy", 3000, 0, order_id=1, account=9, type="market", tif="ioc")])
    parts = [resting[:10], resting[10:], sweep, resting[:0]]
    one = _one_by_one(parts, instruments(1))
    many = _streamed(parts, instruments(1), 1)
    assert (many[0][2]["kind"] == 3).sum() == 3000
    _assert_same(one, many)


@pytest.mark.parametrize("shards", (1, 2))
def test_events_held_by_the_caller_are_never_written_over(shards):
    """The list's array is written again only once no view of it is held."""
    parts = batches(order_flow(8000, n_instruments=N_INST, seed=35), 1000)
    with Exchange(instruments(N_INST), shards=shards, clock=lambda: 5) as ex:
        held = ex.process_many([p.copy() for p in parts[:4]])
        kept = [e.copy() for e in held]
        base = held[0].base
        again = ex.process_many([p.copy() for p in parts[4:6]])
        assert again[0].base is not base
        for a, b in zip(held, kept):
            assert np.array_equal(a, b)
        second = id(again[0].base)  # an id, not a reference: a reference would hold the array
        del held, again, a, b, base
        assert id(ex.process_many([p.copy() for p in parts[6:]])[0].base) == second  # nothing held: the same array


@pytest.mark.parametrize("shards", (2, 4))
def test_unlisted_instruments_empty_batches_and_mass_cancels_of_everything(shards):
    flow = random_flow(5, 3000)
    flow[100]["instrument"] = 99  # unlisted: shard 0 rejects it
    parts = [flow[:0], *batches(flow, 250), flow[:0], batch([mass_cancel(1), mass_cancel(2, -1)])]
    one = _one_by_one(parts, mixed_instruments(5))
    _assert_same(one, _streamed(parts, mixed_instruments(5), shards))


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.lists(st.integers(1, 300), min_size=1, max_size=12), st.integers(0, 6),
       st.sampled_from((2, 3, 4)))
def test_any_stream_of_batches_gives_one_shards_events(seed, sizes, chunk, shards):
    """Random flows (every command kind, mass cancels of every instrument), batch sizes and call sizes."""
    cmds = random_flow(seed, 1500)
    cuts = np.cumsum(sizes * 20)
    parts = np.split(cmds, cuts[cuts < len(cmds)])
    one = _one_by_one(parts, mixed_instruments(5), order_capacity=64)
    _assert_same(one, _streamed(parts, mixed_instruments(5), shards, chunk, order_capacity=64))


def test_the_same_array_twice_is_stamped_and_matched_twice_as_process_would():
    flow = order_flow(3000, n_instruments=N_INST, seed=36)
    same = flow[:1000].copy()
    parts = [flow[1000:2000].copy(), same, same, flow[2000:].copy()]
    with Exchange(instruments(N_INST), shards=1, clock=lambda: 5) as one:
        expected = [one.process(p.copy()) for p in parts]
    with Exchange(instruments(N_INST), shards=2, clock=lambda: 5) as two:
        got = two.process_many(parts)
        assert two.state_hash() == one.state_hash()
    for a, b in zip(expected, got):
        assert np.array_equal(a, b)
    assert same["seq"][0] == 2001  # the second time's stamps


def test_process_many_refuses_what_process_refuses():
    good = order_flow(100, n_instruments=2, seed=1)
    with Exchange(instruments(2), shards=2) as ex:
        with pytest.raises(TypeError, match="COMMAND_DTYPE"):
            ex.process_many([good, np.zeros(3, dtype=np.int64)])
        assert ex.sequencer.next_seq == 1  # nothing of the list ran
        assert ex.process_many([]) == []
    with pytest.raises(RuntimeError, match="closed"):
        ex.process_many([good])


def test_one_shard_and_a_single_batch_run_as_process(monkeypatch):
    calls = []
    monkeypatch.setattr(exchange, "run_group", lambda *a: calls.append(a))
    flow = order_flow(2000, n_instruments=N_INST, seed=34)
    for shards, parts in ((1, batches(flow, 500)), (2, [flow])):
        with Exchange(instruments(N_INST), shards=shards, clock=lambda: 5) as ex:
            assert len(ex.process_many([p.copy() for p in parts])) == len(parts)
    assert not calls


@pytest.mark.parametrize("shards", (1, 2))
@pytest.mark.parametrize("size", (300, 2048))  # a list of fewer, and of more, commands than JOURNAL_ALONGSIDE_FROM
def test_a_durable_engine_journals_a_whole_list_before_handing_out_its_events(tmp_path, shards, size):
    flow = order_flow(12_000, n_instruments=N_INST, seed=37)
    parts = batches(flow, size)
    one = _one_by_one(parts, instruments(N_INST))
    stamped = [p.copy() for p in parts]
    with Exchange.open(tmp_path, instruments(N_INST), shards=shards, clock=lambda: 5, snapshot_on_close=False,
                       snapshot_every=5000) as ex:
        events = ex.process_many(stamped[:1]) + ex.process_many(stamped[1:3]) + ex.process_many(stamped[3:])
        assert ex.durable_seq == 12_000
        _assert_same(one, (events, stamped, ex.state_hash()))
    with Exchange.open(tmp_path, shards=3) as again:  # replayed from the journal (and any snapshot)
        assert again.state_hash() == one[2]


def test_a_durable_engine_journals_the_same_array_twice_as_two_batches(tmp_path):
    flow = order_flow(3000, n_instruments=N_INST, seed=39)
    same = flow[:1000].copy()
    with Exchange(instruments(N_INST), shards=1, clock=lambda: 5) as one:
        expected = [one.process(p.copy()) for p in (flow[1000:], same, same)]
    with Exchange.open(tmp_path, instruments(N_INST), shards=2, clock=lambda: 5, snapshot_on_close=False) as ex:
        got = ex.process_many([flow[1000:].copy(), same, same])
        assert ex.durable_seq == 4000
    for a, b in zip(expected, got):
        assert np.array_equal(a, b)
    with Exchange.open(tmp_path, shards=1) as again:  # the journal holds seqs 1..4000 once each
        assert again.state_hash() == one.state_hash()


@pytest.mark.parametrize("size", (300, 2048))
def test_a_failed_fsync_hands_out_nothing_of_the_list(tmp_path, size, failing_fsync):
    parts = batches(order_flow(12_000, n_instruments=N_INST, seed=38), size)
    ex = Exchange.open(tmp_path, instruments(N_INST), shards=2, journal_options={"fsync": failing_fsync(3)},
                       snapshot_on_close=False)
    acked, handed = 0, []
    with pytest.raises(EngineHaltedError, match="halted"):
        for i in range(0, len(parts), 2):  # bounded: at most 20 lists
            handed += ex.process_many(parts[i:i + 2])
            acked = int(parts[i + 1]["seq"][-1])
    assert ex.halted and acked > 0 and int(handed[-1]["seq"][-1]) <= acked
    with pytest.raises(EngineHaltedError):
        ex.process_many(parts[:1])
    ex.close()
    with Exchange.open(tmp_path) as again:
        assert again.log.next_seq - 1 >= acked
