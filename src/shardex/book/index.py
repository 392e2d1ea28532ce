"""The order index: an open-addressing hash map (account, order id) -> order rows.

Linear probing over an ``(hcap x 2)`` int64 table whose capacity is a power
of two, with backward-shift deletion (no tombstones); the Python layer
doubles the table when live entries pass half of it, so probes stay short.
Lookup, insert and delete are O(1) expected.

A cell is 16 bytes, four to a cache line and never across two:

``H_OID``  the client order id;
``H_KEY``  ``hash31 << 32 | row``: 31 bits of the key's hash (its home cell
           is ``hash31 & mask``, so a cell moves and the table rehashes
           without reading any order) and the order's pool row; ``H_EMPTY``
           (-1) in a free cell.

The account is not stored: a cell whose order id and hash bits match is
confirmed against ``orders[row, O_ACCOUNT]``, a row the caller reads next
anyway.  24-byte cells with the account (the layout before 2026-11-23) made
the table half as large again, and a quarter of them straddled two lines.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from shardex.book.layout import H_EMPTY, H_KEY, H_OID, M_INDEX_USED, O_ACCOUNT
from shardex.lowlevel import aligned

#: Bits of the key hash kept in a cell; the table holds at most 2**31 cells.
HASH_BITS = 31
#: The row bits of a cell's ``H_KEY`` (its hash bits are ``key >> 32``).
ROW_MASK = 0xFFFFFFFF


@njit(cache=True, nogil=True, inline="always")
def index_hash(account, oid):
    """The key's 31-bit hash: a full 64-bit mix, then its low bits."""
    # Clients number their orders 1, 2, 3... each, and any hash that kept
    # those runs together would pile them into clusters.
    h = np.uint64(account) * np.uint64(0x9E3779B97F4A7C15) ^ np.uint64(oid)
    h ^= h >> np.uint64(31)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(29)
    return np.int64(h & np.uint64(0x7FFFFFFF))


@njit(cache=True, nogil=True, inline="always")
def index_slot(account, oid, mask):
    """The home cell of key (account, oid) in a table of ``mask + 1`` cells."""
    return index_hash(account, oid) & mask


@njit(cache=True, nogil=True, inline="always")
def _probe(index, orders, ocold, book_col, account, oid, b, exact):
    """Row of key (account, oid), on book ``b`` when ``b >= 0`` (``ocold[row, book_col] == b``), or -1.

    ``exact=False`` skips the account and book checks, which read the order
    row: a guess for prefetching, right unless two keys share an order id
    and 31 hash bits.
    """
    mask = index.shape[0] - 1
    h = index_hash(account, oid)
    i = h & mask
    while True:
        key = index[i, H_KEY]
        if key == H_EMPTY:
            return -1
        if index[i, H_OID] == oid and key >> 32 == h:
            row = key & ROW_MASK
            if not exact or (orders[row, O_ACCOUNT] == account and (b < 0 or ocold[row, book_col] == b)):
                return row
        i = (i + 1) & mask


@njit(cache=True, nogil=True, inline="always")
def index_guess(index, account, oid):
    """Row of the order (account, oid) without reading any order row, for prefetching; may be another account's."""
    return _probe(index, index, index, 0, account, oid, -1, False)


@njit(cache=True, nogil=True)
def index_find(index, orders, account, oid):
    """Row of the order (account, oid), or -1 when there is none (the first match, whatever its book)."""
    return _probe(index, orders, orders, 0, account, oid, -1, True)


@njit(cache=True, nogil=True, inline="always")
def index_find_book(index, orders, ocold, book_col, account, oid, b):
    """Row of the order (account, oid) on book ``b`` (``ocold[row, book_col] == b``), or -1.

    Client order ids are unique per account and instrument, so one account
    may use the same id on two books; the probe skips the other books' entry.
    """
    return _probe(index, orders, ocold, book_col, account, oid, b, True)


@njit(cache=True, nogil=True, inline="always")
def index_insert(index, meta, account, oid, row):
    """Insert a key known to be absent; the caller keeps the load below one half."""
    mask = index.shape[0] - 1
    h = index_hash(account, oid)
    i = h & mask
    while index[i, H_KEY] != H_EMPTY:
        i = (i + 1) & mask
    index[i, H_OID] = oid
    index[i, H_KEY] = h << 32 | row
    meta[M_INDEX_USED] += 1


@njit(cache=True, nogil=True, inline="always")
def index_delete(index, meta, account, oid, row):
    """Remove the entry of order ``row`` (key (account, oid)), shifting its cluster back (no tombstones).

    Linear probing with backward-shift deletion keeps every probe sequence as
    short as if the deleted keys had never been inserted.
    """
    mask = index.shape[0] - 1
    i = index_slot(account, oid, mask)
    while True:
        key = index[i, H_KEY]
        if key == H_EMPTY:
            return
        if key & ROW_MASK == row:
            break
        i = (i + 1) & mask
    meta[M_INDEX_USED] -= 1
    j = i
    while True:
        j = (j + 1) & mask
        key = index[j, H_KEY]
        if key == H_EMPTY:
            break
        home = (key >> 32) & mask
        # The entry at j may fill the hole at i only if its home is not
        # cyclically inside (i, j].
        if i <= j:
            stays = i < home <= j
        else:
            stays = home > i or home <= j
        if stays:
            continue
        index[i, H_OID] = index[j, H_OID]
        index[i, H_KEY] = key
        i = j
    index[i, H_KEY] = H_EMPTY


def empty_index(capacity: int) -> np.ndarray:
    """A table of ``capacity`` free cells (a power of two, at most ``2**HASH_BITS``), on a cache line."""
    if capacity & (capacity - 1) or not 16 <= capacity <= 1 << HASH_BITS:
        raise ValueError(f"index capacity {capacity} is not a power of two in [16, 2**{HASH_BITS}]")
    return aligned((capacity, 2), np.int64, H_EMPTY)


def rebuild_index(old: np.ndarray, capacity: int) -> np.ndarray:
    """A fresh table of ``capacity`` cells holding old's live entries (no order row is read).

    The table is allocated here, by numpy, rather than inside the kernel:
    numpy asks the kernel for transparent huge pages on large arrays and
    numba's allocator does not.  Every lookup is a random access into this
    table, and with 4 KiB pages each one also missed the TLB: 8% of the
    matching benchmark's time went to those page walks.  It starts on a
    cache line, so a cell's prefetch covers it (``shardex.lowlevel.aligned``).
    """
    new = empty_index(capacity)
    _rehash(old, new)
    return new


def index_of(accounts: np.ndarray, oids: np.ndarray, rows: np.ndarray, capacity: int) -> np.ndarray:
    """A table of ``capacity`` cells holding the keys ``(accounts[k], oids[k]) -> rows[k]`` (distinct keys)."""
    new = empty_index(capacity)
    _fill(np.ascontiguousarray(accounts, np.int64), np.ascontiguousarray(oids, np.int64),
          np.ascontiguousarray(rows, np.int64), new)
    return new


@njit(cache=True, nogil=True)
def _rehash(old, new):
    mask = new.shape[0] - 1
    for j in range(old.shape[0]):
        key = old[j, H_KEY]
        if key != H_EMPTY:
            i = (key >> 32) & mask
            while new[i, H_KEY] != H_EMPTY:
                i = (i + 1) & mask
            new[i, H_OID] = old[j, H_OID]
            new[i, H_KEY] = key


@njit(cache=True, nogil=True)
def _fill(accounts, oids, rows, new):
    meta = np.zeros(16, np.int64)
    for k in range(rows.shape[0]):
        index_insert(new, meta, accounts[k], oids[k], rows[k])


def index_from_layout_1(old: np.ndarray) -> np.ndarray:
    """The table of a snapshot of engine format 1, whose 24-byte cells held (account, order id, row; -1 free)."""
    live = old[:, 2] >= 0
    return index_of(old[live, 0], old[live, 1], old[live, 2], len(old))
