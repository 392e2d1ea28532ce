"""Options on the book: premium at the trade, expiry in cash, standard margin of short options, liquidation.

Amounts are computed here from the published formulas in exact fractions
(docs/risk.md, "Options"), independently of the kernels.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from shardex.engine.commands import batch, cancel, new_order
from shardex.ledger import INSURANCE_FUND, AuditCause
from shardex.risk import LiqStep, expire, funding, mark_price
from shardex.schema import EventKind, Reason

from .helpers import reasons
from .option_helpers import (
    BTC,
    CALL,
    ICALL,
    INV_MULT,
    INV_NUM,
    IPUT,
    K,
    LIN_MULT,
    LIN_NUM,
    OTM_CALL,
    PUT,
    SAT,
    USD,
    USDT,
    S,
    cross,
    fund,
    option_venue,
)


def std_margin(s: int, k: int, mark: int, call: bool, inverse: bool, lots: int) -> tuple[int, int]:
    """Deribit's standard margin of ``lots`` short lots, minor units: (initial, maintenance).

    ``s``, ``k`` in PERP ticks (0.1 USD), ``mark`` in option ticks; per contract
    (1 BTC) ``max(0.15 S - otm, 0.10 S) + mark`` and ``0.075 S + mark`` (puts:
    ``max(0.075 S, 0.075 mark) + mark`` and ``IM = max(IM, MM)``); a lot is 0.01
    BTC (linear, USD -> micro-USDT) or 0.1 BTC (inverse, USD / S -> sat).
    """
    otm = max(k - s, 0) if call else max(s - k, 0)
    x_im = max(Fraction(15, 100) * s - otm, Fraction(10, 100) * s)
    x_mm = Fraction(75, 1000) * s
    if inverse:
        to_units = lambda x: math.ceil(x / s * INV_NUM)  # noqa: E731  coins per lot of 0.1 BTC, in sat
        v = mark * INV_MULT
    else:
        to_units = lambda x: math.ceil(x * Fraction(1, 10) * Fraction(1, 100) * USD)  # noqa: E731  USD on 0.01 BTC
        v = mark * LIN_MULT
    im, mm = to_units(x_im) + v, to_units(x_mm) + v
    if not call:
        mm = max(to_units(x_mm), math.ceil(Fraction(75, 1000) * v)) + v
        im = max(im, mm)
    return lots * im, lots * mm


# -- premium at the trade ----------------------------------------------------------------------
def test_linear_premium_moves_from_buyer_to_seller_at_the_trade():
    rx = option_venue(taker_fee_bps=5, maker_fee_bps=-1)
    fund(rx, 1, usdt=10_000 * USD)
    fund(rx, 2, usdt=10_000 * USD)
    ev = cross(rx, buyer=1, seller=2, inst=CALL.id, lots=10, price=21_000)
    premium = 21_000 * 10 * LIN_MULT  # 2,100 USDT a BTC on 0.1 BTC: 210 USDT
    assert premium == 210 * USD
    led = rx.ledger
    assert int(led.balances[1, USDT]) == 10_000 * USD - premium - premium * 5 // 10_000
    assert int(led.balances[2, USDT]) == 10_000 * USD + premium + premium // 10_000
    assert int(led.fee_pool[USDT]) == premium * 5 // 10_000 - premium // 10_000
    assert led.positions[1:3, CALL.id, 0].tolist() == [10, -10]
    # equity counts the option at its mark (2,000 USDT a BTC): long adds, short subtracts
    value = 10 * 20_000 * LIN_MULT
    assert rx.margin_of(1)[0] == int(led.balances[1, USDT]) + value
    assert rx.margin_of(2)[0] == int(led.balances[2, USDT]) - value
    assert ev["price"][ev["kind"] == EventKind.TRADE].tolist() == [21_000]
    rx.check()


def test_inverse_premium_is_paid_in_the_coin():
    rx = option_venue(keep_audit=True)
    fund(rx, 1, btc=SAT)
    fund(rx, 2, btc=SAT)
    cross(rx, buyer=1, seller=2, inst=ICALL.id, lots=4, price=90)
    premium = 90 * 4 * INV_MULT  # 0.045 BTC a contract on 0.4 BTC: 0.018 BTC
    assert premium == 1_800_000
    led = rx.ledger
    assert led.balances[1:3, BTC].tolist() == [SAT - premium, SAT + premium]
    assert led.balances[1:3, USDT].tolist() == [0, 0]
    audit = np.concatenate(rx.audit)
    legs = audit[audit["cause"] == AuditCause.OPTION_PREMIUM]
    assert legs["account"].tolist() == [1, 2] and legs["delta"].tolist() == [-premium, premium]
    assert (legs["currency"] == BTC).all()
    assert rx.margin_of(1, "BTC")[0] == SAT - premium + 4 * 67 * INV_MULT
    rx.check()


# -- standard margin of short options --------------------------------------------------------------
@pytest.mark.parametrize("ins, inverse", [(CALL, False), (PUT, False), (OTM_CALL, False), (ICALL, True), (IPUT, True)])
def test_short_option_needs_its_standard_margin_exactly(ins, inverse):
    rx = option_venue()
    ccy = BTC if inverse else USDT
    mark = int(rx.ledger.marks[ins.id])
    k = int(rx.opt[ins.id, 3])
    im, mm = std_margin(S, k, mark, ins.option_type == 0, inverse, lots=3)
    # the short receives the premium at the mark price: equity stays what it was, so it must hold IM
    fund(rx, 1, **({"btc": im - 1} if inverse else {"usdt": im - 1}))
    ev = rx.process(batch([new_order(ins.id, "sell", 3, mark, order_id=1, account=1)]))
    assert reasons(ev) == ["INSUFFICIENT_MARGIN"]
    fund(rx, 1, **({"btc": 1} if inverse else {"usdt": 1}))
    ev = rx.process(batch([new_order(ins.id, "sell", 3, mark, order_id=1, account=1)]))
    assert reasons(ev) == []
    # the resting sell reserves its margin: nothing is free, nothing can be withdrawn
    assert rx.margin_of(1, ccy) == (im, im, 0)
    assert rx.free_balance(1, ccy) == 0
    fund(rx, 2, usdt=10**6 * USD, btc=100 * SAT)
    rx.process(batch([new_order(ins.id, "buy", 3, mark, order_id=1, account=2)]))
    assert rx.ledger.positions[1, ins.id, 0] == -3
    assert rx.margin_of(1, ccy) == (im, im, mm)
    rx.check()


def test_the_formula_amounts_by_hand():
    # ATM linear call, S = K = 60,000, mark 2,000 USD: IM = 0.15 * 60,000 + 2,000 = 11,000 USD a BTC,
    # MM = 0.075 * 60,000 + 2,000 = 6,500 USD a BTC; a lot is 0.01 BTC: 110 and 65 USDT
    assert std_margin(S, K, 20_000, True, False, 1) == (110 * USD, 65 * USD)
    # OTM call K = 66,000: max(9,000 - 6,000, 6,000) + 500 = 6,500 USD a BTC: 65 USDT a lot
    assert std_margin(S, 660_000, 5_000, True, False, 1) == (65 * USD, 50 * USD)
    # inverse ATM call, mark 0.0335 BTC: IM = 0.15 + 0.0335 = 0.1835 BTC a contract, 0.01835 BTC a lot of 0.1
    assert std_margin(S, K, 67, True, True, 1) == (1_835_000, 1_085_000)
    # a rounding case: S = 61,234.5, K = 62,000: 0.15 - 765.5 / 61,234.5 = 0.137498...: rounded up to a satoshi
    im, _ = std_margin(612_345, 620_000, 67, True, True, 1)
    assert im == math.ceil(Fraction(1500 * 612_345 - 10_000 * 7_655, 10_000 * 612_345) * INV_NUM) + 67 * INV_MULT


def test_the_kernel_rounds_an_inverse_margin_up_to_the_satoshi():
    rx = option_venue()
    rx.process(batch([mark_price(0, 612_345)]))
    fund(rx, 1, btc=SAT)
    fund(rx, 2, btc=SAT)
    cross(rx, buyer=2, seller=1, inst=ICALL.id, lots=7, price=67)
    assert rx.margin_of(1, "BTC")[1:] == std_margin(612_345, K, 67, True, True, 7)


def test_a_long_option_needs_only_its_premium():
    rx = option_venue(taker_fee_bps=10)
    fund(rx, 1, usdt=1_000 * USD)
    hold = 30_000 * 5 * LIN_MULT  # 5 lots at 3,000 USD: 150 USDT, plus the 10 bps fee cap
    ev = rx.process(batch([new_order(CALL.id, "buy", 5, 30_000, order_id=1, account=1)]))
    assert reasons(ev) == []
    assert int(rx.holds[1, USDT]) == hold + hold // 1_000
    assert rx.free_balance(1, USDT) == 1_000 * USD - hold - hold // 1_000
    # a buy whose premium does not fit is refused
    ev = rx.process(batch([new_order(CALL.id, "buy", 30, 30_000, order_id=2, account=1)]))
    assert reasons(ev) == ["INSUFFICIENT_MARGIN"]
    rx.process(batch([cancel(CALL.id, 1, account=1)]))
    assert int(rx.holds[1, USDT]) == 0 and rx.free_balance(1, USDT) == 1_000 * USD
    # bought: the premium is paid; the option's value is in equity and locked in its initial margin
    fund(rx, 2, usdt=10_000 * USD)
    cross(rx, buyer=1, seller=2, inst=CALL.id, lots=5, price=30_000, oid=3)
    eq, im, mm = rx.margin_of(1)
    assert (im, mm) == (5 * 20_000 * LIN_MULT, 0)
    assert eq - im == int(rx.ledger.balances[1, USDT]) == 1_000 * USD - hold - hold // 1_000
    rx.check()


def test_a_resting_sell_reserves_margin_and_a_closing_sell_needs_none():
    rx = option_venue()
    fund(rx, 1, usdt=10_000 * USD)
    fund(rx, 2, usdt=10_000 * USD)
    cross(rx, buyer=1, seller=2, inst=CALL.id, lots=4, price=20_000)
    # account 1 is long 4: selling up to 4 closes, and needs no margin
    free = rx.free_balance(1, USDT)
    rx.process(batch([new_order(CALL.id, "sell", 4, 25_000, order_id=5, account=1)]))
    assert rx.free_balance(1, USDT) == free
    # two more would open a short: their margin is reserved while they rest
    rx.process(batch([new_order(CALL.id, "sell", 2, 25_000, order_id=6, account=1)]))
    im2, _ = std_margin(S, K, 20_000, True, False, 2)
    assert rx.free_balance(1, USDT) == free - im2
    rx.check()


# -- expiry ----------------------------------------------------------------------------------------
def _expiry_venue():
    rx = option_venue(keep_audit=True)
    for a in (1, 2, 3):
        fund(rx, a, usdt=100_000 * USD, btc=10 * SAT)
    cross(rx, buyer=1, seller=2, inst=CALL.id, lots=10, price=20_000)
    cross(rx, buyer=1, seller=2, inst=PUT.id, lots=10, price=20_000, oid=2)
    cross(rx, buyer=1, seller=2, inst=ICALL.id, lots=3, price=67, oid=3)
    cross(rx, buyer=3, seller=2, inst=ICALL.id, lots=4, price=67, oid=4)
    cross(rx, buyer=1, seller=3, inst=IPUT.id, lots=5, price=67, oid=5)
    return rx


def test_linear_call_in_the_money_and_put_out_of_the_money_expire_exactly():
    rx = _expiry_venue()
    led = rx.ledger
    b = led.balances[:, USDT].copy()
    rx.process(batch([new_order(CALL.id, "buy", 1, 100, order_id=9, account=3)]))  # an open order: cancelled
    ev = rx.process(batch([expire(CALL.id, 650_000), expire(PUT.id, 650_000)]))
    assert ev["kind"][0] == EventKind.CANCELLED and ev["reason"][0] == Reason.EXPIRY
    st = ev[ev["kind"] == EventKind.SETTLEMENT]
    pay = 50_000 * LIN_NUM * 10  # 5,000 USD a BTC on 0.1 BTC: 500 USDT
    assert pay == 500 * USD
    assert st["account"].tolist() == [1, 2, 1, 2] and st["qty"].tolist() == [10, -10, 10, -10]
    assert st["maker_leaves"].tolist() == [pay, -pay, 0, 0] and (st["price"] == 650_000).all()
    assert (led.balances[:, USDT] - b).tolist() == [0, pay, -pay, 0, 0, 0]
    assert int(led.insurance[USDT]) == 0
    assert not led.positions[:, [CALL.id, PUT.id], 0].any()
    ev = rx.process(batch([new_order(CALL.id, "buy", 1, 100, order_id=10, account=3), mark_price(PUT.id, 5)]))
    assert reasons(ev) == ["EXPIRY", "EXPIRY"]
    audit = np.concatenate(rx.audit)
    legs = audit[audit["cause"] == AuditCause.OPTION_EXPIRY]
    assert legs["account"].tolist() == [1, INSURANCE_FUND, 2, INSURANCE_FUND]
    assert legs["delta"].tolist() == [pay, -pay, -pay, pay]
    rx.check()


@pytest.mark.parametrize("settle", [650_000, 580_000])
def test_inverse_options_pay_the_intrinsic_value_in_coin_rounded_toward_the_fund(settle):
    rx = _expiry_venue()
    led = rx.ledger
    b = led.balances[:, BTC].copy()
    ev = rx.process(batch([expire(ICALL.id, settle), expire(IPUT.id, settle)]))
    st = ev[ev["kind"] == EventKind.SETTLEMENT]
    call_per_lot = Fraction(max(settle - K, 0) * INV_NUM, settle)  # sat per lot of 0.1 BTC
    put_per_lot = Fraction(max(K - settle, 0) * INV_NUM, settle)
    want = {  # floor for each position: longs down, shorts pay up
        1: math.floor(3 * call_per_lot) + math.floor(5 * put_per_lot),
        2: math.floor(-7 * call_per_lot),
        3: math.floor(4 * call_per_lot) + math.floor(-5 * put_per_lot),
    }
    got = led.balances[:, BTC] - b
    assert {a: int(got[a]) for a in (1, 2, 3)} == want
    residue = -sum(want.values())
    assert int(led.insurance[BTC]) == residue and residue > 0  # fractions of a satoshi: the fund keeps them
    fund_ev = st[st["account"] == INSURANCE_FUND]
    assert fund_ev["maker_leaves"].sum() == residue
    people = st[st["account"] >= 0]
    assert int(people["maker_leaves"].sum()) == -residue
    assert not led.positions[:, [ICALL.id, IPUT.id], 0].any()
    rx.check()


def test_option_commands_that_make_no_sense_are_refused():
    rx = option_venue()
    before = rx.state_hash()
    ev = rx.process(batch([funding(CALL.id), expire(CALL.id, 0), expire(CALL.id, -5)]))
    assert reasons(ev) == ["INVALID_COMMAND", "INVALID_MARK_PRICE", "INVALID_MARK_PRICE"]
    assert rx.state_hash() == before


# -- liquidation -------------------------------------------------------------------------------------
def test_a_short_call_is_liquidated_when_the_underlying_rises():
    rx = option_venue()
    im, _ = std_margin(S, K, 20_000, True, False, 10)
    assert im == 1_100 * USD
    fund(rx, 2, usdt=im)  # just enough to sell 10 ATM calls at the mark
    fund(rx, 1, usdt=10_000 * USD)
    cross(rx, buyer=1, seller=2, inst=CALL.id, lots=10, price=20_000)
    # the call is re-marked at 4,200 USD: equity 1,100 + 200 - 420 = 880 > MM 0.075 * 60,000 * 0.1 + 420 = 870
    ev = rx.process(batch([mark_price(CALL.id, 42_000)]))
    assert not (ev["kind"] == EventKind.LIQUIDATION).any()
    assert rx.margin_of(2)[0::2] == (880 * USD, 870 * USD)
    # account 1 offers its long at 4,500 USD; the underlying rises to 62,000: MM 465 + 420 = 885 > 880
    rx.process(batch([new_order(CALL.id, "sell", 10, 45_000, order_id=7, account=1)]))
    ev = rx.process(batch([mark_price(0, 620_000)]))
    liq = ev[ev["kind"] == EventKind.LIQUIDATION]
    assert liq["maker_order_id"].tolist() == [LiqStep.START, LiqStep.ORDER, LiqStep.INSURANCE, LiqStep.DONE]
    assert (liq["qty"][0], liq["leaves"][0]) == (880 * USD, 885 * USD)
    # bankruptcy: mark + equity / (lots * mult) = 42,000 + 880e6 / 10,000 = 130,000 ticks; the buy fills at 4,500
    assert liq["price"][1] == 130_000 and liq["side"][1] == 0 and liq["instrument"][1] == CALL.id
    trades = ev[ev["kind"] == EventKind.TRADE]
    assert trades["price"].tolist() == [45_000] and trades["qty"].tolist() == [10]
    # paid 450 USDT back: 1,300 - 450 = 850 left, all of it (< maintenance) to the insurance fund
    assert liq["qty"][2] == 850 * USD and int(rx.ledger.insurance[USDT]) == 850 * USD
    assert int(rx.ledger.balances[2, USDT]) == 0 and rx.ledger.positions[2, CALL.id, 0] == 0
    rx.check()


def test_an_inverse_pool_is_liquidated_in_its_coin_and_leaves_the_usdt_pool_alone():
    rx = option_venue()
    im, _ = std_margin(S, K, 67, True, True, 10)
    fund(rx, 2, usdt=50_000 * USD, btc=im)
    fund(rx, 1, btc=10 * SAT)
    cross(rx, buyer=1, seller=2, inst=ICALL.id, lots=10, price=67)
    rx.process(batch([new_order(ICALL.id, "sell", 10, 400, order_id=8, account=1)]))
    ev = rx.process(batch([mark_price(0, 700_000), mark_price(ICALL.id, 300)]))
    liq = ev[ev["kind"] == EventKind.LIQUIDATION]
    assert liq["maker_order_id"][0] == LiqStep.START and (liq["trade_id"] == BTC).all()
    assert rx.ledger.positions[2, ICALL.id, 0] == 0
    assert int(rx.ledger.balances[2, USDT]) == 50_000 * USD  # the USDT pool is not touched
    rx.check()


def test_option_specs_the_venue_refuses():
    from dataclasses import replace

    from shardex.instruments import Instrument, InstrumentKind
    from shardex.risk import RiskExchange

    from .option_helpers import PERP

    fut = Instrument(1, "BTC-FUT", tick_size="0.1", lot_size="0.001", kind=InstrumentKind.FUTURE, expiry_ns=10)
    cases = [
        ([PERP, replace(CALL, underlying=5)], "must be a perpetual or future"),
        ([PERP, replace(CALL, strike="60000.05")], "not on the tick grid"),
        ([PERP, replace(CALL, expiry_ns=0)], "needs strike, option_type, underlying and expiry_ns"),
        ([PERP, replace(ICALL, id=1, base="ETH")], "inverse option settles in its coin"),
        ([PERP, replace(CALL, lot_size="0.0000001")], "not a positive whole number"),
        ([PERP, fut, replace(CALL, id=2, underlying=1)], "expires after its underlying future"),
    ]
    for ins, msg in cases:
        with pytest.raises(ValueError, match=msg):
            RiskExchange(ins, 2, currencies=("USDT", "BTC"), currency_decimals=(6, 8))


def test_the_example_in_docs_risk_md_runs_and_says_what_it_shows():
    import re
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "risk.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", doc, re.S) if "BTC-28JUN24-60000-C" in b)
    env: dict = {}
    exec(block, env)  # noqa: S102 -- our own documentation
    rx = env["rx"]
    assert rx.margin_of(1, "BTC") == (100_000_000 - 7_692_308 + 3_350_000, 0, 0)
    assert rx.ledger.balances[1:3, BTC].tolist() == [95_657_692, 104_342_307]
    assert int(rx.ledger.insurance[BTC]) == 1
    rx.check()
