"""The order index: an open-addressing hash map (account, order id) -> order row.

Linear probing over an (hcap x 3) int64 array whose capacity is a power of
two; deletions leave tombstones, and the Python layer rebuilds the table when
live entries plus tombstones pass half of it, so probes stay short.
Lookup, insert and delete are O(1) expected.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from shardex.book.layout import H_ACCOUNT, H_EMPTY, H_OID, H_ROW, H_TOMB, M_INDEX_TOMB, M_INDEX_USED


@njit(cache=True, nogil=True, inline="always")
def _slot(account, oid, mask):
    # Order ids of one account are usually sequential: keeping them in
    # neighbouring cells turns most lookups into cache hits.  The account is
    # scrambled so that different accounts start their runs far apart.
    h = np.uint64(oid) + np.uint64(account) * np.uint64(0x9E3779B97F4A7C15)
    return np.int64(h & np.uint64(mask))


@njit(cache=True, nogil=True)
def index_find(index, account, oid):
    """Row of the order (account, oid), or -1 when there is none."""
    mask = index.shape[0] - 1
    i = _slot(account, oid, mask)
    while True:
        row = index[i, H_ROW]
        if row == H_EMPTY:
            return -1
        if row != H_TOMB and index[i, H_OID] == oid and index[i, H_ACCOUNT] == account:
            return row
        i = (i + 1) & mask


@njit(cache=True, nogil=True)
def index_insert(index, meta, account, oid, row):
    """Insert a key known to be absent; the caller keeps the load below one half."""
    mask = index.shape[0] - 1
    i = _slot(account, oid, mask)
    while index[i, H_ROW] >= 0:
        i = (i + 1) & mask
    if index[i, H_ROW] == H_TOMB:
        meta[M_INDEX_TOMB] -= 1
    index[i, H_ACCOUNT] = account
    index[i, H_OID] = oid
    index[i, H_ROW] = row
    meta[M_INDEX_USED] += 1


@njit(cache=True, nogil=True)
def index_delete(index, meta, account, oid):
    """Remove a key known to be present."""
    mask = index.shape[0] - 1
    i = _slot(account, oid, mask)
    while True:
        row = index[i, H_ROW]
        if row >= 0 and index[i, H_OID] == oid and index[i, H_ACCOUNT] == account:
            index[i, H_ROW] = H_TOMB
            meta[M_INDEX_USED] -= 1
            meta[M_INDEX_TOMB] += 1
            return
        if row == H_EMPTY:
            return
        i = (i + 1) & mask


@njit(cache=True, nogil=True)
def rebuild_index(old, capacity):
    """A fresh table of ``capacity`` cells (a power of two) holding old's live entries."""
    new = np.full((capacity, 3), H_EMPTY, dtype=np.int64)
    mask = capacity - 1
    for j in range(old.shape[0]):
        row = old[j, H_ROW]
        if row >= 0:
            i = _slot(old[j, H_ACCOUNT], old[j, H_OID], mask)
            while new[i, H_ROW] != H_EMPTY:
                i = (i + 1) & mask
            new[i, H_ACCOUNT] = old[j, H_ACCOUNT]
            new[i, H_OID] = old[j, H_OID]
            new[i, H_ROW] = row
    return new
