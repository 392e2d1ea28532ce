"""The risk layer's view of open orders: a hash table of reservations.

Pre-trade risk reserves an order's lots when it accepts it; the matching
events then move each order's reservation to its ``leaves`` (open quantity
after the event) and drop it at zero.  Only lots are kept: margin prices open
orders at the mark (``shardex.risk.margin``), so the order's price is not
needed after the entry check -- except for spot orders and option buys,
whose hold is priced at their limit (``price``, ticks; 0 for other
derivative orders): see ``shardex.risk.spot``.

Table layout: ``tab`` int64 ``[capacity, 5]`` rows ``(account, instrument,
order_id, side, price)``, ``leaves`` int64 ``[capacity]``, ``used`` int8
``[capacity]`` (0 empty, 1 live, 2 deleted).  Open addressing with linear
probing; ``capacity`` is a power of two kept at least twice the live plus
deleted rows (``OrderTable.reserve`` grows and rehashes between batches,
never inside a kernel).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from shardex.risk.spot import MODE_OPTION, MODE_SPOT, S_MODE, SIDE_BUY, hold_amount, hold_currency

__all__ = ["OrderTable", "table_find", "table_insert", "table_set_leaves"]

EMPTY = 0
LIVE = 1
DELETED = 2


@njit(cache=True, nogil=True, inline="always")
def _hash(account, instrument, order_id, mask):
    # Fibonacci hashing of a mix of the three keys: order ids are dense and
    # sequential, so the multiply spreads neighbours across the table.
    h = (order_id * 0x7E3779B97F4A7C15) ^ (account * 0x42B2AE3D27D4EB4F) ^ (instrument * 0x165667B19E3779F9)
    h ^= h >> 29
    return h & mask


@njit(cache=True, nogil=True)
def table_find(tab, used, account, instrument, order_id):
    """Slot of a live key, or -1.  Complexity: O(1) expected."""
    mask = used.size - 1
    s = _hash(account, instrument, order_id, mask)
    while used[s] != EMPTY:
        if used[s] == LIVE and tab[s, 2] == order_id and tab[s, 0] == account and tab[s, 1] == instrument:
            return s
        s = (s + 1) & mask
    return -1


@njit(cache=True, nogil=True)
def table_insert(tab, used, leaves, account, instrument, order_id, side, lots, price):
    """Insert a key the caller knows is absent; return its slot.  The table must have room.

    ``price``: the limit a spot order's hold is priced at (ticks); 0 otherwise.
    """
    mask = used.size - 1
    s = _hash(account, instrument, order_id, mask)
    while used[s] == LIVE:
        s = (s + 1) & mask
    used[s] = LIVE
    tab[s, 0] = account
    tab[s, 1] = instrument
    tab[s, 2] = order_id
    tab[s, 3] = side
    tab[s, 4] = price
    leaves[s] = lots
    return s


@njit(cache=True, nogil=True)
def table_set_leaves(tab, used, leaves, open_lots, spot, holds, account, instrument, order_id, new_leaves):
    """Move an order's reservation to ``new_leaves`` lots (delete at 0); return 1 if known.

    ``open_lots[account, instrument, side]`` follows the change for a
    derivative; for a spot order and an option buy ``holds[account,
    currency]`` moves to the hold of ``new_leaves`` at the order's limit
    (an option buy moves both).
    """
    s = table_find(tab, used, account, instrument, order_id)
    if s < 0:
        return 0
    side = tab[s, 3]
    mode = spot[instrument, S_MODE]
    if mode == MODE_SPOT or (mode == MODE_OPTION and side == SIDE_BUY):
        row = spot[instrument]
        p = tab[s, 4]
        holds[account, hold_currency(row, side)] += (hold_amount(row, side, p, max(new_leaves, 0))
                                                     - hold_amount(row, side, p, leaves[s]))
    if mode != MODE_SPOT:
        open_lots[account, instrument, side] += new_leaves - leaves[s]
    leaves[s] = new_leaves
    if new_leaves <= 0:
        used[s] = DELETED
    return 1


class OrderTable:
    """Open-order reservations keyed by (account, instrument, order id).

    Attributes are numpy arrays the kernels take directly; ``live`` and
    ``deleted`` are counts kept by ``reserve``'s callers via ``recount``.
    """

    def __init__(self, capacity: int = 1 << 12) -> None:
        cap = 1 << max(4, int(capacity - 1).bit_length())
        self.tab = np.zeros((cap, 5), np.int64)
        self.leaves = np.zeros(cap, np.int64)
        self.used = np.zeros(cap, np.int8)
        self.filled = 0  # live + deleted slots (probe chains)

    @property
    def capacity(self) -> int:
        """Slots in the table."""
        return self.used.size

    def recount(self) -> None:
        """Refresh ``filled`` after kernels inserted or deleted.  O(capacity)."""
        self.filled = int(np.count_nonzero(self.used))

    def reserve(self, incoming: int) -> None:
        """Make room for ``incoming`` more inserts, rehashing (and dropping deleted slots) if needed.

        Complexity: O(capacity) when it rehashes, O(1) otherwise.
        """
        if 2 * (self.filled + incoming) <= self.capacity:
            return
        live = np.flatnonzero(self.used == LIVE)
        cap = self.capacity
        while 4 * (live.size + incoming) > cap:  # load <= 1/4 after a rehash: rehashes stay rare
            cap *= 2
        tab, leaves = self.tab[live], self.leaves[live]
        self.tab = np.zeros((cap, 5), np.int64)
        self.leaves = np.zeros(cap, np.int64)
        self.used = np.zeros(cap, np.int8)
        _rehash(self.tab, self.used, self.leaves, tab, leaves)
        self.filled = live.size

    def live_orders(self) -> np.ndarray:
        """Live rows as int64 ``[n, 6]``: account, instrument, order id, side, price, leaves (sorted)."""
        live = np.flatnonzero(self.used == LIVE)
        out = np.concatenate([self.tab[live], self.leaves[live, None]], axis=1)
        return out[np.lexsort((out[:, 2], out[:, 1], out[:, 0]))]


@njit(cache=True, nogil=True)
def _rehash(tab, used, leaves, old_tab, old_leaves):
    for r in range(old_tab.shape[0]):
        table_insert(tab, used, leaves, old_tab[r, 0], old_tab[r, 1], old_tab[r, 2], old_tab[r, 3], old_leaves[r],
                     old_tab[r, 4])
