"""Hypothesis properties of options on the book: money conserved per currency, parallel == sequential.

Random batches of option and perpetual orders (limit, market, cancels),
marks of the underlying and of the options, deposits and withdrawals in both
currencies, and option expiries at random settlement prices, over 5 accounts
funded tightly enough that margin checks bind and liquidations happen;
account 0 is on portfolio margin.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardex.engine.commands import batch, cancel, new_order
from shardex.risk import PortfolioMargin, deposit, expire, mark_price, withdraw
from shardex.schema import EventKind

from .helpers import assert_rejected_commands_change_nothing
from .option_helpers import BTC, INSTRUMENTS, MARKS, SAT, USD, USDT, S, option_venue

N_ACC = 5
_account = st.integers(0, N_ACC - 1)
_inst = st.sampled_from([0, 1, 2, 3, 4, 5, 1, 3])


def _price(i, off):
    return max(MARKS[i] + off * (MARKS[i] // 20 + 1), 1)


_limit = st.builds(lambda i, a, side, q, off, oid, ro: [new_order(i, side, q, _price(i, off), order_id=oid, account=a,
                                                                  reduce_only=ro)],
                   _inst, _account, st.sampled_from(["buy", "sell"]), st.integers(1, 12), st.integers(-3, 3),
                   st.integers(1, 20), st.sampled_from([False, False, False, True]))
# a resting sell and a crossing buy from another account: trades happen often
_cross = st.builds(lambda i, a, d, q, off, oid: [new_order(i, "sell", q, _price(i, off), order_id=oid, account=a),
                                                 new_order(i, "buy", q, _price(i, off), order_id=oid,
                                                           account=(a + d) % N_ACC)],
                   _inst, _account, st.integers(1, N_ACC - 1), st.integers(1, 8), st.integers(-2, 2),
                   st.integers(1, 20))
_market = st.builds(lambda i, a, q, oid: [new_order(i, "buy" if q > 0 else "sell", abs(q), 0, order_id=oid,
                                                    account=a, type="market", tif="ioc")],
                    _inst, _account, st.integers(-12, 12).filter(bool), st.integers(1, 20))
_cancel = st.builds(lambda i, a, oid: [cancel(i, oid, account=a)], _inst, _account, st.integers(1, 20))
_mark = st.one_of(
    st.builds(lambda d: [mark_price(0, S + d * 3_000)], st.integers(-60, 60)),
    st.builds(lambda i, m: [mark_price(i, max(MARKS[i] * m // 10, 1))], st.sampled_from([1, 2, 3, 4, 5]),
              st.integers(0, 80)),
)
_money = st.one_of(
    st.builds(lambda a, v: [deposit(a, USDT, v * USD)], _account, st.integers(1, 500)),
    st.builds(lambda a, v: [deposit(a, BTC, v * SAT // 100)], _account, st.integers(1, 50)),
    st.builds(lambda a, c, v: [withdraw(a, c, v * (USD if c == USDT else SAT // 100))], _account,
              st.sampled_from([USDT, BTC]), st.integers(1, 1_000)),
)
# now and then an option expires (for good) at a settlement price around S
_expiry = st.builds(lambda i, p, r: [expire(i, p) if r == 0 else mark_price(0, p)],
                    st.sampled_from([1, 2, 3, 4, 5]), st.integers(S - 90_000, S + 90_000), st.integers(0, 3))
_command = st.one_of(_cross, _cross, _cross, _limit, _limit, _market, _cancel, _mark, _mark, _money, _expiry)
_flow = st.lists(st.lists(_command, min_size=1, max_size=10).map(lambda g: [r for rs in g for r in rs]),
                 min_size=1, max_size=10)


def _start(**kw):
    rx = option_venue(N_ACC, portfolio=PortfolioMargin(vol=0.8), **kw)
    rx.process(batch([deposit(a, c, v) for a in range(N_ACC) for c, v in ((USDT, 800 * USD), (BTC, SAT // 20))]))
    rx.set_margin_mode(0, "portfolio")  # account 0 is margined by the scenario grid
    return rx


def _flows(events: np.ndarray, ccy: int) -> int:
    bal = events[(events["kind"] == EventKind.BALANCE) & (events["instrument"] == ccy)]
    return int(bal["qty"].sum())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_flow)
def test_money_is_conserved_per_currency_across_option_trades_and_expiries(flow):
    rx = _start(taker_fee_bps=4, maker_fee_bps=-1)
    total = rx.ledger.total_value().copy()
    for cmds in flow:
        ev = rx.process(batch(cmds))
        new_total = rx.ledger.total_value()
        for ccy in (USDT, BTC):  # accounts + fee pool + insurance fund move only by deposits and withdrawals
            assert int(new_total[ccy] - total[ccy]) == _flows(ev, ccy)
        total = new_total.copy()
        rx.check()
        # positions of an expired option are all closed
        for i, x in enumerate(INSTRUMENTS):
            if rx.inst_state[i]:
                assert not rx.ledger.positions[:, i, 0].any()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_flow)
def test_option_settlement_is_the_same_with_one_and_two_threads(flow):
    runs = [_start(settle_mode="sequential", keep_audit=True, taker_fee_bps=3),
            _start(settle_mode="auto", threads=1, keep_audit=True, taker_fee_bps=3),
            _start(settle_mode="parallel", threads=2, keep_audit=True, taker_fee_bps=3)]
    for cmds in flow:
        evs = [rx.process(batch(cmds)) for rx in runs]
        assert evs[0].tobytes() == evs[1].tobytes() == evs[2].tobytes()
    assert len({rx.state_hash() for rx in runs}) == 1
    audits = [np.concatenate(rx.audit).tobytes() for rx in runs]
    assert audits[0] == audits[1] == audits[2]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_flow)
def test_a_rejected_option_command_changes_nothing(flow):
    assert_rejected_commands_change_nothing(_start(), flow)
