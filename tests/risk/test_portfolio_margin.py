"""Portfolio margin per account: hedged books need less than standard margin, and every check uses the mode."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shardex.engine.commands import batch, new_order
from shardex.errors import OrderRejected
from shardex.options import POSITION_DTYPE, ScenarioGrid, portfolio_margin
from shardex.options.portfolio import CALL as PCALL
from shardex.options.portfolio import FUTURE as PFUT
from shardex.risk import LiqStep, PortfolioMargin, mark_price
from shardex.schema import EventKind, Reason

from .helpers import reasons
from .option_helpers import CALL, EXPIRY, ICALL, LIN_MULT, OTM_CALL, PERP, USD, USDT, S, fund, option_venue

VOL = 0.6
NS_PER_YEAR = 365 * 86_400 * 10**9


def pm_venue(**kw):
    return option_venue(portfolio=PortfolioMargin(vol=VOL), **kw)


def portfolio_and_standard(usdt: int, accounts=(1, 2)):
    """A venue where account 5 makes markets (1 M USDT), ``accounts`` hold ``usdt`` whole USDT each, and
    account 1 is on portfolio margin (the others on standard)."""
    rx = pm_venue()
    fund(rx, 5, usdt=10**6 * USD)
    for a in accounts:
        fund(rx, a, usdt=usdt * USD)
    rx.set_margin_mode(1, "portfolio")
    return rx


def scenario_margin(rows: list[tuple[int, float, float, float]]) -> int:
    """``portfolio_margin`` of one account's rows ``(kind, strike USD, qty, t years)``, in micro-USDT, rounded up."""
    pos = np.zeros(len(rows), POSITION_DTYPE)
    for j, (kind, strike, qty, t) in enumerate(rows):
        pos[j] = (0, 0, kind, strike, t, VOL if kind != PFUT else 0.0, qty, 1.0)
    res = portfolio_margin(pos, np.array([S / 10]), {0: ScenarioGrid()})
    return math.ceil(res["margin"][0] * USD)


T = (EXPIRY - 1) / NS_PER_YEAR  # the venue's clock reads 1 ns


def _hedge(rx, a: int) -> np.ndarray:
    """Account ``a`` buys 10 ATM calls (0.1 BTC) from account 5, then sells 100 perpetual lots (0.1 BTC) to it."""
    ev1 = rx.process(batch([new_order(CALL.id, "sell", 10, 20_000, order_id=1, account=5),
                            new_order(CALL.id, "buy", 10, 20_000, order_id=1, account=a)]))
    assert (ev1["kind"] == EventKind.TRADE).any()
    return rx.process(batch([new_order(PERP.id, "buy", 100, S, order_id=2, account=5),
                             new_order(PERP.id, "sell", 100, S, order_id=2, account=a)]))


def test_long_call_against_a_short_perpetual_needs_less_under_portfolio_margin():
    rx = portfolio_and_standard(2_000)
    assert (rx.margin_mode(1), rx.margin_mode(2)) == ("portfolio", "standard")
    for a in (1, 2):
        ev = _hedge(rx, a)
        assert reasons(ev) == []
    std = rx.margin_of(2)
    pm = rx.margin_of(1)
    # standard: the long call's value (200 USDT) is locked, the short perpetual needs 10 % of 6,000 USDT
    assert std[1:] == (10 * 20_000 * LIN_MULT + 600 * USD, 300 * USD)
    # portfolio: the scenario grid's worst loss of +0.1 call and -0.1 BTC forward, at 60 % vol
    want = scenario_margin([(PCALL, 60_000.0, 0.1, T), (PFUT, 0.0, -0.1, 0.0)])
    assert pm[1] == want and pm[2] == math.ceil(want * 0.8)
    assert pm[1] < std[1] / 2
    assert pm[0] == std[0]  # same equity
    rx.check()


def test_a_call_spread_needs_less_under_portfolio_margin():
    rx = portfolio_and_standard(5_000)
    for a in (1, 2):
        ev = rx.process(batch([new_order(CALL.id, "sell", 10, 20_000, order_id=1, account=5),
                               new_order(CALL.id, "buy", 10, 20_000, order_id=1, account=a),
                               new_order(OTM_CALL.id, "buy", 10, 5_000, order_id=1, account=5),
                               new_order(OTM_CALL.id, "sell", 10, 5_000, order_id=1, account=a)]))
        assert reasons(ev) == [] and (ev["kind"] == EventKind.TRADE).sum() == 2
    std, pm = rx.margin_of(2), rx.margin_of(1)
    # standard: 200 locked in the long + the short OTM call, max(0.15 * 60,000 - 6,000, 6,000) + 500 on 0.1 BTC
    assert std[1] == 200 * USD + 650 * USD
    want = scenario_margin([(PCALL, 60_000.0, 0.1, T), (PCALL, 66_000.0, -0.1, T)])
    assert pm[1] == want < std[1]
    rx.check()


def test_the_pretrade_check_uses_the_selected_mode():
    rx = portfolio_and_standard(500)  # enough for the hedge under portfolio margin, not under standard
    assert reasons(_hedge(rx, 1)) == []
    assert reasons(_hedge(rx, 2)) == ["INSUFFICIENT_MARGIN"]  # 200 locked + 600 > 500
    assert rx.ledger.positions[1, PERP.id, 0] == -100 and rx.ledger.positions[2, PERP.id, 0] == 0
    # back to standard margin would leave account 1 short of initial margin: refused, nothing changes
    before = rx.state_hash()
    with pytest.raises(OrderRejected) as err:
        rx.set_margin_mode(1, "standard")
    assert err.value.reason == Reason.INSUFFICIENT_MARGIN and rx.margin_mode(1) == "portfolio"
    assert rx.state_hash() == before
    # an account without positions switches freely; withdrawals follow the mode too
    rx.set_margin_mode(2, "portfolio")
    rx.set_margin_mode(2, "standard")
    assert rx.free_balance(1, USDT) == rx.margin_of(1)[0] - rx.margin_of(1)[1]
    rx.check()


def test_portfolio_maintenance_drives_liquidation():
    rx = portfolio_and_standard(1_000, accounts=(1,))
    # a naked short of 0.1 BTC: the grid's worst case is the +15 % move, 900 USDT (standard would ask 600)
    ev = rx.process(batch([new_order(PERP.id, "buy", 100, S, order_id=1, account=5),
                           new_order(PERP.id, "sell", 100, S, order_id=1, account=1)]))
    assert reasons(ev) == []
    eq, im, mm = rx.margin_of(1)
    assert abs(im - 900 * USD) <= 1 and mm == math.ceil(im * 0.8)
    rx.process(batch([new_order(PERP.id, "sell", 100, 635_000, order_id=2, account=5)]))
    # +5 %: equity 700 USDT; standard maintenance would be 315, portfolio maintenance is 0.8 * 945 = 756
    ev = rx.process(batch([mark_price(PERP.id, 630_000)]))
    liq = ev[ev["kind"] == EventKind.LIQUIDATION]
    assert liq["maker_order_id"][0] == LiqStep.START and liq["qty"][0] == 700 * USD
    assert abs(int(liq["leaves"][0]) - 756 * USD) <= 1
    assert rx.ledger.positions[1, PERP.id, 0] == 0
    rx.check()


def test_inverse_options_keep_standard_margin_in_a_portfolio_account():
    rx = pm_venue()
    fund(rx, 1, btc=10**8)
    fund(rx, 2, btc=10**8)
    rx.set_margin_mode(1, "portfolio")
    rx.process(batch([new_order(ICALL.id, "buy", 5, 67, order_id=1, account=2),
                      new_order(ICALL.id, "sell", 5, 67, order_id=1, account=1)]))
    assert rx.margin_of(1, "BTC")[1:] == (5 * 1_835_000, 5 * 1_085_000)


def test_portfolio_mode_needs_a_configuration():
    rx = option_venue()
    with pytest.raises(ValueError, match="PortfolioMargin"):
        rx.set_margin_mode(1, "portfolio")
    with pytest.raises(ValueError, match="margin mode"):
        pm_venue().set_margin_mode(1, "cross")
    with pytest.raises(ValueError, match="vol"):
        PortfolioMargin(vol=-1)
