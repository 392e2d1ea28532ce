"""Dated futures expiry: close every position in cash at the settlement price.

Positions in one instrument net to zero, so they can be closed by pairing
longs with shorts: ``pair_positions`` walks both lists in account order and
emits trades (taker = the long, selling; maker = the short) at the
settlement price.  Settled through the ledger as zero-fee trades, each pair
realizes both sides' PnL and flattens both positions, and money is
conserved by the ledger's own rule.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from shardex.ledger.margin import POS_QTY

__all__ = ["pair_positions"]


@njit(cache=True, nogil=True)
def pair_positions(positions, i):
    """``(long_account, short_account, lots)`` arrays closing every position in ``i``.

    Complexity: O(n_accounts).
    """
    n_acc = positions.shape[0]
    longs = np.empty(n_acc, np.int64)
    shorts = np.empty(n_acc, np.int64)
    nl = 0
    ns = 0
    for a in range(n_acc):
        q = positions[a, i, POS_QTY]
        if q > 0:
            longs[nl] = a
            nl += 1
        elif q < 0:
            shorts[ns] = a
            ns += 1
    la = np.empty(nl + ns, np.int64)
    sa = np.empty(nl + ns, np.int64)
    lots = np.empty(nl + ns, np.int64)
    m = 0
    x = 0
    y = 0
    left_l = positions[longs[0], i, POS_QTY] if nl else 0
    left_s = -positions[shorts[0], i, POS_QTY] if ns else 0
    while x < nl and y < ns:
        k = min(left_l, left_s)
        la[m] = longs[x]
        sa[m] = shorts[y]
        lots[m] = k
        m += 1
        left_l -= k
        left_s -= k
        if left_l == 0:
            x += 1
            if x < nl:
                left_l = positions[longs[x], i, POS_QTY]
        if left_s == 0:
            y += 1
            if y < ns:
                left_s = -positions[shorts[y], i, POS_QTY]
    return la[:m], sa[:m], lots[:m]
