"""Hypothesis properties of spot trading: money conserved per currency, holds within balances, rejects change nothing."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardex.engine.commands import amend, batch, cancel, new_order
from shardex.risk import deposit, withdraw
from shardex.schema import EventKind

from .spot_helpers import CURRENCIES, P, spot_venue

N_ACC = 4
N_CCY = len(CURRENCIES)
PRICE = (P, 5_000)  # BTC-USDT, ETH-BTC

_account = st.integers(0, N_ACC - 1)
_inst = st.integers(0, 1)
_oid = st.integers(1, 20)
_limit = st.builds(
    lambda i, a, side, q, off, tif, oid, stp: new_order(i, side, q, PRICE[i] + off * (1 + 99 * (i == 0)), order_id=oid,
                                                        account=a, tif=tif, stp=stp),
    _inst, _account, st.sampled_from(["buy", "sell"]), st.integers(1, 40), st.integers(-20, 20),
    st.sampled_from(["gtc", "gtc", "ioc"]), _oid, st.sampled_from(["none", "cancel_taker", "cancel_maker"]))
_market = st.builds(lambda i, a, q, oid: new_order(i, "buy" if q > 0 else "sell", abs(q), 0, order_id=oid, account=a,
                                                   type="market", tif="ioc"),
                    _inst, _account, st.integers(-30, 30).filter(bool), _oid)
_cancel = st.builds(lambda i, a, oid: cancel(i, oid, account=a), _inst, _account, _oid)
_amend = st.builds(lambda i, a, oid, q: amend(i, oid, account=a, qty=q), _inst, _account, _oid, st.integers(1, 40))
_amount = st.integers(1, 10**8)
START = (200 * 10**6, 500_000, 4_000_000)  # 200 USDT, 0.005 BTC, 0.04 ETH
_deposit = st.builds(deposit, _account, st.integers(0, N_CCY - 1), _amount)
_withdraw = st.builds(withdraw, _account, st.integers(0, N_CCY - 1), _amount)
_command = st.one_of(_limit, _limit, _limit, _limit, _market, _cancel, _amend, _deposit, _withdraw)
_flow = st.lists(st.lists(_command, min_size=1, max_size=16), min_size=1, max_size=10)
_fees = st.sampled_from([(0, 0), (10, -2), (7, 3), (10_000, -10_000)])

_settings = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _start(fees, **kw):
    rx = spot_venue(N_ACC, taker_fee_bps=fees[0], maker_fee_bps=fees[1], **kw)
    # tight enough that holds bind: ~33 lots of BTC-USDT buys, 50 lots of its sells, 40 of ETH-BTC either way
    rx.process(batch([deposit(a, c, v) for a in range(N_ACC) for c, v in enumerate(START)]))
    return rx


def _flows(events: np.ndarray) -> np.ndarray:
    bal = events[events["kind"] == EventKind.BALANCE]
    out = np.zeros(N_CCY, np.int64)
    np.add.at(out, bal["instrument"].astype(np.int64), bal["qty"])
    return out


def _check(rx):
    rx.check()  # ledger conservation, holds == live spot orders, holds <= balances
    assert (rx.holds >= 0).all()
    assert (rx.holds <= rx.ledger.balances).all()


@_settings
@given(_flow, _fees)
def test_money_is_conserved_per_currency_and_holds_never_exceed_balances(flow, fees):
    rx = _start(fees)
    total = rx.ledger.total_value().copy()
    for cmds in flow:
        ev = rx.process(batch(cmds))
        new_total = rx.ledger.total_value()
        # per currency: accounts + fee pool change only by deposits and withdrawals
        assert (new_total - total).tolist() == _flows(ev).tolist()
        total = new_total.copy()
        _check(rx)


@_settings
@given(_flow, _fees)
def test_a_rejected_command_changes_nothing(flow, fees):
    rx = _start(fees)
    for cmds in flow:
        for rec in cmds:
            before = rx.state_hash()
            ev = rx.process(batch([rec]))
            if len(ev) and (ev["kind"] == EventKind.REJECTED).all():
                assert rx.state_hash() == before
        _check(rx)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_flow, _fees)
def test_parallel_settlement_equals_sequential(flow, fees):
    seq = _start(fees, settle_mode="sequential", keep_audit=True)
    par = _start(fees, settle_mode="parallel", threads=2, keep_audit=True)
    for cmds in flow:
        e1, e2 = seq.process(batch(cmds)), par.process(batch(cmds))
        assert e1.tobytes() == e2.tobytes()
    assert seq.state_hash() == par.state_hash()
    assert np.concatenate(seq.audit).tobytes() == np.concatenate(par.audit).tobytes()
