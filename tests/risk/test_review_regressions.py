"""Defects found in review of the options and portfolio-margin layer, each pinned by the case that showed it."""

from __future__ import annotations

import numpy as np

from shardex.engine.commands import batch, cancel, new_order
from shardex.risk import PortfolioMargin, expire, funding, mark_price, withdraw
from shardex.schema import EventKind, Reason

from .helpers import MARK, fund as fund_usd, trade, venue
from .option_helpers import CALL, EXPIRY, ICALL, SAT, USD, USDT, cross, fund, option_venue


def _kinds(ev):
    return [(EventKind(int(k)).name, Reason(int(r)).name) for k, r in ev[["kind", "reason"]]]


def test_a_portfolio_account_withdraws_what_its_portfolio_margin_frees():
    # long 10 ATM calls hedged by a short perpetual: portfolio margin frees more than the ledger's flat rate would
    rx = option_venue(portfolio=PortfolioMargin(vol=0.6))
    fund(rx, 5, usdt=10**6 * USD)
    fund(rx, 1, usdt=2_000 * USD)
    rx.set_margin_mode(1, "portfolio")
    cross(rx, 1, 5, CALL.id, 10, 20_000)
    rx.process(batch([new_order(0, "buy", 100, 600_000, order_id=2, account=5),
                      new_order(0, "sell", 100, 600_000, order_id=2, account=1)]))
    free = rx.free_balance(1, USDT)
    assert free > 2_000 * USD - int(rx.ledger.margin[1, 1])  # more than the flat-rate rule would let go
    ev = rx.process(batch([withdraw(1, USDT, free + 1)]))
    assert _kinds(ev) == [("REJECTED", "INSUFFICIENT_BALANCE")]
    ev = rx.process(batch([withdraw(1, USDT, free)]))  # used to raise RiskInvariantError from the ledger
    assert _kinds(ev) == [("BALANCE", "OK")]
    rx.check()


def test_portfolio_margin_reads_each_command_at_its_own_time_whatever_the_batches():
    def start():
        rx = option_venue(portfolio=PortfolioMargin(vol=0.6))
        fund(rx, 5, usdt=10**6 * USD)
        fund(rx, 1, usdt=2_000 * USD)
        rx.set_margin_mode(1, "portfolio")
        cross(rx, 5, 1, CALL.id, 10, 20_000)  # account 1 is short 10 ATM calls
        return rx

    def commands(rx, amount):
        c = batch([withdraw(1, USDT, amount), cancel(0, 999, account=1)])
        c["seq"] = np.arange(rx.exchange.sequencer.next_seq, rx.exchange.sequencer.next_seq + 2)
        c["ts"] = [1, EXPIRY - 3600 * 10**9]  # the withdrawal at the setup's time, the next command 1 h before expiry
        return c

    a, b = start(), start()
    amount = a.free_balance(1, USDT)  # exactly what is free at the withdrawal's own timestamp
    ca, cb = commands(a, amount), commands(b, amount)
    for rx, c in ((a, ca), (b, cb)):
        rx.exchange.sequencer.observe(c)
    one = a.apply(ca)
    two = np.concatenate([b.apply(cb[:1]), b.apply(cb[1:])])
    assert _kinds(one[one["seq"] == ca["seq"][0]]) == [("BALANCE", "OK")]
    assert one.tobytes() == two.tobytes() and a.state_hash() == b.state_hash()


def test_option_expiry_at_a_price_beyond_int64_arithmetic_is_refused_before_anything_changes():
    for inst, p, premium in ((CALL, 10**16, 20_000), (ICALL, 10**13, 67)):
        rx = option_venue()
        fund(rx, 1, usdt=10**4 * USD, btc=SAT)
        fund(rx, 2, usdt=10**4 * USD, btc=SAT)
        cross(rx, 2, 1, inst.id, 1, premium)
        before = rx.state_hash()
        ev = rx.process(batch([expire(inst.id, p)]))
        assert _kinds(ev) == [("REJECTED", "INVALID_MARK_PRICE")]
        assert rx.state_hash() == before


def test_an_underlying_mark_that_would_wrap_option_margin_is_refused():
    rx = option_venue()
    fund(rx, 1, usdt=1 * USD)
    ev = rx.process(batch([mark_price(0, 7 * 10**15)]))
    assert _kinds(ev) == [("REJECTED", "INVALID_MARK_PRICE")]
    ev = rx.process(batch([new_order(CALL.id, "sell", 100, 20_000, order_id=1, account=1)]))
    assert _kinds(ev) == [("REJECTED", "INSUFFICIENT_MARGIN")]


def test_a_funding_command_is_refused_while_the_schedule_pays():
    rx = venue(funding_interval_ns=8 * 3600 * 10**9)
    fund_usd(rx, {1: 10_000, 2: 10_000})
    trade(rx, buyer=1, seller=2, lots=10)
    rx.process(batch([mark_price(0, MARK + 600, MARK)]))
    ev = rx.process(batch([funding(0)]))
    assert _kinds(ev) == [("REJECTED", "INVALID_COMMAND")]


def test_funding_and_margin_of_a_whale_do_not_wrap_int64():
    from shardex.engine.commands import batch as _batch
    from shardex.instruments import Instrument, InstrumentKind
    from shardex.risk import MarginTiers, RiskExchange, deposit

    # USDT in 1e-8 units, BTC at 100,000, a 1,000 BTC position: notional 1e16 minor units
    perp = Instrument(0, "BTC-PERP", tick_size="0.1", lot_size="0.001", kind=InstrumentKind.PERPETUAL)
    rx = RiskExchange([perp], 3, tiers=MarginTiers.flat(1000, 500), marks=[1_000_000], clock=lambda: 1,
                      currency_decimals=8)
    rx.process(_batch([deposit(1, 0, 10**16), deposit(2, 0, 10**16)]))
    rx.process(_batch([new_order(0, "sell", 10**6, 1_000_000, order_id=1, account=1),
                       new_order(0, "buy", 10**6, 1_000_000, order_id=1, account=2)]))
    assert rx.margin_of(2)[1:] == (10**15, 5 * 10**14)  # 10 % and 5 % of 1e16
    ev = rx.process(_batch([mark_price(0, 1_000_000, 990_000), funding(0)]))
    paid = ev[ev["kind"] == EventKind.FUNDING]
    rate = int(paid["price"][0])
    assert paid["qty"].tolist() == [10**16 * rate // 10**6, -(10**16 * rate // 10**6)]  # the short receives
    rx.check()


def test_a_pool_liquidation_leaves_the_accounts_orders_in_other_pools_alone():
    from .option_helpers import K, S
    from .test_options_on_book import std_margin

    rx = option_venue()
    im, _ = std_margin(S, K, 67, True, True, 10)
    fund(rx, 2, usdt=50_000 * USD, btc=im + 20_000)  # the short coin pool will be liquidated
    fund(rx, 1, btc=10 * SAT, usdt=10**6 * USD)
    cross(rx, buyer=1, seller=2, inst=ICALL.id, lots=10, price=67)
    # account 2 also rests a perpetual buy (USDT pool) and an inverse-option bid far below (coin pool)
    rx.process(batch([new_order(0, "buy", 5, 500_000, order_id=20, account=2),
                      new_order(ICALL.id, "buy", 1, 2, order_id=21, account=2)]))
    ev = rx.process(batch([mark_price(0, 700_000), mark_price(ICALL.id, 300)]))
    liq = ev[ev["kind"] == EventKind.LIQUIDATION]
    assert len(liq) and (liq["trade_id"] == 1).all()  # the BTC pool only
    cancelled = ev[(ev["kind"] == EventKind.CANCELLED) & (ev["reason"] == Reason.LIQUIDATION)]
    assert cancelled["order_id"].tolist() == [21]  # the coin pool's bid; the USDT-pool perpetual bid stays
    assert rx.open_lots[2, 0, 0] == 5
    rx.check()
