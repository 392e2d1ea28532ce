"""Golden tests: one per rule of the risk layer, with the numbers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from shardex.errors import OrderRejected
from shardex.risk import BINANCE_BTCUSDT_BRACKETS, LiqStep, MarginTiers, RiskExchange, expire, funding, mark_price
from shardex.risk import deposit, withdraw
from shardex.risk.margin import instrument_margin, tier_table
from shardex.schema import EventKind, Reason

from .helpers import FUT, MARK, PERP, USD, batch, cancel, fund, new_order, reasons, trade, venue


# -- margin --------------------------------------------------------------------------------------
def test_binance_brackets_give_continuous_maintenance():
    t = MarginTiers.from_brackets(BINANCE_BTCUSDT_BRACKETS, 6)
    assert t.im_bps[:3] == (80, 100, 200)
    assert [c // USD for c in t.cum[:4]] == [0, 50, 1_300, 46_300]  # Binance's published maintenance amounts
    table, n = tier_table([t])
    for bound in t.upper[:6]:  # mm just below and at each bound differ by at most one unit
        lo = instrument_margin(bound - 1, 1, 1, table[0], n[0])[1]
        hi = instrument_margin(bound, 1, 1, table[0], n[0])[1]
        assert 0 <= hi - lo <= 1


def test_tiers_reject_bad_tables():
    with pytest.raises(ValueError, match="strictly increasing"):
        MarginTiers((10, 5), (100, 200, 300), (50, 100, 150))
    with pytest.raises(ValueError, match="mm_bps <= im_bps"):
        MarginTiers.flat(100, 200)


def test_tiered_maintenance_margin_by_notional():
    # 50,000 USDT bound: 40 bps below, 50 bps - 50 USDT above
    t = MarginTiers.from_brackets(BINANCE_BTCUSDT_BRACKETS, 6)
    table, n = tier_table([t])
    im, mm = instrument_margin(100_000 * USD, 1, 1, table[0], n[0])
    assert (im, mm) == (100_000 * USD * 100 // 10_000, 100_000 * USD * 50 // 10_000 - 50 * USD)


# -- pre-trade -------------------------------------------------------------------------------------
def test_initial_margin_counts_open_orders():
    rx = venue()
    fund(rx, {1: 1000})  # 1,000 USDT; one lot at 60,000 needs 6 USDT initial margin
    ev = rx.process(batch([new_order(0, "buy", 166, MARK, order_id=1, account=1)]))
    assert reasons(ev) == []
    ev = rx.process(batch([new_order(0, "buy", 1, MARK, order_id=2, account=1)]))
    assert reasons(ev) == ["INSUFFICIENT_MARGIN"]
    # a sell up to the open buys does not raise the worst case: accepted
    ev = rx.process(batch([new_order(0, "sell", 100, 610_000, order_id=3, account=1)]))
    assert reasons(ev) == []
    rx.process(batch([cancel(0, 1, account=1)]))
    ev = rx.process(batch([new_order(0, "buy", 1, MARK, order_id=2, account=1)]))
    assert reasons(ev) == []
    assert rx.open_lots[1, 0].tolist() == [1, 100]
    rx.check()


def test_buy_above_mark_pays_its_immediate_loss():
    rx = venue()
    fund(rx, {1: 100})
    # 10 lots: 60 USDT initial margin; bought 5,000 ticks above the mark: 10 * 5000 * 100 = 5 USDT loss
    ev = rx.process(batch([new_order(0, "buy", 16, MARK + 50_000, order_id=1, account=1)]))
    assert reasons(ev) == ["INSUFFICIENT_MARGIN"]  # 96 + 80 > 100
    ev = rx.process(batch([new_order(0, "buy", 16, MARK, order_id=1, account=1)]))
    assert reasons(ev) == []


def test_orders_in_one_batch_see_each_others_reservations():
    rx = venue()
    fund(rx, {1: 100})
    ev = rx.process(batch([new_order(0, "buy", 10, MARK, order_id=k, account=1) for k in range(1, 4)]))
    assert reasons(ev) == ["INSUFFICIENT_MARGIN"] * 2  # 60 + 60 > 100 USDT
    assert ev["order_id"][ev["kind"] == EventKind.REJECTED].tolist() == [2, 3]


def test_reduce_only_is_checked_against_the_position():
    rx = venue()
    fund(rx, {1: 10_000, 2: 10_000})
    ev = rx.process(batch([new_order(0, "sell", 1, MARK, order_id=9, account=1, reduce_only=True)]))
    assert reasons(ev) == ["REDUCE_ONLY_VIOLATION"]  # flat
    trade(rx, buyer=1, seller=2, lots=5)
    ev = rx.process(batch([new_order(0, "buy", 1, MARK, order_id=10, account=1, reduce_only=True),
                           new_order(0, "sell", 6, 700_000, order_id=11, account=1, reduce_only=True),
                           new_order(0, "sell", 5, 700_000, order_id=12, account=1, reduce_only=True)]))
    assert reasons(ev) == ["REDUCE_ONLY_VIOLATION", "REDUCE_ONLY_VIOLATION"]
    assert ev["order_id"][ev["kind"] == EventKind.ACCEPTED].tolist() == [12]
    rx.check()


def test_trades_settle_positions_fees_and_margin():
    rx = venue(taker_fee_bps=5, maker_fee_bps=-1)
    fund(rx, {1: 10_000, 2: 10_000})
    trade(rx, buyer=1, seller=2, lots=10)
    led = rx.ledger
    assert led.positions[1, 0].tolist() == [10, 10 * MARK, 0]
    assert led.positions[2, 0].tolist() == [-10, -10 * MARK, 0]
    notional = 10 * MARK * 100  # 600 USDT
    assert int(led.fee_pool[0]) == notional * 5 // 10_000 - notional // 10_000
    assert int(led.balances[1, 0]) == 10_000 * USD - notional * 5 // 10_000
    rx.check()


# -- bad input --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "record, reason",
    [
        (deposit(99, 0, 5), "UNKNOWN_ACCOUNT"),
        (deposit(1, 3, 5), "UNKNOWN_CURRENCY"),
        (deposit(1, 0, 0), "QTY_NOT_POSITIVE"),
        (withdraw(1, 0, 1001 * USD), "INSUFFICIENT_BALANCE"),
        (withdraw(-1, 0, 1), "UNKNOWN_ACCOUNT"),
        (mark_price(0, 0), "INVALID_MARK_PRICE"),
        (mark_price(0, -5), "INVALID_MARK_PRICE"),
        (mark_price(7, MARK), "UNKNOWN_INSTRUMENT"),
        (funding(1), "INVALID_COMMAND"),  # a dated future has no funding
        (expire(0, MARK), "INVALID_COMMAND"),  # a perpetual never expires
        (expire(1, 0), "INVALID_MARK_PRICE"),
        (new_order(0, "buy", 10**6, MARK, order_id=5, account=1), "INSUFFICIENT_MARGIN"),
        (new_order(0, "buy", 1, MARK, order_id=5, account=50), "UNKNOWN_ACCOUNT"),
        (new_order(0, "buy", 1, MARK, order_id=1 << 62, account=1), "INVALID_COMMAND"),
    ],
)
def test_bad_input_is_rejected_and_changes_nothing(record, reason):
    rx = venue()
    fund(rx, {1: 1000})
    rx.process(batch([new_order(0, "buy", 1, MARK - 10, order_id=1, account=1)]))
    before = rx.state_hash()
    ev = rx.process(batch([record]))
    assert reasons(ev) == [reason]
    assert rx.state_hash() == before
    rx.check()


def test_withdrawal_limited_by_margin_held_for_open_orders():
    rx = venue()
    fund(rx, {1: 1000})
    rx.process(batch([new_order(0, "buy", 100, MARK - 10, order_id=1, account=1)]))  # 600 USDT held
    assert rx.free_balance(1, 0) == 1000 * USD - 100 * (MARK - 0) * 100 // 10
    ev = rx.process(batch([withdraw(1, 0, 401 * USD)]))
    assert reasons(ev) == ["INSUFFICIENT_BALANCE"]
    ev = rx.process(batch([withdraw(1, 0, 400 * USD)]))
    assert ev["kind"].tolist() == [EventKind.BALANCE] and int(ev["leaves"][0]) == 600 * USD


def test_off_grid_mark_is_rejected_with_its_reason():
    rx = venue()
    before = rx.state_hash()
    with pytest.raises(OrderRejected) as err:
        rx.set_mark("BTC-PERP", "60000.05")
    assert err.value.reason == Reason.INVALID_MARK_PRICE
    with pytest.raises(OrderRejected) as err:
        rx.set_mark("BTC-PERP", "0")
    assert err.value.reason == Reason.INVALID_MARK_PRICE
    assert rx.state_hash() == before
    rx.set_mark("BTC-PERP", "60000.1")
    assert int(rx.ledger.marks[0]) == MARK + 1


# -- liquidation -------------------------------------------------------------------------------------
def _victim(rx: RiskExchange) -> None:
    """Account 1: 100 USDT, long 10 lots at 60,000 from account 2; an open sell order."""
    fund(rx, {1: 100, 2: 100_000, 3: 100_000, 4: 100})
    trade(rx, buyer=1, seller=2, lots=10)
    rx.process(batch([new_order(0, "sell", 1, 700_000, order_id=2, account=1)]))


def test_liquidation_into_the_book_gives_the_surplus_to_the_fund():
    rx = venue()
    _victim(rx)
    rx.process(batch([new_order(0, "buy", 10, 525_000, order_id=7, account=3)]))
    ev = rx.process(batch([mark_price(0, 527_000)]))
    assert not (ev["kind"] == EventKind.LIQUIDATION).any()  # equity 27 > maintenance 26.35 USDT
    ev = rx.process(batch([mark_price(0, 526_000)]))  # equity 26 < maintenance 26.3 USDT
    liq = ev[ev["kind"] == EventKind.LIQUIDATION]
    assert liq["maker_order_id"].tolist() == [LiqStep.START, LiqStep.ORDER, LiqStep.INSURANCE, LiqStep.DONE]
    assert liq["qty"][0] == 26 * USD and liq["leaves"][0] == 26_300_000
    assert liq["price"][1] == 500_000 and liq["leaves"][1] == 500_000  # bankruptcy price, fund empty
    cancelled = ev[ev["kind"] == EventKind.CANCELLED]
    assert cancelled["order_id"][0] == 2 and cancelled["reason"][0] == Reason.LIQUIDATION
    trades = ev[ev["kind"] == EventKind.TRADE]
    assert trades["price"].tolist() == [525_000] and trades["qty"].tolist() == [10]
    # sold at 525,000: 100 - 75 = 25 USDT left, all of it (< maintenance margin) to the fund
    assert liq["qty"][2] == 25 * USD and int(rx.ledger.insurance[0]) == 25 * USD
    assert int(rx.ledger.balances[1, 0]) == 0 and not rx.ledger.positions[1, 0, 0]
    assert rx.ledger.positions[3, 0, 0] == 10
    rx.check()


def test_adl_when_the_book_is_empty_ranks_by_profit_and_leverage():
    rx = venue()
    fund(rx, {1: 100, 2: 100_000, 4: 100})
    trade(rx, buyer=1, seller=2, lots=6)
    trade(rx, buyer=1, seller=4, lots=4, oid=2)
    ev = rx.process(batch([mark_price(0, 526_000)]))
    liq = ev[ev["kind"] == EventKind.LIQUIDATION]
    adl = liq[liq["maker_order_id"] == LiqStep.ADL]
    # same profit ratio; account 4 is far more leveraged: deleveraged first
    assert adl["account"].tolist() == [4, 2] and adl["qty"].tolist() == [4, 6]
    assert (adl["price"] == 500_000).all() and (adl["maker_account"] == 1).all()
    assert rx.ledger.positions[[1, 2, 4], 0, 0].tolist() == [0, 0, 0]
    # closed at the bankruptcy price: the victim ends at zero, nothing for the fund
    assert int(rx.ledger.balances[1, 0]) == 0 and int(rx.ledger.insurance[0]) == 0
    assert int(rx.ledger.balances[4, 0]) == 100 * USD + 4 * 100_000 * 100
    rx.check()


def test_fund_covers_a_deficit_by_letting_the_order_go_past_bankruptcy():
    rx = venue()
    _victim(rx)
    # seed the insurance fund with 50 USDT from account 3 (an INSURANCE transaction)
    from shardex.ledger import TxnKind, empty_txns

    t = empty_txns(1)
    t["kind"], t["a"], t["currency"], t["amount"] = TxnKind.INSURANCE, 3, 0, 50 * USD
    t["decl"][0, 0] = 3
    rx.ledger.settle(t)
    rx.process(batch([new_order(0, "buy", 10, 495_000, order_id=7, account=3)]))
    ev = rx.process(batch([mark_price(0, 526_000)]))
    liq = ev[ev["kind"] == EventKind.LIQUIDATION]
    # bankruptcy 500,000; the fund's 50 USDT stretch the limit by 50,000 ticks (10 lots * 100 units a tick)
    assert liq["price"][1] == 450_000 and liq["leaves"][1] == 500_000
    assert ev["price"][ev["kind"] == EventKind.TRADE].tolist() == [495_000]
    ins = liq[liq["maker_order_id"] == LiqStep.INSURANCE]
    assert ins["qty"].tolist() == [-5 * USD]  # 100 - 105 = -5 USDT paid by the fund
    assert int(rx.ledger.insurance[0]) == 45 * USD and int(rx.ledger.balances[1, 0]) == 0
    rx.check()


# -- funding and expiry ------------------------------------------------------------------------------
def test_funding_rate_formula_and_payments():
    rx = venue()
    fund(rx, {1: 10_000, 2: 10_000})
    trade(rx, buyer=1, seller=2, lots=10)
    # premium samples 1001 ppm and 0 ppm: average 500; F = 500 + clamp(100 - 500, -500, 500) = 100 ppm
    rx.process(batch([mark_price(0, MARK, 599_400), mark_price(0, MARK, MARK)]))
    b1, b2 = int(rx.ledger.balances[1, 0]), int(rx.ledger.balances[2, 0])
    ev = rx.process(batch([funding(0)]))
    pay = 10 * MARK * 100 * 100 // 1_000_000
    assert ev["kind"].tolist() == [EventKind.FUNDING] * 2
    assert ev["price"].tolist() == [100, 100] and ev["qty"].tolist() == [-pay, pay]
    assert int(rx.ledger.balances[1, 0]) == b1 - pay and int(rx.ledger.balances[2, 0]) == b2 + pay
    # a huge premium is capped at 75 % of (10 % - 5 %) = 37,500 ppm
    rx.process(batch([mark_price(0, MARK, 500_000)]))
    ev = rx.process(batch([funding(0)]))
    assert ev["price"].tolist() == [37_500, 37_500]
    rx.check()


def test_a_funding_payment_that_takes_a_payer_below_maintenance_liquidates_it_at_once():
    rx = venue()
    fund(rx, {1: 62, 2: 10_000, 3: 10_000})  # account 1: 62 USDT for a 600 USDT long (IM 60, MM 30)
    trade(rx, buyer=1, seller=2, lots=10)
    rx.process(batch([new_order(0, "buy", 10, MARK - 10, order_id=9, account=3)]))  # a bid to close into
    rx.process(batch([mark_price(0, MARK, 500_000)]))
    ev = rx.process(batch([funding(0)]))  # longs pay the capped 3.75 %: 22.5 USDT, equity 39.5 > 30
    assert ev["kind"].tolist() == [EventKind.FUNDING] * 2
    rx.process(batch([mark_price(0, MARK, 500_000)]))
    ev = rx.process(batch([funding(0)]))  # another 22.5: equity 17 < 30, liquidated by the same command
    kinds = ev["kind"].tolist()
    assert kinds[:2] == [EventKind.FUNDING] * 2 and EventKind.LIQUIDATION in kinds and EventKind.TRADE in kinds
    assert len(set(ev["seq"].tolist())) == 1  # every event carries the funding command's sequence number
    assert rx.ledger.positions[1, 0, 0] == 0 and rx.ledger.positions[3, 0, 0] == 10
    rx.check()


def test_an_expiry_loss_that_leaves_other_positions_under_margined_liquidates_them():
    rx = venue()
    fund(rx, {1: 125, 2: 10_000, 3: 10_000})  # IM of both longs: 120 USDT
    trade(rx, buyer=1, seller=2, lots=10, inst=1)
    trade(rx, buyer=1, seller=2, lots=10, inst=0, oid=2)
    rx.process(batch([new_order(0, "buy", 10, MARK - 10, order_id=9, account=3)]))
    ev = rx.process(batch([expire(1, 500_000)]))  # the future settles 100 USDT lower: equity 25 < perp MM 30
    kinds = ev["kind"].tolist()
    assert kinds[:2] == [EventKind.SETTLEMENT] * 2 and EventKind.LIQUIDATION in kinds
    assert rx.ledger.positions[1, :, 0].tolist() == [0, 0]
    rx.check()


def test_expiry_settles_in_cash_and_closes_the_book():
    rx = venue()
    fund(rx, {1: 10_000, 2: 10_000, 3: 10_000})
    trade(rx, buyer=1, seller=2, lots=10, inst=1)
    rx.process(batch([new_order(1, "buy", 3, 590_000, order_id=5, account=3)]))
    ev = rx.process(batch([expire(1, 610_000)]))
    assert ev["kind"].tolist() == [EventKind.CANCELLED, EventKind.SETTLEMENT, EventKind.SETTLEMENT]
    assert ev["reason"][0] == Reason.EXPIRY
    assert ev["account"][1:].tolist() == [1, 2] and ev["qty"][1:].tolist() == [10, -10]
    assert rx.ledger.positions[:, 1, 0].tolist() == [0] * 8
    assert int(rx.ledger.balances[1, 0]) == 10_000 * USD + 10 * 10_000 * 100
    assert int(rx.ledger.balances[2, 0]) == 10_000 * USD - 10 * 10_000 * 100
    ev = rx.process(batch([new_order(1, "buy", 1, MARK, order_id=6, account=3), mark_price(1, MARK)]))
    assert reasons(ev) == ["EXPIRY", "EXPIRY"]
    rx.check()


def test_instruments_the_risk_layer_refuses():
    from shardex.instruments import Instrument, InstrumentKind

    with pytest.raises(ValueError, match="needs strike, option_type, underlying and expiry_ns"):
        RiskExchange([Instrument(0, "BTC-C", kind=InstrumentKind.OPTION)], 2)
    with pytest.raises(ValueError, match="not inverse ones"):
        RiskExchange([Instrument(0, "BTC-USD", kind=InstrumentKind.PERPETUAL, inverse=True)], 2)
    # spot is accepted only with a base and a quote among the ledger's currencies (tests/risk/test_spot.py)
    with pytest.raises(ValueError, match="ledger's currencies"):
        RiskExchange([Instrument(0, "BTC-USDT")], 2)
    with pytest.raises(ValueError, match="0..n-1"):
        RiskExchange([FUT], 2)
    assert PERP.id == 0
