"""Helpers of the matching-core tests: a deterministic exchange, command builders, event formatting."""

from __future__ import annotations

import numpy as np

from shardex import Exchange, Instrument, Matching
from shardex.book.check import check_shard
from shardex.engine.commands import amend, batch, cancel, mass_cancel, new_order
from shardex.schema import EventKind, Reason, Side

__all__ = ["make_exchange", "run", "fmt", "check", "l3_rows", "new", "amend", "cancel", "mass_cancel", "batch", "FIFO", "PRO_RATA"]

FIFO = Matching.FIFO
PRO_RATA = Matching.PRO_RATA


def make_exchange(*matchings: Matching, shards: int = 1, order_capacity: int = 1024, **spec) -> Exchange:
    """An exchange with instruments 0, 1, ... ("I0", "I1", ...) of the given matching modes, a fixed clock."""
    matchings = matchings or (FIFO,)
    instruments = [Instrument(i, f"I{i}", matching=m, **spec) for i, m in enumerate(matchings)]
    return Exchange(instruments, shards=shards, clock=lambda: 1_000, order_capacity=order_capacity)


def new(side, qty, price=0, *, oid, acct=0, inst=0, **kw) -> tuple:
    """A NEW record in ticks and lots (``type`` defaults to LIMIT with a price, MARKET without)."""
    if "type" not in kw:
        kw["type"] = "limit" if price else "market"
        if not price and "tif" not in kw:
            kw["tif"] = "ioc"
    return new_order(inst, side, qty, price, order_id=oid, account=acct, **kw)


def check(ex: Exchange) -> None:
    """The invariant checker on every shard of ``ex``."""
    for shard in ex.shards:
        check_shard(shard)


def run(ex: Exchange, *records: tuple, checked: bool = True) -> list[str]:
    """Process records as one batch; check invariants; return the events formatted by ``fmt``."""
    events = ex.process(batch(records))
    if checked:
        check(ex)
    return [fmt(e) for e in events]


def fmt(e) -> str:
    """One event as a compact line: ``KIND SIDE acct:oid px= q= lv= [vs macct:moid mlv= t=] [REASON]``."""
    kind = EventKind(int(e["kind"])).name
    side = "B" if int(e["side"]) == Side.BUY else "S"
    text = f"{kind} {side} {int(e['account'])}:{int(e['order_id'])} px={int(e['price'])} q={int(e['qty'])} lv={int(e['leaves'])}"
    if kind == "TRADE":
        text += f" vs {int(e['maker_account'])}:{int(e['maker_order_id'])} mlv={int(e['maker_leaves'])} t={int(e['trade_id'])}"
    if int(e["reason"]):
        text += f" {Reason(int(e['reason'])).name}"
    return text


def l3_rows(ex: Exchange, inst=0) -> list[tuple]:
    """(side, price, order id, account, qty, hidden) of every order of a book, priority order (stops last)."""
    return [tuple(int(x) for x in r[:6]) for r in ex.l3(inst)]
