"""Options in the ledger: the premium moves at the trade, expiry pays cash against the insurance fund."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardex.ledger import (
    INSURANCE_FUND,
    AuditCause,
    Ledger,
    LinearPerp,
    PremiumContract,
    adl_txns,
    declare_adl,
    deposit_txns,
    option_expiry_txns,
    settle,
    trade_txns,
)
from shardex.ledger.margin import POS_COST, POS_QTY, POS_RPNL
from shardex.schema import Reason

USDT, BTC = 0, 1
PERP, OPT, INV = 0, 1, 2  # a perpetual, a USDT option (mult 100), an inverse BTC option (mult 5,000 sat)


def make(n=4) -> Ledger:
    led = Ledger(n, ["USDT", "BTC"], [LinearPerp(100), PremiumContract(100), PremiumContract(5_000, "BTC")])
    led.set_marks([600_000, 2_000, 80])
    led.settle(deposit_txns(np.arange(n), USDT, 10**10), threads=1)
    led.settle(deposit_txns(np.arange(n), BTC, 10**8), threads=1)
    return led


def test_premium_moves_buyer_to_seller_with_fees():
    led = make()
    res = led.settle(trade_txns(0, 1, OPT, price=2_100, qty=3, taker_fee_bps=10, maker_fee_bps=-2, trade_id=9))
    prem = 2_100 * 3 * 100
    fee_t, fee_m = prem * 10 // 10_000, -(prem * 2 // 10_000)
    assert led.balances[:2, USDT].tolist() == [10**10 - prem - fee_t, 10**10 + prem - fee_m]
    assert led.positions[0, OPT].tolist() == [3, 6_300, 0] and led.positions[1, OPT].tolist() == [-3, -6_300, 0]
    causes = res.audit["cause"].tolist()
    assert causes.count(AuditCause.OPTION_PREMIUM) == 2 and AuditCause.TRADE_PNL not in causes
    # equity counts the option's value at the mark: long adds, short subtracts
    assert int(led.margin[0, 0]) == int(led.balances[0, USDT]) + 3 * 2_000 * 100
    assert int(led.margin[1, 0]) == int(led.balances[1, USDT]) - 3 * 2_000 * 100
    assert led.margin[:2, 1:].tolist() == [[0, 0], [0, 0]]  # options carry no flat-model margin
    # closing: the premium flows back, the realized premium PnL is kept for the record
    led.settle(trade_txns(1, 0, OPT, price=2_500, qty=3))
    assert led.balances[0, USDT] == 10**10 - fee_t + 3 * 400 * 100
    assert led.positions[0, OPT].tolist() == [0, 0, 1_200]
    led.check()


def test_inverse_premium_is_paid_in_the_coin_and_stays_out_of_usdt_equity():
    led = make()
    led.settle(trade_txns(2, 3, INV, price=90, qty=-4, taker_fee_bps=5))  # account 2 sells 4 lots at 90 ticks
    prem = 90 * 4 * 5_000
    assert led.balances[2:, BTC].tolist() == [10**8 + prem - prem * 5 // 10_000, 10**8 - prem]
    assert led.balances[2:, USDT].tolist() == [10**10, 10**10]
    assert led.margin[2:, 0].tolist() == [10**10, 10**10]
    assert int(led.fee_pool[BTC]) == prem * 5 // 10_000
    led.check()


def test_adl_of_an_option_moves_the_premium():
    led = make()
    led.settle(trade_txns(0, 1, OPT, price=2_000, qty=5))
    led.set_marks([600_000, 3_000, 80])  # account 1 (short) is deep in loss: deleverage it against the long
    txn = adl_txns(1, OPT, price=3_500, qty=5)
    declare_adl(led, txn)
    led.settle(txn)
    assert led.positions[:2, OPT, POS_QTY].tolist() == [0, 0]
    assert led.balances[:2, USDT].tolist() == [10**10 + 5 * 1_500 * 100, 10**10 - 5 * 1_500 * 100]
    led.check()


@pytest.mark.parametrize("inst, settle_ccy, num, den", [(OPT, USDT, 12_345 * 100, 1), (INV, BTC, 9_000 * 10**7, 61_000)])
def test_expiry_pays_longs_rounded_down_and_shorts_rounded_up(inst, settle_ccy, num, den):
    led = make()
    led.settle(trade_txns(np.array([0, 0, 1]), np.array([2, 3, 3]), inst, price=70, qty=np.array([3, 4, -2])))
    q = led.positions[:, inst, POS_QTY].copy()
    assert q.tolist() == [7, -2, -3, -2]
    before = led.balances[:, settle_ccy].copy()
    res = led.settle(option_expiry_txns(np.arange(4), inst, num, den, seq=77))
    paid = led.balances[:, settle_ccy] - before
    assert paid.tolist() == [(int(x) * num) // den for x in q]  # Python's floor division, exact
    assert not led.positions[:, inst, [POS_QTY, POS_COST]].any()
    residue = -int(paid.sum())
    assert int(led.insurance[settle_ccy]) == residue and 0 <= residue < 4
    assert (residue == 0) == (den == 1)
    fund = res.audit[res.audit["account"] == INSURANCE_FUND]
    assert (res.audit["cause"] == AuditCause.OPTION_EXPIRY).all() and int(fund["delta"].sum()) == residue
    led.check()


def test_expiry_is_refused_for_linear_instruments_and_bad_values():
    led = make()
    led.settle(trade_txns(0, 1, PERP, price=600_000, qty=1))
    before = led.state_hash()
    res = led.settle(option_expiry_txns([0, 0, 0], [PERP, OPT, 9], [5, 5, 5], [1, 0, 1]))
    assert [Reason(int(c)).name for c in res.codes] == ["INVALID_COMMAND", "INVALID_PRICE", "UNKNOWN_INSTRUMENT"]
    assert led.state_hash() == before


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(2, 300), st.integers(1, 2), st.integers(0, 2**32 - 1))
def test_option_trades_and_expiry_parallel_equal_sequential(n_accounts, n_threads, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3_000))
    base = Ledger(n_accounts, ["USDT", "BTC"], [LinearPerp(100), PremiumContract(100), PremiumContract(5_000, "BTC")])
    base.set_marks([600_000, 2_000, 80])
    base.settle(deposit_txns(np.arange(n_accounts), USDT, 10**9), threads=1)
    base.settle(deposit_txns(np.arange(n_accounts), BTC, 10**7), threads=1)
    a = rng.integers(0, n_accounts, n)
    b = (a + rng.integers(1, n_accounts, n)) % n_accounts
    inst = rng.integers(0, 3, n)
    trades = trade_txns(a, b, inst, rng.integers(1, 3_000, n), rng.integers(1, 30, n) * rng.choice([-1, 1], n),
                        taker_fee_bps=rng.integers(0, 10, n), maker_fee_bps=rng.integers(-2, 5, n))
    s_price = int(rng.integers(1, 120_000))
    ends = []
    for mode in ("sequential", "parallel"):
        led = base.copy()
        r1 = settle(led, trades, threads=n_threads, mode=mode)
        value = max(s_price - 60_000, 0)  # a call struck at 60,000 ticks, settled at s_price
        exp = np.concatenate([option_expiry_txns(np.arange(n_accounts), OPT, value * 100, 1),
                              option_expiry_txns(np.arange(n_accounts), INV, value * 10**7, s_price)])
        r2 = settle(led, exp, threads=n_threads, mode=mode)
        led.check()
        assert not led.positions[:, 1:, :POS_RPNL].any()  # flat; the realized premium PnL stays on record
        ends.append((led.state_hash(), r1.audit.tobytes() + r2.audit.tobytes(), r1.codes.tobytes() + r2.codes.tobytes()))
    assert ends[0] == ends[1]
