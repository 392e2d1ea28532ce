"""Lazy cancels: a cancelled order's row stays linked, dead, until a walk or its level's end frees it.

Nothing observable may depend on the dead rows: events, L2, L3 and the
state hash are those of an engine that unlinks at once, and every check of
``check_shard`` (which counts the dead rows against ``L_DEAD`` and the pool)
holds after every batch.
"""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from shardex.book.layout import COMPACT_SLACK, L_DEAD, M_DEAD_ORDERS

from .helpers import FIFO, PRO_RATA, amend, cancel, l3_rows, make_exchange, mass_cancel, new, run


def _dead(ex) -> int:
    return int(ex.shards[0].state.meta[M_DEAD_ORDERS])


def _bids_at_100(ex, n, acct=1):
    run(ex, *[new("buy", 5, 100, oid=i, acct=acct) for i in range(1, n + 1)])


def test_cancel_leaves_a_dead_row_that_views_skip():
    ex = make_exchange()
    _bids_at_100(ex, 3)
    assert run(ex, cancel(0, 2, account=1)) == ["CANCELLED B 1:2 px=100 q=5 lv=0 USER_CANCEL"]
    assert _dead(ex) == 1
    assert [r[2] for r in l3_rows(ex)] == [1, 3]
    assert ex.depth_ticks(0)[0].tolist() == [[100, 10, 2]]


def test_the_match_walk_frees_dead_rows_it_passes():
    ex = make_exchange()
    _bids_at_100(ex, 3)
    run(ex, cancel(0, 1, account=1), cancel(0, 2, account=1))
    assert _dead(ex) == 2
    assert run(ex, new("sell", 2, 100, oid=9, acct=2)) == [
        "ACCEPTED S 2:9 px=100 q=2 lv=2",
        "TRADE S 2:9 px=100 q=2 lv=0 vs 1:3 mlv=3 t=1",
    ]
    assert _dead(ex) == 0


def test_a_level_whose_last_live_order_leaves_frees_its_dead_rows():
    for last in ("cancel", "fill", "amend"):
        ex = make_exchange()
        _bids_at_100(ex, 4)
        run(ex, cancel(0, 2, account=1), cancel(0, 3, account=1), cancel(0, 4, account=1))
        assert _dead(ex) == 3
        if last == "cancel":
            run(ex, cancel(0, 1, account=1))
        elif last == "fill":
            run(ex, new("sell", 5, 100, oid=9, acct=2))
        else:
            run(ex, amend(0, 1, account=1, qty=5, price=99))
        assert _dead(ex) == 0, last
        assert ex.depth_ticks(0)[0].tolist() == ([[99, 5, 1]] if last == "amend" else [])


def test_a_level_is_compacted_when_its_dead_rows_pile_up():
    ex = make_exchange()
    _bids_at_100(ex, 1)
    for oid in range(2, 200):
        run(ex, new("buy", 1, 100, oid=oid, acct=1), cancel(0, oid, account=1))
        assert _dead(ex) <= 1 + COMPACT_SLACK
    state = ex.shards[0].state
    assert int(state.levels[state.lad_lv[0, 0], L_DEAD]) == _dead(ex)


def test_stp_cancel_maker_that_closes_a_level_stops_before_the_freed_rows():
    # queue: own order, then a dead row; cancelling the own order closes the
    # level and frees the dead row the walk would have gone to next.
    ex = make_exchange()
    run(ex, new("sell", 5, 100, oid=1, acct=7), new("sell", 5, 100, oid=2, acct=8), new("sell", 5, 101, oid=3, acct=8))
    run(ex, cancel(0, 2, account=8))
    assert run(ex, new("buy", 5, 101, oid=4, acct=7, stp="cancel_maker")) == [
        "ACCEPTED B 7:4 px=101 q=5 lv=5",
        "CANCELLED S 7:1 px=100 q=5 lv=0 STP_CANCEL",
        "TRADE B 7:4 px=101 q=5 lv=0 vs 8:3 mlv=0 t=1",
    ]
    assert _dead(ex) == 0


def test_pro_rata_ignores_dead_rows():
    ex = make_exchange(PRO_RATA)
    run(ex, new("sell", 10, 100, oid=1, acct=1), new("sell", 30, 100, oid=2, acct=2), new("sell", 10, 100, oid=3, acct=3))
    run(ex, cancel(0, 2, account=2))
    assert run(ex, new("buy", 10, 100, oid=9, acct=4)) == [
        "ACCEPTED B 4:9 px=100 q=10 lv=10",
        "TRADE B 4:9 px=100 q=5 lv=5 vs 1:1 mlv=5 t=1",
        "TRADE B 4:9 px=100 q=5 lv=0 vs 3:3 mlv=5 t=2",
    ]
    assert _dead(ex) == 0


def test_fok_and_mass_cancel_skip_dead_rows():
    ex = make_exchange()
    run(ex, new("sell", 5, 100, oid=1, acct=1), new("sell", 5, 100, oid=2, acct=1))
    run(ex, cancel(0, 1, account=1))
    assert run(ex, new("buy", 6, 100, oid=9, acct=2, tif="fok"))[-1].endswith("FOK_NOT_FILLABLE")
    assert run(ex, mass_cancel(1, 0)) == ["CANCELLED S 1:2 px=100 q=5 lv=0 MASS_CANCEL"]
    assert _dead(ex) == 0


ops = st.lists(st.tuples(st.sampled_from(["new", "new", "cancel", "take"]), st.integers(0, 3),
                         st.integers(98, 102), st.integers(1, 6), st.integers(1, 40)), min_size=1, max_size=120)


@settings(max_examples=60, deadline=None)
@given(ops, st.sampled_from([FIFO, PRO_RATA]))
def test_dead_rows_never_show_and_never_leak(flow, matching):
    """Random adds, cancels and takers: the checker (dead counts, pool accounting) holds after every batch."""
    ex = make_exchange(matching)
    for kind, acct, price, qty, oid in flow:
        if kind == "new":
            run(ex, new("buy" if price < 100 else "sell", qty, price, oid=oid, acct=acct))
        elif kind == "cancel":
            run(ex, cancel(0, oid, account=acct))
        else:
            run(ex, new("sell" if price < 100 else "buy", qty, price, oid=1000 + oid, acct=acct, tif="ioc"))
    rows = l3_rows(ex)
    assert all(r[4] > 0 for r in rows)
    assert sum(r[3] >= 0 for r in rows) == len(rows)
