"""Read-only views of a book: top of book, L2 depth, L3 orders, canonical state.

The canonical state is what the state hash covers.  It lists orders by
instrument and priority, never by pool row, so two engines with the same
history share it whatever else their shards hold.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from shardex.book.layout import (
    B_STOP_HEAD, C_FLAGS, C_PRICE, C_SIDE, C_STOP, C_STP, C_TIF, C_TYPE,
    DEAD, L_COUNT, L_HEAD, L_PRICE, L_QTY, NIL, O_ACCOUNT, O_HIDDEN, O_NEXT, O_OID, O_PEAK, O_QTY,
)

#: Columns of an L3 row (one per order, priority order; stops last in arrival order).
L3_COLUMNS = ("side", "price", "order_id", "account", "qty", "hidden", "peak", "type", "tif", "stp", "flags", "stop_price")


@njit(cache=True, nogil=True)
def depth(lad_lv, lad_n, levels, row, n):
    """Top ``n`` levels of ladder ``row``, best first: an (k x 3) array of price, qty, orders."""
    k = min(n, lad_n[row])
    out = np.empty((k, 3), dtype=np.int64)
    top = lad_n[row] - 1
    for j in range(k):
        lv = lad_lv[row, top - j]
        out[j, 0] = levels[lv, L_PRICE]
        out[j, 1] = levels[lv, L_QTY]
        out[j, 2] = levels[lv, L_COUNT]
    return out


@njit(cache=True, nogil=True)
def _row(out, k, orders, ocold, o, side):
    out[k, 0] = side
    out[k, 1] = ocold[o, C_PRICE]
    out[k, 2] = orders[o, O_OID]
    out[k, 3] = orders[o, O_ACCOUNT]
    out[k, 4] = orders[o, O_QTY]
    out[k, 5] = orders[o, O_HIDDEN]
    out[k, 6] = orders[o, O_PEAK]
    out[k, 7] = ocold[o, C_TYPE]
    out[k, 8] = ocold[o, C_TIF]
    out[k, 9] = ocold[o, C_STP]
    out[k, 10] = ocold[o, C_FLAGS]
    out[k, 11] = ocold[o, C_STOP]


@njit(cache=True, nogil=True)
def l3(orders, ocold, levels, lad_lv, lad_n, books, b, total):
    """Every order of book ``b``: bids best first, then asks, then untriggered stops.

    ``total`` is an upper bound of the row count (live orders in the pool).
    """
    out = np.empty((total, 12), dtype=np.int64)
    k = 0
    for side in range(2):
        row = 2 * b + side
        for pos in range(lad_n[row] - 1, -1, -1):
            o = levels[lad_lv[row, pos], L_HEAD]
            while o != NIL:
                if orders[o, O_ACCOUNT] != DEAD:  # a cancelled row not yet unlinked
                    _row(out, k, orders, ocold, o, side)
                    k += 1
                o = orders[o, O_NEXT]
    o = books[b, B_STOP_HEAD]
    while o != NIL:
        _row(out, k, orders, ocold, o, ocold[o, C_SIDE])
        k += 1
        o = orders[o, O_NEXT]
    return out[:k]
