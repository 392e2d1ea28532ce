"""Golden event streams for cancel, amend and mass cancel."""

from __future__ import annotations

import pytest

from .helpers import FIFO, amend, cancel, l3_rows, make_exchange, mass_cancel, new, run


def three_bids():
    ex = make_exchange()
    run(ex, new("buy", 5, 100, oid=1, acct=1), new("buy", 5, 100, oid=2, acct=2), new("buy", 5, 99, oid=3, acct=1))
    return ex


def test_cancel_resting_order():
    ex = three_bids()
    assert run(ex, cancel(0, 1, account=1)) == ["CANCELLED B 1:1 px=100 q=5 lv=0 USER_CANCEL"]
    assert l3_rows(ex) == [(0, 100, 2, 2, 5, 0), (0, 99, 3, 1, 5, 0)]
    # the id is free for reuse once the order is gone
    assert run(ex, new("buy", 1, 98, oid=1, acct=1)) == ["ACCEPTED B 1:1 px=98 q=1 lv=1"]


def test_cancel_reports_open_quantity_of_a_partly_filled_iceberg():
    ex = make_exchange()
    run(ex, new("sell", 10, 100, oid=1, acct=1, display_qty=4), new("buy", 3, 100, oid=1, acct=2))
    assert run(ex, cancel(0, 1, account=1)) == ["CANCELLED S 1:1 px=100 q=7 lv=0 USER_CANCEL"]
    assert l3_rows(ex) == []


def test_cancel_untriggered_stop():
    ex = make_exchange()
    run(ex, new("sell", 2, oid=4, acct=1, type="stop_market", tif="ioc", stop_price=90))
    assert run(ex, cancel(0, 4, account=1)) == ["CANCELLED S 1:4 px=0 q=2 lv=0 USER_CANCEL"]
    assert ex.stats(0)["stops"] == 0


def test_cancel_twice_is_unknown_the_second_time():
    ex = three_bids()
    assert run(ex, cancel(0, 1, account=1), cancel(0, 1, account=1)) == [
        "CANCELLED B 1:1 px=100 q=5 lv=0 USER_CANCEL",
        "REJECTED B 1:1 px=0 q=0 lv=0 UNKNOWN_ORDER",
    ]


def test_amend_decrease_keeps_priority():
    ex = three_bids()
    assert run(ex, amend(0, 1, account=1, qty=2)) == ["AMENDED B 1:1 px=100 q=2 lv=2"]
    assert l3_rows(ex)[:2] == [(0, 100, 1, 1, 2, 0), (0, 100, 2, 2, 5, 0)]
    assert ex.depth_ticks(0)[0].tolist() == [[100, 7, 2], [99, 5, 1]]
    assert run(ex, new("sell", 3, 100, oid=1, acct=3)) == [
        "ACCEPTED S 3:1 px=100 q=3 lv=3",
        "TRADE S 3:1 px=100 q=2 lv=1 vs 1:1 mlv=0 t=1",
        "TRADE S 3:1 px=100 q=1 lv=0 vs 2:2 mlv=4 t=2",
    ]


def test_amend_increase_loses_priority():
    ex = three_bids()
    assert run(ex, amend(0, 1, account=1, qty=6)) == ["AMENDED B 1:1 px=100 q=6 lv=6"]
    assert l3_rows(ex)[:2] == [(0, 100, 2, 2, 5, 0), (0, 100, 1, 1, 6, 0)]


def test_amend_same_quantity_and_price_keeps_priority():
    ex = three_bids()
    assert run(ex, amend(0, 1, account=1, qty=5)) == ["AMENDED B 1:1 px=100 q=5 lv=5"]
    assert [r[2] for r in l3_rows(ex)] == [1, 2, 3]


def test_amend_price_change_loses_priority_even_when_decreasing():
    ex = three_bids()
    run(ex, amend(0, 1, account=1, qty=4, price=99))
    assert l3_rows(ex) == [(0, 100, 2, 2, 5, 0), (0, 99, 3, 1, 5, 0), (0, 99, 1, 1, 4, 0)]
    # and moving back to the old price also goes to the back
    run(ex, amend(0, 1, account=1, qty=4, price=100))
    assert [r[2] for r in l3_rows(ex)] == [2, 1, 3]


def test_amend_that_crosses_trades_at_maker_prices_and_rests_remainder():
    ex = make_exchange()
    run(ex, new("sell", 2, 101, oid=1, acct=1), new("sell", 2, 102, oid=2, acct=1), new("buy", 5, 99, oid=7, acct=2))
    assert run(ex, amend(0, 7, account=2, qty=5, price=102)) == [
        "AMENDED B 2:7 px=102 q=5 lv=5",
        "TRADE B 2:7 px=101 q=2 lv=3 vs 1:1 mlv=0 t=1",
        "TRADE B 2:7 px=102 q=2 lv=1 vs 1:2 mlv=0 t=2",
    ]
    assert l3_rows(ex) == [(0, 102, 7, 2, 1, 0)]


def test_amend_that_crosses_and_fills_completely_frees_the_order():
    ex = make_exchange()
    run(ex, new("sell", 5, 101, oid=1, acct=1), new("buy", 3, 99, oid=7, acct=2))
    assert run(ex, amend(0, 7, account=2, qty=3, price=101)) == [
        "AMENDED B 2:7 px=101 q=3 lv=3",
        "TRADE B 2:7 px=101 q=3 lv=0 vs 1:1 mlv=2 t=1",
    ]
    assert run(ex, cancel(0, 7, account=2)) == ["REJECTED B 2:7 px=0 q=0 lv=0 UNKNOWN_ORDER"]


def test_amend_of_an_iceberg_shrinks_the_reserve_first():
    ex = make_exchange()
    run(ex, new("sell", 10, 100, oid=1, acct=1, display_qty=3), new("sell", 1, 100, oid=2, acct=2))
    assert run(ex, amend(0, 1, account=1, qty=5)) == ["AMENDED S 1:1 px=100 q=5 lv=5"]
    assert l3_rows(ex) == [(1, 100, 1, 1, 3, 2), (1, 100, 2, 2, 1, 0)]
    run(ex, amend(0, 1, account=1, qty=2))
    assert l3_rows(ex) == [(1, 100, 1, 1, 2, 0), (1, 100, 2, 2, 1, 0)]
    assert ex.depth_ticks(0)[1].tolist() == [[100, 3, 2]]


def test_amend_increase_of_an_iceberg_rests_as_an_iceberg_at_the_back():
    ex = make_exchange()
    run(ex, new("sell", 10, 100, oid=1, acct=1, display_qty=3), new("sell", 1, 100, oid=2, acct=2))
    run(ex, amend(0, 1, account=1, qty=12))
    assert l3_rows(ex) == [(1, 100, 2, 2, 1, 0), (1, 100, 1, 1, 3, 9)]


def test_amend_of_a_post_only_order_to_a_crossing_price_is_rejected():
    ex = make_exchange()
    run(ex, new("sell", 2, 101, oid=1, acct=1), new("buy", 5, 99, oid=7, acct=2, post_only=True))
    assert run(ex, amend(0, 7, account=2, qty=5, price=101)) == [
        "REJECTED B 2:7 px=101 q=5 lv=0 POST_ONLY_WOULD_TAKE",
    ]
    assert l3_rows(ex)[0] == (0, 99, 7, 2, 5, 0)


def test_amend_of_an_untriggered_stop_is_rejected():
    ex = make_exchange()
    run(ex, new("buy", 2, 105, oid=1, acct=1, type="stop_limit", stop_price=104))
    assert run(ex, amend(0, 1, account=1, qty=1)) == ["REJECTED B 1:1 px=0 q=1 lv=0 AMEND_STOP_ORDER"]


@pytest.mark.parametrize("qty, reason", [(0, "QTY_NOT_POSITIVE"), (-3, "QTY_NOT_POSITIVE")])
def test_amend_to_a_non_positive_quantity_is_rejected(qty, reason):
    ex = three_bids()
    assert run(ex, amend(0, 1, account=1, qty=qty)) == [f"REJECTED B 1:1 px=0 q={qty} lv=0 {reason}"]
    assert l3_rows(ex)[0] == (0, 100, 1, 1, 5, 0)


def test_amend_that_triggers_stops():
    ex = make_exchange()
    run(ex, new("sell", 1, 101, oid=1, acct=1), new("sell", 4, 103, oid=2, acct=1), new("buy", 1, 99, oid=7, acct=2),
        new("buy", 2, oid=8, acct=3, type="stop_market", tif="ioc", stop_price=101))
    assert run(ex, amend(0, 7, account=2, qty=1, price=101)) == [
        "AMENDED B 2:7 px=101 q=1 lv=1",
        "TRADE B 2:7 px=101 q=1 lv=0 vs 1:1 mlv=0 t=1",
        "TRIGGERED B 3:8 px=101 q=2 lv=2",
        "TRADE B 3:8 px=103 q=2 lv=0 vs 1:2 mlv=2 t=2",
    ]


# -- mass cancel -----------------------------------------------------------------------
def two_books():
    ex = make_exchange(FIFO, FIFO)
    run(ex,
        new("buy", 1, 99, oid=1, acct=1), new("buy", 1, 100, oid=2, acct=1), new("sell", 1, 105, oid=3, acct=1),
        new("sell", 1, 104, oid=4, acct=1), new("buy", 1, 100, oid=5, acct=2),
        new("buy", 1, oid=6, acct=1, type="stop_market", tif="ioc", stop_price=200),
        new("buy", 1, 50, oid=7, acct=1, inst=1), new("sell", 1, 60, oid=8, acct=2, inst=1))
    return ex


def test_mass_cancel_one_instrument_bids_best_first_then_asks_then_stops():
    ex = two_books()
    assert run(ex, mass_cancel(1, 0)) == [
        "CANCELLED B 1:2 px=100 q=1 lv=0 MASS_CANCEL",
        "CANCELLED B 1:1 px=99 q=1 lv=0 MASS_CANCEL",
        "CANCELLED S 1:4 px=104 q=1 lv=0 MASS_CANCEL",
        "CANCELLED S 1:3 px=105 q=1 lv=0 MASS_CANCEL",
        "CANCELLED B 1:6 px=0 q=1 lv=0 MASS_CANCEL",
    ]
    assert l3_rows(ex, 0) == [(0, 100, 5, 2, 1, 0)]
    assert l3_rows(ex, 1) == [(0, 50, 7, 1, 1, 0), (1, 60, 8, 2, 1, 0)]


def test_mass_cancel_all_instruments_in_instrument_order():
    ex = two_books()
    out = run(ex, mass_cancel(1))
    assert len(out) == 6 and out[-1] == "CANCELLED B 1:7 px=50 q=1 lv=0 MASS_CANCEL"
    assert [r[3] for r in l3_rows(ex, 0)] == [2] and [r[3] for r in l3_rows(ex, 1)] == [2]


def test_mass_cancel_of_an_account_without_orders_emits_nothing():
    ex = two_books()
    assert run(ex, mass_cancel(9)) == []
    assert run(ex, mass_cancel(9, 1)) == []


def test_mass_cancel_of_an_unknown_instrument_is_rejected():
    ex = two_books()
    assert run(ex, mass_cancel(1, 7)) == ["REJECTED B 1:0 px=0 q=0 lv=0 UNKNOWN_INSTRUMENT"]
