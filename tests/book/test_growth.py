"""Growth paths: order pool, level pool, ladders, index and event buffer, starting from tiny capacities."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from .helpers import batch, cancel, check, l3_rows, make_exchange, new, run


def test_pool_and_ladder_grow_from_the_smallest_capacity():
    ex = make_exchange(order_capacity=1)
    st = ex.shards[0].state
    cap0, width0, hcap0 = st.capacity, st.lad_key.shape[1], st.index.shape[0]
    n = 300
    # one batch: many distinct levels on both sides, every one a new pool row, ladder entry and index key
    recs = [new("buy", 1 + i % 3, 1000 - i, oid=i, acct=i % 4) for i in range(n)]
    recs += [new("sell", 2, 2000 + i, oid=n + i, acct=i % 4) for i in range(n)]
    out = run(ex, *recs)
    assert len(out) == 2 * n and all(line.startswith("ACCEPTED") for line in out)
    st = ex.shards[0].state
    assert st.capacity > cap0 and st.lad_key.shape[1] > width0 and st.index.shape[0] > hcap0
    bids, asks = ex.depth_ticks(0, 1000)
    assert len(bids) == n and len(asks) == n
    assert bids[:, 0].tolist() == [1000 - i for i in range(n)]
    assert asks[:, 0].tolist() == [2000 + i for i in range(n)]
    # a sweep of the whole ask side in one command
    out = run(ex, new("buy", 2 * n, 2000 + n, oid=10**6, acct=9))
    assert len(out) == 1 + n and ex.stats(0)["volume"] == 2 * n
    assert l3_rows(ex)[0] == (0, 1000, 0, 0, 1, 0)


def test_grown_and_restored_rows_start_on_a_cache_line():
    # A 64-byte order row must sit in one cache line: the kernels prefetch
    # rows and index cells by their first byte.
    from shardex.book.layout import BookState
    from shardex.lowlevel import is_aligned

    ex = make_exchange(order_capacity=1)
    run(ex, *[new("buy", 1, 1000 - i, oid=i, acct=1) for i in range(200)])
    st = ex.shards[0].state
    for name in ("orders", "ocold", "levels", "index", "scratch"):
        assert is_aligned(getattr(st, name)), name
    restored = BookState.from_arrays(st.copy_arrays())
    assert all(is_aligned(getattr(restored, name)) for name in BookState.ARRAYS)
    assert all((getattr(restored, n) == getattr(st, n)).all() for n in BookState.ARRAYS)


def test_index_survives_churn_with_tombstones():
    ex = make_exchange(order_capacity=1)
    for round_ in range(6):
        recs = [new("buy", 1, 100 + (i % 7), oid=round_ * 1000 + i, acct=i % 5) for i in range(120)]
        run(ex, *recs)
        run(ex, *[cancel(0, round_ * 1000 + i, account=i % 5) for i in range(0, 120, 2)])
    assert ex.stats(0)["orders"] == 6 * 60
    # every survivor can still be found (cancelled through the index)
    recs = [cancel(0, r * 1000 + i, account=i % 5) for r in range(6) for i in range(1, 120, 2)]
    out = run(ex, *recs)
    assert all(line.endswith("USER_CANCEL") for line in out) and len(out) == 360
    assert ex.stats(0)["orders"] == 0 and l3_rows(ex) == []


def test_event_buffer_grows_inside_one_command():
    ex = make_exchange(order_capacity=1)
    n = 5000  # more trades than the shard's initial 4096-event buffer, from one command
    for k in range(0, n, 500):
        ex.process(batch([new("sell", 1, 100 + (k + j) % 3, oid=k + j, acct=1) for j in range(500)]))
    check(ex)
    assert len(ex.shards[0].events_buffer) <= 4096
    ev = ex.process(batch([new("buy", n + 1, 102, oid=1, acct=2)]))
    check(ex)
    assert len(ev) == 1 + n
    assert ev["trade_id"][1:].tolist() == list(range(1, n + 1))
    assert l3_rows(ex) == [(0, 102, 1, 2, 1, 0)]


def test_event_buffer_grows_for_icebergs_and_stops():
    ex = make_exchange(order_capacity=1)
    run(ex, *[new("sell", 200, 100, oid=i, acct=1, display_qty=1) for i in range(20)])
    run(ex, *[new("buy", 1, oid=100 + i, acct=3, type="stop_market", tif="ioc", stop_price=100) for i in range(50)])
    ev = ex.process(batch([new("buy", 3000, 100, oid=1, acct=2)]))
    check(ex)
    # 3000 trades and a refill after nearly each, then 50 triggered stops and their trades
    assert (ev["kind"] == 3).sum() == 3050 and (ev["kind"] == 6).sum() == 50
    assert ex.stats(0)["volume"] == 3050


def _run_script(body: str) -> subprocess.CompletedProcess:
    script = textwrap.dedent("""
        from shardex import Exchange, Instrument, Matching
        from shardex.book.check import check_shard
        from shardex.engine.commands import amend, batch, new_order
        """) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)


def test_prorata_cancel_both_taker_against_many_own_orders_fits_the_event_buffer():
    # run in a child process: the bug corrupts memory
    res = _run_script("""
        ex = Exchange([Instrument(0, "X", matching=Matching.PRO_RATA)], clock=lambda: 1)
        for k in range(0, 5000, 1000):
            ex.process(batch([new_order(0, "sell", 1, 100, order_id=1 + k + j, account=1) for j in range(1000)]))
        ev = ex.process(batch([new_order(0, "buy", 1, 100, order_id=0, account=1, stp="cancel_both")]))
        check_shard(ex.shards[0])
        print(len(ev))
    """)
    assert res.returncode == 0, res.stderr[-500:]
    assert res.stdout.split() == ["5002"]  # ACCEPTED, 5000 maker cancels, the taker's cancel


def test_amend_of_a_cancel_maker_order_sweeping_many_own_orders_fits_the_event_buffer():
    res = _run_script("""
        ex = Exchange([Instrument(0, "X")], clock=lambda: 1)
        ex.process(batch([new_order(0, "buy", 1, 99, order_id=0, account=1, stp="cancel_maker")]))
        for k in range(0, 5000, 1000):
            ex.process(batch([new_order(0, "sell", 1, 100, order_id=1 + k + j, account=1) for j in range(1000)]))
        ev = ex.process(batch([amend(0, 0, account=1, qty=1, price=100)]))
        check_shard(ex.shards[0])
        print(len(ev))
    """)
    assert res.returncode == 0, res.stderr[-500:]
    assert res.stdout.split() == ["5001"]  # AMENDED, 5000 maker cancels (the order then rests)
