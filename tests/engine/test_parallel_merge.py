"""The engine's merge runs in chunks on the shard threads while they finish (``Exchange.apply``, ``merge_chunks``)."""

from __future__ import annotations

import numpy as np
import pytest

import shardex.engine.exchange as exchange
from shardex.engine.commands import batch, new_order
from shardex.engine.exchange import Exchange
from shardex.engine.loadgen import batches, instruments, order_flow

N_INST = 8


def _events(cmds, shards, batch_size):
    with Exchange(instruments(N_INST), shards=shards, clock=lambda: 1) as ex:
        return np.concatenate([ex.process(b.copy()) for b in batches(cmds, batch_size)]), ex.state_hash()


@pytest.fixture(scope="module")
def flow():
    cmds = order_flow(12_000, n_instruments=N_INST, seed=7)
    for pos in (100, 4000, 9999):  # mass cancels of every instrument: events from every shard
        cmds[pos]["kind"] = 4
        cmds[pos]["instrument"] = -1
    return cmds, _events(cmds, 1, 1000)


@pytest.mark.parametrize("chunk", (1, 7, 512, 100_000))
@pytest.mark.parametrize("shards", (2, 3))
def test_any_chunk_size_gives_the_one_shard_events(flow, chunk, shards, monkeypatch):
    cmds, (one, one_hash) = flow
    monkeypatch.setattr(exchange, "MERGE_CHUNK", chunk)
    events, h = _events(cmds, shards, 1000)
    assert np.array_equal(events, one) and h == one_hash


def test_a_shard_whose_events_outgrow_its_region_falls_back_to_the_k_way_merge():
    """One order sweeping 3,000 resting orders in a 2-command batch: far more events than the region holds."""
    makers = batch([new_order(i % 2, "sell", 1, 100 + i // 2, order_id=i + 1, account=1) for i in range(6000)])
    sweep = batch([new_order(0, "buy", 3000, 0, order_id=1, account=2, type="market", tif="ioc"),
                   new_order(1, "buy", 3000, 0, order_id=2, account=2, type="market", tif="ioc")])
    outs = []
    for shards in (1, 2):
        with Exchange(instruments(2), shards=shards, clock=lambda: 1) as ex:
            for part in batches(makers, 100):  # regions sized for batches of 100 commands
                ex.process(part.copy())
            if shards == 2:
                assert len(ex._ev_all) // 2 < 3000
            outs.append((ex.process(sweep.copy()), ex.state_hash()))
            if shards == 2:  # both shards left their regions mid-batch (and abandoned their marks)
                assert all(sh.events_buffer is not v for sh, v in zip(ex.shards, ex._ev_views))
                assert ex._marks[0] == ex._marks[ex._marks_width] == -1
    assert len(outs[0][0]) > 6000
    assert np.array_equal(outs[0][0], outs[1][0]) and outs[0][1] == outs[1][1]


@pytest.mark.parametrize("bad", [0, 1])
def test_a_shard_that_fails_mid_batch_does_not_leave_the_merge_waiting(monkeypatch, bad):
    cmds = order_flow(2000, n_instruments=N_INST, seed=3)
    with Exchange(instruments(N_INST), shards=2, clock=lambda: 1) as ex:
        ex.process(cmds[:1000].copy())
        real = exchange.process_then_merge

        def failing(*args, **kwargs):
            raise MemoryError("no room for the order pool")

        def fused(*args):  # shard ``bad`` fails, the other waits for its marks in the merge
            if np.array_equal(args[3], ex.shards[bad].state.handles()):  # that shard's state table
                failing()
            return real(*args)

        monkeypatch.setattr(ex.shards[bad], "process_into", failing)  # the path with more shards than cores
        monkeypatch.setattr(exchange, "process_then_merge", fused)
        with pytest.raises(MemoryError, match="order pool"):
            ex.process(cmds[1000:].copy())
