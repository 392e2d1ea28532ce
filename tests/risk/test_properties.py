"""Hypothesis properties of the risk flow: money conserved, rejects change nothing, parallel == sequential."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardex.risk import deposit, expire, funding, mark_price, withdraw
from shardex.schema import EventKind

from .helpers import MARK, USD, assert_rejected_commands_change_nothing, batch, cancel, new_order, venue

N_ACC = 5

_account = st.integers(0, N_ACC - 1)
_inst = st.integers(0, 1)
_deposit = st.builds(lambda a, v: deposit(a, 0, v * USD // 10), _account, st.integers(1, 5_000))
_withdraw = st.builds(lambda a, v: withdraw(a, 0, v * USD // 10), _account, st.integers(1, 3_000))
_limit = st.builds(
    lambda i, a, side, q, off, ro, oid: new_order(i, side, q, MARK + off, order_id=oid, account=a, reduce_only=ro),
    _inst, _account, st.sampled_from(["buy", "sell"]), st.integers(1, 15), st.integers(-3_000, 3_000),
    st.sampled_from([False, False, False, True]), st.integers(1, 30))
_market = st.builds(lambda i, a, q, oid: new_order(i, "buy" if q > 0 else "sell", abs(q), 0, order_id=oid, account=a,
                                                   type="market", tif="ioc"),
                    _inst, _account, st.integers(-15, 15).filter(bool), st.integers(1, 30))
_cancel = st.builds(lambda i, a, oid: cancel(i, oid, account=a), _inst, _account, st.integers(1, 30))
# marks from -20 % to +20 %, with or without an index (premium samples for funding)
_mark = st.builds(lambda i, d, x: mark_price(i, MARK + d * 1_000, x), _inst, st.integers(-120, 120),
                  st.sampled_from([0, MARK, MARK - 600]))
# one time in ten the dated future expires (for good: later commands on it are rejected)
_expire_or_mark = st.builds(lambda p, r: expire(1, p) if r == 0 else mark_price(1, p),
                            st.integers(-1, MARK + 10_000), st.integers(0, 9))
_bad = st.one_of(
    st.builds(lambda a: deposit(a, 0, 1), st.sampled_from([-1, N_ACC, 10**6])),
    st.builds(lambda c: deposit(0, c, 1), st.sampled_from([-1, 1, 9])),
    st.builds(lambda i: mark_price(i, MARK), st.sampled_from([-1, 2, 99])),
)
_command = st.one_of(_limit, _limit, _limit, _limit, _market, _market, _cancel, _mark, _mark, _deposit, _withdraw,
                     st.builds(funding, st.just(0)), _expire_or_mark, _bad)
_flow = st.lists(st.lists(_command, min_size=1, max_size=16), min_size=1, max_size=12)

_settings = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _start(**kw):
    rx = venue(N_ACC, **kw)
    rx.process(batch([deposit(a, 0, 200 * USD) for a in range(N_ACC)]))
    return rx


def _flows_of(events: np.ndarray) -> int:
    bal = events[events["kind"] == EventKind.BALANCE]
    return int(bal["qty"].sum())


@_settings
@given(_flow)
def test_money_is_conserved_and_every_invariant_holds(flow):
    rx = _start(taker_fee_bps=4, maker_fee_bps=-1)
    total = int(rx.ledger.total_value()[0])
    for cmds in flow:
        ev = rx.process(batch(cmds))
        moved = _flows_of(ev)
        new_total = int(rx.ledger.total_value()[0])
        # accounts + fee pool + insurance fund change only by deposits and withdrawals
        assert new_total - total == moved
        total = new_total
        rx.check()


@_settings
@given(_flow)
def test_a_rejected_command_changes_nothing(flow):
    assert_rejected_commands_change_nothing(_start(), flow)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_flow)
def test_parallel_settlement_equals_sequential_in_the_risk_flow(flow):
    seq = _start(settle_mode="sequential", keep_audit=True, taker_fee_bps=3)
    par = _start(settle_mode="parallel", threads=2, keep_audit=True, taker_fee_bps=3)
    for cmds in flow:
        e1 = seq.process(batch(cmds))
        e2 = par.process(batch(cmds))
        assert e1.tobytes() == e2.tobytes()
    assert seq.state_hash() == par.state_hash()
    a1, a2 = np.concatenate(seq.audit), np.concatenate(par.audit)
    assert a1.tobytes() == a2.tobytes()
