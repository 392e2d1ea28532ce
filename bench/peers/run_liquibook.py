"""Drive ``liquibook`` (C++ over SWIG) with the workload CSV.

Run with its venv: ``bench/.venvs/liquibook/bin/python
bench/peers/run_liquibook.py WORKLOAD.csv [--repeat 3]``.

Its users (see the package's README) build a ``DepthOrderBook``, register an
``OrderListener`` whose ``on_fill`` receives each fill, and call
``add(SimpleOrder(is_buy, price, qty, stop, conditions), conditions)`` and
``cancel(order)``; the timed loop does exactly that, creating each
``SimpleOrder`` in the loop (that is how an order enters the book) and
counting fills in ``on_fill``.  Only the order listener is registered (no
depth or BBO listener), which is the cheapest set-up that reports fills.

Mapping and what it cannot express:

* a market order is price 0 with the ``oc_immediate_or_cancel`` condition;
  the condition must be passed to ``add`` as well: set on the order alone it
  is ignored, and a market order that meets no liquidity rests at price 0
  and trades later;
* a cancel needs the order object, so the loop keeps a dict from workload id
  to ``SimpleOrder``; liquibook finds the order by a linear scan of its price
  level (and of the whole level when the order is gone), which makes cancels
  slow with ~400k resting orders;
* no accounts, hence no self-trade prevention: orders of one account trade
  with each other where ``matching-engine`` cancels the taker.
"""

from __future__ import annotations

import gc
import importlib.metadata
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _workload as wl  # noqa: E402

import liquibook as lb  # noqa: E402


class _Listener(lb.OrderListener):
    """Counts fills; the other callbacks are pure virtual and must exist."""

    def __init__(self) -> None:
        lb.OrderListener.__init__(self)
        self.trades = 0
        self.traded = 0
        self.cancel_rejects = 0

    def on_fill(self, passive, aggressive, qty, cost):  # noqa: ANN001
        self.trades += 1
        self.traded += qty

    def on_accept(self, order):  # noqa: ANN001
        pass

    def on_reject(self, order, reason):  # noqa: ANN001
        pass

    def on_cancel(self, order):  # noqa: ANN001
        pass

    def on_cancel_reject(self, order, reason):  # noqa: ANN001
        self.cancel_rejects += 1

    def on_replace(self, order, size_delta, new_price):  # noqa: ANN001
        pass

    def on_replace_reject(self, order, reason):  # noqa: ANN001
        pass


def once(w: wl.Workload) -> dict:
    book = lb.DepthOrderBook()
    book.set_symbol("X")
    listener = _Listener()
    book.set_order_listener(listener)
    add, cancel, order = book.add, book.cancel, lb.SimpleOrder
    ioc, none = lb.oc_immediate_or_cancel, lb.oc_no_conditions
    rows = [
        (op, oid, s == wl.BUY, ty, px, q)
        for op, oid, s, ty, px, q in zip(w.op, w.order_id, w.side, w.type, w.price, w.qty, strict=True)
    ]
    orders: dict[int, object] = {}
    unknown = 0
    clock = wl.timer()
    gc.collect()
    t0 = clock()
    for op, oid, is_buy, ty, price, qty in rows:
        if op:
            o = orders.get(oid)
            if o is None:
                unknown += 1
            else:
                cancel(o)
        elif ty:
            add(order(is_buy, 0, qty, 0, ioc), ioc)
        else:
            o = order(is_buy, price, qty, 0, none)
            orders[oid] = o
            add(o, none)
    seconds = clock() - t0
    return {
        "seconds": seconds,
        "trades": listener.trades,
        "traded_qty": listener.traded,
        "extra": {
            "cancel_rejects": listener.cancel_rejects,
            "cancel_never_placed": unknown,
            "resting_orders": len(book.bids()) + len(book.asks()),
        },
    }


if __name__ == "__main__":
    sys.exit(
        wl.run(
            "liquibook",
            importlib.metadata.version("liquibook"),
            once,
            __doc__.split("\n", 1)[0],
            notes=[
                "fills via OrderListener.on_fill (SWIG director)",
                "cancel is a linear scan of the order's price level",
                "no accounts, so no self-trade prevention: self-trades happen (no parity expected)",
            ],
        )
    )
