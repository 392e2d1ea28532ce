"""The order index: an open-addressing hash map (account, order id) -> order rows.

Linear probing over an (hcap x 3) int64 array whose capacity is a power of
two, with backward-shift deletion (no tombstones); the Python layer doubles
the table when live entries pass half of it, so probes stay short.
Lookup, insert and delete are O(1) expected.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from shardex.book.layout import H_ACCOUNT, H_EMPTY, H_OID, H_ROW, M_INDEX_USED
from shardex.lowlevel import aligned


@njit(cache=True, nogil=True, inline="always")
def index_slot(account, oid, mask):
    """The home cell of key (account, oid) in a table of ``mask + 1`` cells."""
    # A full 64-bit mix: clients number their orders 1, 2, 3... each, and
    # any hash that kept those runs together would pile them into clusters.
    h = np.uint64(account) * np.uint64(0x9E3779B97F4A7C15) ^ np.uint64(oid)
    h ^= h >> np.uint64(31)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(29)
    return np.int64(h & np.uint64(mask))


@njit(cache=True, nogil=True, inline="always")
def _probe(index, ocold, book_col, account, oid, b):
    """Row of key (account, oid), on book ``b`` when ``b >= 0`` (``ocold[row, book_col] == b``), or -1."""
    mask = index.shape[0] - 1
    i = index_slot(account, oid, mask)
    while True:
        row = index[i, H_ROW]
        if row == H_EMPTY:
            return -1
        if index[i, H_OID] == oid and index[i, H_ACCOUNT] == account and (b < 0 or ocold[row, book_col] == b):
            return row
        i = (i + 1) & mask


@njit(cache=True, nogil=True)
def index_find(index, account, oid):
    """Row of the order (account, oid), or -1 when there is none (the first match, whatever its book)."""
    return _probe(index, index, 0, account, oid, -1)


@njit(cache=True, nogil=True, inline="always")
def index_find_book(index, ocold, book_col, account, oid, b):
    """Row of the order (account, oid) on book ``b`` (``ocold[row, book_col] == b``), or -1.

    Client order ids are unique per account and instrument, so one account
    may use the same id on two books; the probe skips the other books' entry.
    """
    return _probe(index, ocold, book_col, account, oid, b)


@njit(cache=True, nogil=True, inline="always")
def index_insert(index, meta, account, oid, row):
    """Insert a key known to be absent; the caller keeps the load below one half."""
    mask = index.shape[0] - 1
    i = index_slot(account, oid, mask)
    while index[i, H_ROW] != H_EMPTY:
        i = (i + 1) & mask
    index[i, H_ACCOUNT] = account
    index[i, H_OID] = oid
    index[i, H_ROW] = row
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
        if index[i, H_ROW] == H_EMPTY:
            return
        if index[i, H_ROW] == row:
            break
        i = (i + 1) & mask
    meta[M_INDEX_USED] -= 1
    j = i
    while True:
        j = (j + 1) & mask
        if index[j, H_ROW] == H_EMPTY:
            break
        home = index_slot(index[j, H_ACCOUNT], index[j, H_OID], mask)
        # The entry at j may fill the hole at i only if its home is not
        # cyclically inside (i, j].
        if i <= j:
            stays = i < home <= j
        else:
            stays = home > i or home <= j
        if stays:
            continue
        index[i, H_ACCOUNT] = index[j, H_ACCOUNT]
        index[i, H_OID] = index[j, H_OID]
        index[i, H_ROW] = index[j, H_ROW]
        i = j
    index[i, H_ROW] = H_EMPTY


def rebuild_index(old: np.ndarray, capacity: int) -> np.ndarray:
    """A fresh table of ``capacity`` cells (a power of two) holding old's live entries.

    The table is allocated here, by numpy, rather than inside the kernel:
    numpy asks the kernel for transparent huge pages on large arrays and
    numba's allocator does not.  Every lookup is a random access into this
    table, and with 4 KiB pages each one also missed the TLB: 8% of the
    matching benchmark's time went to those page walks.  It starts on a
    cache line, so a cell's prefetch covers it (``shardex.lowlevel.aligned``).
    """
    new = aligned((capacity, 3), np.int64, H_EMPTY)
    _rehash(old, new)
    return new


@njit(cache=True, nogil=True)
def _rehash(old, new):
    mask = new.shape[0] - 1
    for j in range(old.shape[0]):
        row = old[j, H_ROW]
        if row >= 0:
            i = index_slot(old[j, H_ACCOUNT], old[j, H_OID], mask)
            while new[i, H_ROW] != H_EMPTY:
                i = (i + 1) & mask
            new[i, H_ACCOUNT] = old[j, H_ACCOUNT]
            new[i, H_OID] = old[j, H_OID]
            new[i, H_ROW] = row
