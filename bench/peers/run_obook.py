"""Drive ``obook`` (C engine over ctypes) with the workload CSV.

Run with its venv: ``bench/.venvs/obook/bin/python bench/peers/run_obook.py
WORKLOAD.csv [--repeat 3]``.

Its users call ``Book.submit(user, side, price, qty, type, tif)`` and
``Book.cancel(order_id, user)`` one command at a time and drain
``Book.events()`` for trades; the timed loop does the same, draining after
every command and counting ``TRADE`` events.

The engine assigns its own order ids, so the loop keeps a dict from the
workload's id to the engine's (a user must too) and cancels through it; a
cancel of an id the engine never assigned (none in this workload: every
cancel names an earlier limit order) is counted as unknown without a call.
``user`` is the workload's account: obook prevents self-trades by user, and
(checked on a small case) cancels the incoming order, as ``matching-engine``'s
default ``cancel_taker`` does.  Market orders are sent with price 0, IOC.
``max_orders`` is set to the number of commands so the book never fills up.
"""

from __future__ import annotations

import gc
import importlib.metadata
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _workload as wl  # noqa: E402

import obook  # noqa: E402

_SIDE = {wl.BUY: obook.BUY, wl.SELL: obook.SELL}
_TYPE = {wl.LIMIT: obook.LIMIT, wl.MARKET: obook.MARKET}
_TIF = {wl.GTC: obook.GTC, wl.IOC: obook.IOC, wl.FOK: obook.FOK}


def once(w: wl.Workload) -> dict:
    book = obook.Book(max_orders=max(len(w), 1024))
    submit, cancel, events = book.submit, book.cancel, book.events
    rows = [
        (op, oid, acct, _SIDE.get(s), _TYPE.get(ty), _TIF.get(tif), px, q)
        for op, oid, acct, s, ty, tif, px, q in w.rows()
    ]
    trade_kind = obook.EventKind.TRADE
    ids: dict[int, int] = {}
    trades = traded = unknown = rejected = 0
    clock = wl.timer()
    gc.collect()
    t0 = clock()
    for op, oid, acct, side, ty, tif, price, qty in rows:
        if op:
            eid = ids.get(oid)
            if eid is None:
                unknown += 1
                continue
            cancel(eid, acct)
        else:
            r = submit(acct, side, price, qty, ty, tif)
            ids[oid] = r.order_id
        for e in events():
            if e.kind is trade_kind:
                trades += 1
                traded += e.qty
    seconds = clock() - t0

    # Untimed: tally statuses of a second run, for the docs.
    book2 = obook.Book(max_orders=max(len(w), 1024))
    ids.clear()
    statuses: dict[str, int] = {}
    for op, oid, acct, side, ty, tif, price, qty in rows:
        if op:
            eid = ids.get(oid)
            r = book2.cancel(eid, acct) if eid is not None else None
            key = "cancel " + (r.reason.name if r else "never-assigned")
        else:
            r = book2.submit(acct, side, price, qty, ty, tif)
            ids[oid] = r.order_id
            key = f"{'market' if ty else 'limit'} {r.status.name} {r.reason.name}"
        statuses[key] = statuses.get(key, 0) + 1
        book2.events()
    return {
        "seconds": seconds,
        "trades": trades,
        "traded_qty": traded,
        "extra": {"results": dict(sorted(statuses.items())), "resting_orders": len(book.book())},
    }


if __name__ == "__main__":
    sys.exit(
        wl.run(
            "obook",
            importlib.metadata.version("obook"),
            once,
            __doc__.split("\n", 1)[0],
            notes=["engine assigns its own order ids (runner maps them)", "STP by user (cancels the taker)"],
        )
    )
