"""Golden event streams for every order type: limit GTC/IOC/FOK, market IOC/FOK, post-only, iceberg, stops."""

from __future__ import annotations

import pytest

from .helpers import l3_rows, make_exchange, new, run


def book_with_asks():
    """Asks: 1:1 5@101, 1:2 5@100 (best), 1:3 4@102."""
    ex = make_exchange()
    run(ex, new("sell", 5, 101, oid=1, acct=1), new("sell", 5, 100, oid=2, acct=1), new("sell", 4, 102, oid=3, acct=1))
    return ex


# -- limit ---------------------------------------------------------------------------
def test_limit_gtc_rests_when_not_crossing():
    ex = make_exchange()
    assert run(ex, new("buy", 5, 99, oid=1, acct=1)) == ["ACCEPTED B 1:1 px=99 q=5 lv=5"]
    assert l3_rows(ex) == [(0, 99, 1, 1, 5, 0)]


def test_limit_gtc_sweeps_levels_best_first_at_maker_prices_and_rests_remainder():
    ex = book_with_asks()
    assert run(ex, new("buy", 12, 101, oid=9, acct=2)) == [
        "ACCEPTED B 2:9 px=101 q=12 lv=12",
        "TRADE B 2:9 px=100 q=5 lv=7 vs 1:2 mlv=0 t=1",
        "TRADE B 2:9 px=101 q=5 lv=2 vs 1:1 mlv=0 t=2",
    ]
    # remainder rests at its own limit, not at the last trade price
    assert l3_rows(ex) == [(0, 101, 9, 2, 2, 0), (1, 102, 3, 1, 4, 0)]
    assert ex.stats(0) == {"last_price": 101, "trades": 2, "volume": 10, "orders": 2, "stops": 0}


def test_fifo_time_priority_within_a_level():
    ex = make_exchange()
    run(ex, new("sell", 3, 100, oid=1, acct=1), new("sell", 3, 100, oid=2, acct=2), new("sell", 3, 100, oid=3, acct=3))
    assert run(ex, new("buy", 5, 100, oid=1, acct=4)) == [
        "ACCEPTED B 4:1 px=100 q=5 lv=5",
        "TRADE B 4:1 px=100 q=3 lv=2 vs 1:1 mlv=0 t=1",
        "TRADE B 4:1 px=100 q=2 lv=0 vs 2:2 mlv=1 t=2",
    ]
    assert l3_rows(ex) == [(1, 100, 2, 2, 1, 0), (1, 100, 3, 3, 3, 0)]


def test_limit_ioc_fills_what_it_can_and_cancels_the_rest():
    ex = book_with_asks()
    assert run(ex, new("buy", 8, 100, oid=9, acct=2, tif="ioc")) == [
        "ACCEPTED B 2:9 px=100 q=8 lv=8",
        "TRADE B 2:9 px=100 q=5 lv=3 vs 1:2 mlv=0 t=1",
        "CANCELLED B 2:9 px=100 q=3 lv=0 IOC_REMAINDER",
    ]
    assert [r[2] for r in l3_rows(ex)] == [1, 3]


def test_limit_ioc_without_a_cross_is_cancelled_whole():
    ex = book_with_asks()
    assert run(ex, new("buy", 2, 99, oid=9, acct=2, tif="ioc")) == [
        "ACCEPTED B 2:9 px=99 q=2 lv=2",
        "CANCELLED B 2:9 px=99 q=2 lv=0 IOC_REMAINDER",
    ]


def test_limit_fok_fills_in_full_across_levels():
    ex = book_with_asks()
    assert run(ex, new("buy", 10, 101, oid=9, acct=2, tif="fok")) == [
        "ACCEPTED B 2:9 px=101 q=10 lv=10",
        "TRADE B 2:9 px=100 q=5 lv=5 vs 1:2 mlv=0 t=1",
        "TRADE B 2:9 px=101 q=5 lv=0 vs 1:1 mlv=0 t=2",
    ]


def test_limit_fok_not_fillable_is_rejected_and_leaves_no_trace():
    ex = book_with_asks()
    before = ex.state_hash()
    assert run(ex, new("buy", 11, 101, oid=9, acct=2, tif="fok")) == [
        "REJECTED B 2:9 px=101 q=11 lv=0 FOK_NOT_FILLABLE",
    ]
    assert ex.state_hash() == before
    # the order id is free again
    assert run(ex, new("buy", 1, 90, oid=9, acct=2))[0] == "ACCEPTED B 2:9 px=90 q=1 lv=1"


# -- market --------------------------------------------------------------------------
def test_market_ioc_walks_the_book_and_cancels_remainder():
    ex = book_with_asks()
    assert run(ex, new("buy", 20, oid=9, acct=2, tif="ioc")) == [
        "ACCEPTED B 2:9 px=0 q=20 lv=20",
        "TRADE B 2:9 px=100 q=5 lv=15 vs 1:2 mlv=0 t=1",
        "TRADE B 2:9 px=101 q=5 lv=10 vs 1:1 mlv=0 t=2",
        "TRADE B 2:9 px=102 q=4 lv=6 vs 1:3 mlv=0 t=3",
        "CANCELLED B 2:9 px=0 q=6 lv=0 IOC_REMAINDER",
    ]
    assert l3_rows(ex) == []


def test_market_sell_hits_bids_best_first():
    ex = make_exchange()
    run(ex, new("buy", 2, 98, oid=1, acct=1), new("buy", 2, 99, oid=2, acct=1))
    assert run(ex, new("sell", 3, oid=9, acct=2, tif="ioc")) == [
        "ACCEPTED S 2:9 px=0 q=3 lv=3",
        "TRADE S 2:9 px=99 q=2 lv=1 vs 1:2 mlv=0 t=1",
        "TRADE S 2:9 px=98 q=1 lv=0 vs 1:1 mlv=1 t=2",
    ]


def test_market_ioc_without_liquidity_is_accepted_then_cancelled_no_liquidity():
    ex = make_exchange()
    assert run(ex, new("buy", 4, oid=9, acct=2, tif="ioc")) == [
        "ACCEPTED B 2:9 px=0 q=4 lv=4",
        "CANCELLED B 2:9 px=0 q=4 lv=0 NO_LIQUIDITY",
    ]
    # liquidity on the same side only is still no liquidity
    run(ex, new("sell", 4, 100, oid=1, acct=1))
    assert run(ex, new("sell", 4, oid=10, acct=2, tif="ioc")) == [
        "ACCEPTED S 2:10 px=0 q=4 lv=4",
        "CANCELLED S 2:10 px=0 q=4 lv=0 NO_LIQUIDITY",
    ]


def test_market_fok_fills_in_full_or_is_rejected():
    ex = book_with_asks()
    assert run(ex, new("buy", 15, oid=9, acct=2, tif="fok")) == [
        "REJECTED B 2:9 px=0 q=15 lv=0 FOK_NOT_FILLABLE",
    ]
    assert run(ex, new("buy", 14, oid=9, acct=2, tif="fok")) == [
        "ACCEPTED B 2:9 px=0 q=14 lv=14",
        "TRADE B 2:9 px=100 q=5 lv=9 vs 1:2 mlv=0 t=1",
        "TRADE B 2:9 px=101 q=5 lv=4 vs 1:1 mlv=0 t=2",
        "TRADE B 2:9 px=102 q=4 lv=0 vs 1:3 mlv=0 t=3",
    ]


# -- post-only -----------------------------------------------------------------------
def test_post_only_rests_when_it_would_not_take():
    ex = book_with_asks()
    assert run(ex, new("buy", 3, 99, oid=9, acct=2, post_only=True)) == ["ACCEPTED B 2:9 px=99 q=3 lv=3"]


def test_post_only_that_would_take_is_rejected():
    ex = book_with_asks()
    before = ex.state_hash()
    assert run(ex, new("buy", 3, 100, oid=9, acct=2, post_only=True)) == [
        "REJECTED B 2:9 px=100 q=3 lv=0 POST_ONLY_WOULD_TAKE",
    ]
    assert ex.state_hash() == before


# -- iceberg -------------------------------------------------------------------------
def test_iceberg_shows_only_its_peak():
    ex = make_exchange()
    assert run(ex, new("sell", 10, 100, oid=1, acct=1, display_qty=3)) == ["ACCEPTED S 1:1 px=100 q=10 lv=10"]
    assert ex.depth_ticks(0)[1].tolist() == [[100, 3, 1]]
    assert l3_rows(ex) == [(1, 100, 1, 1, 3, 7)]


def test_iceberg_replenishes_to_the_back_of_its_level():
    ex = make_exchange()
    run(ex, new("sell", 7, 100, oid=1, acct=1, display_qty=3), new("sell", 2, 100, oid=2, acct=2))
    # takes the 3 shown, the iceberg refills behind order 2, then order 2 trades before it
    assert run(ex, new("buy", 6, 100, oid=1, acct=3)) == [
        "ACCEPTED B 3:1 px=100 q=6 lv=6",
        "TRADE B 3:1 px=100 q=3 lv=3 vs 1:1 mlv=4 t=1",
        "REPLENISHED S 1:1 px=100 q=3 lv=4",
        "TRADE B 3:1 px=100 q=2 lv=1 vs 2:2 mlv=0 t=2",
        "TRADE B 3:1 px=100 q=1 lv=0 vs 1:1 mlv=3 t=3",
    ]
    assert l3_rows(ex) == [(1, 100, 1, 1, 2, 1)]
    # the last slice is what is left of the reserve
    assert run(ex, new("buy", 3, 100, oid=2, acct=3)) == [
        "ACCEPTED B 3:2 px=100 q=3 lv=3",
        "TRADE B 3:2 px=100 q=2 lv=1 vs 1:1 mlv=1 t=4",
        "REPLENISHED S 1:1 px=100 q=1 lv=1",
        "TRADE B 3:2 px=100 q=1 lv=0 vs 1:1 mlv=0 t=5",
    ]
    assert l3_rows(ex) == []


def test_iceberg_that_is_alone_refills_and_keeps_trading():
    ex = make_exchange()
    run(ex, new("sell", 5, 100, oid=1, acct=1, display_qty=2))
    assert run(ex, new("buy", 5, 100, oid=1, acct=3)) == [
        "ACCEPTED B 3:1 px=100 q=5 lv=5",
        "TRADE B 3:1 px=100 q=2 lv=3 vs 1:1 mlv=3 t=1",
        "REPLENISHED S 1:1 px=100 q=2 lv=3",
        "TRADE B 3:1 px=100 q=2 lv=1 vs 1:1 mlv=1 t=2",
        "REPLENISHED S 1:1 px=100 q=1 lv=1",
        "TRADE B 3:1 px=100 q=1 lv=0 vs 1:1 mlv=0 t=3",
    ]


def test_iceberg_remainder_of_a_taker_rests_as_an_iceberg():
    ex = make_exchange()
    run(ex, new("sell", 2, 100, oid=1, acct=1))
    assert run(ex, new("buy", 10, 100, oid=1, acct=2, display_qty=3)) == [
        "ACCEPTED B 2:1 px=100 q=10 lv=10",
        "TRADE B 2:1 px=100 q=2 lv=8 vs 1:1 mlv=0 t=1",
    ]
    assert l3_rows(ex) == [(0, 100, 1, 2, 3, 5)]


# -- stops ---------------------------------------------------------------------------
def test_stop_market_waits_then_triggers_on_last_trade_price():
    ex = make_exchange()
    run(ex, new("sell", 1, 100, oid=1, acct=1), new("sell", 5, 105, oid=2, acct=1))
    assert run(ex, new("buy", 3, oid=1, acct=2, type="stop_market", tif="ioc", stop_price=100)) == [
        "ACCEPTED B 2:1 px=0 q=3 lv=3",
    ]
    assert ex.stats(0)["stops"] == 1
    assert l3_rows(ex)[-1] == (0, 0, 1, 2, 3, 0)  # stops are listed last
    # a trade at 100 reaches the buy stop at 100: it triggers after the trade, in the same command
    assert run(ex, new("buy", 1, 100, oid=1, acct=3)) == [
        "ACCEPTED B 3:1 px=100 q=1 lv=1",
        "TRADE B 3:1 px=100 q=1 lv=0 vs 1:1 mlv=0 t=1",
        "TRIGGERED B 2:1 px=100 q=3 lv=3",
        "TRADE B 2:1 px=105 q=3 lv=0 vs 1:2 mlv=2 t=2",
    ]
    assert ex.stats(0)["stops"] == 0


def test_sell_stop_triggers_at_or_below_its_stop_price_only():
    ex = make_exchange()
    run(ex, new("buy", 10, 95, oid=1, acct=1), new("buy", 1, 99, oid=2, acct=1), new("buy", 1, 98, oid=3, acct=1))
    run(ex, new("sell", 2, oid=1, acct=2, type="stop_market", tif="ioc", stop_price=98))
    assert run(ex, new("sell", 1, 99, oid=2, acct=3)) == [
        "ACCEPTED S 3:2 px=99 q=1 lv=1",
        "TRADE S 3:2 px=99 q=1 lv=0 vs 1:2 mlv=0 t=1",
    ]
    assert run(ex, new("sell", 1, 98, oid=3, acct=3)) == [
        "ACCEPTED S 3:3 px=98 q=1 lv=1",
        "TRADE S 3:3 px=98 q=1 lv=0 vs 1:3 mlv=0 t=2",
        "TRIGGERED S 2:1 px=98 q=2 lv=2",
        "TRADE S 2:1 px=95 q=2 lv=0 vs 1:1 mlv=8 t=3",
    ]


def test_stop_limit_triggers_into_a_resting_limit():
    ex = make_exchange()
    run(ex, new("sell", 1, 100, oid=1, acct=1), new("sell", 2, 101, oid=2, acct=1), new("sell", 5, 103, oid=3, acct=1))
    run(ex, new("buy", 4, 101, oid=1, acct=2, type="stop_limit", stop_price=100))
    assert run(ex, new("buy", 1, 100, oid=1, acct=3)) == [
        "ACCEPTED B 3:1 px=100 q=1 lv=1",
        "TRADE B 3:1 px=100 q=1 lv=0 vs 1:1 mlv=0 t=1",
        "TRIGGERED B 2:1 px=100 q=4 lv=4",
        "TRADE B 2:1 px=101 q=2 lv=2 vs 1:2 mlv=0 t=2",
    ]
    # the rest of the stop-limit rests at its limit like a plain limit order
    assert l3_rows(ex) == [(0, 101, 1, 2, 2, 0), (1, 103, 3, 1, 5, 0)]


def test_stop_that_is_already_due_triggers_on_entry():
    ex = make_exchange()
    run(ex, new("sell", 1, 100, oid=1, acct=1), new("buy", 1, 100, oid=1, acct=3), new("sell", 3, 104, oid=2, acct=1))
    assert ex.stats(0)["last_price"] == 100
    assert run(ex, new("buy", 2, oid=1, acct=2, type="stop_market", tif="ioc", stop_price=99)) == [
        "ACCEPTED B 2:1 px=0 q=2 lv=2",
        "TRIGGERED B 2:1 px=100 q=2 lv=2",
        "TRADE B 2:1 px=104 q=2 lv=0 vs 1:2 mlv=1 t=2",
    ]


def test_stop_before_any_trade_waits():
    ex = make_exchange()
    assert run(ex, new("buy", 2, oid=1, acct=2, type="stop_market", tif="ioc", stop_price=1)) == [
        "ACCEPTED B 2:1 px=0 q=2 lv=2",
    ]
    assert ex.stats(0)["stops"] == 1


def test_triggered_stop_market_without_liquidity_is_cancelled_no_liquidity():
    ex = make_exchange()
    run(ex, new("sell", 1, 100, oid=1, acct=1))
    run(ex, new("buy", 2, oid=1, acct=2, type="stop_market", tif="ioc", stop_price=100))
    assert run(ex, new("buy", 1, 100, oid=1, acct=3)) == [
        "ACCEPTED B 3:1 px=100 q=1 lv=1",
        "TRADE B 3:1 px=100 q=1 lv=0 vs 1:1 mlv=0 t=1",
        "TRIGGERED B 2:1 px=100 q=2 lv=2",
        "CANCELLED B 2:1 px=0 q=2 lv=0 NO_LIQUIDITY",
    ]


def test_stop_cascade_runs_in_arrival_order_and_each_may_trigger_more():
    ex = make_exchange()
    run(ex,
        new("sell", 1, 100, oid=1, acct=1), new("sell", 1, 101, oid=2, acct=1),
        new("sell", 1, 102, oid=3, acct=1), new("sell", 5, 110, oid=4, acct=1))
    run(ex,
        # arrival order: A (stop 101), B (stop 100), C (stop 102), D (stop 100)
        new("buy", 1, oid=11, acct=2, type="stop_market", tif="ioc", stop_price=101),
        new("buy", 1, oid=12, acct=2, type="stop_market", tif="ioc", stop_price=100),
        new("buy", 1, oid=13, acct=2, type="stop_market", tif="ioc", stop_price=102),
        new("buy", 1, oid=14, acct=2, type="stop_market", tif="ioc", stop_price=100))
    assert run(ex, new("buy", 1, 100, oid=1, acct=3)) == [
        "ACCEPTED B 3:1 px=100 q=1 lv=1",
        "TRADE B 3:1 px=100 q=1 lv=0 vs 1:1 mlv=0 t=1",
        # last=100: B is the first due in arrival order; it trades at 101
        "TRIGGERED B 2:12 px=100 q=1 lv=1",
        "TRADE B 2:12 px=101 q=1 lv=0 vs 1:2 mlv=0 t=2",
        # last=101: A (stop 101) is now the earliest due
        "TRIGGERED B 2:11 px=101 q=1 lv=1",
        "TRADE B 2:11 px=102 q=1 lv=0 vs 1:3 mlv=0 t=3",
        # last=102: C is the earliest due
        "TRIGGERED B 2:13 px=102 q=1 lv=1",
        "TRADE B 2:13 px=110 q=1 lv=0 vs 1:4 mlv=4 t=4",
        # last=110: D
        "TRIGGERED B 2:14 px=110 q=1 lv=1",
        "TRADE B 2:14 px=110 q=1 lv=0 vs 1:4 mlv=3 t=5",
    ]
    assert ex.stats(0)["stops"] == 0


def test_triggered_post_only_stop_limit_never_takes():
    ex = make_exchange()
    run(ex, new("sell", 1, 105, oid=1, acct=1))
    # limit 101 does not cross the ask at 105 on entry: accepted
    assert run(ex, new("buy", 3, 101, oid=5, acct=2, type="stop_limit", stop_price=100, post_only=True)) == [
        "ACCEPTED B 2:5 px=101 q=3 lv=3"]
    run(ex, new("sell", 2, 101, oid=2, acct=1), new("sell", 1, 100, oid=3, acct=1))
    out = run(ex, new("buy", 1, 100, oid=6, acct=3))  # trades at 100: the stop triggers
    assert out[:3] == ["ACCEPTED B 3:6 px=100 q=1 lv=1", "TRADE B 3:6 px=100 q=1 lv=0 vs 1:3 mlv=0 t=1",
                       "TRIGGERED B 2:5 px=100 q=3 lv=3"]
    # a post-only order must never be the taker of a trade
    assert not any(line.startswith("TRADE B 2:5") for line in out), out
