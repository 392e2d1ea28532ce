"""Array layout of a matching shard's state, and the Python object that owns it.

All state of a shard's books lives in a handful of int64 arrays so that the
numba kernels can take them as arguments and run with the GIL released:

``orders`` (cap x 8), one 64-byte row per order, the fields the matching loop
touches together::

    O_QTY      open displayed quantity (lots)
    O_HIDDEN   iceberg reserve not yet displayed (lots)
    O_PEAK     iceberg display size; 0 for a plain order
    O_ACCOUNT  owner
    O_OID      client order id
    O_NEXT     next order at the level (or in the stop list; or the free list)
    O_PREV     previous order at the level (or in the stop list)
    O_LEVEL    level row; -1 for an untriggered stop order

``ocold`` (cap x 8), the fields read only on entry, amend, cancel and views::

    C_PRICE, C_BOOK, C_SIDE, C_STOP, C_TYPE, C_TIF, C_STP, C_FLAGS

``levels`` (cap x 6): ``L_PRICE, L_QTY, L_HEAD, L_TAIL, L_COUNT, L_NEXT``.
``L_COUNT`` and ``L_QTY`` count live orders only.  One column serves two
purposes: a free row links the free list through ``L_NEXT``, and a level in
a ladder counts in ``L_DEAD`` (the same column) the cancelled orders still
linked in its queue (see "Lazy cancels" below).  A level holds at least one
live order, so the level pool never needs more rows than the order pool.

Lazy cancels: a user's cancel does not unlink the order from its queue,
which would write both queue neighbours (two random cache lines).  It marks
the row dead (``O_ACCOUNT = DEAD``, quantities 0), takes it out of the
index, the level's counts and the book's, and leaves it linked.  The match
walk unlinks and frees dead rows when it reaches them; a level whose last
live order leaves frees its dead ones with it; a cancel that finds its
level's dead rows outnumbering the live orders by ``COMPACT_SLACK`` or more
frees them first (so a level never holds more than that many dead rows
beyond its live orders at the moment of a cancel).  Every
walk of a queue skips dead rows, so nothing a user can observe (events, L2,
L3, the state hash) depends on them, and snapshots carry none
(``copy_arrays`` purges them).

``lad_key`` / ``lad_lv`` (2*books x width): for each (book, side) the sorted
keys and level rows of its occupied price levels.  The key is the price for
bids and minus the price for asks, ascending, so the best level is always the
last one: taking or emptying it is O(1), and new levels, which arrive near the
top, shift only the few entries above them.  Any price on the grid works: no
band around a start price is preallocated.

``books`` (books x 10): per-book counters (``B_*``): last trade price, trade
count, the stop list, live order and stop counts, traded volume, and the
iceberg refills and stop quantity still pending (used to size the event buffer); ``rules`` (books x 6): the
instrument rows of ``shardex.instruments.INSTRUMENT_DTYPE``.

``index`` (hcap x 2): an open-addressing hash map (account, order id) -> order
row, with linear probing and backward-shift deletion; 16-byte cells (order
id; hash bits and row), see ``shardex.book.index``.

``meta`` (16): pool free-list heads and occupancy counters (``M_*``);
``M_ORDERS_USED`` counts live orders, ``M_DEAD_ORDERS`` dead rows still linked.
Rows are handed out from the free list (rows released earlier, most recent
first) and, when it is empty, from the never-used tail of the pool
(``M_FRESH_*`` is its first row).  Growing a pool therefore copies only the
rows in use so far and never touches the new ones, which the operating
system maps lazily.
"""

from __future__ import annotations

import numpy as np

from shardex.lowlevel import aligned, pretouch
from shardex.lowlevel import handles as _handles

# orders: hot row
O_QTY, O_HIDDEN, O_PEAK, O_ACCOUNT, O_OID, O_NEXT, O_PREV, O_LEVEL = range(8)
# orders: cold row
C_PRICE, C_BOOK, C_SIDE, C_STOP, C_TYPE, C_TIF, C_STP, C_FLAGS = range(8)
# levels
L_PRICE, L_QTY, L_HEAD, L_TAIL, L_COUNT, L_NEXT = range(6)
L_DEAD = L_NEXT  # in a ladder: dead orders still in the queue; free: the free-list link
# books
B_LAST, B_TRADES, B_STOP_HEAD, B_STOP_TAIL, B_STOPS, B_ORDERS, B_HAS_LAST, B_VOLUME, B_REFILLS, B_STOP_QTY = range(10)
BOOK_COLS = 10
# rules (same order as INSTRUMENT_DTYPE)
R_MIN_QTY, R_MAX_QTY, R_MIN_PRICE, R_MAX_PRICE, R_MATCHING, R_LISTED = range(6)
# meta
M_FREE_ORDER, M_FREE_LEVEL, M_ORDERS_USED, M_INDEX_USED, M_INDEX_TOMB, M_FRESH_ORDER, M_FRESH_LEVEL, M_DEAD_ORDERS = range(8)

# index cells (see shardex.book.index): order id, and 31 hash bits << 32 | row
H_OID, H_KEY = range(2)
H_EMPTY = -1

NIL = -1

#: ``O_ACCOUNT`` of a cancelled order still linked in its queue (accounts are >= 0).
DEAD = -1
#: A cancel compacts its level first (frees its dead rows) when they outnumber its live orders by this many.
COMPACT_SLACK = 16

#: Pool growth factor.  New rows are never touched until handed out, so the
#: operating system maps them lazily and a large factor costs address space,
#: not memory; it saves copying the rows in use at every step.
POOL_GROWTH = 4

# Kernel status codes returned with the index of the next command to process.
ST_DONE = 0
ST_GROW_POOL = 1
ST_GROW_LADDER = 2
ST_GROW_INDEX = 3
ST_GROW_EVENTS = 4


class BookState:
    """The arrays of one shard's books, grown on demand by the Python layer.

    Growth happens between commands, never inside a kernel: the kernel stops
    before a command that might not fit and reports which array to grow.
    Doubling keeps the amortized cost O(1) per order.
    """

    #: The state arrays, in the order of the kernels' handle table.
    ARRAYS = ("orders", "ocold", "levels", "lad_key", "lad_lv", "lad_n", "books", "rules", "index", "meta", "scratch")
    __slots__ = ARRAYS + ("_table",)

    def __setattr__(self, name: str, value) -> None:
        # Replacing an array (growth, a new book) makes the cached handle table stale.
        object.__setattr__(self, name, value)
        if name != "_table":
            object.__setattr__(self, "_table", None)

    def __init__(self, rules: np.ndarray, order_capacity: int = 1024, ladder_width: int = 64) -> None:
        nbooks = len(rules)
        self.rules = np.ascontiguousarray(rules, dtype=np.int64).reshape(nbooks, 6)
        self.books = np.zeros((nbooks, BOOK_COLS), dtype=np.int64)
        self.books[:, B_STOP_HEAD] = NIL
        self.books[:, B_STOP_TAIL] = NIL
        self.lad_key = np.zeros((2 * nbooks, ladder_width), dtype=np.int64)
        self.lad_lv = np.zeros((2 * nbooks, ladder_width), dtype=np.int64)
        self.lad_n = np.zeros(2 * nbooks, dtype=np.int64)
        self.meta = np.zeros(16, dtype=np.int64)
        self.orders = np.zeros((0, 8), dtype=np.int64)
        self.ocold = np.zeros((0, 8), dtype=np.int64)
        self.levels = np.zeros((0, 6), dtype=np.int64)
        self.scratch = np.zeros(0, dtype=np.int64)
        self.meta[M_FREE_ORDER] = NIL
        self.meta[M_FREE_LEVEL] = NIL
        self.index = np.full((16, 2), H_EMPTY, dtype=np.int64)
        self.grow_pool(order_capacity)
        self.grow_index(4 * order_capacity)

    @property
    def capacity(self) -> int:
        """Rows in the order pool (live orders it holds without growing)."""
        return len(self.orders)

    def grow_pool(self, capacity: int | None = None) -> None:
        """Grow the order and level pools (by ``POOL_GROWTH`` by default); O(rows in use)."""
        old = len(self.orders)
        new = max(capacity or 0, POOL_GROWTH * old, 16)
        if new <= old:
            return
        self.orders = _extend(self.orders, new, int(self.meta[M_FRESH_ORDER]))
        self.ocold = _extend(self.ocold, new, int(self.meta[M_FRESH_ORDER]))
        self.levels = _extend(self.levels, new, int(self.meta[M_FRESH_LEVEL]))
        self.scratch = aligned(new, np.int64, 0)

    def grow_ladder(self) -> None:
        """Double the width of every (book, side) ladder."""
        width = self.lad_key.shape[1]
        key = np.zeros((self.lad_key.shape[0], 2 * width), dtype=np.int64)
        lv = np.zeros_like(key)
        key[:, :width] = self.lad_key
        lv[:, :width] = self.lad_lv
        self.lad_key, self.lad_lv = key, lv

    def grow_index(self, capacity: int | None = None) -> None:
        """Rebuild the order index with at least twice the live entries' room (drops tombstones)."""
        from shardex.book.index import rebuild_index

        live = int(self.meta[M_INDEX_USED])
        cap = 16
        target = max(capacity or 0, 4 * (live + 1))
        while cap < target:
            cap *= 2
        self.index = rebuild_index(self.index, cap)
        self.meta[M_INDEX_TOMB] = 0

    def ensure(self, status: int) -> None:
        """Grow whatever the kernel's status code asked for."""
        if status == ST_GROW_POOL:
            self.grow_pool()
        elif status == ST_GROW_LADDER:
            self.grow_ladder()
        elif status == ST_GROW_INDEX:
            self.grow_index()
        else:  # pragma: no cover - a kernel returning an unknown code is a bug
            raise RuntimeError(f"unknown kernel status {status}")

    def pretouch(self) -> None:
        """Map every page of every array now (``lowlevel.pretouch``): no order waits for the OS to map a row."""
        for name in self.ARRAYS:
            pretouch(getattr(self, name))

    def arrays(self) -> tuple:
        """The arrays in the order the kernels take them."""
        return (self.orders, self.ocold, self.levels, self.lad_key, self.lad_lv, self.lad_n,
                self.books, self.rules, self.index, self.meta, self.scratch)

    def handles(self) -> np.ndarray:
        """The handle table the kernels take in place of the state arrays (see ``shardex.lowlevel.handles``)."""
        table = self._table
        if table is None:
            table = self._table = _handles(self.arrays())
        return table

    def copy_arrays(self) -> dict[str, np.ndarray]:
        """A deep copy of every array by name, dead rows purged (for snapshots; ``from_arrays`` realigns them).

        The copy holds the same books (same L3, same state hash) without the
        lazily cancelled rows, which only the live state's own walks can skip.
        """
        from shardex.book.matching import purge_dead

        out = {name: getattr(self, name).copy() for name in self.ARRAYS}
        if out["meta"][M_DEAD_ORDERS]:
            purge_dead(_handles(tuple(out[name] for name in self.ARRAYS)))
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "BookState":
        """Rebuild a state from ``copy_arrays()`` output."""
        state = cls.__new__(cls)
        for name in cls.ARRAYS:
            src = np.asarray(arrays[name])
            dst = aligned(src.shape, src.dtype)
            dst[...] = src
            setattr(state, name, dst)
        return state


def _extend(a: np.ndarray, rows: int, used: int) -> np.ndarray:
    # Cache-line aligned: a 64-byte order row then sits in one line, not two.
    out = aligned((rows,) + a.shape[1:], a.dtype, 0)
    out[:used] = a[:used]  # rows past ``used`` were never written
    return out
