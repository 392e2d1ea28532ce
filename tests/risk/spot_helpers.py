"""A small spot venue for the spot tests: BTC-USDT (market buys held at its max price) and ETH-BTC."""

from __future__ import annotations

from shardex.engine.commands import batch
from shardex.instruments import Instrument, InstrumentKind
from shardex.risk import RiskExchange, deposit

USDT, BTC, ETH = 0, 1, 2
CURRENCIES = ("USDT", "BTC", "ETH")
DECIMALS = (6, 8, 8)
#: tick 0.01 USDT, lot 0.0001 BTC: one lot is 10,000 sat, one tick on one lot 1 micro-USDT.
BTCUSDT = Instrument(0, "BTC-USDT", tick_size="0.01", lot_size="0.0001", kind=InstrumentKind.SPOT, base="BTC",
                     quote="USDT", max_price=10_000_000)
#: tick 0.00001 BTC, lot 0.001 ETH: one lot is 100,000 wei-8, one tick on one lot 1 sat; no max price.
ETHBTC = Instrument(1, "ETH-BTC", tick_size="0.00001", lot_size="0.001", kind=InstrumentKind.SPOT, base="ETH",
                    quote="BTC")
P = 6_000_000  # 60,000.00 USDT in ticks
LOT_SAT = 10_000


def spot_venue(n_accounts: int = 4, **kw) -> RiskExchange:
    """The two spot instruments over USDT/BTC/ETH, a fixed clock."""
    kw.setdefault("clock", lambda: 1)
    return RiskExchange([BTCUSDT, ETHBTC], n_accounts, currencies=CURRENCIES, currency_decimals=DECIMALS, **kw)


def fund(rx: RiskExchange, account: int, usdt: int = 0, btc: int = 0, eth: int = 0) -> None:
    """Deposit minor units of each currency into ``account``."""
    recs = [deposit(account, c, v) for c, v in ((USDT, usdt), (BTC, btc), (ETH, eth)) if v]
    rx.process(batch(recs))
