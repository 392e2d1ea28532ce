"""Random command flows for the engine tests (plain numpy RNG; hypothesis lives in the property tests)."""

from __future__ import annotations

import numpy as np

from shardex import Exchange, Instrument, Matching
from shardex.engine.commands import amend, batch, cancel, mass_cancel, new_order

STP_MODES = ("none", "cancel_taker", "cancel_maker", "cancel_both", "decrement")


def instruments(n: int) -> list[Instrument]:
    """n instruments, every other one pro-rata."""
    return [Instrument(i, f"I{i}", matching=Matching.PRO_RATA if i % 2 else Matching.FIFO) for i in range(n)]


def random_flow(seed: int, n: int, ninst: int = 5, accounts: int = 4) -> np.ndarray:
    """A batch of n commands of every kind on ninst instruments; order ids are unique per account."""
    rng = np.random.default_rng(seed)
    recs = []
    live: list[tuple[int, int, int]] = []  # (instrument, account, oid) that may be open
    next_oid = [1] * accounts
    for _ in range(n):
        r = rng.random()
        inst = int(rng.integers(ninst))
        acct = int(rng.integers(accounts))
        if r < 0.6 or not live:
            oid = next_oid[acct]
            next_oid[acct] += 1
            side = int(rng.integers(2))
            price = int(rng.integers(95, 106))
            qty = int(rng.integers(1, 8))
            t = rng.random()
            stp = STP_MODES[int(rng.integers(len(STP_MODES)))]
            if t < 0.1:
                rec = new_order(inst, side, qty, 0, order_id=oid, account=acct, type="market",
                                tif="ioc" if rng.random() < 0.7 else "fok", stp=stp)
            elif t < 0.2:
                rec = new_order(inst, side, qty, 0, order_id=oid, account=acct, type="stop_market", tif="ioc",
                                stop_price=int(rng.integers(95, 106)), stp=stp)
            elif t < 0.27:
                rec = new_order(inst, side, qty, price, order_id=oid, account=acct, type="stop_limit",
                                stop_price=int(rng.integers(95, 106)), stp=stp)
            elif t < 0.37 and qty > 1:
                rec = new_order(inst, side, qty * 3, price, order_id=oid, account=acct,
                                display_qty=int(rng.integers(1, qty)), stp=stp)
            else:
                tif = ("gtc", "gtc", "gtc", "ioc", "fok")[int(rng.integers(5))]
                post = tif == "gtc" and rng.random() < 0.15
                rec = new_order(inst, side, qty, price, order_id=oid, account=acct, tif=tif, post_only=post, stp=stp)
            recs.append(rec)
            live.append((inst, acct, oid))
        elif r < 0.75:
            inst, acct, oid = live[int(rng.integers(len(live)))]
            recs.append(cancel(inst, oid, account=acct))
        elif r < 0.93:
            inst, acct, oid = live[int(rng.integers(len(live)))]
            price = int(rng.integers(95, 106)) if rng.random() < 0.5 else 0
            recs.append(amend(inst, oid, account=acct, qty=int(rng.integers(1, 9)), price=price))
        else:
            recs.append(mass_cancel(acct, -1 if rng.random() < 0.5 else inst))
    return batch(recs)


def exchange(ninst: int, shards: int) -> Exchange:
    return Exchange(instruments(ninst), shards=shards, clock=lambda: 7)
