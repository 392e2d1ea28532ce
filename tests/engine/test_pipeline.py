"""The staged pipeline: same events as process(), stages overlap, failures halt in order."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from shardex.engine.durable import EngineHaltedError
from shardex.engine.exchange import Exchange
from shardex.engine.loadgen import batches, instruments, order_flow
from shardex.engine.pipeline import Pipeline

N_INST = 8


def _outcomes(futures) -> list[str]:
    """Each future's result type name, or the name of the exception it raised."""
    results = []
    for f in futures:
        try:
            results.append(type(f.result(timeout=60)).__name__)
        except BaseException as exc:  # noqa: BLE001
            results.append(type(exc).__name__)
    return results


def _stream(count=30_000, seed=5):
    return batches(order_flow(count, n_instruments=N_INST, seed=seed), 1024)


def test_pipeline_gives_the_events_of_process():
    serial = Exchange(instruments(N_INST), shards=2, clock=lambda: 7)
    want = [serial.process(b) for b in _stream()]
    ex = Exchange(instruments(N_INST), shards=2, clock=lambda: 7)
    published = []
    with Pipeline(ex, publish=published.append, depth=2) as p:
        got = list(p.run(_stream()))
    assert len(got) == len(want) == len(published)
    for g, w, pub in zip(got, want, published):
        assert np.array_equal(g, w) and pub is g
    assert ex.state_hash() == serial.state_hash()


def test_durable_pipeline_journals_then_recovers(tmp_path):
    with Exchange.open(tmp_path, instruments(N_INST), shards=2, snapshot_every=8000, snapshot_on_close=False) as ex:
        with ex.pipeline(depth=3) as p:
            with pytest.raises(RuntimeError, match="pipeline is open"):
                ex.process(_stream(10)[0])
            events = list(p.run(_stream()))
        assert sum(len(e) for e in events) > 30_000
        assert ex.log.next_seq == 30_001
        live = ex.state_hash()
        ex._wait_snapshot()
        assert ex.snapshots.list()[0][0] > 0  # periodic snapshots ran from the matching stage
    with Exchange.open(tmp_path, shards=4) as again:
        assert again.state_hash() == live


class _SlowRisk:
    """Records when each batch is in the risk stage, and takes its time."""

    def __init__(self):
        self.spans = []

    def check(self, commands):
        t0 = time.perf_counter()
        time.sleep(0.02)
        self.spans.append(("risk", int(commands["seq"][0]), t0, time.perf_counter()))
        return commands


class _SlowSettlement:
    def __init__(self, spans):
        self.spans = spans

    def settle(self, commands, events):
        t0 = time.perf_counter()
        time.sleep(0.02)
        self.spans.append(("settle", int(commands["seq"][0]), t0, time.perf_counter()))
        return events


def test_stages_overlap_in_time_but_never_reorder():
    risk = _SlowRisk()
    settle = _SlowSettlement(risk.spans)
    ex = Exchange(instruments(N_INST), shards=1, clock=lambda: 1)
    stream = batches(order_flow(8 * 256, n_instruments=N_INST), 256)
    t0 = time.perf_counter()
    with Pipeline(ex, risk=risk, settlement=settle, depth=4) as p:
        out = list(p.run(stream))
    elapsed = time.perf_counter() - t0
    firsts = [int(e["seq"][0]) for e in out]
    assert firsts == sorted(firsts) == [1 + 256 * k for k in range(8)]
    for stage in ("risk", "settle"):
        seqs = [s for name, s, _, _ in risk.spans if name == stage]
        assert seqs == sorted(seqs)
    # Some risk span of a later batch overlaps a settlement span of an earlier one.
    r = {s: (a, b) for name, s, a, b in risk.spans if name == "risk"}
    st = {s: (a, b) for name, s, a, b in risk.spans if name == "settle"}
    assert any(r[later][0] < st[earlier][1] and st[earlier][0] < r[later][1]
               for earlier in st for later in r if later > earlier)
    assert elapsed < 16 * 0.02 + 5  # not fully serial twice over (loose: the machine is shared)


def test_a_failing_stage_halts_the_pipeline_in_order():
    go = threading.Event()

    class Boom:
        def __init__(self):
            self.n = 0

        def check(self, commands):
            go.wait(60)  # let every batch be submitted before the failure
            self.n += 1
            if self.n == 3:
                raise ValueError("risk model exploded")
            return commands

    ex = Exchange(instruments(N_INST), shards=1, clock=lambda: 1)
    p = Pipeline(ex, risk=Boom(), depth=8)
    futures = [p.submit(b) for b in batches(order_flow(6 * 512, n_instruments=N_INST), 512)]
    go.set()
    results = _outcomes(futures)
    assert results[:2] == ["ndarray", "ndarray"]
    assert results[2] == "ValueError"
    assert set(results[3:]) == {"EngineHaltedError"}
    with pytest.raises(EngineHaltedError):
        p.submit(_stream(10)[0])
    p.close()


def test_failed_fsync_in_the_journal_stage_halts(tmp_path):
    lock = threading.Lock()
    calls = {"n": 0}

    def flaky(fd):
        with lock:
            calls["n"] += 1
            if calls["n"] > 5:
                raise OSError(5, "Input/output error")
        import os
        os.fdatasync(fd)

    ex = Exchange.open(tmp_path, instruments(N_INST), journal_options={"fsync": flaky}, snapshot_on_close=False)
    with ex.pipeline() as p:
        with pytest.raises(EngineHaltedError):
            list(p.run(_stream()))
    assert ex.halted
    ex.close()


def _held_risk(go: threading.Event):
    """A risk stage that holds every batch until ``go``, so that batches queue up for matching behind it."""

    class Held:
        def check(self, commands):
            go.wait(60)
            return commands

    return Held()


def test_the_matching_stage_takes_every_queued_batch_through_the_shards_at_once():
    serial = Exchange(instruments(N_INST), shards=2, clock=lambda: 7)
    want = [serial.process(b) for b in _stream()]
    ex = Exchange(instruments(N_INST), shards=2, clock=lambda: 7)
    lots = []
    many = ex._many

    def recorded(cmds, stamp):
        if not lots:
            time.sleep(0.2)  # the first lot takes its time: the next batches queue up behind it
        lots.append(len(cmds))
        return many(cmds, stamp)

    ex._many = recorded
    with Pipeline(ex, depth=8) as p:
        got = list(p.run(_stream()))
    assert sum(lots) == len(want) and max(lots) > 1
    for g, w in zip(got, want):
        assert np.array_equal(g, w)
    assert ex.state_hash() == serial.state_hash()


def test_a_failing_lot_in_matching_fails_its_first_batch_and_halts_the_rest():
    ex = Exchange(instruments(N_INST), shards=2, clock=lambda: 1)
    many = ex._many

    def failing(cmds, stamp):
        if int(cmds[-1]["seq"][-1]) > 1024:  # any lot past the first two batches
            raise ValueError("matching exploded")
        return many(cmds, stamp)

    ex._many = failing
    go = threading.Event()
    go.set()
    p = Pipeline(ex, risk=_held_risk(go), depth=8)
    parts = batches(order_flow(8 * 512, n_instruments=N_INST), 512)
    first = [p.submit(b) for b in parts[:2]]
    assert all(len(f.result(timeout=60)) for f in first)
    go.clear()
    futures = [p.submit(b) for b in parts[2:]]
    go.set()
    results = _outcomes(futures)
    assert results[0] == "ValueError"
    assert set(results[1:]) == {"EngineHaltedError"}
    p.close()
