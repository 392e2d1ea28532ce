"""A venue with options on the book: a BTC perpetual, linear (USDT) and inverse (BTC) calls and puts on it.

Units, worked out once:

* PERP: tick 0.1 USDT, lot 0.001 BTC; S = 600,000 ticks is 60,000 USD.
* linear options (CALL, PUT): premium tick 0.1 USDT, lot 0.01 BTC: one tick on
  one lot is 0.1 * 0.01 * 1e6 = 1,000 micro-USDT (``LIN_MULT``); one
  underlying tick on one lot is 0.1 * 0.01 * 1e6 = 1,000 micro-USDT (``LIN_NUM``).
* inverse options (ICALL, IPUT): premium tick 0.0005 BTC, lot 0.1 BTC: one tick
  on one lot is 0.0005 * 0.1 * 1e8 = 5,000 sat (``INV_MULT``); one lot is
  0.1 * 1e8 = 10,000,000 sat (``INV_NUM``), paid intrinsic / S of it.
"""

from __future__ import annotations

from shardex.engine.commands import batch, new_order
from shardex.instruments import Instrument, InstrumentKind
from shardex.risk import MarginTiers, RiskExchange, deposit
from shardex.schema import EventKind

USDT, BTC = 0, 1
DAY_NS = 86_400 * 10**9
EXPIRY = 30 * DAY_NS
S = 600_000  # 60,000.0 USD in PERP ticks
K = 600_000
LIN_MULT = 1_000
LIN_NUM = 1_000
INV_MULT = 5_000
INV_NUM = 10_000_000
USD = 1_000_000
SAT = 100_000_000

PERP = Instrument(0, "BTC-PERP", tick_size="0.1", lot_size="0.001", kind=InstrumentKind.PERPETUAL, base="BTC",
                  quote="USDT")


def _option(i: int, cp: str, strike: str, inverse: bool) -> Instrument:
    tick, lot = ("0.0005", "0.1") if inverse else ("0.1", "0.01")
    return Instrument(i, f"BTC-{strike}-{cp[0].upper()}{'-INV' if inverse else ''}", tick_size=tick, lot_size=lot,
                      kind=InstrumentKind.OPTION, base="BTC", quote="BTC" if inverse else "USDT", strike=strike,
                      option_type=cp, underlying=0, inverse=inverse, expiry_ns=EXPIRY, max_price=10**7)


CALL = _option(1, "call", "60000", False)
PUT = _option(2, "put", "60000", False)
ICALL = _option(3, "call", "60000", True)
IPUT = _option(4, "put", "60000", True)
OTM_CALL = _option(5, "call", "66000", False)
INSTRUMENTS = [PERP, CALL, PUT, ICALL, IPUT, OTM_CALL]
#: initial marks: the perpetual at S, linear options at 2,000 USDT, inverse at 0.0335 BTC (67 ticks), OTM call 500
MARKS = [S, 20_000, 20_000, 67, 67, 5_000]


def venue_options(**kw) -> dict:
    """``option_venue``'s keyword arguments for ``RiskExchange`` (or ``open_risk``), with ``kw`` on top."""
    kw.setdefault("tiers", MarginTiers.flat(1000, 500))
    kw.setdefault("marks", MARKS)
    kw.setdefault("clock", lambda: 1)
    return dict(currencies=("USDT", "BTC"), currency_decimals=(6, 8), **kw)


def option_venue(n_accounts: int = 6, **kw) -> RiskExchange:
    """The six instruments over USDT and BTC (decimals 6 and 8), flat 10 % / 5 % perpetual margin, fixed clock."""
    return RiskExchange(INSTRUMENTS, n_accounts, **venue_options(**kw))


def fund(rx: RiskExchange, account: int, usdt: int = 0, btc: int = 0) -> None:
    """Deposit minor units of USDT and BTC."""
    rx.process(batch([deposit(account, c, v) for c, v in ((USDT, usdt), (BTC, btc)) if v]))


def cross(rx: RiskExchange, buyer: int, seller: int, inst: int, lots: int, price: int, oid: int = 1):
    """The seller rests, the buyer takes; return the events and assert a trade happened."""
    ev = rx.process(batch([new_order(inst, "sell", lots, price, order_id=oid, account=seller),
                           new_order(inst, "buy", lots, price, order_id=oid, account=buyer)]))
    assert (ev["kind"] == EventKind.TRADE).sum() >= 1, ev
    return ev
