"""Bad commands are rejected with their reason code, change nothing, and the batch goes on."""

from __future__ import annotations

import numpy as np
import pytest

from shardex.schema import COMMAND_DTYPE, EventKind, Reason

from .helpers import amend, batch, cancel, check, fmt, l3_rows, make_exchange, new, run

GOOD = new("buy", 1, 90, oid=100, acct=7)


def rejected_then_good(ex, bad):
    """Run [bad, good]: the bad one is rejected alone, the good one still runs."""
    before = ex.state_hash()
    out = run(ex, bad, GOOD)
    assert len(out) == 2, out
    assert out[1] == "ACCEPTED B 7:100 px=90 q=1 lv=1"
    return out[0], before


def base():
    ex = make_exchange(min_qty=1, max_qty=100, min_price=10, max_price=1000)
    run(ex, new("sell", 5, 101, oid=1, acct=1), new("buy", 5, 99, oid=2, acct=1))
    return ex


@pytest.mark.parametrize("record, reason", [
    (new("buy", 0, 100, oid=9, acct=2), "QTY_NOT_POSITIVE"),
    (new("buy", -5, 100, oid=9, acct=2), "QTY_NOT_POSITIVE"),
    (new("buy", 0, oid=9, acct=2, tif="ioc"), "QTY_NOT_POSITIVE"),
    (new("buy", 101, 100, oid=9, acct=2), "QTY_ABOVE_MAX"),
    (new("buy", 1, 5, oid=9, acct=2), "PRICE_OUT_OF_BAND"),
    (new("buy", 1, 1001, oid=9, acct=2), "PRICE_OUT_OF_BAND"),
    (new("buy", 1, -100, oid=9, acct=2), "INVALID_PRICE"),
    (new("buy", 1, 100, oid=9, acct=2, inst=5), "UNKNOWN_INSTRUMENT"),
    (new("buy", 1, 100, oid=9, acct=2, inst=-3), "UNKNOWN_INSTRUMENT"),
    (new("buy", 1, 100, oid=1, acct=1), "DUPLICATE_ORDER_ID"),
    (new("buy", 1, oid=9, acct=2, type="market", tif="gtc"), "MARKET_GTC"),
    (new("buy", 1, oid=9, acct=2, type="stop_market", tif="gtc", stop_price=100), "MARKET_GTC"),
    (new("buy", 1, 100, oid=9, acct=2, type="stop_limit", stop_price=0), "INVALID_STOP_PRICE"),
    (new("buy", 5, 100, oid=9, acct=2, display_qty=5), "INVALID_DISPLAY_QTY"),
    (new("buy", 5, 100, oid=9, acct=2, display_qty=-1), "INVALID_DISPLAY_QTY"),
    (new("buy", 5, 100, oid=9, acct=2, display_qty=2, tif="ioc"), "INVALID_DISPLAY_QTY"),
    (new("buy", 1, 100, oid=9, acct=-1), "INVALID_ACCOUNT"),
    (new("buy", 1, 100, oid=9, acct=2, post_only=True, tif="ioc"), "INVALID_TIF"),
    (cancel(0, 77, account=1), "UNKNOWN_ORDER"),
    (cancel(0, 1, account=2), "UNKNOWN_ORDER"),          # another account's order
    (cancel(5, 1, account=1), "UNKNOWN_INSTRUMENT"),
    (amend(0, 77, account=1, qty=1), "UNKNOWN_ORDER"),
    (amend(0, 1, account=2, qty=1), "UNKNOWN_ORDER"),     # another account's order
    (amend(0, 1, account=1, qty=101), "QTY_ABOVE_MAX"),
    (amend(0, 1, account=1, qty=1, price=2000), "PRICE_OUT_OF_BAND"),
])
def test_rejected_with_reason_and_the_batch_goes_on(record, reason):
    ex = base()
    line, before = rejected_then_good(ex, record)
    assert line.startswith("REJECTED") and line.endswith(reason), line
    ex2 = base()
    run(ex2, GOOD)
    assert ex.state_hash() == ex2.state_hash()  # the reject changed nothing


def test_cancel_of_an_order_on_another_instrument_is_unknown():
    ex = make_exchange(0, 0)
    run(ex, new("buy", 1, 100, oid=1, acct=1, inst=0))
    assert run(ex, cancel(1, 1, account=1)) == ["REJECTED B 1:1 px=0 q=0 lv=0 UNKNOWN_ORDER"]
    assert l3_rows(ex, 0) == [(0, 100, 1, 1, 1, 0)]


@pytest.mark.parametrize("field, value, reason", [
    ("side", 2, Reason.INVALID_SIDE), ("otype", 9, Reason.INVALID_ORDER_TYPE), ("tif", 3, Reason.INVALID_TIF),
    ("stp", 5, Reason.INVALID_STP), ("kind", 77, Reason.INVALID_COMMAND),
])
def test_raw_enum_values_out_of_range_are_rejected(field, value, reason):
    ex = base()
    cmds = batch([new("buy", 1, 100, oid=9, acct=2), GOOD])
    cmds[0][field] = value
    ev = ex.process(cmds)
    check(ex)
    assert [int(k) for k in ev["kind"]] == [EventKind.REJECTED, EventKind.ACCEPTED]
    assert int(ev["reason"][0]) == reason


def test_client_order_ids_are_unique_per_account():
    ex = make_exchange()
    assert run(ex, new("buy", 1, 90, oid=5, acct=1), new("buy", 1, 91, oid=5, acct=2), new("sell", 1, 95, oid=5, acct=1)) == [
        "ACCEPTED B 1:5 px=90 q=1 lv=1",
        "ACCEPTED B 2:5 px=91 q=1 lv=1",   # same id, another account: fine
        "REJECTED S 1:5 px=95 q=1 lv=0 DUPLICATE_ORDER_ID",
    ]
    # each account's cancel reaches its own order
    assert run(ex, cancel(0, 5, account=2)) == ["CANCELLED B 2:5 px=91 q=1 lv=0 USER_CANCEL"]
    assert l3_rows(ex) == [(0, 90, 5, 1, 1, 0)]


def test_duplicate_of_an_untriggered_stop_is_rejected():
    ex = make_exchange()
    run(ex, new("buy", 1, oid=5, acct=1, type="stop_market", tif="ioc", stop_price=200))
    assert run(ex, new("buy", 1, 90, oid=5, acct=1))[0].endswith("DUPLICATE_ORDER_ID")


def test_a_batch_of_only_bad_commands_changes_nothing():
    ex = base()
    before = ex.state_hash()
    cmds = np.zeros(50, dtype=COMMAND_DTYPE)  # kind 0: not a command
    cmds["instrument"] = np.arange(50) % 3 - 1
    ev = ex.process(cmds)
    check(ex)
    assert len(ev) == 50 and set(ev["kind"].tolist()) == {EventKind.REJECTED}
    assert ex.state_hash() == before
    assert [fmt(e) for e in ev[:1]] == ["REJECTED B 0:0 px=0 q=0 lv=0 INVALID_COMMAND"]
