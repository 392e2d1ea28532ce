"""Drive ``limit-order-book`` (C++ via Cython, Python >= 3.13) with the workload CSV.

Run with its venv: ``bench/.venvs/limit-order-book/bin/python
bench/peers/run_limit_order_book.py WORKLOAD.csv [--repeat 3]``.

Its users call ``limit(side, id, qty, price)``, ``market(side, id, qty)`` and
``cancel(id)`` one order at a time; so does the timed loop.

What it cannot express, and what that changes:

* no fills reach Python (the calls return ``None``; there is no callback), so
  the trade count is unknown (reported as ``null``);
* no accounts, hence no self-trade prevention: orders of the same account
  trade with each other where ``matching-engine`` cancels the taker;
* cancels carry no account (the owner check is skipped; in this workload
  every cancel names the true owner, so nothing changes).

The traded quantity is recovered, outside the timed loop, by a second run
that reads the book's total volume around each order: a limit order that
fills ``f`` of ``q`` lots changes the volume by ``q - 2f`` (``f`` leaves the
other side, ``q - f`` rests), a market order by ``-f``.
"""

from __future__ import annotations

import gc
import importlib.metadata
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _workload as wl  # noqa: E402

from limit_order_book import LimitOrderBook  # noqa: E402

# the binding's side flag: True is Buy, False is Sell (see its _book.pxd)
_BUY = {wl.BUY: True, wl.SELL: False}


def once(w: wl.Workload) -> dict:
    book = LimitOrderBook()
    limit, market, cancel = book.limit, book.market, book.cancel
    rows = list(zip(w.op, w.order_id, w.side, w.type, w.price, w.qty, strict=True))
    sides = [_BUY.get(s, False) for s in w.side]
    rows = [(op, oid, sides[i], ty, px, q) for i, (op, oid, _s, ty, px, q) in enumerate(rows)]
    clock = wl.timer()
    gc.collect()
    t0 = clock()
    for op, oid, is_buy, ty, price, qty in rows:
        if op:  # cancel
            cancel(oid)
        elif ty:  # market
            market(is_buy, oid, qty)
        else:
            limit(is_buy, oid, qty, price)
    seconds = clock() - t0
    resting = book.count()

    # Untimed: traded quantity from volume changes (see the module docstring).
    book = LimitOrderBook()
    volume = book.volume
    traded = 0
    for op, oid, is_buy, ty, price, qty in rows:
        if op:
            book.cancel(oid)
            continue
        before = volume()
        if ty:
            book.market(is_buy, oid, qty)
            traded += before - volume()
        else:
            book.limit(is_buy, oid, qty, price)
            traded += (before + qty - volume()) // 2
    return {
        "seconds": seconds,
        "trades": None,
        "traded_qty": traded,
        "extra": {"resting_orders": resting},
    }


if __name__ == "__main__":
    sys.exit(
        wl.run(
            "limit-order-book",
            importlib.metadata.version("limit-order-book"),
            once,
            __doc__.split("\n", 1)[0],
            notes=[
                "reports no fills to Python: trade count unknown (null)",
                "traded qty recovered from book volume in a second, untimed run",
                "no accounts, so no self-trade prevention: self-trades happen (no parity expected)",
            ],
        )
    )
