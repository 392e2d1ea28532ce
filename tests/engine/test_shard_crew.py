"""``Crew``, the Exchange's per-batch hand-off: results in order, errors after every call, no hang."""

from __future__ import annotations

import gc
import threading
import time

import numpy as np
import pytest

import shardex.engine.exchange as exchange
from shardex.crew import NO_WAIT, STARTED, Crew, await_all
from shardex.engine.exchange import Exchange
from shardex.engine.loadgen import batches, instruments, order_flow

SPINS = (0.0, 0.001)


@pytest.mark.parametrize("spin", SPINS)
def test_each_call_runs_on_its_own_thread_and_results_come_in_order(spin):
    with Crew(3, spin=spin) as crew:
        for r in range(50):
            got = crew.run([(lambda r=r, t=t: (r, t, threading.current_thread().name), ()) for t in range(4)])
            assert [g[:2] for g in got] == [(r, t) for t in range(4)]
            assert got[0][2] == threading.current_thread().name and len({g[2] for g in got}) == 4


@pytest.mark.parametrize("spin", SPINS)
def test_an_error_is_raised_after_every_call_is_done(spin):
    done = []

    def slow(t):
        time.sleep(0.05)
        done.append(t)

    def boom():
        raise ValueError("boom")

    with Crew(2, spin=spin) as crew:
        with pytest.raises(ValueError, match="boom"):
            crew.run([(boom, ()), (slow, (1,)), (slow, (2,))])
        assert sorted(done) == [1, 2]
        with pytest.raises(KeyError):
            crew.run([(lambda: 0, ()), (slow, (3,)), (lambda: {}["x"], ())])
        assert crew.run([(lambda: 1, ()), (lambda: 2, ()), (lambda: 3, ())]) == [1, 2, 3]  # usable after


def test_threads_that_went_to_sleep_are_woken():
    """Idle past the spin: the threads block, and the next round wakes them."""
    with Crew(2, spin=0.0005) as crew:
        for r in range(5):
            time.sleep(0.01)
            assert crew.run([(lambda r=r: r, ())] * 3) == [r] * 3


def _until(predicate, seconds=10.0):
    """Poll ``predicate`` until it holds or ``seconds`` pass (bounded); its last value."""
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.001)
    return predicate()


def test_wake_gets_sleeping_threads_polling_before_the_round_is_staged():
    """``wake`` ahead of a round: the threads poll again, so the round starts from compiled code, no wake-up."""
    with Crew(2, spin=1.0) as crew:
        from shardex.crew import _CALLER_SLEEPS

        crew.run([(lambda: None, ())] * 3)
        ch = crew._ch
        ch.flags[_CALLER_SLEEPS] = 1  # ends the threads' polling now instead of after a second
        assert _until(lambda: all(ch.sleeping))
        ch.flags[_CALLER_SLEEPS] = 0
        crew.wake()
        assert _until(lambda: not any(ch.sleeping))
        go = crew.stage([(lambda: "a", ()), (lambda: "b", ())])
        assert go is not STARTED  # nobody asleep: the caller's compiled code may start it
        assert crew.collect() == ["a", "b"]


def test_woken_threads_with_no_round_sleep_again_and_still_serve():
    with Crew(1, spin=0.05) as crew:
        crew.run([(lambda: None, ())] * 2)
        assert _until(lambda: all(crew._ch.sleeping))
        for _ in range(3):
            crew.wake()
            assert _until(lambda: not any(crew._ch.sleeping))  # woken: polling for a round
            assert _until(lambda: all(crew._ch.sleeping))  # polled its spin, no round came
        assert crew.run([(lambda: 1, ()), (lambda: 2, ())]) == [1, 2]


def test_a_long_call_makes_the_caller_block_and_be_woken():
    with Crew(1, spin=0.0005) as crew:
        assert crew.run([(lambda: "here", ()), (lambda: time.sleep(0.05) or "there", ())]) == ["here", "there"]


def test_a_round_started_from_compiled_code_or_not_at_all_still_runs():
    """``stage`` hands back the flag to set; if the caller never sets it, ``collect`` does."""
    with Crew(2, spin=0.001) as crew:
        for r in range(20):
            crew.stage([(lambda r=r: r + 1, ()), (lambda r=r: r + 2, ())])
            assert crew.collect() == [r + 1, r + 2]


def test_close_stops_the_threads_and_a_collected_crew_stops_them_too():
    before = threading.active_count()
    crew = Crew(3, spin=0.001)
    crew.run([(lambda: None, ())] * 4)
    crew.close()
    crew.close()  # twice is fine
    assert threading.active_count() == before
    with Crew(2, spin=0.001) as scoped:
        scoped.run([(lambda: None, ())] * 3)
    assert threading.active_count() == before  # leaving the block stopped them
    with pytest.raises(RuntimeError):
        crew.run([(lambda: None, ())] * 4)
    crew = Crew(3, spin=0.001)
    crew.run([(lambda: None, ())] * 4)
    threads = list(crew._threads)
    del crew
    gc.collect()
    for th in threads:
        th.join(timeout=5)
        assert not th.is_alive()


def test_a_closed_exchange_refuses_batches():
    ex = Exchange(instruments(4), shards=2)
    ex.close()
    with pytest.raises(RuntimeError, match="closed"):
        ex.process(order_flow(10, n_instruments=4))


@pytest.mark.parametrize("shards", (2, 3, 5))
def test_more_shards_than_cores_share_one_thread_per_core(shards, monkeypatch):
    """Shards beyond the cores run on the threads there are, in turn; the output is the same as one thread per shard."""
    import shardex.engine.exchange as exchange

    cmds = order_flow(20_000, n_instruments=8, seed=5)
    outs = []
    for cores in (64, 2, 1):
        monkeypatch.setattr(exchange, "usable_cores", lambda cores=cores: cores)
        with Exchange(instruments(8), shards=shards, clock=lambda: 1, order_capacity=16) as ex:
            threads = min(shards, cores)
            assert sorted(s for g in ex._groups for s in g) == list(range(shards)) and len(ex._groups) == threads
            assert (ex._crew is None) == (threads == 1)
            events = np.concatenate([ex.process(b) for b in batches(cmds[:15_000].copy(), 1000)])
            ex.apply(ex.sequencer.stamp(cmds[15_000:].copy()), events=False)
            outs.append((events.tobytes(), ex.state_hash()))
    assert outs[0] == outs[1] == outs[2]


def test_a_round_started_from_compiled_code_reaches_a_thread_that_stopped_polling():
    """The caller starts the round from compiled code and waits there for the thread's work: no call can wake it.

    The thread stopped polling long before the round was staged; it must not
    be asleep when the flag is set (the parallel merge and the settlement
    workers wait for each other inside their kernels).
    """
    from numba import njit

    from shardex.sync import cpu_pause, load_acquire, store_release, store_seq_cst

    @njit(nogil=True)
    def start_and_wait(flags, slot, value, done, spins):
        store_seq_cst(flags, slot, value)
        for _ in range(spins):
            if load_acquire(done, 0) == 1:
                return True
            cpu_pause()
        return False

    @njit(nogil=True)
    def work(done):
        store_release(done, 0, 1)

    done = np.zeros(8, dtype=np.int64)
    work(done)
    start_and_wait(np.zeros(1, dtype=np.int64), 0, 0, done, 1)  # compile both before the clock matters
    staged_while_polling = 0
    with Crew(1, spin=0.0005) as crew:
        for _ in range(5):
            crew.run([(lambda: None, ()), (lambda: None, ())])  # the thread now polls for 0.5 ms
            done[0] = 0
            go = crew.stage([(work, (done,))])
            time.sleep(0.02)  # long past the thread's polling
            if go is STARTED:  # the crew started the round itself
                assert crew.collect() == [None]
                continue
            staged_while_polling += 1
            assert start_and_wait(*go, done, 300_000_000)  # bounded: a lost wake-up fails, not hangs
            assert crew.collect() == [None]
    assert staged_while_polling


def test_the_finish_line_is_crossed_only_once_every_thread_has_posted_its_round():
    finished = []

    def slow(t):
        time.sleep(0.2)
        finished.append(t)

    assert await_all(*NO_WAIT)  # a call that waits for no thread; and compiled now, not while the round runs
    with Crew(2, spin=0.001) as crew:
        crew.stage([(slow, (1,)), (slow, (2,))])
        crew.go()
        flags, slots, round_, _ = crew.finish_line()
        assert not await_all(flags, slots, round_, 10)  # the calls are still sleeping
        assert await_all(flags, slots, round_, 1 << 40)  # bounded in fact by the calls' 200 ms
        assert sorted(finished) == [1, 2]  # both results are in before their threads post
        crew.collect()


def test_a_sharded_batch_leaves_no_crew_round_unfinished_and_the_same_events(monkeypatch):
    monkeypatch.setattr(exchange, "SERIAL_BELOW", 0)  # small batches through the crew too: many rounds
    cmds = order_flow(3000, n_instruments=8, seed=11)
    got = []
    for shards in (1, 2, 4):
        with Exchange(instruments(8), shards=shards, clock=lambda: 1) as ex:
            got.append(np.concatenate([ex.process(b) for b in batches(cmds, 16)]).tobytes())
            if ex._crew is not None:
                flags, slots, round_, _ = ex._crew.finish_line()
                assert round_ > 100 and (flags[slots] == round_).all()
    assert got[1] == got[0] and got[2] == got[0]
