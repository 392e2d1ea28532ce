"""Issue 5, item 7: Binance's real ``markPrice@1s`` stream drives ``RiskExchange``.

The capture (``hftbacktest/examples/usdm/btcusdt_20230404.dat.gz``) holds 99
mark updates of BTCUSDT, 2023-04-04 23:58:21 to 23:59:59 UTC, between
28,146.19 and 28,157.10 USDT.  Every update goes through
``RiskExchange.process`` on its own, and after each one this file recomputes,
in Python integers from the formulas of docs/risk.md ("The margin model",
"Liquidation") and docs/settlement.md ("The ledger model") -- never through
the engine's margin kernels -- every account's unrealized PnL, equity,
initial and maintenance margin, and compares them with what the engine
reports (``margin_of``, the ledger's balances and positions).

Why one position is carried in from before the window: the pre-trade check
leaves an account at least ``initial - maintenance`` margin above
maintenance (0.4 % of the notional in Binance's first bracket, about 112 USDT
of price), and this window moves 10.9 USDT.  No position opened inside it can
be liquidated by it -- account A below opens at exactly 125x at the first
mark and is never touched.  So account D's short was opened at a synthetic
setup mark 200 USDT below the window (the only non-real price in the test),
with a deposit chosen from the stream so that the sharpest real rise above
the running high takes it under maintenance margin.
"""

from __future__ import annotations

import decimal
import gzip
import json
import os
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from shardex.engine.commands import batch, new_order
from shardex.errors import OffGridError
from shardex.instruments import Instrument, InstrumentKind
from shardex.risk import BINANCE_BTCUSDT_BRACKETS, LiqStep, MarginTiers, RiskExchange, deposit, funding, withdraw
from shardex.risk.marks import mark_batches, mark_commands, read_binance_marks, sample_path
from shardex.schema import CommandKind, EventKind, Reason, Side

CAPTURE = "hftbacktest/examples/usdm/btcusdt_20230404.dat.gz"
PERP = Instrument(0, "BTCUSDT", tick_size="0.1", lot_size="0.001", kind=InstrumentKind.PERPETUAL, base="BTC",
                  quote="USDT")
USD = 10**6  # µUSDT per USDT
MULT = 100  # µUSDT per tick per lot: 0.1 USDT x 0.001 BTC x 10**6
TAKER_BPS, MAKER_BPS = 4, 2  # Binance USDⓈ-M regular-tier fees in 2023: 0.04 % / 0.02 %
HALF_EVEN = decimal.ROUND_HALF_EVEN

#: docs/risk.md's bracket table, typed in here rather than read from the engine:
#: (notional upper bound in USDT or None, IM bps, MM bps, maintenance amount in USDT).
BRACKETS = (
    (50_000, 80, 40, 0),
    (250_000, 100, 50, 50),
    (3_000_000, 200, 100, 1_300),
    (15_000_000, 500, 250, 46_300),
    (30_000_000, 1000, 500, 421_300),
    (80_000_000, 2000, 1000, 1_921_300),
    (100_000_000, 2500, 1250, 3_921_300),
    (200_000_000, 3334, 1500, 6_421_300),
    (300_000_000, 5000, 2500, 26_421_300),
    (None, 10000, 5000, 101_421_300),
)

# accounts
A, B, C, E, X, D, M = 1, 2, 3, 4, 5, 6, 7
NAMES = {A: "A long 125x", B: "B short 20x", C: "C long 25x, 250k bracket edge", E: "E short 10x, 250k edge",
         X: "X carried long 10x", D: "D carried short", M: "M asks above the window"}


# -- the documented formulas, in Python integers ---------------------------------------------------
def bracket(notional: int) -> tuple[int, int, int]:
    """(IM bps, MM bps, maintenance amount in µUSDT) of the bracket holding ``notional`` µUSDT."""
    for upper, im, mm, cum in BRACKETS:
        if upper is None or notional < upper * USD:
            return im, mm, cum * USD
    raise AssertionError("unreachable")


def ceil_bps(x: int, bps: int) -> int:
    """ceil(x * bps / 10**4) for x >= 0."""
    return -(-x * bps // 10_000)


def trunc_div(a: int, b: int) -> int:
    """a / b truncated toward zero (b > 0)."""
    return a // b if a >= 0 else -(-a // b)


@dataclass
class Acct:
    """One account as the docs define it: balance, position (lots, entry cost in tick-lots), open orders."""

    balance: int = 0
    qty: int = 0
    cost: int = 0
    buys: int = 0
    sells: int = 0

    def upnl(self, mark: int) -> int:
        return (self.qty * mark - self.cost) * MULT

    def equity(self, mark: int) -> int:
        return self.balance + self.upnl(mark)

    def initial(self, mark: int) -> int:
        lots = max(abs(self.qty + self.buys), abs(self.qty - self.sells))
        notional = lots * mark * MULT
        return ceil_bps(notional, bracket(notional)[0]) if lots else 0

    def maintenance(self, mark: int) -> int:
        notional = abs(self.qty) * mark * MULT
        _, mm, cum = bracket(notional)
        return ceil_bps(notional, mm) - cum if self.qty else 0

    def fill(self, dq: int, price: int, fee_bps: int) -> int:
        """Average-cost fill of ``dq`` lots at ``price`` (docs/settlement.md, "The ledger model"); returns the fee."""
        q, c = self.qty, self.cost
        realized = 0
        if q == 0 or (q > 0) == (dq > 0):
            c += dq * price
        else:
            s = 1 if q > 0 else -1
            closing = min(abs(q), abs(dq))
            removed = c if closing == abs(q) else trunc_div(c * closing, abs(q))  # the closed share of the cost
            realized = s * closing * price - removed  # what the closed lots fetched minus what they cost
            c -= removed + s * (abs(dq) - closing) * price  # a flip opens the rest at the fill price
        charged = fee(abs(dq), price, fee_bps)
        self.balance += realized * MULT - charged
        self.qty, self.cost = q + dq, c
        return charged


def fee(lots: int, price: int, bps: int) -> int:
    """The ledger's fee on a fill, µUSDT: notional x bps / 10**4 truncated toward zero."""
    return trunc_div(lots * price * MULT * bps, 10_000)


# -- the stream ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def source() -> Path:
    """The capture when ../shared/data is there, else the package's copy of its 99 mark lines."""
    data = Path(os.environ.get("SHARDEX_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
    path = data / CAPTURE
    return path if path.is_file() else sample_path()


@pytest.fixture(scope="module")
def marks(source: Path) -> np.ndarray:
    return read_binance_marks(source, PERP, rounding=HALF_EVEN)


def test_reader_matches_a_plain_json_parse(source: Path, marks: np.ndarray):
    lines = [ln for ln in gzip.decompress(source.read_bytes()).decode().splitlines() if "@markPrice@1s" in ln]
    data = [json.loads(ln.split(" ", 1)[1])["data"] for ln in lines]
    assert len(marks) == len(data) == 99
    for rec, d, ln in zip(marks, data, lines):
        p, i = Decimal(d["p"]), Decimal(d["i"])
        assert int(rec["mark_e8"]) == p * 10**8 and int(rec["index_e8"]) == i * 10**8
        assert int(rec["mark"]) == int(p.quantize(Decimal("0.1"), rounding=HALF_EVEN) * 10)
        assert int(rec["index"]) == int(i.quantize(Decimal("0.1"), rounding=HALF_EVEN) * 10)
        assert int(rec["funding_e8"]) == Decimal(d["r"]) * 10**8 == 2754  # 0.00002754 per interval
        assert int(rec["event_ns"]) == d["E"] * 10**6 and int(rec["next_funding_ns"]) == d["T"] * 10**6
        assert int(rec["recv_ns"]) == int(ln.split(" ", 1)[0]) * 1000  # the 2023 captures stamp µs
        # rounding moved the mark by at most half a tick (0.05 USDT = 5,000,000 e-8)
        assert abs(int(rec["mark"]) * 10**7 - int(rec["mark_e8"])) <= 5 * 10**6
    assert (np.diff(marks["event_ns"]) > 0).all()
    off = sum(Decimal(d["p"]) % Decimal("0.1") != 0 for d in data)
    assert off == 30  # Binance's mark is off the 0.1 tick 30 times out of 99


def test_off_grid_marks_are_refused_unless_rounding_is_named(source: Path):
    first = 51 if source.name.endswith(".dat.gz") else 1  # the capture's first markPrice line, or the sample's
    with pytest.raises(OffGridError, match=rf":{first}: mark price 28147.27373413 is not a multiple of the tick 0.1"):
        read_binance_marks(source, PERP)
    with pytest.raises(ValueError, match="decimal rounding mode"):
        read_binance_marks(source, PERP, rounding="nearest")
    fine = Instrument(0, "BTCUSDT", tick_size="0.00000001", lot_size="0.001", kind=InstrumentKind.PERPETUAL)
    exact = read_binance_marks(source, fine)  # Binance's own resolution: on the grid, nothing to round
    assert (exact["mark"] == exact["mark_e8"]).all()
    line = (b'1680652701048293 {"stream":"btcusdt@markPrice@1s","data":{"e":"markPriceUpdate","E":1680652701000,'
            b'"s":"BTCUSDT","p":"28147.273734131","i":"28159.7","r":"0.00002754","T":1680652800000}}\n')
    with pytest.raises(OffGridError, match="more than 8 decimals"):
        read_binance_marks(line, fine, rounding=HALF_EVEN)  # finer than Binance sends: not rounded away


def test_embedded_sample_is_the_captures_mark_stream(shared_data: Path):
    full = gzip.decompress((shared_data / CAPTURE).read_bytes()).split(b"\n")
    sample = gzip.decompress(sample_path().read_bytes()).split(b"\n")
    assert [ln for ln in full if b"@markPrice" in ln] == [ln for ln in sample if ln]


def test_mark_commands(marks: np.ndarray):
    cmds = mark_commands(marks, 0)
    assert (cmds["kind"] == CommandKind.MARK_PRICE).all()
    assert (cmds["price"] == marks["mark"]).all() and (cmds["stop_price"] == marks["index"]).all()
    assert (cmds["ts"] == marks["event_ns"]).all()
    batches = mark_batches(marks, 0, per_batch=10)
    assert [len(b) for b in batches] == [10] * 9 + [9]
    assert np.array_equal(np.concatenate(batches), cmds)


# -- the drive ----------------------------------------------------------------------------------
def sharpest_new_high(m: list[int]) -> int:
    """The update whose mark rises furthest above every earlier one."""
    return max(range(1, len(m)), key=lambda k: m[k] - max(m[:k]))


def bankruptcy(acct: Acct, mark: int) -> int:
    """docs/risk.md, "Liquidation": where one position's equity reaches zero, rounded toward the account."""
    per_tick = abs(acct.qty) * MULT
    return mark - acct.equity(mark) // per_tick if acct.qty > 0 else mark + acct.equity(mark) // per_tick


class Model:
    """The venue as the docs describe it: accounts, fee pool, insurance fund; moved by the engine's events."""

    def __init__(self) -> None:
        self.book = {a: Acct() for a in NAMES}
        self.fee_pool = 0
        self.fund = 0
        self.mark = 0
        self.start: dict[int, tuple[int, int]] = {}  # (equity, maintenance) at the trigger
        self.adl: dict[int, tuple[int, list[int]]] = {}  # victim -> (bankruptcy price, ranking)

    def trade(self, taker: int, maker: int, dq: int, price: int) -> None:
        """A fill: ``dq`` lots bought (> 0) or sold by the taker; the maker's resting order shrinks."""
        self.fee_pool += self.book[taker].fill(dq, price, TAKER_BPS) + self.book[maker].fill(-dq, price, MAKER_BPS)
        if dq > 0:
            self.book[maker].sells -= dq
        else:
            self.book[maker].buys += dq

    def below(self) -> list[int]:
        """Accounts with a position and equity below maintenance margin, ascending."""
        return [a for a, acct in self.book.items() if acct.qty and acct.equity(self.mark) < acct.maintenance(self.mark)]

    def ranking(self, victim: int) -> list[int]:
        """Opposite positions, best ADL candidate first: profit% x leverage (losses: profit% / leverage)."""
        side = -1 if self.book[victim].qty > 0 else 1
        scores = {}
        for a, acct in self.book.items():
            if a == victim or acct.qty == 0 or (acct.qty > 0) != (side > 0):
                continue
            ratio = Fraction(acct.upnl(self.mark), max(abs(acct.cost) * MULT, 1))
            lev = Fraction(abs(acct.qty) * self.mark * MULT, max(acct.equity(self.mark), 1))
            scores[a] = ratio * lev if acct.upnl(self.mark) > 0 else ratio / lev
        return sorted(scores, key=lambda a: (-scores[a], a))

    def apply(self, e: np.void) -> None:
        """Move the model by one event, checking each liquidation step against docs/risk.md."""
        kind = int(e["kind"])
        if kind == EventKind.TRADE:
            dq = int(e["qty"]) if e["side"] == Side.BUY else -int(e["qty"])
            self.trade(int(e["account"]), int(e["maker_account"]), dq, int(e["price"]))
            return
        if kind != EventKind.LIQUIDATION:
            return
        step, a = int(e["maker_order_id"]), int(e["account"])
        if step == LiqStep.START:
            assert (int(e["qty"]), int(e["leaves"])) == self.start[a]
        elif step == LiqStep.ORDER:
            acct = self.book[a]
            bp = bankruptcy(acct, self.mark)
            # past the bankruptcy price by what the insurance fund can absorb
            limit = bp + (self.fund // (abs(acct.qty) * MULT)) * (-1 if acct.qty > 0 else 1)
            assert (int(e["leaves"]), int(e["price"]), int(e["qty"])) == (bp, limit, abs(acct.qty))
        elif step == LiqStep.ADL:
            victim = int(e["maker_account"])
            if victim not in self.adl:  # the price and the ranking are fixed before the first leg
                self.adl[victim] = (bankruptcy(self.book[victim], self.mark), self.ranking(victim))
            bp, ranked = self.adl[victim]
            assert int(e["price"]) == bp
            assert a == ranked.pop(0), "ADL takes the best-ranked opposite position first"
            dq = int(e["qty"]) if e["side"] == Side.BUY else -int(e["qty"])  # the counterparty's side
            self.book[a].fill(dq, bp, 0)
            self.book[victim].fill(-dq, bp, 0)
        elif step == LiqStep.INSURANCE:
            acct = self.book[a]
            assert acct.qty == 0
            # the fund takes the surplus up to the maintenance margin at the trigger, or covers the deficit
            want = min(acct.balance, self.start[a][1]) if acct.balance > 0 else -min(-acct.balance, self.fund)
            assert int(e["qty"]) == want
            acct.balance -= want
            self.fund += want
            assert int(e["leaves"]) == self.fund
        elif step == LiqStep.DONE:
            bal = self.book[a].balance
            assert (int(e["qty"]), int(e["leaves"])) == (bal, max(-bal, 0))

    def check(self, rx: RiskExchange, where: str) -> None:
        """Every account's state, unrealized PnL, equity, IM and MM as the engine reports them, against the model."""
        led = rx.ledger
        for a, acct in self.book.items():
            eq, im, mm = rx.margin_of(a)
            bal = int(led.balances[a, 0])
            got = dict(balance=bal, qty=int(led.positions[a, 0, 0]), cost=int(led.positions[a, 0, 1]),
                       buys=int(rx.open_lots[a, 0, 0]), sells=int(rx.open_lots[a, 0, 1]),
                       upnl=eq - bal, equity=eq, initial=im, maintenance=mm)
            want = dict(balance=acct.balance, qty=acct.qty, cost=acct.cost, buys=acct.buys, sells=acct.sells,
                        upnl=acct.upnl(self.mark), equity=acct.equity(self.mark), initial=acct.initial(self.mark),
                        maintenance=acct.maintenance(self.mark))
            assert got == want, f"{where}, account {NAMES[a]}"
        assert (int(led.fee_pool[0]), int(led.insurance[0])) == (self.fee_pool, self.fund), where


def test_real_marks_drive_margin_and_liquidation(marks: np.ndarray):
    m = marks["mark"].tolist()
    n = len(m)
    lo, hi, m0 = min(m), max(m), m[0]
    k_liq = sharpest_new_high(m)
    assert 0 < k_liq < n - 1 and m[k_liq] - max(m[:k_liq]) >= 40  # a real jump of >= 4 USDT mid-window

    # -- sizes (lots) and deposits (µUSDT), from the formulas above -------------------------------
    m_pre = m0 - 2_000  # X's and D's entry, 200 USDT below the window: the one synthetic price
    q_a = 1_500  # 1.5 BTC: first bracket
    q_c = 8_881  # 8.881 BTC: ~250,000 USDT, the edge of the third bracket, crossed inside the window
    q_d = 2_000
    asks = [(hi + 200, 700), (hi + 400, 500)]  # M's: 1.2 of D's 2 BTC; the rest must be deleveraged
    dep = {
        A: Acct(qty=q_a, cost=q_a * m0).initial(m0) + fee(q_a, m0, TAKER_BPS),  # equity == IM after the fee: 125x
        B: q_a * m0 * MULT // 20,
        C: q_c * m0 * MULT // 25,
        E: q_c * m0 * MULT // 10,
        X: q_d * m_pre * MULT // 10,
        M: 10_000 * USD,
    }

    def need(k: int) -> int:
        """D's smallest deposit that keeps it at or above maintenance margin at update ``k``."""
        short = Acct(qty=-q_d, cost=-q_d * m_pre)
        return fee(q_d, m_pre, MAKER_BPS) - short.upnl(m[k]) + short.maintenance(m[k])

    # D survives every update before k_liq but not k_liq: its deposit sits between the two requirements
    lo_need, hi_need = max(need(k) for k in range(k_liq)), need(k_liq)
    assert lo_need < hi_need
    dep[D] = (lo_need + hi_need) // 2
    assert {bracket(q_c * mk * MULT)[0] for mk in m} == {100, 200}  # C's and E's bracket changes on real marks
    # A's cushion is ten times wider than the window's range: nothing opened at the first mark is liquidated
    a0 = Acct(balance=dep[A] - fee(q_a, m0, TAKER_BPS), qty=q_a, cost=q_a * m0)
    assert (hi - lo) * q_a * MULT * 10 < a0.equity(m0) - a0.maintenance(m0)

    now = [int(marks["event_ns"][0]) - 3_600 * 10**9]  # the setup runs an hour before the window
    rx = RiskExchange([PERP], 8, tiers=MarginTiers.from_brackets(BINANCE_BTCUSDT_BRACKETS, 6), marks=[m_pre],
                      taker_fee_bps=TAKER_BPS, maker_fee_bps=MAKER_BPS, clock=lambda: now[0])
    model = Model()
    model.mark = m_pre

    def run(recs: list[tuple]) -> None:
        ev = rx.process(batch(recs))
        assert not (ev["kind"] == EventKind.REJECTED).any(), ev[ev["kind"] == EventKind.REJECTED]

    def fund_accounts(accounts: tuple[int, ...]) -> None:
        run([deposit(a, 0, dep[a]) for a in accounts])
        for a in accounts:
            model.book[a].balance = dep[a]

    # -- before the window: X buys D's short at the setup mark ------------------------------
    fund_accounts((X, D))
    run([new_order(0, "sell", q_d, m_pre, order_id=1, account=D),
         new_order(0, "buy", q_d, m_pre, order_id=2, account=X)])
    model.trade(X, D, q_d, m_pre)
    model.book[D].sells = 0  # the resting order was D's, all filled
    model.check(rx, "setup")

    # -- the window: every real update on its own ----------------------------------------------
    liquidated: list[tuple[int, int, int]] = []  # (update, account, mark)
    for k, cmd in enumerate(mark_batches(marks, 0)):
        now[0] = int(marks["event_ns"][k])
        model.mark = m[k]
        below = model.below()
        model.start = {a: (model.book[a].equity(m[k]), model.book[a].maintenance(m[k])) for a in below}
        ev = rx.process(cmd)
        starts = ev[(ev["kind"] == EventKind.LIQUIDATION) & (ev["maker_order_id"] == LiqStep.START)]
        assert starts["account"].tolist() == below, f"update {k} at {PERP.ticks_to_price(m[k])}"
        for e in ev:
            model.apply(e)
        liquidated += [(k, a, m[k]) for a in below]
        model.check(rx, f"update {k} (mark {PERP.ticks_to_price(m[k])})")
        if k == 0:
            # -- at the first real mark the others open against each other -------------------
            fund_accounts((A, B, C, E, M))
            run([new_order(0, "sell", q_a, m0, order_id=3, account=B),
                 new_order(0, "buy", q_a, m0, order_id=4, account=A),
                 new_order(0, "sell", q_c, m0, order_id=5, account=E),
                 new_order(0, "buy", q_c, m0, order_id=6, account=C),
                 *[new_order(0, "sell", lots, px, order_id=7 + j, account=M) for j, (px, lots) in enumerate(asks)]])
            model.book[B].sells = q_a
            model.book[E].sells = q_c
            model.trade(A, B, q_a, m0)
            model.trade(C, E, q_c, m0)
            model.book[M].sells = sum(lots for _, lots in asks)
            model.check(rx, "positions opened at the first mark")
            assert model.book[A].equity(m0) == model.book[A].initial(m0)  # exactly 125x
            ev = rx.process(batch([withdraw(A, 0, 1)]))
            assert ev["reason"].tolist() == [Reason.INSUFFICIENT_BALANCE]  # not one µUSDT to spare

    assert liquidated == [(k_liq, D, m[k_liq])]
    book = model.book
    assert book[D].qty == 0 and book[M].qty == -1_200 and book[M].sells == 0  # the book took 1.2 BTC
    assert book[X].qty == q_d - 800  # ... and ADL the other 0.8 BTC, from the best-ranked long

    # -- funding at the capture's next funding time, from the real (mark, index) samples ----------
    now[0] = int(marks["next_funding_ns"][-1])
    assert now[0] > int(marks["event_ns"][-1])  # 2023-04-05 00:00:00, after the last update
    samples = [trunc_div((mk - ix) * 10**6, ix) for mk, ix in zip(m, marks["index"].tolist())]
    p = trunc_div(sum(samples), len(samples))
    cap = (BRACKETS[0][1] - BRACKETS[0][2]) * 100 * 3 // 4
    rate = min(max(p + min(max(100 - p, -500), 500), -cap), cap)  # docs/risk.md, "Funding", ppm
    ev = rx.process(batch([funding(0)]))
    fev = ev[ev["kind"] == EventKind.FUNDING]
    assert set(fev["price"].tolist()) == {rate}
    paid = dict(zip(fev["account"].tolist(), fev["qty"].tolist()))
    assert paid == {a: -trunc_div(acct.qty * m[-1] * MULT * rate, 10**6) for a, acct in book.items() if acct.qty}
    for a, amount in paid.items():
        book[a].balance += amount
    model.fund -= sum(paid.values())
    model.check(rx, "after funding")

    # -- money: accounts + fee pool + insurance fund == deposits -------------------------------
    total = sum(acct.balance - acct.cost * MULT for acct in book.values()) + model.fee_pool + model.fund
    assert total == sum(dep.values()) == int(rx.ledger.net_flow[0])
    rx.check()
    rx.ledger.check()
    rx.close()
