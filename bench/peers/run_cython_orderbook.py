"""Drive ``cython-orderbook`` (Cython-compiled Python) with the workload CSV.

Run with its venv: ``bench/.venvs/cython-orderbook/bin/python
bench/peers/run_cython_orderbook.py WORKLOAD.csv [--repeat 3]``.

Its users build an ``Order(side, original_quantity, price)`` per order and call
``OrderBook.add_limit_order`` / ``add_market_order`` / ``cancel_order(order_id)``;
fills land in ``OrderBook.trade_log`` (one ``Trade`` per fill, with a wall-clock
timestamp).  The timed loop does that; trades and lots are read from the log
after the clock stops (the engine appends to it inside the loop regardless).

What it cannot express: accounts, hence self-trade prevention (orders of one
account trade with each other); the engine assigns its own string order ids,
so the loop keeps a dict from workload id to engine id for cancels.  Prices
are passed as int ticks (its README uses ``Decimal``; ints compare the same).
"""

from __future__ import annotations

import gc
import importlib.metadata
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _workload as wl  # noqa: E402

from cython_orderbook import Order, OrderBook, OrderSide  # noqa: E402

_SIDE = {wl.BUY: OrderSide.BID, wl.SELL: OrderSide.ASK}


def once(w: wl.Workload) -> dict:
    book = OrderBook()
    add_limit, add_market, cancel = book.add_limit_order, book.add_market_order, book.cancel_order
    rows = [
        (op, oid, _SIDE.get(s), ty, px, q)
        for op, oid, s, ty, px, q in zip(w.op, w.order_id, w.side, w.type, w.price, w.qty, strict=True)
    ]
    ids: dict[int, str] = {}
    failed_cancels = 0
    clock = wl.timer()
    gc.collect()
    t0 = clock()
    for op, oid, side, ty, price, qty in rows:
        if op:
            eid = ids.get(oid)
            if eid is None or not cancel(eid):
                failed_cancels += 1
        elif ty:
            add_market(Order(side, qty))
        else:
            o = Order(side, qty, price)
            add_limit(o)
            ids[oid] = o.order_id
    seconds = clock() - t0
    log = book.trade_log
    return {
        "seconds": seconds,
        "trades": len(log),
        "traded_qty": sum(t.quantity_filled for t in log),
        "extra": {"failed_cancels": failed_cancels},
    }


if __name__ == "__main__":
    sys.exit(
        wl.run(
            "cython-orderbook",
            importlib.metadata.version("cython-orderbook"),
            once,
            __doc__.split("\n", 1)[0],
            notes=[
                "fills read from its trade_log",
                "no accounts, so no self-trade prevention: self-trades happen (no parity expected)",
            ],
        )
    )
