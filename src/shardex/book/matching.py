"""The matching kernel: a batch of commands in, a batch of events out.

``process_commands`` runs every command of a batch against the books of one
shard and writes the events into a caller-provided buffer.  It never raises
and never stops half-way through a command: before each command it checks
that the pools, the ladders, the index and the event buffer have room for the
worst case, and if not it returns a status asking the Python layer to grow
that array and call again from the same command.

Rules (ARCHITECTURE.md, "Matching rules"):

* price-time priority; pro-rata per instrument (``Matching.PRO_RATA``): each
  resting order at the level gets ``floor(fill * qty / level_qty)`` in time
  priority, the last one the remainder; a level is revisited while the taker
  still crosses it;
* trades execute at the resting order's price;
* limit GTC/IOC/FOK, market IOC/FOK, post-only (rejected if it would take),
  iceberg (a refill goes to the back of its level), stop-market and
  stop-limit (triggered by the last trade price; a stop whose condition
  already holds on entry triggers at once; triggered stops run one at a time
  in arrival order, and each may trigger more);
* FOK and post-only are checked before anything changes, so a rejected order
  leaves no trace but its ``REJECTED`` event;
* self-trade prevention by the taker's mode, against resting orders of the
  same account.

A user's cancel is lazy (``shardex.book.layout``, "Lazy cancels"): the row
stays linked, marked dead, until a walk reaches it or its level empties.
Every queue walk here skips dead rows; the match walks also unlink and free
them, and a walk stops as soon as its level has no live order left, since
the level's dead rows (its ``next`` among them) are freed with it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from shardex.book.index import index_delete, index_find_book, index_guess, index_insert, index_slot
from shardex.lowlevel import borrow, prefetch_read, prefetch_row, view1d, view2d
from shardex.sync import store_release
from shardex.book.ladder import ladder_get_or_add, ladder_remove, side_key
from shardex.book.layout import (
    B_HAS_LAST, B_LAST, B_ORDERS, B_REFILLS, B_STOP_HEAD, B_STOP_QTY, B_STOP_TAIL, B_STOPS, B_TRADES, B_VOLUME,
    C_BOOK, C_FLAGS, C_PRICE, C_SIDE, C_STOP, C_STP, C_TIF, C_TYPE, COMPACT_SLACK, DEAD,
    L_COUNT, L_DEAD, L_HEAD, L_PRICE, L_QTY, L_TAIL,
    M_DEAD_ORDERS, M_FREE_ORDER, M_FRESH_ORDER, M_INDEX_TOMB, M_INDEX_USED, M_ORDERS_USED,
    NIL, O_ACCOUNT, O_HIDDEN, O_LEVEL, O_NEXT, O_OID, O_PEAK, O_PREV, O_QTY,
    R_LISTED, R_MATCHING, R_MAX_PRICE, R_MAX_QTY, R_MIN_PRICE, R_MIN_QTY,
    ST_DONE, ST_GROW_EVENTS, ST_GROW_INDEX, ST_GROW_LADDER, ST_GROW_POOL,
)

# Codes mirrored from shardex.schema (numba needs plain ints).
K_NEW, K_CANCEL, K_AMEND, K_MASS_CANCEL = 1, 2, 3, 4
E_ACCEPTED, E_REJECTED, E_TRADE, E_CANCELLED, E_AMENDED, E_TRIGGERED, E_REPLENISHED = 1, 2, 3, 4, 5, 6, 7
T_LIMIT, T_MARKET, T_STOP_MARKET, T_STOP_LIMIT = 0, 1, 2, 3
TIF_GTC, TIF_IOC, TIF_FOK = 0, 1, 2
F_POST_ONLY = 1
STP_NONE, STP_CANCEL_TAKER, STP_CANCEL_MAKER, STP_CANCEL_BOTH, STP_DECREMENT = 0, 1, 2, 3, 4
R_OK = 0
R_UNKNOWN_INSTRUMENT = 1
R_QTY_NOT_POSITIVE = 4
R_QTY_BELOW_MIN = 5
R_QTY_ABOVE_MAX = 6
R_PRICE_OUT_OF_BAND = 7
R_DUPLICATE = 8
R_UNKNOWN_ORDER = 9
R_MARKET_GTC = 10
R_POST_ONLY = 11
R_FOK = 12
R_INVALID_SIDE = 13
R_INVALID_TYPE = 14
R_INVALID_TIF = 15
R_INVALID_STP = 16
R_INVALID_DISPLAY = 17
R_INVALID_STOP = 18
R_INVALID_COMMAND = 19
R_INVALID_PRICE = 20
R_INVALID_ACCOUNT = 21
R_AMEND_STOP = 22
R_USER_CANCEL = 50
R_IOC_REMAINDER = 51
R_STP_CANCEL = 52
R_MASS_CANCEL = 53
R_NO_LIQUIDITY = 54

MARKET_BUY_LIMIT = np.iinfo(np.int64).max

# Handles of the state arrays in the table the kernels pass around (BookState.handles()).
S_ORDERS = 0
S_OCOLD = 1
S_LEVELS = 2
S_LAD_KEY = 3
S_LAD_LV = 4
S_LAD_N = 5
S_BOOKS = 6
S_RULES = 7
S_INDEX = 8
S_META = 9
S_SCRATCH = 10
# How many commands ahead the kernel prefetches index cells and order rows.
PREFETCH_FAR = 16
PREFETCH_NEAR = 11


# ---------------------------------------------------------------------------
# events
# ---------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _emit(ev, n, seq, ts, inst, kind, side, reason, oid, acct, price, qty, leaves, moid, macct, mleaves, tid):
    e = ev[n]
    e.seq = seq
    e.ts = ts
    e.instrument = inst
    e.kind = kind
    e.side = side
    e.reason = reason
    e.order_id = oid
    e.account = acct
    e.price = price
    e.qty = qty
    e.leaves = leaves
    e.maker_order_id = moid
    e.maker_account = macct
    e.maker_leaves = mleaves
    e.trade_id = tid
    return n + 1


# ---------------------------------------------------------------------------
# order rows
# ---------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _refills(hidden, peak):
    if peak <= 0 or hidden <= 0:
        return 0
    return (hidden + peak - 1) // peak


@njit(cache=True, nogil=True)
def _alloc(st):
    orders = view2d(st, S_ORDERS)
    meta = view1d(st, S_META)
    o = meta[M_FREE_ORDER]
    if o != NIL:
        meta[M_FREE_ORDER] = orders[o, O_NEXT]
    else:
        o = meta[M_FRESH_ORDER]
        meta[M_FRESH_ORDER] = o + 1
    meta[M_ORDERS_USED] += 1
    return o


@njit(cache=True, nogil=True, inline="always")
def _forget(st, b, o):
    """Drop order ``o`` of book ``b`` from the index and the live counts (its row is the caller's business)."""
    orders = view2d(st, S_ORDERS)
    books = view2d(st, S_BOOKS)
    index = view2d(st, S_INDEX)
    meta = view1d(st, S_META)
    books[b, B_REFILLS] -= _refills(orders[o, O_HIDDEN], orders[o, O_PEAK])
    index_delete(index, meta, orders[o, O_ACCOUNT], orders[o, O_OID], o)
    meta[M_ORDERS_USED] -= 1


@njit(cache=True, nogil=True)
def _release(st, o):
    """Forget an order that has left the book: index entry and pool row."""
    orders = view2d(st, S_ORDERS)
    ocold = view2d(st, S_OCOLD)
    meta = view1d(st, S_META)
    _forget(st, ocold[o, C_BOOK], o)
    orders[o, O_NEXT] = meta[M_FREE_ORDER]
    meta[M_FREE_ORDER] = o


@njit(cache=True, nogil=True, inline="always")
def _free_dead(st, o):
    """Return a dead row (already out of the index and every count) to the pool."""
    orders = view2d(st, S_ORDERS)
    meta = view1d(st, S_META)
    orders[o, O_NEXT] = meta[M_FREE_ORDER]
    meta[M_FREE_ORDER] = o
    meta[M_DEAD_ORDERS] -= 1


@njit(cache=True, nogil=True)
def _list_append(orders, owner, row, head_col, tail_col, o):
    """Append order ``o`` to the doubly linked list whose ends are ``owner[row, head_col/tail_col]``.

    Price-level queues (in ``levels``) and stop lists (in ``books``) are both
    such lists over the order rows' O_PREV/O_NEXT fields.
    """
    tail = owner[row, tail_col]
    orders[o, O_PREV] = tail
    orders[o, O_NEXT] = NIL
    if tail == NIL:
        owner[row, head_col] = o
    else:
        orders[tail, O_NEXT] = o
    owner[row, tail_col] = o


@njit(cache=True, nogil=True)
def _list_remove(orders, owner, row, head_col, tail_col, o):
    """Take order ``o`` out of its doubly linked list, O(1)."""
    prv = orders[o, O_PREV]
    nxt = orders[o, O_NEXT]
    if prv == NIL:
        owner[row, head_col] = nxt
    else:
        orders[prv, O_NEXT] = nxt
    if nxt == NIL:
        owner[row, tail_col] = prv
    else:
        orders[nxt, O_PREV] = prv


@njit(cache=True, nogil=True)
def _link_tail(st, lv, o):
    orders = view2d(st, S_ORDERS)
    levels = view2d(st, S_LEVELS)
    _list_append(orders, levels, lv, L_HEAD, L_TAIL, o)
    orders[o, O_LEVEL] = lv
    levels[lv, L_COUNT] += 1
    levels[lv, L_QTY] += orders[o, O_QTY]


@njit(cache=True, nogil=True)
def _unlink(st, o):
    """Take an order out of its level's queue (O(1)); returns the level row."""
    orders = view2d(st, S_ORDERS)
    levels = view2d(st, S_LEVELS)
    lv = orders[o, O_LEVEL]
    _list_remove(orders, levels, lv, L_HEAD, L_TAIL, o)
    levels[lv, L_COUNT] -= 1
    levels[lv, L_QTY] -= orders[o, O_QTY]
    return lv


@njit(cache=True, nogil=True)
def _drop_dead(st, lv, o):
    """Unlink dead row ``o`` from level ``lv``'s queue and free it."""
    orders = view2d(st, S_ORDERS)
    levels = view2d(st, S_LEVELS)
    _list_remove(orders, levels, lv, L_HEAD, L_TAIL, o)
    levels[lv, L_DEAD] -= 1
    _free_dead(st, o)


@njit(cache=True, nogil=True)
def _compact(st, lv):
    """Free every dead row of level ``lv``'s queue (the level keeps its live orders)."""
    orders = view2d(st, S_ORDERS)
    levels = view2d(st, S_LEVELS)
    o = levels[lv, L_HEAD]
    while o != NIL and levels[lv, L_DEAD] > 0:
        nxt = orders[o, O_NEXT]
        if orders[o, O_ACCOUNT] == DEAD:
            _drop_dead(st, lv, o)
        o = nxt


@njit(cache=True, nogil=True)
def _close_level(st, b, side, lv):
    """Take level ``lv`` (no live order left) off its ladder, freeing the dead rows still in its queue."""
    orders = view2d(st, S_ORDERS)
    levels = view2d(st, S_LEVELS)
    lad_key = view2d(st, S_LAD_KEY)
    lad_lv = view2d(st, S_LAD_LV)
    lad_n = view1d(st, S_LAD_N)
    meta = view1d(st, S_META)
    if levels[lv, L_DEAD] > 0:
        o = levels[lv, L_HEAD]
        while o != NIL:
            nxt = orders[o, O_NEXT]
            _free_dead(st, o)
            o = nxt
    ladder_remove(lad_key, lad_lv, lad_n, levels, meta, 2 * b + side, side_key(side, levels[lv, L_PRICE]))


@njit(cache=True, nogil=True)
def purge_dead(st):
    """Free every dead row of every level (``BookState.copy_arrays`` runs it on its copy)."""
    levels = view2d(st, S_LEVELS)
    lad_lv = view2d(st, S_LAD_LV)
    lad_n = view1d(st, S_LAD_N)
    for row in range(lad_n.shape[0]):
        for pos in range(lad_n[row]):
            lv = lad_lv[row, pos]
            if levels[lv, L_DEAD] > 0:
                _compact(st, lv)


@njit(cache=True, nogil=True)
def _place(st, o):
    """Rest an order row at the back of its price level."""
    orders = view2d(st, S_ORDERS)
    ocold = view2d(st, S_OCOLD)
    levels = view2d(st, S_LEVELS)
    lad_key = view2d(st, S_LAD_KEY)
    lad_lv = view2d(st, S_LAD_LV)
    lad_n = view1d(st, S_LAD_N)
    books = view2d(st, S_BOOKS)
    meta = view1d(st, S_META)
    b = ocold[o, C_BOOK]
    side = ocold[o, C_SIDE]
    price = ocold[o, C_PRICE]
    lv = ladder_get_or_add(lad_key, lad_lv, lad_n, levels, meta, 2 * b + side, side_key(side, price), price)
    _link_tail(st, lv, o)
    books[b, B_ORDERS] += 1
    books[b, B_REFILLS] += _refills(orders[o, O_HIDDEN], orders[o, O_PEAK])


@njit(cache=True, nogil=True)
def _remove_resting(st, o):
    """Take a resting order out of the book, dropping its level if it has no live order left."""
    ocold = view2d(st, S_OCOLD)
    levels = view2d(st, S_LEVELS)
    books = view2d(st, S_BOOKS)
    lv = _unlink(st, o)
    b = ocold[o, C_BOOK]
    books[b, B_ORDERS] -= 1
    if levels[lv, L_COUNT] == 0:
        _close_level(st, b, ocold[o, C_SIDE], lv)


@njit(cache=True, nogil=True)
def _stop_unlink(st, b, o):
    orders = view2d(st, S_ORDERS)
    books = view2d(st, S_BOOKS)
    _list_remove(orders, books, b, B_STOP_HEAD, B_STOP_TAIL, o)
    books[b, B_STOPS] -= 1
    books[b, B_STOP_QTY] -= orders[o, O_QTY]


@njit(cache=True, nogil=True)
def _stop_append(st, b, o):
    orders = view2d(st, S_ORDERS)
    books = view2d(st, S_BOOKS)
    _list_append(orders, books, b, B_STOP_HEAD, B_STOP_TAIL, o)
    orders[o, O_LEVEL] = NIL
    books[b, B_STOPS] += 1
    books[b, B_STOP_QTY] += orders[o, O_QTY]


@njit(cache=True, nogil=True)
def _crosses(side, limit, level_price):
    if side == 0:
        return level_price <= limit
    return level_price >= limit


@njit(cache=True, nogil=True, inline="always")
def _crosses_best(st, b, side, limit):
    """Whether an order of ``side`` at ``limit`` crosses the best opposite level of book ``b`` (False if none)."""
    levels = view2d(st, S_LEVELS)
    lad_lv = view2d(st, S_LAD_LV)
    lad_n = view1d(st, S_LAD_N)
    opp = 2 * b + 1 - side
    return lad_n[opp] > 0 and _crosses(side, limit, levels[lad_lv[opp, lad_n[opp] - 1], L_PRICE])


# ---------------------------------------------------------------------------
# the taker
# ---------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _fillable(st, b, side, limit, qty, acct, stp):
    """Whether ``qty`` can be filled right now (FOK), mirroring what matching will do."""
    orders = view2d(st, S_ORDERS)
    levels = view2d(st, S_LEVELS)
    lad_lv = view2d(st, S_LAD_LV)
    lad_n = view1d(st, S_LAD_N)
    rules = view2d(st, S_RULES)
    opp = 2 * b + 1 - side
    prorata = rules[b, R_MATCHING] == 1
    need = qty
    for pos in range(lad_n[opp] - 1, -1, -1):
        lv = lad_lv[opp, pos]
        if not _crosses(side, limit, levels[lv, L_PRICE]):
            return False
        o = levels[lv, L_HEAD]
        self_seen = False
        while o != NIL:
            if stp != STP_NONE and orders[o, O_ACCOUNT] == acct:
                self_seen = True
                if stp != STP_CANCEL_MAKER and not prorata:
                    return False
            else:
                need -= orders[o, O_QTY] + orders[o, O_HIDDEN]
                if need <= 0:
                    return True
            o = orders[o, O_NEXT]
        if self_seen and prorata and stp != STP_CANCEL_MAKER:
            return False
    return False


@njit(cache=True, nogil=True)
def _trade(st, b, inst, lv, o, q, rem, side, acct, oid, seq, ts, ev, n):
    """Fill q lots of resting order o; the caller has already reduced ``rem``."""
    orders = view2d(st, S_ORDERS)
    levels = view2d(st, S_LEVELS)
    books = view2d(st, S_BOOKS)
    price = levels[lv, L_PRICE]
    orders[o, O_QTY] -= q
    levels[lv, L_QTY] -= q
    books[b, B_TRADES] += 1
    books[b, B_LAST] = price
    books[b, B_HAS_LAST] = 1
    books[b, B_VOLUME] += q
    return _emit(ev, n, seq, ts, inst, E_TRADE, side, R_OK, oid, acct, price, q, rem, orders[o, O_OID], orders[o, O_ACCOUNT], orders[o, O_QTY] + orders[o, O_HIDDEN], books[b, B_TRADES])


@njit(cache=True, nogil=True)
def _replenish(st, inst, o, seq, ts, ev, n):
    """Show the next slice of an iceberg whose displayed part is gone: back of the level."""
    orders = view2d(st, S_ORDERS)
    ocold = view2d(st, S_OCOLD)
    levels = view2d(st, S_LEVELS)
    books = view2d(st, S_BOOKS)
    b = ocold[o, C_BOOK]
    peak = orders[o, O_PEAK]
    hidden = orders[o, O_HIDDEN]
    show = min(peak, hidden)
    books[b, B_REFILLS] += _refills(hidden - show, peak) - _refills(hidden, peak)
    lv = _unlink(st, o)
    orders[o, O_HIDDEN] = hidden - show
    orders[o, O_QTY] = show
    _link_tail(st, lv, o)
    return _emit(ev, n, seq, ts, inst, E_REPLENISHED, ocold[o, C_SIDE], R_OK, orders[o, O_OID], orders[o, O_ACCOUNT], levels[lv, L_PRICE], show, show + orders[o, O_HIDDEN], 0, 0, 0, 0)


@njit(cache=True, nogil=True)
def _cancel_resting(st, inst, o, reason, seq, ts, ev, n):
    orders = view2d(st, S_ORDERS)
    ocold = view2d(st, S_OCOLD)
    open_qty = orders[o, O_QTY] + orders[o, O_HIDDEN]
    _remove_resting(st, o)
    n = _emit(ev, n, seq, ts, inst, E_CANCELLED, ocold[o, C_SIDE], reason, orders[o, O_OID], orders[o, O_ACCOUNT], ocold[o, C_PRICE], open_qty, 0, 0, 0, 0, 0)
    _release(st, o)
    return n


@njit(cache=True, nogil=True)
def _cancel_lazy(st, inst, o, reason, seq, ts, ev, n):
    """Cancel resting order ``o`` and leave its row, dead, in the queue (see the module docstring).

    Touches the index cell, the order's two rows and its level, where an
    unlink would also write both queue neighbours.
    """
    orders = view2d(st, S_ORDERS)
    ocold = view2d(st, S_OCOLD)
    levels = view2d(st, S_LEVELS)
    books = view2d(st, S_BOOKS)
    meta = view1d(st, S_META)
    b = ocold[o, C_BOOK]
    lv = orders[o, O_LEVEL]
    qty = orders[o, O_QTY]
    n = _emit(ev, n, seq, ts, inst, E_CANCELLED, ocold[o, C_SIDE], reason, orders[o, O_OID], orders[o, O_ACCOUNT],
              ocold[o, C_PRICE], qty + orders[o, O_HIDDEN], 0, 0, 0, 0, 0)
    books[b, B_ORDERS] -= 1
    _forget(st, b, o)
    meta[M_DEAD_ORDERS] += 1
    levels[lv, L_QTY] -= qty
    levels[lv, L_COUNT] -= 1
    # Compact before ``o`` joins the dead, never after: ``o`` then stays
    # linked, and a caller walking the queue (LOBSTER replay) can step on
    # from it to a neighbour that is still in the queue.
    if levels[lv, L_COUNT] > 0 and levels[lv, L_DEAD] >= levels[lv, L_COUNT] + COMPACT_SLACK:
        _compact(st, lv)
    orders[o, O_QTY] = 0
    orders[o, O_HIDDEN] = 0
    orders[o, O_ACCOUNT] = DEAD
    levels[lv, L_DEAD] += 1
    if levels[lv, L_COUNT] == 0:
        _close_level(st, b, ocold[o, C_SIDE], lv)
    return n


@njit(cache=True, nogil=True)
def _decrement(st, inst, o, rem, side, acct, oid, price, seq, ts, ev, n):
    """STP decrement-and-cancel against resting order o; returns (rem, n, taker_done)."""
    orders = view2d(st, S_ORDERS)
    ocold = view2d(st, S_OCOLD)
    levels = view2d(st, S_LEVELS)
    books = view2d(st, S_BOOKS)
    mk_open = orders[o, O_QTY] + orders[o, O_HIDDEN]
    d = min(rem, mk_open)
    rem -= d
    if d == mk_open:
        n = _cancel_resting(st, inst, o, R_STP_CANCEL, seq, ts, ev, n)
    else:
        # Reserve goes first, so the displayed part keeps its place in the queue.
        h = min(orders[o, O_HIDDEN], d)
        b = ocold[o, C_BOOK]
        books[b, B_REFILLS] += _refills(orders[o, O_HIDDEN] - h, orders[o, O_PEAK]) - _refills(orders[o, O_HIDDEN], orders[o, O_PEAK])
        orders[o, O_HIDDEN] -= h
        orders[o, O_QTY] -= d - h
        levels[orders[o, O_LEVEL], L_QTY] -= d - h
        n = _emit(ev, n, seq, ts, inst, E_CANCELLED, ocold[o, C_SIDE], R_STP_CANCEL, orders[o, O_OID], orders[o, O_ACCOUNT], ocold[o, C_PRICE], d, mk_open - d, 0, 0, 0, 0)
    # The taker loses d lots too: report them, with what it has left.
    n = _emit(ev, n, seq, ts, inst, E_CANCELLED, side, R_STP_CANCEL, oid, acct, price, d, rem, 0, 0, 0, 0)
    return rem, n, rem == 0


@njit(cache=True, nogil=True)
def _match_fifo(st, inst, b, lv, rem, side, acct, oid, price, stp, seq, ts, ev, n):
    """Walk one level head to tail; returns (rem, n, taker_done)."""
    orders = view2d(st, S_ORDERS)
    levels = view2d(st, S_LEVELS)
    o = levels[lv, L_HEAD]
    while rem > 0 and o != NIL:
        nxt = orders[o, O_NEXT]
        if orders[o, O_ACCOUNT] == DEAD:
            _drop_dead(st, lv, o)
            o = nxt
            continue
        if stp != STP_NONE and orders[o, O_ACCOUNT] == acct:
            if stp == STP_CANCEL_MAKER or stp == STP_CANCEL_BOTH:
                n = _cancel_resting(st, inst, o, R_STP_CANCEL, seq, ts, ev, n)
                if stp == STP_CANCEL_BOTH:
                    n = _emit(ev, n, seq, ts, inst, E_CANCELLED, side, R_STP_CANCEL, oid, acct, price, rem, 0, 0, 0, 0, 0)
                    return 0, n, True
            elif stp == STP_CANCEL_TAKER:
                n = _emit(ev, n, seq, ts, inst, E_CANCELLED, side, R_STP_CANCEL, oid, acct, price, rem, 0, 0, 0, 0, 0)
                return 0, n, True
            else:
                rem, n, done = _decrement(st, inst, o, rem, side, acct, oid, price, seq, ts, ev, n)
                if done:
                    return 0, n, True
            if levels[lv, L_COUNT] == 0:
                break  # the level is closed, its dead rows (nxt among them) freed
            o = nxt
            continue
        q = min(rem, orders[o, O_QTY])
        rem -= q
        n = _trade(st, b, inst, lv, o, q, rem, side, acct, oid, seq, ts, ev, n)
        if orders[o, O_QTY] == 0:
            if orders[o, O_HIDDEN] > 0:
                n = _replenish(st, inst, o, seq, ts, ev, n)
                if nxt == NIL:
                    nxt = o
            else:
                _remove_resting(st, o)
                _release(st, o)
                if levels[lv, L_COUNT] == 0:
                    break  # the level is closed, its dead rows (nxt among them) freed
        o = nxt
    return rem, n, False


@njit(cache=True, nogil=True)
def muldiv(a, b, c):
    """floor(a * b / c) exactly for 0 <= a, b <= c, without int64 overflow.

    The pro-rata share ``fill * qty // level_qty`` overflows int64 once a
    level holds ~3e9 lots; then the product is formed in 128 bits (two 64-bit
    limbs) and divided by long division.  The quotient is at most ``b``.
    """
    if a == 0 or b == 0:
        return 0
    if a <= MARKET_BUY_LIMIT // b:
        return (a * b) // c
    m32 = np.uint64(0xFFFFFFFF)
    ua = np.uint64(a)
    ub = np.uint64(b)
    a0 = ua & m32
    a1 = ua >> np.uint64(32)
    b0 = ub & m32
    b1 = ub >> np.uint64(32)
    p00 = a0 * b0
    p01 = a0 * b1
    p10 = a1 * b0
    mid = (p00 >> np.uint64(32)) + (p01 & m32) + (p10 & m32)
    lo = (p00 & m32) | (mid << np.uint64(32))
    hi = a1 * b1 + (p01 >> np.uint64(32)) + (p10 >> np.uint64(32)) + (mid >> np.uint64(32))
    uc = np.uint64(c)
    q = np.uint64(0)
    r = np.uint64(0)
    for bit in range(127, -1, -1):
        if bit >= 64:
            nb = (hi >> np.uint64(bit - 64)) & np.uint64(1)
        else:
            nb = (lo >> np.uint64(bit)) & np.uint64(1)
        r = (r << np.uint64(1)) | nb
        if r >= uc:
            r -= uc
            if bit < 64:
                q |= np.uint64(1) << np.uint64(bit)
    return np.int64(q)


@njit(cache=True, nogil=True)
def _match_prorata(st, inst, b, lv, rem, side, acct, oid, price, stp, seq, ts, ev, n):
    """Share the taker across one level in proportion to size; returns (rem, n, taker_done)."""
    orders = view2d(st, S_ORDERS)
    levels = view2d(st, S_LEVELS)
    scratch = view1d(st, S_SCRATCH)
    k = 0
    avail = 0
    self_seen = False
    o = levels[lv, L_HEAD]
    while o != NIL:
        nxt = orders[o, O_NEXT]
        if orders[o, O_ACCOUNT] == DEAD:
            _drop_dead(st, lv, o)
        elif stp != STP_NONE and orders[o, O_ACCOUNT] == acct:
            self_seen = True
            if stp == STP_CANCEL_MAKER or stp == STP_CANCEL_BOTH:
                n = _cancel_resting(st, inst, o, R_STP_CANCEL, seq, ts, ev, n)
                if levels[lv, L_COUNT] == 0:
                    break  # the level is closed (this pass freed its dead rows already)
        else:
            scratch[k] = o
            k += 1
            avail += orders[o, O_QTY]
        o = nxt
    if avail > 0:
        total = min(rem, avail)
        left = total
        for j in range(k):
            if left == 0:
                break
            o = scratch[j]
            q = orders[o, O_QTY]
            if j == k - 1:
                f = min(q, left)
            else:
                f = min(q, muldiv(total, q, avail), left)
            if f > 0:
                left -= f
                rem -= f
                n = _trade(st, b, inst, lv, o, f, rem, side, acct, oid, seq, ts, ev, n)
        # Refills and removals after the allocation pass, so the pass sees the
        # level exactly as it stood when the taker arrived.
        for j in range(k):
            o = scratch[j]
            if orders[o, O_QTY] == 0:
                if orders[o, O_HIDDEN] > 0:
                    n = _replenish(st, inst, o, seq, ts, ev, n)
                else:
                    _remove_resting(st, o)
                    _release(st, o)
    if self_seen and rem > 0:
        if stp == STP_CANCEL_TAKER or stp == STP_CANCEL_BOTH:
            n = _emit(ev, n, seq, ts, inst, E_CANCELLED, side, R_STP_CANCEL, oid, acct, price, rem, 0, 0, 0, 0, 0)
            return 0, n, True
        if stp == STP_DECREMENT and levels[lv, L_COUNT] > 0:
            o = levels[lv, L_HEAD]
            while rem > 0 and o != NIL:
                nxt = orders[o, O_NEXT]
                if orders[o, O_ACCOUNT] == acct:
                    rem, n, done = _decrement(st, inst, o, rem, side, acct, oid, price, seq, ts, ev, n)
                    if done:
                        return 0, n, True
                    if levels[lv, L_COUNT] == 0:
                        break
                o = nxt
    return rem, n, False


@njit(cache=True, nogil=True)
def _take(st, inst, b, side, limit, rem, acct, oid, price, stp, seq, ts, ev, n):
    """Match an incoming order against the opposite side; returns (rem, n, taker_done)."""
    levels = view2d(st, S_LEVELS)
    lad_lv = view2d(st, S_LAD_LV)
    lad_n = view1d(st, S_LAD_N)
    rules = view2d(st, S_RULES)
    opp = 2 * b + 1 - side
    prorata = rules[b, R_MATCHING] == 1
    while rem > 0 and lad_n[opp] > 0:
        lv = lad_lv[opp, lad_n[opp] - 1]
        if not _crosses(side, limit, levels[lv, L_PRICE]):
            break
        if prorata:
            rem, n, done = _match_prorata(st, inst, b, lv, rem, side, acct, oid, price, stp, seq, ts, ev, n)
        else:
            rem, n, done = _match_fifo(st, inst, b, lv, rem, side, acct, oid, price, stp, seq, ts, ev, n)
        if done:
            return 0, n, True
    return rem, n, False


@njit(cache=True, nogil=True)
def _execute(st, inst, b, o, seq, ts, ev, n):
    """Run order row ``o`` (accepted, fields set, not resting) as a taker, then rest or cancel it."""
    orders = view2d(st, S_ORDERS)
    ocold = view2d(st, S_OCOLD)
    books = view2d(st, S_BOOKS)
    side = ocold[o, C_SIDE]
    otype = ocold[o, C_TYPE]
    tif = ocold[o, C_TIF]
    acct = orders[o, O_ACCOUNT]
    oid = orders[o, O_OID]
    price = ocold[o, C_PRICE]
    qty = orders[o, O_QTY] + orders[o, O_HIDDEN]
    if otype == T_MARKET:
        limit = MARKET_BUY_LIMIT if side == 0 else 0
    else:
        limit = price
    stp = ocold[o, C_STP]
    if tif == TIF_FOK and not _fillable(st, b, side, limit, qty, acct, stp):
        n = _emit(ev, n, seq, ts, inst, E_CANCELLED, side, R_FOK, oid, acct, price, qty, 0, 0, 0, 0, 0)
        _release(st, o)
        return n
    trades_before = books[b, B_TRADES]
    rem = qty
    done = False
    # Most orders rest without crossing: look at the best opposite price before calling the matcher.
    if _crosses_best(st, b, side, limit):
        rem, n, done = _take(st, inst, b, side, limit, qty, acct, oid, price, stp, seq, ts, ev, n)
    if done or rem == 0:
        orders[o, O_QTY] = 0
        orders[o, O_HIDDEN] = 0
        _release(st, o)
    elif otype == T_MARKET or tif != TIF_GTC:
        reason = R_NO_LIQUIDITY if (otype == T_MARKET and books[b, B_TRADES] == trades_before) else R_IOC_REMAINDER
        n = _emit(ev, n, seq, ts, inst, E_CANCELLED, side, reason, oid, acct, price, rem, 0, 0, 0, 0, 0)
        orders[o, O_QTY] = 0
        orders[o, O_HIDDEN] = 0
        _release(st, o)
    else:
        peak = orders[o, O_PEAK]
        if peak > 0 and rem > peak:
            orders[o, O_QTY] = peak
            orders[o, O_HIDDEN] = rem - peak
        else:
            orders[o, O_QTY] = rem
            orders[o, O_HIDDEN] = 0
        _place(st, o)
    return n


@njit(cache=True, nogil=True)
def _run_stops(st, inst, b, seq, ts, ev, n):
    """Trigger stops reached by the last trade price, one at a time in arrival order."""
    orders = view2d(st, S_ORDERS)
    ocold = view2d(st, S_OCOLD)
    books = view2d(st, S_BOOKS)
    while books[b, B_STOPS] > 0 and books[b, B_HAS_LAST] == 1:
        last = books[b, B_LAST]
        o = books[b, B_STOP_HEAD]
        while o != NIL:
            stop = ocold[o, C_STOP]
            if (ocold[o, C_SIDE] == 0 and last >= stop) or (ocold[o, C_SIDE] == 1 and last <= stop):
                break
            o = orders[o, O_NEXT]
        if o == NIL:
            return n
        _stop_unlink(st, b, o)
        n = _emit(ev, n, seq, ts, inst, E_TRIGGERED, ocold[o, C_SIDE], R_OK, orders[o, O_OID], orders[o, O_ACCOUNT], last, orders[o, O_QTY] + orders[o, O_HIDDEN], orders[o, O_QTY] + orders[o, O_HIDDEN], 0, 0, 0, 0)
        ocold[o, C_TYPE] = T_MARKET if ocold[o, C_TYPE] == T_STOP_MARKET else T_LIMIT
        if ocold[o, C_FLAGS] & F_POST_ONLY:
            # Post-only is checked on entry for everything else; a stop is
            # only entering the book now, so check it now.
            side = ocold[o, C_SIDE]
            if _crosses_best(st, b, side, ocold[o, C_PRICE]):
                n = _emit(ev, n, seq, ts, inst, E_CANCELLED, side, R_POST_ONLY, orders[o, O_OID], orders[o, O_ACCOUNT],
                          ocold[o, C_PRICE], orders[o, O_QTY], 0, 0, 0, 0, 0)
                _release(st, o)
                continue
        n = _execute(st, inst, b, o, seq, ts, ev, n)
    return n


# ---------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------
@njit(cache=True, nogil=True, inline="always")
def _check_new(cmds, i, st, b):
    """Reason code for a NEW command's static checks (no book state)."""
    rules = view2d(st, S_RULES)
    c = cmds[i]
    if c.account < 0:
        return R_INVALID_ACCOUNT
    if c.side > 1:
        return R_INVALID_SIDE
    if c.otype > 3:
        return R_INVALID_TYPE
    if c.tif > 2:
        return R_INVALID_TIF
    if c.stp > 4:
        return R_INVALID_STP
    qty = c.qty
    if qty <= 0:
        return R_QTY_NOT_POSITIVE
    if qty < rules[b, R_MIN_QTY]:
        return R_QTY_BELOW_MIN
    if qty > rules[b, R_MAX_QTY]:
        return R_QTY_ABOVE_MAX
    market = c.otype == T_MARKET or c.otype == T_STOP_MARKET
    if market:
        if c.tif == TIF_GTC:
            return R_MARKET_GTC
        if c.flags & F_POST_ONLY:
            return R_INVALID_TYPE
    else:
        if c.price <= 0:
            return R_INVALID_PRICE
        if c.price < rules[b, R_MIN_PRICE] or c.price > rules[b, R_MAX_PRICE]:
            return R_PRICE_OUT_OF_BAND
        if (c.flags & F_POST_ONLY) and c.tif != TIF_GTC:
            return R_INVALID_TIF
    if c.otype >= T_STOP_MARKET and c.stop_price <= 0:
        return R_INVALID_STOP
    if c.display_qty != 0:
        if c.display_qty < 0 or c.display_qty >= qty or market or c.tif != TIF_GTC or c.otype != T_LIMIT:
            return R_INVALID_DISPLAY
        if c.display_qty < rules[b, R_MIN_QTY]:
            return R_INVALID_DISPLAY
    return R_OK


@njit(cache=True, nogil=True, inline="always")
def _reject(cmds, i, reason, ev, n):
    c = cmds[i]
    return _emit(ev, n, c.seq, c.ts, c.instrument, E_REJECTED, c.side, reason, c.order_id, c.account, c.price, c.qty, 0, 0, 0, 0, 0)


@njit(cache=True, nogil=True, inline="always")
def _cmd_new(st, cmds, i, b, ev, n):
    orders = view2d(st, S_ORDERS)
    ocold = view2d(st, S_OCOLD)
    books = view2d(st, S_BOOKS)
    index = view2d(st, S_INDEX)
    meta = view1d(st, S_META)
    c = cmds[i]
    reason = _check_new(cmds, i, st, b)
    if reason == R_OK and index_find_book(index, orders, ocold, C_BOOK, c.account, c.order_id, b) >= 0:
        reason = R_DUPLICATE
    side = c.side
    if reason == R_OK and (c.flags & F_POST_ONLY) and _crosses_best(st, b, side, c.price):
        reason = R_POST_ONLY
    if reason == R_OK and c.tif == TIF_FOK and c.otype < T_STOP_MARKET:
        limit = c.price
        if c.otype == T_MARKET:
            limit = MARKET_BUY_LIMIT if side == 0 else 0
        if not _fillable(st, b, side, limit, c.qty, c.account, c.stp):
            reason = R_FOK
    if reason != R_OK:
        return _reject(cmds, i, reason, ev, n)
    inst = c.instrument
    seq = c.seq
    ts = c.ts
    o = _alloc(st)
    orders[o, O_QTY] = c.qty
    orders[o, O_HIDDEN] = 0
    orders[o, O_PEAK] = c.display_qty
    orders[o, O_ACCOUNT] = c.account
    orders[o, O_OID] = c.order_id
    orders[o, O_LEVEL] = NIL
    ocold[o, C_PRICE] = 0 if (c.otype == T_MARKET or c.otype == T_STOP_MARKET) else c.price
    ocold[o, C_BOOK] = b
    ocold[o, C_SIDE] = side
    ocold[o, C_STOP] = c.stop_price
    ocold[o, C_TYPE] = c.otype
    ocold[o, C_TIF] = c.tif
    ocold[o, C_STP] = c.stp
    ocold[o, C_FLAGS] = c.flags
    index_insert(index, meta, c.account, c.order_id, o)
    n = _emit(ev, n, seq, ts, inst, E_ACCEPTED, side, R_OK, c.order_id, c.account, ocold[o, C_PRICE], c.qty, c.qty, 0, 0, 0, 0)
    if c.otype >= T_STOP_MARKET:
        _stop_append(st, b, o)
    else:
        n = _execute(st, inst, b, o, seq, ts, ev, n)
    if books[b, B_STOPS] > 0:
        n = _run_stops(st, inst, b, seq, ts, ev, n)
    return n


@njit(cache=True, nogil=True)
def _cmd_cancel(st, cmds, i, b, ev, n):
    orders = view2d(st, S_ORDERS)
    ocold = view2d(st, S_OCOLD)
    index = view2d(st, S_INDEX)
    c = cmds[i]
    o = index_find_book(index, orders, ocold, C_BOOK, c.account, c.order_id, b)
    if o < 0:
        return _reject(cmds, i, R_UNKNOWN_ORDER, ev, n)
    if orders[o, O_LEVEL] == NIL:
        _stop_unlink(st, b, o)
        n = _emit(ev, n, c.seq, c.ts, c.instrument, E_CANCELLED, ocold[o, C_SIDE], R_USER_CANCEL, c.order_id, c.account, ocold[o, C_PRICE], orders[o, O_QTY], 0, 0, 0, 0, 0)
        _release(st, o)
        return n
    return _cancel_lazy(st, c.instrument, o, R_USER_CANCEL, c.seq, c.ts, ev, n)


@njit(cache=True, nogil=True)
def _cmd_amend(st, cmds, i, b, ev, n):
    orders = view2d(st, S_ORDERS)
    ocold = view2d(st, S_OCOLD)
    levels = view2d(st, S_LEVELS)
    books = view2d(st, S_BOOKS)
    rules = view2d(st, S_RULES)
    index = view2d(st, S_INDEX)
    c = cmds[i]
    o = index_find_book(index, orders, ocold, C_BOOK, c.account, c.order_id, b)
    if o < 0:
        return _reject(cmds, i, R_UNKNOWN_ORDER, ev, n)
    if orders[o, O_LEVEL] == NIL:
        return _reject(cmds, i, R_AMEND_STOP, ev, n)
    old_price = ocold[o, C_PRICE]
    price = old_price if c.price == 0 else c.price
    qty = c.qty
    side = ocold[o, C_SIDE]
    reason = R_OK
    if qty <= 0:
        reason = R_QTY_NOT_POSITIVE
    elif qty < rules[b, R_MIN_QTY]:
        reason = R_QTY_BELOW_MIN
    elif qty > rules[b, R_MAX_QTY]:
        reason = R_QTY_ABOVE_MAX
    elif price < 0:
        reason = R_INVALID_PRICE
    elif price < rules[b, R_MIN_PRICE] or price > rules[b, R_MAX_PRICE]:
        reason = R_PRICE_OUT_OF_BAND
    elif price != old_price and (ocold[o, C_FLAGS] & F_POST_ONLY) and _crosses_best(st, b, side, price):
        reason = R_POST_ONLY
    if reason != R_OK:
        return _reject(cmds, i, reason, ev, n)
    inst = c.instrument
    open_qty = orders[o, O_QTY] + orders[o, O_HIDDEN]
    if price == old_price and qty <= open_qty:
        # A decrease keeps its place: the reserve shrinks first.
        d = open_qty - qty
        h = min(orders[o, O_HIDDEN], d)
        books[b, B_REFILLS] += _refills(orders[o, O_HIDDEN] - h, orders[o, O_PEAK]) - _refills(orders[o, O_HIDDEN], orders[o, O_PEAK])
        orders[o, O_HIDDEN] -= h
        orders[o, O_QTY] -= d - h
        levels[orders[o, O_LEVEL], L_QTY] -= d - h
        return _emit(ev, n, c.seq, c.ts, inst, E_AMENDED, side, R_OK, c.order_id, c.account, price, qty, qty, 0, 0, 0, 0)
    # A price change or an increase goes to the back: out of the book, in again
    # as a fresh taker at the new price.
    _remove_resting(st, o)
    books[b, B_REFILLS] -= _refills(orders[o, O_HIDDEN], orders[o, O_PEAK])
    ocold[o, C_PRICE] = price
    orders[o, O_QTY] = qty
    orders[o, O_HIDDEN] = 0
    n = _emit(ev, n, c.seq, c.ts, inst, E_AMENDED, side, R_OK, c.order_id, c.account, price, qty, qty, 0, 0, 0, 0)
    n = _execute(st, inst, b, o, c.seq, c.ts, ev, n)
    return _run_stops(st, inst, b, c.seq, c.ts, ev, n)


@njit(cache=True, nogil=True)
def _cmd_mass_cancel(st, cmds, i, b, inst_of_book, ev, n):
    """Cancel every order of the account on one book (b >= 0) or all books (b < 0).

    Orders go in a fixed order, bids best first then asks best first (each
    level head to tail), then untriggered stops in arrival order.
    """
    orders = view2d(st, S_ORDERS)
    ocold = view2d(st, S_OCOLD)
    levels = view2d(st, S_LEVELS)
    lad_lv = view2d(st, S_LAD_LV)
    lad_n = view1d(st, S_LAD_N)
    books = view2d(st, S_BOOKS)
    scratch = view1d(st, S_SCRATCH)
    c = cmds[i]
    b0 = b if b >= 0 else 0
    b1 = b + 1 if b >= 0 else books.shape[0]
    acct = c.account
    for bb in range(b0, b1):
        k = 0
        for side in range(2):
            row = 2 * bb + side
            for pos in range(lad_n[row] - 1, -1, -1):
                o = levels[lad_lv[row, pos], L_HEAD]
                while o != NIL:
                    if orders[o, O_ACCOUNT] == acct:
                        scratch[k] = o
                        k += 1
                    o = orders[o, O_NEXT]
        inst = inst_of_book[bb]
        for j in range(k):
            n = _cancel_resting(st, inst, scratch[j], R_MASS_CANCEL, c.seq, c.ts, ev, n)
        o = books[bb, B_STOP_HEAD]
        while o != NIL:
            nxt = orders[o, O_NEXT]
            if orders[o, O_ACCOUNT] == acct:
                _stop_unlink(st, bb, o)
                n = _emit(ev, n, c.seq, c.ts, inst, E_CANCELLED, ocold[o, C_SIDE], R_MASS_CANCEL, orders[o, O_OID], acct, ocold[o, C_PRICE], orders[o, O_QTY], 0, 0, 0, 0, 0)
                _release(st, o)
            o = nxt
    return n


@njit(cache=True, nogil=True)
def _event_bound(cmds, i, st, b):
    """Most events command ``c`` can produce on book ``b``.

    Every trade uses up at least one lot of a taker, and each trade brings at
    most one iceberg refill and one STP event, so a taker's quantity bounds
    its events; so does the number of resting orders it could meet.  Cancel-
    maker STP and triggered stops add the orders they may sweep.
    """
    books = view2d(st, S_BOOKS)
    c = cmds[i]
    orders = books[b, B_ORDERS]
    stops = books[b, B_STOPS]
    by_book = 8 + 6 * (orders + stops) + 2 * books[b, B_REFILLS]
    kind = c.kind
    if kind == K_CANCEL:
        return 4
    if kind == K_MASS_CANCEL:
        return 8 + orders + stops
    qty = c.qty if c.qty > 0 else 0
    by_qty = 8 + 3 * qty
    if stops > 0:
        by_qty += 3 * books[b, B_STOP_QTY] + 4 * stops + orders
    # Cancel-maker (and, pro-rata, cancel-both) may sweep every own order;
    # an amend re-enters with the order's own mode, unknown here.
    if c.stp == STP_CANCEL_MAKER or c.stp == STP_CANCEL_BOTH or kind == K_AMEND:
        by_qty += orders
    return min(by_qty, by_book)


@njit(cache=True, nogil=True)
def process_commands(st, book_of, inst_of_book, cmds, start, ev, n):
    """Apply ``cmds[start:]`` in order, appending events to ``ev`` from row ``n``.

    Returns ``(status, next_command, n)``.  ``status`` is ``ST_DONE`` when the
    batch is finished, or a ``ST_GROW_*`` code when the array it names must
    grow before ``cmds[next_command]`` can run; nothing of that command has
    happened yet.  ``book_of[instrument]`` maps instrument ids to book rows
    (-1: not in this shard, and ids outside it too: their commands are
    rejected).  Non-matching command kinds are rejected.
    ``st`` is the handle table of the shard's state arrays
    (``BookState.handles()``, in the order of the ``S_*`` constants).
    One of several shards runs only its own commands of a batch, listed by
    ``process_commands_marked``'s ``todo``.
    """
    book_of = borrow(book_of)
    return _process(borrow(st), book_of, borrow(inst_of_book), borrow(cmds), start, borrow(ev), n, book_of[:0], 0,
                    book_of[:0], False)


@njit(cache=True, nogil=True)
def process_commands_marked(st, book_of, inst_of_book, cmds, start, ev, n, marks, chunk, todo, dealt):
    """``process_commands`` that also publishes, as it goes, where each chunk of the batch ends in ``ev``.

    For the parallel merge (``shardex.engine.merge.merge_chunks``): the batch
    is cut into chunks of ``chunk`` commands, and ``marks[1 + c]`` is set to
    the number of events this kernel wrote for the commands before chunk
    ``c`` as soon as it reaches the first of its commands past that point
    (and at the end of the batch for the rest, up to ``marks[1 + nchunks]``,
    the total).  ``marks[0]`` counts the marks set so far, stored with
    release order after them: a thread that reads it with acquire order
    may read every mark below it and every event those marks cover.  A
    call that stops for growth resumes from ``marks[0]``.

    ``dealt``: this is one of several shards, and ``todo`` lists, in
    order, the positions of its commands in the batch
    (``shardex.engine.merge.deal``: its instruments' commands, a mass cancel
    of every instrument on every shard, and on shard 0 those of unlisted
    ids, which ``book_of`` makes it reject); the kernel runs those only, and
    ``start`` is a position in the batch as when it runs every command.
    Otherwise ``todo`` is not read.
    """
    return _process(borrow(st), borrow(book_of), borrow(inst_of_book), borrow(cmds), start, borrow(ev), n,
                    borrow(marks), chunk, borrow(todo), dealt)


@njit(cache=True, nogil=True, inline="always")
def _publish_marks(marks, chunk, k, upto, n):
    """Set the marks of every chunk boundary at or below command ``upto`` to ``n``; the next mark's number."""
    while k * chunk <= upto:
        marks[1 + k] = n
        k += 1
    store_release(marks, 0, k)
    return k


@njit(cache=True, nogil=True, inline="always")
def _at(todo, dealt, j):
    """Position in the batch of the ``j``-th command this kernel runs (see ``_process``)."""
    return todo[j] if dealt else j


@njit(cache=True, nogil=True)
def _process(st, book_of, inst_of_book, cmds, start, ev, n, marks, chunk, todo, dealt):
    """The worker of ``process_commands`` (``chunk`` 0) and ``process_commands_marked``, on borrowed views."""
    orders = view2d(st, S_ORDERS)
    ocold = view2d(st, S_OCOLD)
    lad_key = view2d(st, S_LAD_KEY)
    lad_n = view1d(st, S_LAD_N)
    books = view2d(st, S_BOOKS)
    rules = view2d(st, S_RULES)
    index = view2d(st, S_INDEX)
    meta = view1d(st, S_META)
    ncmd = cmds.shape[0]
    width = lad_key.shape[1]
    mask = index.shape[0] - 1
    nmap = book_of.shape[0]
    # One of several shards (``dealt``): ``todo`` lists this shard's
    # commands' positions in the batch, and the loop below (and its
    # look-ahead) runs over that list as one shard runs over the batch: the
    # look-ahead reaches as many of this shard's commands, and no command is
    # copied.
    lo = start
    hi = ncmd
    if dealt:
        lo = np.searchsorted(todo, start)  # resuming after growth: the first of ours at or past ``start``
        hi = todo.shape[0]
    else:
        todo = book_of[:0]  # unsharded: no list (an empty view, no allocation)
    # The next chunk mark due, and the first command it waits for (none: past the batch).
    k = marks[0] if chunk > 0 else 0
    due = k * chunk if chunk > 0 else ncmd
    for j in range(lo, hi):
        # Software pipeline: warm the index cell of the command PREFETCH_FAR
        # ahead, and the order rows of a cancel or amend PREFETCH_NEAR ahead
        # (its index cell is warm by then), so their misses overlap.
        if j + PREFETCH_FAR < hi:
            # The home cell and the next one (most probes end there): 32
            # bytes of 16-byte cells, on one cache line or two.
            f = cmds[_at(todo, dealt, j + PREFETCH_FAR)]
            home = 2 * index_slot(f.account, f.order_id, mask)
            prefetch_read(index, home)
            prefetch_read(index, min(home + 3, index.size - 1))
        if j + PREFETCH_NEAR < hi:
            f = cmds[_at(todo, dealt, j + PREFETCH_NEAR)]
            if f.kind == K_CANCEL or f.kind == K_AMEND:
                o = index_guess(index, f.account, f.order_id)
                if o >= 0:
                    prefetch_row(orders, o)
                    prefetch_row(ocold, o)
        at = _at(todo, dealt, j)  # also where a restart resumes
        if at >= due:  # every command of ours before ``at`` is done: the marks up to it are final
            k = _publish_marks(marks, chunk, k, at, n)
            due = k * chunk
        c = cmds[at]
        inst = c.instrument
        b = -1
        if 0 <= inst < nmap:
            b = book_of[inst]  # NIL (-1) where this shard holds no such book
        kind = c.kind
        # Room for the worst case of this command, checked before it starts.
        if meta[M_FREE_ORDER] == NIL and meta[M_FRESH_ORDER] >= orders.shape[0]:
            return ST_GROW_POOL, at, n
        if 2 * (meta[M_INDEX_USED] + meta[M_INDEX_TOMB] + 1) > index.shape[0]:
            return ST_GROW_INDEX, at, n
        if b >= 0:
            stops = books[b, B_STOPS]
            if max(lad_n[2 * b], lad_n[2 * b + 1]) + 2 + stops >= width:
                return ST_GROW_LADDER, at, n
            bound = _event_bound(cmds, at, st, b)
        else:
            bound = 8 + 2 * meta[M_ORDERS_USED]
        if n + bound > ev.shape[0]:
            return ST_GROW_EVENTS, at, n
        if kind == K_MASS_CANCEL and (inst == -1 or b >= 0):
            n = _cmd_mass_cancel(st, cmds, at, b, inst_of_book, ev, n)
        elif kind != K_NEW and kind != K_CANCEL and kind != K_AMEND and kind != K_MASS_CANCEL:
            n = _reject(cmds, at, R_INVALID_COMMAND, ev, n)
        elif b < 0 or rules[b, R_LISTED] == 0:
            n = _reject(cmds, at, R_UNKNOWN_INSTRUMENT, ev, n)
        elif kind == K_NEW:
            n = _cmd_new(st, cmds, at, b, ev, n)
        elif kind == K_CANCEL:
            n = _cmd_cancel(st, cmds, at, b, ev, n)
        else:
            n = _cmd_amend(st, cmds, at, b, ev, n)
    if chunk > 0:  # the batch is done: every mark left, the last one the total
        _publish_marks(marks, chunk, k, ncmd + chunk - 1, n)
    return ST_DONE, ncmd, n
