"""L2 depth, top of book and L3 (priority order, stops last), in ticks and decimals."""

from __future__ import annotations

from decimal import Decimal

from shardex.book.views import L3_COLUMNS

from .helpers import make_exchange, new, run


def book():
    ex = make_exchange()
    run(ex,
        new("buy", 3, 99, oid=1, acct=1), new("buy", 4, 99, oid=2, acct=2), new("buy", 2, 97, oid=3, acct=1),
        new("sell", 9, 101, oid=4, acct=1, display_qty=3), new("sell", 5, 102, oid=5, acct=2),
        new("sell", 1, 101, oid=6, acct=3),
        new("buy", 1, oid=7, acct=3, type="stop_market", tif="ioc", stop_price=150),
        new("sell", 2, 95, oid=8, acct=3, type="stop_limit", stop_price=90))
    return ex


def test_depth_best_first_with_displayed_qty_and_counts():
    ex = book()
    bids, asks = ex.depth_ticks(0)
    assert bids.tolist() == [[99, 7, 2], [97, 2, 1]]
    assert asks.tolist() == [[101, 4, 2], [102, 5, 1]]
    bids, asks = ex.depth_ticks(0, 1)
    assert bids.tolist() == [[99, 7, 2]] and asks.tolist() == [[101, 4, 2]]
    assert ex.depth(0, 1) == {"bids": [(Decimal(99), Decimal(7), 2)], "asks": [(Decimal(101), Decimal(4), 2)]}
    assert ex.top(0) == ((Decimal(99), Decimal(7)), (Decimal(101), Decimal(4)))


def test_l3_every_order_in_priority_order_then_stops():
    ex = book()
    rows = ex.l3(0)
    assert rows.shape == (8, len(L3_COLUMNS))
    col = {name: i for i, name in enumerate(L3_COLUMNS)}
    assert rows[:, col["order_id"]].tolist() == [1, 2, 3, 4, 6, 5, 7, 8]
    assert rows[3, [col["qty"], col["hidden"], col["peak"]]].tolist() == [3, 6, 3]
    assert rows[6, [col["type"], col["stop_price"], col["side"]]].tolist() == [2, 150, 0]
    assert rows[7, [col["type"], col["stop_price"], col["side"], col["price"]]].tolist() == [3, 90, 1, 95]


def test_views_of_an_empty_book():
    ex = make_exchange()
    bids, asks = ex.depth_ticks(0)
    assert bids.shape == (0, 3) and asks.shape == (0, 3)
    assert ex.top(0) == (None, None) and ex.l3(0).shape == (0, len(L3_COLUMNS))
    assert ex.stats(0) == {"last_price": None, "trades": 0, "volume": 0, "orders": 0, "stops": 0}
