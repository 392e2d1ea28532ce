"""A real mark stream through ``RiskExchange``: the scenario ``shardex demo`` runs (docs/risk.md, "Real marks").

Seven accounts on one BTCUSDT perpetual (tick 0.1 USDT, lot 0.001 BTC,
Binance brackets, taker 4 bps / maker 2 bps):

* at the first mark, A buys 1.5 BTC from B at exactly 125x (equity equals
  initial margin after the fee), C buys 8.881 BTC from E -- about 250,000
  USDT, the edge of Binance's third bracket -- and M rests 1.2 BTC of asks
  20 and 40 USDT above the stream's high;
* before the stream, at a setup mark 200 USDT below its first mark, X buys
  2 BTC from D.  D's deposit is chosen from the stream so that the sharpest
  rise above the running high takes D under maintenance margin (no position
  opened inside a short window can get there: pre-trade leaves it at least
  initial minus maintenance margin, 0.4 % of the notional, above it).

Then every update goes through ``RiskExchange.process`` on its own, and
:func:`replay_marks` reports the marks, each account's state at the end and
every liquidation.  ``tests/risk/test_real_marks.py`` checks the same kind of
run against the documented formulas at every update.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from shardex.engine.commands import batch, new_order
from shardex.instruments import Instrument, InstrumentKind
from shardex.ledger.margin import POS_COST, POS_QTY
from shardex.risk.engine import LiqStep, RiskExchange, deposit
from shardex.risk.margin import BINANCE_BTCUSDT_BRACKETS, MarginTiers, instrument_margin, tier_table
from shardex.risk.marks import mark_batches
from shardex.schema import EventKind

__all__ = ["BTCUSDT_PERP", "AccountState", "Liquidation", "MarksReplay", "replay_marks"]

#: Binance USDⓈ-M BTCUSDT as the replay lists it: tick 0.1 USDT, lot 0.001 BTC.
BTCUSDT_PERP = Instrument(0, "BTCUSDT", tick_size="0.1", lot_size="0.001", kind=InstrumentKind.PERPETUAL,
                          base="BTC", quote="USDT")
_USD = 10**6  # USDT minor units
_MULT = 100  # minor units per tick per lot: 0.1 USDT x 0.001 BTC x 10**6
_TAKER_BPS, _MAKER_BPS = 4, 2  # Binance USDⓈ-M regular tier, 2023
_SETUP_GAP = 2_000  # ticks (200 USDT) between the carried positions' entry and the first mark
_ROLES = ("A long 125x", "B short 20x", "C long 25x", "E short 10x", "X long 10x, carried", "D short, carried",
          "M asks")


@dataclass(frozen=True)
class AccountState:
    """One account after the last update; money in USDT minor units, position in lots (signed)."""

    account: int
    role: str
    qty: int
    cost: int  # entry cost, tick-lots (average entry = cost / qty)
    equity: int
    initial: int
    maintenance: int


@dataclass(frozen=True)
class Liquidation:
    """One liquidation: when, at what mark, and how the position was closed."""

    update: int  # index in the stream
    event_ns: int  # Binance event time of the mark
    account: int
    mark: int  # ticks
    equity: int  # at the trigger, minor units
    maintenance: int  # at the trigger, minor units
    book_lots: int  # closed by the IOC order in the book
    adl_lots: int  # closed against opposite positions
    insurance: int  # taken by the fund (> 0) or paid by it (< 0)


@dataclass(frozen=True)
class MarksReplay:
    """What :func:`replay_marks` saw."""

    updates: int
    low: int  # ticks
    high: int
    last_mark: int
    accounts: list[AccountState]
    liquidations: list[Liquidation]
    insurance_fund: int
    fee_pool: int
    seconds: float  # the drive alone, not the setup


def replay_marks(marks: np.ndarray, *, on_update: Callable[[int], None] | None = None) -> MarksReplay:
    """Run the scenario of this module over ``marks`` (:data:`shardex.risk.marks.MARK_DTYPE`, BTCUSDT ticks).

    ``on_update(k)`` is called after update ``k`` (a progress bar).  Raises
    ``RiskInvariantError`` / ``LedgerInvariantError`` if money is not
    conserved at the end.  O(updates) batches of one command.
    """
    if len(marks) < 2:
        raise ValueError("need at least two mark updates")
    m = marks["mark"].astype(np.int64)
    m0, hi = int(m[0]), int(m.max())
    mult = _MULT
    tiers = MarginTiers.from_brackets(BINANCE_BTCUSDT_BRACKETS, 6)
    table, n_tiers = tier_table([tiers])
    q_a, q_c, q_d = 1_500, 8_881, 2_000
    asks = [(hi + 200, 700), (hi + 400, 500)]
    m_pre = m0 - _SETUP_GAP
    im_a = int(instrument_margin(q_a, m0, mult, table[0], n_tiers[0])[0])
    deposits = {
        1: im_a + _fee(q_a, m0, _TAKER_BPS),  # equity == initial margin once the fee is paid
        2: q_a * m0 * mult // 20,
        3: q_c * m0 * mult // 25,
        4: q_c * m0 * mult // 10,
        5: q_d * m_pre * mult // 10,
        6: _carried_deposit(m, m_pre, q_d, table, n_tiers),
        7: 10_000 * _USD,
    }
    clock = [int(marks["event_ns"][0]) - 3_600 * 10**9]
    rx = RiskExchange([BTCUSDT_PERP], 8, tiers=tiers, marks=[m_pre], taker_fee_bps=_TAKER_BPS,
                      maker_fee_bps=_MAKER_BPS, clock=lambda: clock[0])
    try:
        _run(rx, [deposit(a, 0, deposits[a]) for a in (5, 6)])
        _run(rx, [new_order(0, "sell", q_d, m_pre, order_id=1, account=6),
                  new_order(0, "buy", q_d, m_pre, order_id=2, account=5)])
        liquidations: list[Liquidation] = []
        t0 = time.perf_counter()
        for k, cmd in enumerate(mark_batches(marks, 0)):
            clock[0] = int(marks["event_ns"][k])
            ev = rx.process(cmd)
            liquidations += _liquidations(ev, k, clock[0], int(m[k]))
            if k == 0:
                _run(rx, [deposit(a, 0, deposits[a]) for a in (1, 2, 3, 4, 7)])
                _run(rx, [new_order(0, "sell", q_a, m0, order_id=3, account=2),
                          new_order(0, "buy", q_a, m0, order_id=4, account=1),
                          new_order(0, "sell", q_c, m0, order_id=5, account=4),
                          new_order(0, "buy", q_c, m0, order_id=6, account=3),
                          *[new_order(0, "sell", lots, px, order_id=7 + j, account=7)
                            for j, (px, lots) in enumerate(asks)]])
            if on_update is not None:
                on_update(k)
        seconds = time.perf_counter() - t0
        rx.check()
        led = rx.ledger
        accounts = []
        for a, role in enumerate(_ROLES, 1):
            eq, im, mm = rx.margin_of(a)
            q, cost = int(led.positions[a, 0, POS_QTY]), int(led.positions[a, 0, POS_COST])
            accounts.append(AccountState(a, role, q, cost, eq, im, mm))
        return MarksReplay(len(m), int(m.min()), hi, int(m[-1]), accounts, liquidations, int(led.insurance[0]),
                           int(led.fee_pool[0]), seconds)
    finally:
        rx.close()


def _fee(lots: int, price: int, bps: int) -> int:
    """The ledger's fee on a BTCUSDT fill, minor units (truncated)."""
    return lots * price * _MULT * bps // 10_000


def _carried_deposit(m: np.ndarray, m_pre: int, q: int, table: np.ndarray, n_tiers: np.ndarray) -> int:
    """D's deposit: enough for every update before the sharpest new high, not for that one.

    Falls back to 10x (no liquidation) when the stream has no such update
    or the deposit would not pass the pre-trade check at entry.
    """
    def need(mk: int) -> int:  # the short's fee + loss + maintenance margin at mark mk
        mm = int(instrument_margin(q, mk, _MULT, table[0], n_tiers[0])[1])
        return _fee(q, m_pre, _MAKER_BPS) + (mk - m_pre) * q * _MULT + mm

    running = np.maximum.accumulate(m)
    k = int(np.argmax(m[1:] - running[:-1])) + 1
    lo, hi = max(need(int(x)) for x in m[:k]), need(int(m[k]))
    dep = (lo + hi) // 2
    if lo >= hi or dep < int(instrument_margin(q, m_pre, _MULT, table[0], n_tiers[0])[0]):
        return q * m_pre * _MULT // 10
    return dep


def _run(rx: RiskExchange, recs: list[tuple]) -> None:
    ev = rx.process(batch(recs))
    if (ev["kind"] == EventKind.REJECTED).any():
        raise RuntimeError(f"the replay's setup was rejected: {ev[ev['kind'] == EventKind.REJECTED]}")


def _liquidations(ev: np.ndarray, k: int, now: int, mark: int) -> list[Liquidation]:
    liq = ev[ev["kind"] == EventKind.LIQUIDATION]
    out = []
    for s in liq[liq["maker_order_id"] == LiqStep.START]:
        a = int(s["account"])
        trades = ev[(ev["kind"] == EventKind.TRADE) & (ev["account"] == a)]
        adl = liq[(liq["maker_order_id"] == LiqStep.ADL) & (liq["maker_account"] == a)]
        fund = liq[(liq["maker_order_id"] == LiqStep.INSURANCE) & (liq["account"] == a)]
        out.append(Liquidation(k, now, a, mark, int(s["qty"]), int(s["leaves"]), int(trades["qty"].sum()),
                               int(adl["qty"].sum()), int(fund["qty"].sum())))
    return out
