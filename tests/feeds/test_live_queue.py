"""ConflatingQueue: book updates conflate per key, trades are delivered or their loss is explicit."""

from __future__ import annotations

import asyncio

import pytest

from shardex.feeds.live.backoff import Backoff
from shardex.feeds.live.events import BookDelta, Overflow, Trade
from shardex.feeds.live.queue import ConflatingQueue, QueueClosed


def _trade(i: int) -> Trade:
    return Trade("binance-usdm", "BTCUSDT", i, "1", "1", False, 0, 0)


def test_latest_replaces_in_place_and_lazy_values_are_built_once_when_taken():
    async def go():
        q = ConflatingQueue(maxsize=10)
        built = []
        await q.put(_trade(1))
        for v in range(5):
            q.put_latest("book", lambda folded, v=v: built.append((v, folded)) or ("state", v, folded), lazy=True)
        await q.put(_trade(2))
        q.put_latest("bbo", "b1")
        q.put_latest("bbo", "b2")
        out = [q.get_nowait() for _ in range(4)]
        return out, built, q.get_nowait(), q.stats()

    out, built, rest, stats = asyncio.run(go())
    assert out == [_trade(1), ("state", 4, 5), _trade(2), "b2"]  # the book kept its place, holding the latest
    assert built == [(4, 5)] and rest is None
    assert stats["conflated"] == 5 and stats["trades_out"] == 2


def test_discard_withdraws_pending_book_and_lazy_none_is_skipped():
    q = ConflatingQueue()
    q.put_latest("book", lambda f: None, lazy=True)
    q.put_latest("book2", "x")
    q.put_latest("book3", "y")
    assert q.discard("book2", "nothing") == 1
    assert q.get_nowait() == "y" and q.get_nowait() is None


def test_delta_merge_is_exact_for_absolute_levels():
    q = ConflatingQueue()
    q.put_delta("d", BookDelta("k", 1, 2, {"10": "1", "11": "2"}, {"12": "1"}, 0, 0))
    q.put_delta("d", BookDelta("k", 3, 5, {"10": "0", "9": "4"}, {}, 7, 8))
    d = q.get_nowait()
    assert (d.first_id, d.last_id, d.merged) == (1, 5, 2)
    assert d.bids == {"10": "0", "11": "2", "9": "4"} and d.asks == {"12": "1"} and d.recv_ns == 8


def test_block_policy_waits_for_room_and_loses_nothing():
    async def go():
        q = ConflatingQueue(maxsize=3, policy="block")

        async def produce():
            for i in range(50):
                await q.put(_trade(i))
                q.put_latest("book", i)
            q.close()

        async def consume():
            got = []
            async for ev in q:
                got.append(ev)
                await asyncio.sleep(0)
            return got

        _, got = await asyncio.wait_for(asyncio.gather(produce(), consume()), 10)
        return q, got

    q, got = asyncio.run(go())
    assert [e.trade_id for e in got if isinstance(e, Trade)] == list(range(50))
    assert q.producer_waits > 0 and q.trades_dropped == 0
    assert [e for e in got if not isinstance(e, Trade)][-1] == 49  # the latest book state is never lost


def test_overflow_policy_drops_trades_explicitly():
    async def go():
        q = ConflatingQueue(maxsize=2, policy="overflow")
        for i in range(6):
            await q.put(_trade(i))
        return q, [q.get_nowait() for _ in range(3)], q.get_nowait()

    q, got, rest = asyncio.run(go())
    assert got == [_trade(0), _trade(1), Overflow(4, 2, 5)] and rest is None
    assert q.trades_dropped == 4 and q.trades_in == 6 and q.trades_out == 2


def test_closed_queue_refuses_puts_and_ends_iteration():
    async def go():
        q = ConflatingQueue()
        await q.put(_trade(1))
        q.close()
        with pytest.raises(QueueClosed):
            await q.put(_trade(2))
        got = [e async for e in q]
        with pytest.raises(QueueClosed):
            await q.get()
        return got

    assert asyncio.run(go()) == [_trade(1)]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="policy"):
        ConflatingQueue(policy="drop")
    with pytest.raises(ValueError, match="maxsize"):
        ConflatingQueue(maxsize=0)
    with pytest.raises(ValueError, match="jitter"):
        Backoff(jitter=1.5)


def test_backoff_is_exponential_capped_and_seeded():
    b = Backoff(initial=0.1, factor=2, cap=0.5)
    assert [b.next_delay() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    b.reset()
    assert b.next_delay() == 0.1
    j1, j2 = Backoff(jitter=0.2, seed=7), Backoff(jitter=0.2, seed=7)
    s1 = [j1.next_delay() for _ in range(4)]
    assert s1 == [j2.next_delay() for _ in range(4)]
    assert all(0.08 <= d <= 0.96 for d in s1)
