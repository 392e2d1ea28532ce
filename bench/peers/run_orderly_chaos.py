"""Drive ``orderly-chaos`` (C++ over ctypes) with the workload CSV.

Run with its venv: ``bench/.venvs/orderly-chaos/bin/python
bench/peers/run_orderly_chaos.py WORKLOAD.csv [--repeat 3]``.

Its users call ``limit(side, order_id, quantity, price)``,
``market(side, order_id, quantity)`` and ``cancel(order_id)`` one order at a
time and receive fills through the ``on_trade`` handler (one ``Trade`` per
execution); the timed loop does exactly that, counting trades and lots in the
handler.  A cancel of an order that is no longer resting raises
``UnknownOrderIdError``, which the loop catches, as a user must.

What it cannot express: accounts, hence self-trade prevention (orders of one
account trade with each other where ``matching-engine`` cancels the taker);
cancels carry no account.
"""

from __future__ import annotations

import gc
import importlib.metadata
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _workload as wl  # noqa: E402

from orderly_chaos import LimitOrderBook, Side, UnknownOrderIdError  # noqa: E402

_SIDE = {wl.BUY: Side.BUY, wl.SELL: Side.SELL}


def once(w: wl.Workload) -> dict:
    tally = [0, 0]

    def on_trade(t, tally=tally):  # noqa: ANN001
        tally[0] += 1
        tally[1] += t.quantity

    book = LimitOrderBook(on_trade=on_trade)
    limit, market, cancel = book.limit, book.market, book.cancel
    rows = [
        (op, oid, _SIDE.get(s), ty, px, q)
        for op, oid, s, ty, px, q in zip(w.op, w.order_id, w.side, w.type, w.price, w.qty, strict=True)
    ]
    unknown = 0
    clock = wl.timer()
    gc.collect()
    t0 = clock()
    for op, oid, side, ty, price, qty in rows:
        if op:
            try:
                cancel(oid)
            except UnknownOrderIdError:
                unknown += 1
        elif ty:
            market(side, oid, qty)
        else:
            limit(side, oid, qty, price)
    seconds = clock() - t0
    volume = book.volume()

    # The same loop with no on_trade handler (fills unseen), for reference only.
    bare = LimitOrderBook()
    limit, market, cancel = bare.limit, bare.market, bare.cancel
    gc.collect()
    t1 = clock()
    for op, oid, side, ty, price, qty in rows:
        if op:
            try:
                cancel(oid)
            except UnknownOrderIdError:
                pass
        elif ty:
            market(side, oid, qty)
        else:
            limit(side, oid, qty, price)
    bare_seconds = clock() - t1
    return {
        "seconds": seconds,
        "trades": tally[0],
        "traded_qty": tally[1],
        "extra": {
            "cancel_unknown": unknown,
            "resting_volume": volume,
            "seconds_without_on_trade": bare_seconds,
            "commands_per_second_without_on_trade": len(rows) / bare_seconds,
        },
    }


if __name__ == "__main__":
    sys.exit(
        wl.run(
            "orderly-chaos",
            importlib.metadata.version("orderly-chaos"),
            once,
            __doc__.split("\n", 1)[0],
            notes=[
                "fills via on_trade callback (extra: the same loop without it)",
                "no accounts, so no self-trade prevention: self-trades happen (no parity expected)",
            ],
        )
    )
