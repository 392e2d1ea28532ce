"""Golden tests of spot trading: holds at entry, release on fill/cancel/IOC/STP, settlement and fees."""

from __future__ import annotations

import numpy as np
import pytest

from shardex.engine.commands import amend, batch, cancel, new_order
from shardex.instruments import Instrument, InstrumentKind
from shardex.ledger import Ledger, LinearPerp
from shardex.ledger.txn import AuditCause, spot_trade_txns
from shardex.risk import RiskExchange, withdraw
from shardex.schema import EventKind, Reason

from .helpers import reasons
from .spot_helpers import BTC, BTCUSDT, ETH, LOT_SAT, P, USDT, fund, spot_venue

BAL = 1_000_000_000  # 1,000 USDT


def test_buy_holds_quote_with_the_fee_cap_and_sell_holds_base():
    rx = spot_venue(taker_fee_bps=10, maker_fee_bps=-2)
    fund(rx, 1, usdt=BAL)
    fund(rx, 2, btc=10**8)
    rx.process(batch([new_order(0, "buy", 10, P, order_id=1, account=1),
                      new_order(0, "sell", 5, P + 100, order_id=1, account=2)]))
    # 10 lots * 6,000,000 ticks * 1 = 60,000,000 (60 USDT) + 10 bps fee cap
    assert rx.holds[1, USDT] == 60_000_000 + 60_000
    assert rx.holds[2, BTC] == 5 * LOT_SAT
    assert rx.free_balance(1, USDT) == BAL - 60_060_000
    assert rx.free_balance(2, BTC) == 10**8 - 5 * LOT_SAT
    rx.check()


def test_partial_fill_settles_base_against_quote_with_fees_and_shrinks_both_holds():
    rx = spot_venue(taker_fee_bps=10, maker_fee_bps=-2)
    fund(rx, 1, usdt=BAL)
    fund(rx, 2, btc=10**8)
    rx.process(batch([new_order(0, "sell", 10, P, order_id=7, account=2)]))
    ev = rx.process(batch([new_order(0, "buy", 4, P, order_id=3, account=1, tif="ioc")]))
    assert (ev["kind"] == EventKind.TRADE).sum() == 1
    notional = 4 * P
    ft, fm = notional * 10 // 10_000, -(notional * 2 // 10_000)
    b = rx.ledger.balances
    assert b[1].tolist() == [BAL - notional - ft, 4 * LOT_SAT, 0]
    assert b[2].tolist() == [notional - fm, 10**8 - 4 * LOT_SAT, 0]
    assert int(rx.ledger.fee_pool[USDT]) == ft + fm
    assert rx.holds[2, BTC] == 6 * LOT_SAT  # the resting sell's leaves
    assert rx.holds[1, USDT] == 0  # the IOC is done
    rx.check()


def test_cancel_releases_the_hold():
    rx = spot_venue()
    fund(rx, 1, usdt=BAL)
    rx.process(batch([new_order(0, "buy", 10, P, order_id=1, account=1)]))
    assert rx.holds[1, USDT] == 10 * P
    ev = rx.process(batch([cancel(0, 1, account=1)]))
    assert ev["kind"].tolist() == [EventKind.CANCELLED]
    assert rx.holds[1, USDT] == 0 and rx.free_balance(1, USDT) == BAL
    rx.check()


def test_ioc_remainder_releases_the_hold():
    rx = spot_venue()
    fund(rx, 1, usdt=BAL)
    fund(rx, 2, btc=10**8)
    rx.process(batch([new_order(0, "sell", 3, P, order_id=1, account=2)]))
    ev = rx.process(batch([new_order(0, "buy", 10, P, order_id=1, account=1, tif="ioc")]))
    assert Reason.IOC_REMAINDER in ev["reason"][ev["kind"] == EventKind.CANCELLED].tolist()
    assert rx.holds[1, USDT] == 0
    assert rx.ledger.balances[1, USDT] == BAL - 3 * P
    rx.check()


def test_price_improvement_releases_the_difference():
    rx = spot_venue()
    fund(rx, 1, usdt=BAL)
    fund(rx, 2, btc=10**8)
    rx.process(batch([new_order(0, "sell", 2, P, order_id=1, account=2)]))
    # a buy limit 100 ticks above the ask: held at its limit, fills 2 of 5 lots at the ask
    rx.process(batch([new_order(0, "buy", 5, P + 100, order_id=1, account=1)]))
    assert rx.ledger.balances[1, USDT] == BAL - 2 * P
    assert rx.holds[1, USDT] == 3 * (P + 100)  # the 3 open lots, at the limit
    assert rx.free_balance(1, USDT) == BAL - 2 * P - 3 * (P + 100)  # the 200 improvement is free again
    rx.check()


def test_maker_buy_filled_at_its_limit_pays_the_maker_fee_not_the_cap():
    rx = spot_venue(taker_fee_bps=10, maker_fee_bps=5)
    fund(rx, 1, usdt=BAL)
    fund(rx, 2, btc=10**8)
    rx.process(batch([new_order(0, "buy", 5, P, order_id=1, account=1)]))
    assert rx.holds[1, USDT] == 5 * P + 5 * P * 10 // 10_000
    rx.process(batch([new_order(0, "sell", 5, P, order_id=1, account=2)]))
    assert rx.holds[1, USDT] == 0
    assert rx.ledger.balances[1, USDT] == BAL - 5 * P - 5 * P * 5 // 10_000
    assert rx.ledger.balances[2, USDT] == 5 * P - 5 * P * 10 // 10_000
    rx.check()


def test_insufficient_balance_is_rejected_and_changes_nothing():
    rx = spot_venue(taker_fee_bps=10)
    fund(rx, 1, usdt=10 * P)  # exactly 10 lots, but not the fee cap
    fund(rx, 2, btc=5 * LOT_SAT)
    for rec in (new_order(0, "buy", 10, P, order_id=1, account=1),
                new_order(0, "sell", 6, P, order_id=1, account=2),
                new_order(1, "buy", 1, 10, order_id=1, account=3)):  # account 3 has no BTC for ETH-BTC
        before = rx.state_hash()
        ev = rx.process(batch([rec]))
        assert reasons(ev) == ["INSUFFICIENT_BALANCE"]
        assert rx.state_hash() == before
    # the second order of a batch sees the first one's hold
    ev = rx.process(batch([new_order(0, "sell", 3, P, order_id=2, account=2),
                           new_order(0, "sell", 3, P, order_id=3, account=2)]))
    assert reasons(ev) == ["INSUFFICIENT_BALANCE"]
    rx.check()


def test_withdrawal_free_balance_subtracts_holds():
    rx = spot_venue()
    fund(rx, 1, usdt=BAL)
    rx.process(batch([new_order(0, "buy", 10, P, order_id=1, account=1)]))
    before = rx.state_hash()
    ev = rx.process(batch([withdraw(1, USDT, BAL - 10 * P + 1)]))
    assert reasons(ev) == ["INSUFFICIENT_BALANCE"] and rx.state_hash() == before
    ev = rx.process(batch([withdraw(1, USDT, BAL - 10 * P)]))
    assert ev["kind"].tolist() == [EventKind.BALANCE]
    assert rx.ledger.balances[1, USDT] == rx.holds[1, USDT]
    rx.check()


def test_market_buy_is_held_at_max_price_and_refused_without_one():
    rx = spot_venue()
    fund(rx, 1, usdt=BAL, btc=10**8)
    fund(rx, 2, btc=10**8, eth=10**9)
    rx.process(batch([new_order(0, "sell", 2, P, order_id=1, account=2)]))
    ev = rx.process(batch([new_order(0, "buy", 3, 0, order_id=1, account=1, type="market", tif="ioc")]))
    assert (ev["kind"] == EventKind.TRADE).sum() == 1
    assert rx.holds[1, USDT] == 0 and rx.ledger.balances[1, USDT] == BAL - 2 * P
    # 200 lots held at the max price 10,000,000 ticks = 2,000 USDT: more than is left
    before = rx.state_hash()
    ev = rx.process(batch([new_order(0, "buy", 200, 0, order_id=2, account=1, type="market", tif="ioc")]))
    assert reasons(ev) == ["INSUFFICIENT_BALANCE"] and rx.state_hash() == before
    # ETH-BTC has no max price: a market buy cannot be bounded
    ev = rx.process(batch([new_order(1, "buy", 1, 0, order_id=3, account=1, type="market", tif="ioc")]))
    assert reasons(ev) == ["INVALID_ORDER_TYPE"] and rx.state_hash() == before
    # a market sell holds its base and needs no bound
    ev = rx.process(batch([new_order(1, "sell", 1, 0, order_id=4, account=2, type="market", tif="ioc")]))
    assert reasons(ev) == [] and rx.holds[2, ETH] == 0
    rx.check()


def test_self_trade_prevention_cancel_releases_the_hold():
    rx = spot_venue()
    fund(rx, 1, usdt=BAL, btc=10**8)
    rx.process(batch([new_order(0, "sell", 4, P, order_id=1, account=1)]))
    ev = rx.process(batch([new_order(0, "buy", 4, P, order_id=2, account=1, stp="cancel_taker")]))
    assert Reason.STP_CANCEL in ev["reason"].tolist()
    assert rx.holds[1, USDT] == 0 and rx.holds[1, BTC] == 4 * LOT_SAT
    rx.check()


def test_amend_down_releases_and_amend_up_is_refused():
    rx = spot_venue()
    fund(rx, 1, usdt=BAL)
    rx.process(batch([new_order(0, "buy", 10, P, order_id=1, account=1)]))
    rx.process(batch([amend(0, 1, account=1, qty=4)]))
    assert rx.holds[1, USDT] == 4 * P
    before = rx.state_hash()
    for rec in (amend(0, 1, account=1, qty=5), amend(0, 1, account=1, qty=3, price=P - 1)):
        ev = rx.process(batch([rec]))
        assert reasons(ev) == ["INVALID_COMMAND"] and rx.state_hash() == before
    rx.check()


def test_reduce_only_and_non_positive_buy_limit_are_refused():
    rx = spot_venue()
    fund(rx, 1, usdt=BAL, btc=10**8)
    ev = rx.process(batch([new_order(0, "sell", 1, P, order_id=1, account=1, reduce_only=True),
                           new_order(0, "buy", 1, 0, order_id=2, account=1)]))
    assert reasons(ev) == ["REDUCE_ONLY_VIOLATION", "INVALID_PRICE"]
    assert not rx.holds.any()
    rx.check()


def test_cross_quote_pair_settles_in_btc():
    rx = spot_venue(taker_fee_bps=4)
    fund(rx, 1, btc=10**8)
    fund(rx, 2, eth=10**9)
    rx.process(batch([new_order(1, "sell", 20, 5_000, order_id=1, account=2)]))  # 0.05 BTC per ETH
    rx.process(batch([new_order(1, "buy", 20, 5_000, order_id=1, account=1)]))
    assert rx.ledger.balances[1].tolist() == [0, 10**8 - 100_000 - 40, 20 * 100_000]
    assert rx.ledger.balances[2].tolist() == [0, 100_000, 10**9 - 20 * 100_000]
    assert int(rx.ledger.fee_pool[BTC]) == 40
    rx.check()


def test_spot_holds_in_the_margin_currency_are_spent_equity_for_derivatives():
    perp = Instrument(1, "BTC-PERP", tick_size="0.1", lot_size="0.001", kind=InstrumentKind.PERPETUAL)
    rx = RiskExchange([BTCUSDT, perp], 3, currencies=("USDT", "BTC"), currency_decimals=(6, 8),
                      marks=[1, 600_000], clock=lambda: 1)
    fund(rx, 1, usdt=100_000_000)  # 100 USDT
    rx.process(batch([new_order(0, "buy", 10, P, order_id=1, account=1)]))  # holds 60 USDT
    # 1 lot of the perp at 60,000 needs 6 USDT margin at 10 %: 7 lots need 42 > 40 free
    ev = rx.process(batch([new_order(1, "buy", 7, 600_000, order_id=2, account=1)]))
    assert reasons(ev) == ["INSUFFICIENT_MARGIN"]
    ev = rx.process(batch([new_order(1, "buy", 6, 600_000, order_id=2, account=1)]))
    assert reasons(ev) == []
    # and the perp's margin is not free for spot any more
    # 100 - 60 held - 36 IM = 4 USDT free: one lot at 40,000.01 is one micro-USDT too many
    ev = rx.process(batch([new_order(0, "buy", 1, 4_000_001, order_id=3, account=1)]))
    assert reasons(ev) == ["INSUFFICIENT_BALANCE"]
    ev = rx.process(batch([new_order(0, "buy", 1, 4_000_000, order_id=3, account=1)]))
    assert reasons(ev) == [] and rx.free_balance(1, USDT) == 0
    rx.check()


@pytest.mark.parametrize("tick,lot", [("0.01", "0.00001"), ("0.0000001", "1")])
def test_specs_that_are_not_whole_minor_units_are_refused(tick, lot):
    bad = Instrument(0, "BTC-USDT", tick_size=tick, lot_size=lot, kind=InstrumentKind.SPOT, base="BTC", quote="USDT")
    with pytest.raises(ValueError, match="not a positive whole number"):
        RiskExchange([bad], 2, currencies=("USDT", "BTC"), currency_decimals=(6, 4))
    with pytest.raises(ValueError, match="ledger's currencies"):
        RiskExchange([Instrument(0, "X", kind=InstrumentKind.SPOT, base="BTC", quote="BTC")], 2,
                     currencies=("USDT", "BTC"))


def test_ledger_spot_trade_kernel_codes_guard_and_audit():
    led = Ledger(3, ["USDT", "BTC"], [LinearPerp(1, 0, 0)])
    from shardex.ledger import deposit_txns

    led.settle(deposit_txns([0, 1], [0, 1], [1_000, 50]))
    bad = np.concatenate([
        spot_trade_txns(0, 1, 1, 1, 5, 100, 1),  # base == quote
        spot_trade_txns(0, 1, 1, 7, 5, 100, 1),  # unknown quote
        spot_trade_txns(0, 1, 1, 0, 0, 100, 1),  # no base
        spot_trade_txns(0, 1, 1, 0, 5, 0, 1),  # no quote
        spot_trade_txns(0, 0, 1, 0, 5, 100, 1),  # taker == maker
        spot_trade_txns(0, 1, 1, 0, 51, 100, 1),  # the seller lacks base
        spot_trade_txns(0, 1, 1, 0, 5, 1_000, 1, taker_fee_bps=100),  # the buyer lacks the 10 fee
    ])
    before = led.state_hash()
    res = led.settle(bad, threads=2)
    assert res.codes.tolist() == [Reason.INVALID_COMMAND, Reason.UNKNOWN_CURRENCY, Reason.QTY_NOT_POSITIVE,
                                  Reason.INVALID_PRICE, Reason.MALFORMED_DECLARATION, Reason.INSUFFICIENT_BALANCE,
                                  Reason.INSUFFICIENT_BALANCE]
    assert led.state_hash() == before
    res = led.settle(spot_trade_txns(0, 1, 1, 0, 5, 1_000, 1, taker_fee_bps=-1, maker_fee_bps=10, trade_id=9))
    assert res.codes.tolist() == [0]
    assert led.balances[:2].tolist() == [[0 + 0, 5], [1_000 - 1, 45]]  # taker rebate 0 (truncated), maker pays 1
    assert set(res.audit["cause"].tolist()) == {AuditCause.SPOT_TRADE, AuditCause.TRADE_FEE}
    assert (res.audit["ref"] == 9).all()
    led.check()
