"""Price ladders: per (book, side) sorted arrays of occupied levels, best last.

Keys are ``price`` for bids and ``-price`` for asks so one ascending order
serves both sides.  Finding a level is a binary search, O(log n); inserting
or removing one shifts only the entries between it and the top of the book,
which is where nearly all activity happens.
"""

from __future__ import annotations

from numba import njit

from shardex.book.layout import L_COUNT, L_DEAD, L_HEAD, L_NEXT, L_PRICE, L_QTY, L_TAIL, M_FREE_LEVEL, M_FRESH_LEVEL, NIL


@njit(cache=True, nogil=True, inline="always")
def side_key(side, price):
    """Ladder key of a price on a side (0 buy, 1 sell)."""
    return price if side == 0 else -price


#: Below this many entries a level deeper than the top few is found by
#: counting the smaller keys (branch-free, vectorized) instead of bisecting.
COUNT_BELOW = 64


@njit(cache=True, nogil=True, inline="always")
def ladder_search(lad_key, row, n, key):
    """First position in ``lad_key[row, :n]`` whose key is >= ``key``.

    Near the top of a book nearly every tick holds a level, so it first
    tries the position the key would have if every tick between it and the
    best key were occupied: one load, right for most lookups.  Otherwise it
    walks down from the top (predictable branches, one cache line).  Deeper, the keys
    below are counted when they are few and bisected without branches when
    they are many: a bisection's branches go either way at random, and their
    mispredictions made this search a third of the cost of adding an order
    to a book 50 levels deep.
    """
    if n > 0:
        g = n - 1 - (lad_key[row, n - 1] - key)
        if 0 <= g < n and lad_key[row, g] == key:
            return g
    j = n
    stop = max(n - 8, 0)
    while j > stop and lad_key[row, j - 1] >= key:
        j -= 1
    if j > stop or j == 0:
        return j
    if j <= COUNT_BELOW:
        below = 0
        for p in range(j):
            below += lad_key[row, p] < key
        return below
    base = 0
    size = j
    while size > 1:
        half = size >> 1
        base = base + half if lad_key[row, base + half - 1] < key else base
        size -= half
    return base + (lad_key[row, base] < key)


@njit(cache=True, nogil=True, inline="always")
def ladder_get_or_add(lad_key, lad_lv, lad_n, levels, meta, row, key, price):
    """Level row at ``key``, creating an empty level if there is none.

    The caller guarantees a free level row and room in the ladder.
    """
    n = lad_n[row]
    pos = ladder_search(lad_key, row, n, key)
    if pos < n and lad_key[row, pos] == key:
        return lad_lv[row, pos]
    lv = meta[M_FREE_LEVEL]
    if lv != NIL:
        meta[M_FREE_LEVEL] = levels[lv, L_NEXT]
    else:
        lv = meta[M_FRESH_LEVEL]
        meta[M_FRESH_LEVEL] = lv + 1
    levels[lv, L_PRICE] = price
    levels[lv, L_QTY] = 0
    levels[lv, L_HEAD] = NIL
    levels[lv, L_TAIL] = NIL
    levels[lv, L_COUNT] = 0
    levels[lv, L_DEAD] = 0
    for j in range(n, pos, -1):
        lad_key[row, j] = lad_key[row, j - 1]
        lad_lv[row, j] = lad_lv[row, j - 1]
    lad_key[row, pos] = key
    lad_lv[row, pos] = lv
    lad_n[row] = n + 1
    return lv


@njit(cache=True, nogil=True)
def ladder_remove(lad_key, lad_lv, lad_n, levels, meta, row, key):
    """Remove the level at ``key`` (no live orders, no dead ones linked) and free its row."""
    n = lad_n[row]
    if lad_key[row, n - 1] == key:
        pos = n - 1
    else:
        pos = ladder_search(lad_key, row, n, key)
    lv = lad_lv[row, pos]
    for j in range(pos, n - 1):
        lad_key[row, j] = lad_key[row, j + 1]
        lad_lv[row, j] = lad_lv[row, j + 1]
    lad_n[row] = n - 1
    levels[lv, L_NEXT] = meta[M_FREE_LEVEL]
    meta[M_FREE_LEVEL] = lv
