"""Builders shared by the risk tests: a small venue with one perpetual and one dated future."""

from __future__ import annotations

import numpy as np

from shardex.engine.commands import batch, cancel, new_order
from shardex.instruments import Instrument, InstrumentKind
from shardex.risk import MarginTiers, RiskExchange, deposit
from shardex.schema import EventKind

#: tick 0.1 USDT, lot 0.001 BTC, USDT in 1e-6: one tick on one lot is 100 minor units.
PERP = Instrument(0, "BTC-PERP", tick_size="0.1", lot_size="0.001", kind=InstrumentKind.PERPETUAL, base="BTC",
                  quote="USDT")
FUT = Instrument(1, "BTC-0628", tick_size="0.1", lot_size="0.001", kind=InstrumentKind.FUTURE, base="BTC",
                 quote="USDT")
MARK = 600_000  # 60,000.0 USDT
USD = 1_000_000  # minor units per USDT


def venue(n_accounts: int = 8, **kw) -> RiskExchange:
    """Flat 10 % / 5 % margin, marks at 60,000, a fixed clock."""
    kw.setdefault("tiers", MarginTiers.flat(1000, 500))
    kw.setdefault("marks", [MARK, MARK])
    kw.setdefault("clock", lambda: 1)
    return RiskExchange([PERP, FUT], n_accounts, **kw)


def fund(rx: RiskExchange, amounts: dict[int, int]) -> None:
    """Deposit USDT (whole units) into accounts."""
    rx.process(batch([deposit(a, 0, v * USD) for a, v in amounts.items()]))


def trade(rx: RiskExchange, buyer: int, seller: int, lots: int, price: int = MARK, inst: int = 0, oid: int = 1) -> None:
    """Cross ``lots`` between two accounts at ``price`` (seller rests, buyer takes)."""
    ev = rx.process(batch([new_order(inst, "sell", lots, price, order_id=oid, account=seller),
                           new_order(inst, "buy", lots, price, order_id=oid, account=buyer)]))
    assert (ev["kind"] == EventKind.TRADE).sum() >= 1, ev


def reasons(events: np.ndarray) -> list[str]:
    """Reason names of the REJECTED events."""
    from shardex.schema import Reason

    return [Reason(int(r)).name for r in events["reason"][events["kind"] == EventKind.REJECTED]]


__all__ = ["FUT", "MARK", "PERP", "USD", "batch", "cancel", "fund", "new_order", "reasons", "trade", "venue"]


def assert_rejected_commands_change_nothing(rx: RiskExchange, flow) -> None:
    """Feed every command of ``flow`` (lists of records) alone; one rejected outright must leave the state hash as it was."""
    for cmds in flow:
        for rec in cmds:
            before = rx.state_hash()
            ev = rx.process(batch([rec]))
            if len(ev) and (ev["kind"] == EventKind.REJECTED).all():
                assert rx.state_hash() == before, ev
    rx.check()
