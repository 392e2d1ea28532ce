"""The Exchange's decimal API: submit, cancel, amend, mass cancel, views; errors as exceptions."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from shardex import Exchange, Instrument, OffGridError, OrderRejected, Reason, UnknownInstrumentError
from shardex.book.check import check_shard
from shardex.schema import EventKind


@pytest.fixture()
def ex():
    ex = Exchange([Instrument(0, "BTC-PERP", tick_size="0.5", lot_size="0.001"),
                   Instrument(1, "ETH-PERP", tick_size="0.01", lot_size="0.01")], clock=lambda: 5)
    yield ex
    for shard in ex.shards:
        check_shard(shard)
    ex.close()


def kinds(events):
    return [EventKind(int(k)).name for k in events["kind"]]


def test_submit_in_decimals_and_trades_in_decimals(ex):
    ev = ex.submit("BTC-PERP", "sell", "0.010", "61800.5", account=1, order_id=1)
    assert kinds(ev) == ["ACCEPTED"] and int(ev["price"][0]) == 123601 and int(ev["qty"][0]) == 10
    ev = ex.submit("BTC-PERP", "buy", Decimal("0.004"), 61801, account=2, order_id=7)
    trades = ex.trades(ev)
    assert [(t.price, t.qty, t.taker_order_id, t.maker_order_id, t.maker_account, t.trade_id) for t in trades] == [
        (Decimal("61800.5"), Decimal("0.004"), 7, 1, 1, 1)]
    assert ex.top("BTC-PERP") == (None, (Decimal("61800.5"), Decimal("0.006")))
    assert ex.depth(0) == {"bids": [], "asks": [(Decimal("61800.5"), Decimal("0.006"), 1)]}
    assert ex.stats("BTC-PERP") == {"last_price": 123601, "trades": 1, "volume": 4, "orders": 1, "stops": 0}


def test_floats_are_read_as_their_decimal_repr(ex):
    ev = ex.submit("ETH-PERP", "buy", 0.1, 3000.07, account=1, order_id=1)
    assert int(ev["qty"][0]) == 10 and int(ev["price"][0]) == 300007


@pytest.mark.parametrize("qty, price", [("0.0015", "61800"), ("0.001", "61800.25"), ("0.001", "0.1")])
def test_off_grid_price_or_quantity_raises_and_submits_nothing(ex, qty, price):
    before = ex.state_hash()
    seq = ex.sequencer.next_seq
    with pytest.raises(OffGridError):
        ex.submit("BTC-PERP", "buy", qty, price, account=1, order_id=1)
    assert ex.state_hash() == before and ex.sequencer.next_seq == seq


def test_off_grid_amend_raises(ex):
    ex.submit("BTC-PERP", "buy", "0.002", "100", account=1, order_id=1)
    with pytest.raises(OffGridError):
        ex.amend("BTC-PERP", 1, account=1, qty="0.0011")
    with pytest.raises(OffGridError):
        ex.amend("BTC-PERP", 1, account=1, qty="0.001", price="100.2")


def test_off_grid_stop_and_display_raise(ex):
    with pytest.raises(OffGridError):
        ex.submit("BTC-PERP", "buy", "0.002", type="stop_market", tif="ioc", stop_price="100.3", account=1)
    with pytest.raises(OffGridError):
        ex.submit("BTC-PERP", "buy", "0.002", "100", display_qty="0.0005", account=1)


@pytest.mark.parametrize("call, reason", [
    (lambda ex: ex.submit("BTC-PERP", "buy", "0", "100", account=1, order_id=5), Reason.QTY_NOT_POSITIVE),
    (lambda ex: ex.submit("BTC-PERP", "buy", "-0.001", "100", account=1, order_id=5), Reason.QTY_NOT_POSITIVE),
    (lambda ex: ex.submit("BTC-PERP", "buy", "0.001", account=1, order_id=5, tif="gtc"), Reason.MARKET_GTC),
    (lambda ex: ex.submit("BTC-PERP", "buy", "0.001", "100", account=1, order_id=1), Reason.DUPLICATE_ORDER_ID),
    (lambda ex: ex.cancel("BTC-PERP", 99, account=1), Reason.UNKNOWN_ORDER),
    (lambda ex: ex.cancel("BTC-PERP", 1, account=2), Reason.UNKNOWN_ORDER),
    (lambda ex: ex.amend("BTC-PERP", 1, account=2, qty="0.001"), Reason.UNKNOWN_ORDER),
    (lambda ex: ex.amend("BTC-PERP", 99, account=1, qty="0.001"), Reason.UNKNOWN_ORDER),
    (lambda ex: ex.submit("BTC-PERP", "sell", "0.001", "100", account=3, order_id=1, post_only=True),
     Reason.POST_ONLY_WOULD_TAKE),
])
def test_rejects_raise_order_rejected_with_the_reason(ex, call, reason):
    ex.submit("BTC-PERP", "buy", "0.002", "100", account=1, order_id=1)
    with pytest.raises(OrderRejected) as info:
        call(ex)
    assert info.value.reason == reason
    # the book is as it was
    assert [tuple(int(x) for x in r[:5]) for r in ex.l3(0)] == [(0, 200, 1, 1, 2)]


def test_unknown_instrument_raises(ex):
    with pytest.raises(UnknownInstrumentError):
        ex.submit("DOGE", "buy", "1", "1")
    with pytest.raises(UnknownInstrumentError):
        ex.depth(7)
    with pytest.raises(KeyError):  # UnknownInstrumentError is a KeyError
        ex.cancel(9, 1)


def test_cancel_amend_mass_cancel_in_decimals(ex):
    ex.submit("BTC-PERP", "buy", "0.002", "100", account=1, order_id=1)
    ex.submit("BTC-PERP", "buy", "0.003", "99.5", account=1, order_id=2)
    ex.submit("ETH-PERP", "sell", "0.05", "2000", account=1, order_id=3)
    ex.submit("ETH-PERP", "sell", "0.05", "2000", account=2, order_id=3)
    ev = ex.amend("BTC-PERP", 1, account=1, qty="0.001")
    assert kinds(ev) == ["AMENDED"] and int(ev["qty"][0]) == 1
    ev = ex.cancel("BTC-PERP", 2, account=1)
    assert kinds(ev) == ["CANCELLED"] and int(ev["reason"][0]) == Reason.USER_CANCEL
    ev = ex.mass_cancel(1, "BTC-PERP")
    assert kinds(ev) == ["CANCELLED"] and int(ev["order_id"][0]) == 1
    ev = ex.mass_cancel(1)
    assert kinds(ev) == ["CANCELLED"] and int(ev["instrument"][0]) == 1 and int(ev["account"][0]) == 1
    assert ex.depth("ETH-PERP")["asks"] == [(Decimal("2000"), Decimal("0.05"), 1)]


def test_submit_assigns_increasing_order_ids_per_account(ex):
    a = ex.submit("BTC-PERP", "buy", "0.001", "100", account=4)
    b = ex.submit("BTC-PERP", "buy", "0.001", "100", account=4)
    c = ex.submit("BTC-PERP", "buy", "0.001", "100", account=5)
    assert (int(a["order_id"][0]), int(b["order_id"][0]), int(c["order_id"][0])) == (1, 2, 1)


def test_process_requires_command_dtype(ex):
    import numpy as np

    with pytest.raises(TypeError):
        ex.process(np.zeros(3))


def test_sequencer_stamps_gap_free_seq_numbers(ex):
    from shardex.engine.commands import batch, new_order

    ev1 = ex.process(batch([new_order(0, "buy", 1, 100, order_id=i, account=1) for i in range(3)]))
    ev2 = ex.process(batch([new_order(0, "sell", 3, 100, order_id=1, account=2)]))
    assert ev1["seq"].tolist() == [1, 2, 3] and set(ev2["seq"].tolist()) == {4}
    assert set(ev1["ts"].tolist()) == {5}


@pytest.mark.parametrize("shards", [1, 2])
def test_pretouched_pools_give_the_same_events_and_state_through_growth(shards):
    from shardex.engine.loadgen import batches, instruments, order_flow

    cmds = order_flow(20_000, n_instruments=6, seed=3)
    out = {}
    for pretouch in (False, True):
        with Exchange(instruments(6), shards=shards, clock=lambda: 1, order_capacity=16, pretouch=pretouch) as ex:
            events = np.concatenate([ex.process(b) for b in batches(cmds.copy(), 1024)])
            caps = [sh.state.capacity for sh in ex.shards]
            out[pretouch] = (events.tobytes(), ex.state_hash())
        assert min(caps) > 16  # the pools grew (and were pretouched again) mid-run
    assert out[True] == out[False]


@pytest.mark.parametrize("shards", [2, 3])
def test_sharded_process_stamps_the_batch_as_the_sequencer_does(shards):
    """With several shards the batch is stamped as it is dealt (merge.deal): it comes back stamped as with one.

    Unlisted instruments (shard 0 rejects them), mass cancels of every
    instrument (every shard runs them) and pools that grow mid-batch included.
    """
    from shardex.engine.commands import batch, mass_cancel, new_order
    from shardex.engine.loadgen import instruments, order_flow

    flow = order_flow(6_000, n_instruments=5, seed=11)
    extra = batch([new_order(9, "buy", 1, 100, order_id=1), mass_cancel(3, -1), new_order(-1, "buy", 1, 100, order_id=2)])
    cmds = np.concatenate([flow[:3000], extra, flow[3000:]])
    out = {}
    for n in (1, shards):
        ts = iter([1_000, 1_007, 2_000])
        with Exchange(instruments(5), shards=n, clock=lambda: next(ts), order_capacity=16) as ex:
            first = cmds[:2000].copy()
            ex.process(first)
            second = cmds[2000:].copy()
            events = ex.process(second)
            out[n] = (first.tobytes(), second.tobytes(), events.tobytes(), ex.state_hash())
            assert ex.sequencer.next_seq == len(cmds) + 1
    assert out[1] == out[shards]


def test_default_order_ids_climb_above_ids_that_batches_left_open(ex):
    from shardex.engine.commands import batch, new_order

    ex.process(batch([new_order(0, "sell", 5, 130_000, order_id=i, account=3) for i in (4, 9, 2)]))
    ev = ex.submit("BTC-PERP", "sell", "0.005", "65000.5", account=3)  # would be id 1: free, but below 9
    assert int(ev["order_id"][0]) == 10
    assert int(ex.submit("BTC-PERP", "sell", "0.005", "65001", account=3)["order_id"][0]) == 11
    assert int(ex.submit("BTC-PERP", "sell", "0.005", "65001", account=4)["order_id"][0]) == 1
