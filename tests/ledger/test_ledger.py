"""Unit tests of the ledger's arithmetic, rejects, audit trail and ADL reconnaissance."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shardex.ledger as L
from shardex.instruments import Instrument, InstrumentKind
from shardex.ledger import (
    FEE_POOL,
    INSURANCE_FUND,
    AuditCause,
    Ledger,
    LinearPerp,
    adl_txns,
    declare_adl,
    deposit_txns,
    funding_txns,
    settle,
    trade_txns,
    transfer_txns,
    withdraw_txns,
)
from shardex.schema import Reason

MULT = 10


def make(n_accounts=4, usdt=10**9, marks=(100,)):
    led = Ledger(n_accounts, ["USDT", "BTC"], [LinearPerp(MULT, im_bps=1000, mm_bps=500)] * len(marks))
    led.set_marks(marks)
    led.settle(deposit_txns(np.arange(n_accounts), 0, usdt), threads=1)
    return led


def test_public_api_is_curated():
    assert sorted(L.__all__) == sorted(
        [
            "AUDIT_DTYPE", "FEE_POOL", "INSURANCE_FUND", "MAX_AUDIT_PER_TXN", "MAX_DECL", "MIN_TXNS_PER_LEVEL",
            "TXN_DTYPE", "AuditCause", "Ledger", "LedgerInvariantError", "LinearPerp", "PremiumContract",
            "SettlementResult", "TxnKind", "adl_txns", "declare_adl", "deposit_txns", "empty_txns", "funding_txns",
            "linear_margin", "option_expiry_txns", "schedule", "settle", "trade_txns", "transfer_txns",
            "withdraw_txns",
        ]
    )  # fmt: skip
    for name in L.__all__:
        assert getattr(L, name).__doc__ or not callable(getattr(L, name)), name


def test_average_entry_realized_pnl_and_flip():
    led = make()
    steps = [  # taker 0 against maker 1: (price, signed qty) -> position of 0 after
        (100, 10, (10, 1000, 0)),
        (110, 10, (20, 2100, 0)),  # average entry 105
        (120, -5, (15, 1575, 75)),  # 5 * 120 - 2100 * 5 / 20
        (90, -20, (-5, -450, 75 - 225)),  # closes 15 at 90 (-225), opens 5 short at 90
    ]
    for price, qty, want in steps:
        res = led.settle(trade_txns(0, 1, 0, price, qty), threads=1)
        assert res.codes.tolist() == [0]
        assert tuple(led.positions[0, 0].tolist()) == want
        assert led.positions[1, 0, 0] == -want[0]
    assert led.balances[0, 0] == 10**9 + (75 - 225) * MULT
    led.check()


def test_fees_with_maker_rebate_go_through_the_fee_pool():
    led = make()
    res = led.settle(trade_txns(0, 1, 0, 2_000, 7, taker_fee_bps=5, maker_fee_bps=-1, trade_id=42, seq=9), threads=1)
    notional = 2_000 * 7 * MULT  # 140,000 minor units
    assert led.balances[0, 0] == 10**9 - notional * 5 // 10_000
    assert led.balances[1, 0] == 10**9 + notional // 10_000
    assert led.fee_pool[0] == notional * 4 // 10_000
    a = res.audit
    assert a["seq"].tolist() == [9] * 4 and a["ref"].tolist() == [42] * 4
    assert a["cause"].tolist() == [AuditCause.TRADE_FEE] * 4
    assert a["account"].tolist() == [0, 1, FEE_POOL, FEE_POOL]
    assert a["delta"].tolist() == [-70, 14, 70, -14]
    assert a["balance_after"].tolist() == [10**9 - 70, 10**9 + 14, 70, 56]
    led.check()


def test_rebates_truncate_toward_zero():
    led = make()
    led.settle(trade_txns(0, 1, 0, 3, 333, taker_fee_bps=1, maker_fee_bps=-1), threads=1)
    # notional 9,990: both legs are 0.999 units, truncated to 0
    assert led.fee_pool[0] == 0 and led.balances[1, 0] == 10**9


def test_funding_longs_pay_the_insurance_fund_when_rate_positive():
    led = make(marks=(20_000,))
    led.settle(trade_txns(0, 1, 0, 20_000, 10), threads=1)
    res = led.settle(funding_txns([0, 1], 0, 100), threads=1)
    pay = 10 * 20_000 * MULT * 100 // 1_000_000
    assert led.balances[0, 0] == 10**9 - pay and led.balances[1, 0] == 10**9 + pay
    assert led.insurance[0] == 0
    assert res.audit["account"].tolist() == [0, INSURANCE_FUND, 1, INSURANCE_FUND]
    assert res.audit["balance_after"].tolist() == [10**9 - pay, pay, 10**9 + pay, 0]
    led.check()


def test_margin_follows_the_linear_model():
    led = make(marks=(100, 200))
    led.settle(trade_txns([0, 0], [1, 2], [0, 1], [90, 210], [50, -20]), threads=1)
    led.set_marks([100, 200])
    equity, im, mm = led.margin[0].tolist()
    upnl = (50 * 100 - 50 * 90 + (-20 * 200 + 20 * 210)) * MULT
    notional = (50 * 100 + 20 * 200) * MULT
    assert equity == 10**9 + upnl
    assert im == notional * 1000 // 10_000 and mm == notional * 500 // 10_000
    led.check()


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 10**7), st.integers(-30, 30), st.integers(50, 150), st.sampled_from([1, 2]))
def test_withdrawals_beyond_free_balance_are_rejected_whole(amount, qty, mark, threads):
    led = make(n_accounts=3, usdt=10**6)
    if qty:
        led.settle(trade_txns(0, 1, 0, 100, qty), threads=1)
    led.set_marks([mark])
    equity, im, _ = led.margin[0].tolist()
    free = min(int(led.balances[0, 0]), equity - im)
    before = led.state_hash()
    res = settle(led, withdraw_txns(0, 0, amount), threads=threads)
    if amount > free:
        assert res.codes.tolist() == [Reason.INSUFFICIENT_BALANCE]
        assert res.audit.size == 0 and led.state_hash() == before
    else:
        assert res.codes.tolist() == [0]
        assert res.audit["delta"].tolist() == [-amount]
        assert led.net_flow[0] == 3 * 10**6 - amount
    led.check()


def test_transfer_and_other_currency_rejects_change_nothing():
    led = make()
    led.settle(deposit_txns(2, 1, 500), threads=1)
    before = led.state_hash()
    res = led.settle(
        np.concatenate([transfer_txns(2, 3, 1, 501), withdraw_txns(2, 1, 501), transfer_txns(0, 1, 0, 10**9 + 1)]),
        threads=1,
    )
    assert res.codes.tolist() == [Reason.INSUFFICIENT_BALANCE] * 3
    assert led.state_hash() == before and res.audit.size == 0
    res = led.settle(transfer_txns(2, 3, 1, 500), threads=1)
    assert led.balances[:, 1].tolist() == [0, 0, 0, 500]
    assert res.audit["cause"].tolist() == [AuditCause.TRANSFER] * 2


def test_unknown_currency_instrument_and_bad_fields_are_rejected():
    led = make()
    bad = np.concatenate(
        [
            deposit_txns(0, 7, 5),
            deposit_txns(0, -1, 5),
            trade_txns(0, 1, 3, 100, 1),
            trade_txns(0, 1, 0, 0, 1),
            trade_txns(0, 1, 0, 100, 0),
            deposit_txns(0, 0, 0),
            deposit_txns(9, 0, 5),
        ]
    )
    bad["decl"][6, 0] = 1  # declared 1, writes 9 (unknown)
    before = led.state_hash()
    res = led.settle(bad, threads=2)
    assert res.codes.tolist() == [
        Reason.UNKNOWN_CURRENCY,
        Reason.UNKNOWN_CURRENCY,
        Reason.UNKNOWN_INSTRUMENT,
        Reason.INVALID_PRICE,
        Reason.QTY_NOT_POSITIVE,
        Reason.INVALID_COMMAND,
        Reason.UNKNOWN_ACCOUNT,
    ]
    assert led.state_hash() == before


def test_linear_perp_from_instrument():
    btc = Instrument(0, "BTC-PERP", tick_size="0.1", lot_size="0.001", kind=InstrumentKind.PERPETUAL, quote="USDT")
    assert LinearPerp.from_instrument(btc, currency_decimals=6).multiplier == 100
    with pytest.raises(ValueError):
        LinearPerp.from_instrument(btc, currency_decimals=2)


# -- ADL: accounts known only from data ---------------------------------------------
def _adl_ledger():
    """Account 0 long 30; shorts 1, 2, 3 entered at 130, 120, 110 (most profitable first at mark 100)."""
    led = make(n_accounts=8, marks=(100,))
    led.settle(trade_txns([0, 0, 0], [1, 2, 3], 0, [130, 120, 110], 10), threads=1)
    return led


def test_adl_reconnaissance_guess_right_runs_in_parallel():
    led = _adl_ledger()
    adl = adl_txns(0, 0, price=100, qty=15)
    assert declare_adl(led, adl) == 1
    assert adl["decl"][0].tolist() == [0, 1, 2, -1]
    batch = np.concatenate([transfer_txns(5, 6, 0, 5), adl, transfer_txns(6, 7, 0, 5)])
    seq, par = led.copy(), led.copy()
    rs = settle(seq, batch, mode="sequential")
    rp = settle(par, batch, threads=2, mode="parallel")
    assert rp.mode == "parallel"
    assert par.state_hash() == seq.state_hash() and np.array_equal(rp.audit, rs.audit)
    assert par.positions[:4, 0, 0].tolist() == [15, 0, -5, -10]
    assert (rs.audit["cause"] == AuditCause.ADL_PNL).sum() == 4  # 0 loses twice, 1 and 2 gain
    par.check()


def test_adl_wrong_guess_is_rerun_sequentially():
    led = _adl_ledger()
    # Earlier in the same batch, account 4 opens a short at 200: now the most profitable.
    batch = np.concatenate([trade_txns(5, 4, 0, 200, 10), adl_txns(0, 0, price=100, qty=15)])
    declare_adl(led, batch)  # sees the state before the batch: guesses 1 and 2
    assert batch["decl"][1].tolist() == [0, 1, 2, -1]
    seq, par = led.copy(), led.copy()
    rs = settle(seq, batch, mode="sequential")
    rp = settle(par, batch, threads=2, mode="parallel")
    assert rp.mode == "rerun"
    assert par.state_hash() == seq.state_hash() and np.array_equal(rp.audit, rs.audit)
    assert seq.positions[4, 0, 0] == 0 and seq.positions[1, 0, 0] == -5
    par.check()


@settings(max_examples=30, deadline=None)
@given(st.integers(8, 300), st.integers(0, 400), st.integers(2, 4), st.integers(0, 2**32 - 1))
def test_random_batches_with_adls_equal_sequential(n_accounts, n_txns, threads, seed):
    rng = np.random.default_rng(seed)
    led = make(n_accounts=n_accounts, marks=(100, 100))
    a = rng.integers(0, n_accounts, 4 * n_accounts)
    b = (a + rng.integers(1, n_accounts, a.size)) % n_accounts
    led.settle(trade_txns(a, b, rng.integers(0, 2, a.size), rng.integers(80, 120, a.size), rng.integers(-9, 10, a.size) | 1), threads=1)
    a = rng.integers(0, n_accounts, n_txns)
    b = (a + rng.integers(1, n_accounts, n_txns)) % n_accounts
    batch = trade_txns(a, b, rng.integers(0, 2, n_txns), rng.integers(80, 120, n_txns), rng.integers(1, 9, n_txns))
    k = rng.integers(0, 6)
    adl = adl_txns(rng.integers(0, n_accounts, k), rng.integers(0, 2, k), 100, rng.integers(1, 20, k))
    batch = np.insert(batch, rng.integers(0, n_txns + 1, k), adl)
    declare_adl(led, batch)
    seq, par = led.copy(), led.copy()
    rs = settle(seq, batch, mode="sequential")
    rp = settle(par, batch, threads=threads, mode="parallel", order=rng.choice(["row", "level"]))
    assert par.state_hash() == seq.state_hash()
    assert np.array_equal(rp.audit, rs.audit) and np.array_equal(rp.codes, rs.codes)
    par.check()


def test_module_doctests():
    import doctest

    import shardex.ledger.ledger as mod

    assert doctest.testmod(mod).failed == 0
