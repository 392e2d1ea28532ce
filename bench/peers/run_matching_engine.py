"""Drive the ``matching-engine`` package (pure Python) with the workload CSV.

Run with its venv: ``bench/.venvs/matching-engine/bin/python
bench/peers/run_matching_engine.py WORKLOAD.csv [--repeat 3]``.

Its users call ``MatchingEngine.process(SequencedCommand)`` once per command
and read the returned events; so does this runner.  The peer's command structs
(``NewOrder``/``CancelOrder`` wrapped in ``SequencedCommand``, as its
sequencer would stamp them, ts = 0) are built before the clock starts, like
the CSV parsing; the timed loop is ``process`` plus counting ``Trade`` events.
Every command uses the package defaults except what the CSV says: limit GTC
orders and market IOC orders, STP ``cancel_taker`` (its default), no
post-only.  This engine is the parity reference: trades and traded quantity
of every other engine are compared with these.
"""

from __future__ import annotations

import collections
import gc
import importlib.metadata
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _workload as wl  # noqa: E402

from matching_engine.domain import (  # noqa: E402
    CancelOrder,
    NewOrder,
    OrderType,
    SequencedCommand,
    Side,
    TimeInForce,
)
from matching_engine.engine import MatchingEngine  # noqa: E402
from matching_engine.events import (  # noqa: E402
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
    Trade,
)

_SIDE = {wl.BUY: Side.BUY, wl.SELL: Side.SELL}
_TYPE = {wl.LIMIT: OrderType.LIMIT, wl.MARKET: OrderType.MARKET}
_TIF = {wl.GTC: TimeInForce.GTC, wl.IOC: TimeInForce.IOC, wl.FOK: TimeInForce.FOK}


def build(w: wl.Workload) -> list[SequencedCommand]:
    """The peer's own command objects, seq 1..N, built outside the timed loop."""
    cmds = []
    for seq, (op, oid, acct, side, ty, tif, price, qty) in enumerate(w.rows(), start=1):
        if op == wl.CANCEL:
            c = CancelOrder(oid, acct)
        else:
            c = NewOrder(oid, acct, _SIDE[side], price, qty, _TYPE[ty], _TIF[tif])
        cmds.append(SequencedCommand(seq, 0, c))
    return cmds


def once(w: wl.Workload) -> dict:
    cmds = build(w)
    engine = MatchingEngine()
    process = engine.process
    clock = wl.timer()
    trades = traded = 0
    gc.collect()
    t0 = clock()
    for sc in cmds:
        for e in process(sc):
            if type(e) is Trade:
                trades += 1
                traded += e.qty
    seconds = clock() - t0

    # Untimed: replay once more, tallying every event kind, for the docs.
    replay = MatchingEngine()
    kinds: collections.Counter[str] = collections.Counter()
    for sc in cmds:
        for e in replay.process(sc):
            if type(e) is OrderAccepted:
                kinds[f"accepted {e.order_type.value}"] += 1
            elif type(e) is OrderRejected:
                kinds[f"rejected {e.reason.value}"] += 1
            elif type(e) is OrderCancelled:
                kinds[f"cancelled {e.reason.value}"] += 1
    return {
        "seconds": seconds,
        "trades": trades,
        "traded_qty": traded,
        "extra": {
            "events": dict(sorted(kinds.items())),
            "resting_orders": len(engine.book),
            "best_bid": engine.book.best_bid(),
            "best_ask": engine.book.best_ask(),
            "state_hash": engine.state_hash(),
        },
    }


if __name__ == "__main__":
    sys.exit(
        wl.run(
            "matching-engine",
            importlib.metadata.version("matching-engine"),
            once,
            __doc__.split("\n", 1)[0],
            notes=["pure Python; STP cancel_taker (its default); parity reference"],
        )
    )
