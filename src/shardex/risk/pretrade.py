"""Pre-trade risk: the per-order checks before matching, and the reservations after it.

``pretrade`` walks a batch of order commands in sequence order and gives
each a reason code (``Reason.OK`` = send it to matching).  A NEW order:

1. ``UNKNOWN_ACCOUNT`` unless ``0 <= account < n_accounts``;
   ``UNKNOWN_INSTRUMENT`` unless the instrument is in the risk table,
   ``EXPIRY`` if it has expired; ``INVALID_COMMAND`` for an order id in the
   range reserved for liquidation orders; ``DUPLICATE_ORDER_ID`` if the
   account already has that order open (checked here so that a matching
   reject never names someone else's live order).
2. Reduce-only (``OrderFlag.REDUCE_ONLY``): the order must be opposite to the
   position and no larger than it, else ``REDUCE_ONLY_VIOLATION``.  It
   needs no margin: it can only shrink the position.
3. Margin: with the order's lots added to its side's open orders, the
   account's initial margin (``shardex.risk.margin.account_margin``) plus
   the order's immediate loss against the mark (a buy above the mark, a
   sell below it) must not exceed its equity -- unless the order does not
   raise the initial margin at all (it reduces exposure), which is always
   allowed.  Else ``INSUFFICIENT_MARGIN``.
4. Accepted: its lots are reserved (``OrderTable``, ``open_lots``), so the
   next order of the same account in the batch sees them.

An AMEND that raises an order's quantity is margin-checked for the
increase.  CANCEL and MASS_CANCEL pass.  A rejected command changes nothing.

Equity and positions are those settled before the batch: fills inside the
batch are settled after matching (the staged pipeline's order), so an order
is checked against its account's last settled state plus every order
reserved before it.

``apply_order_events`` then moves each order's reservation to the
``leaves`` the matching events report (trades for both sides, cancels,
amends, IOC remainders) and releases the orders matching rejected.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from shardex.ledger.margin import POS_QTY
from shardex.risk.margin import account_margin
from shardex.risk.orders import table_find, table_insert, table_set_leaves
from shardex.schema import Reason

__all__ = ["RESERVED_ORDER_ID", "apply_order_events", "pretrade"]

#: Order ids at or above this are the risk layer's (liquidation orders).
RESERVED_ORDER_ID = 1 << 62

K_NEW = 1
K_AMEND = 3
E_REJECTED = 2
E_TRADE = 3
FLAG_REDUCE_ONLY = 2
SIDE_BUY = 0
ST_ACTIVE = 0
ST_EXPIRED = 1

R_OK = int(Reason.OK)
R_UNKNOWN_ACCOUNT = int(Reason.UNKNOWN_ACCOUNT)
R_UNKNOWN_INSTRUMENT = int(Reason.UNKNOWN_INSTRUMENT)
R_EXPIRY = int(Reason.EXPIRY)
R_INVALID_COMMAND = int(Reason.INVALID_COMMAND)
R_DUPLICATE = int(Reason.DUPLICATE_ORDER_ID)
R_REDUCE_ONLY = int(Reason.REDUCE_ONLY_VIOLATION)
R_MARGIN = int(Reason.INSUFFICIENT_MARGIN)


@njit(cache=True, nogil=True)
def _margin_ok(a, i, side, lots, price, positions, open_lots, margin, marks, mult, tiers, n_tiers):
    """Whether ``a`` can carry ``lots`` more on ``side`` of ``i`` (see the module doc, step 3)."""
    im0, _ = account_margin(positions[a], open_lots[a], marks, mult, tiers, n_tiers, -1, 0, 0)
    if side == SIDE_BUY:
        im1, _ = account_margin(positions[a], open_lots[a], marks, mult, tiers, n_tiers, i, lots, 0)
    else:
        im1, _ = account_margin(positions[a], open_lots[a], marks, mult, tiers, n_tiers, i, 0, lots)
    if im1 <= im0:
        return True
    loss = 0
    if price > 0:  # a market order's fill price is unknown: its margin at the mark stands for it
        gap = price - marks[i] if side == SIDE_BUY else marks[i] - price
        if gap > 0:
            loss = gap * lots * mult[i]
    return margin[a, 0] - im1 - loss >= 0


@njit(cache=True, nogil=True)
def pretrade(cmds, codes, tab, used, leaves, open_lots, positions, margin, marks, mult, tiers, n_tiers,
             inst_state, n_acc):
    """Check a batch of order commands in row order; fill ``codes``; return how many were rejected.

    Accepted NEW orders are reserved in the table (the caller made room for
    ``len(cmds)`` inserts).  Complexity: O(n * n_instruments * tiers).
    """
    n_inst = inst_state.size
    rejected = 0
    for t in range(cmds.size):
        c = cmds[t]
        codes[t] = R_OK
        k = c.kind
        if k != K_NEW and k != K_AMEND:
            continue
        a = c.account
        i = c.instrument
        code = R_OK
        if a < 0 or a >= n_acc:
            code = R_UNKNOWN_ACCOUNT
        elif i < 0 or i >= n_inst:
            code = R_UNKNOWN_INSTRUMENT
        elif inst_state[i] == ST_EXPIRED:
            code = R_EXPIRY
        elif c.order_id >= RESERVED_ORDER_ID:
            code = R_INVALID_COMMAND
        elif k == K_NEW:
            if table_find(tab, used, a, i, c.order_id) >= 0:
                code = R_DUPLICATE
            elif c.qty > 0 and (c.side == 0 or c.side == 1):
                q = positions[a, i, POS_QTY]
                if c.flags & FLAG_REDUCE_ONLY:
                    if (c.side == SIDE_BUY and not (q < 0 and c.qty <= -q)) or (
                        c.side != SIDE_BUY and not (q > 0 and c.qty <= q)
                    ):
                        code = R_REDUCE_ONLY
                elif not _margin_ok(a, i, c.side, c.qty, c.price, positions, open_lots, margin, marks, mult,
                                    tiers, n_tiers):
                    code = R_MARGIN
                if code == R_OK:
                    table_insert(tab, used, leaves, a, i, c.order_id, c.side, c.qty)
                    open_lots[a, i, c.side] += c.qty
            # qty <= 0 or a bad side: matching rejects it with its own reason; nothing reserved.
        else:  # AMEND: check the increase only; the AMENDED event moves the reservation
            s = table_find(tab, used, a, i, c.order_id)
            if s >= 0 and c.qty > leaves[s]:
                side = tab[s, 3]
                q = positions[a, i, POS_QTY]
                reduce_ok = (side == SIDE_BUY and q < 0 and c.qty <= -q) or (side != SIDE_BUY and q > 0 and c.qty <= q)
                if not reduce_ok and not _margin_ok(a, i, side, c.qty - leaves[s], c.price, positions, open_lots,
                                                    margin, marks, mult, tiers, n_tiers):
                    code = R_MARGIN
        codes[t] = code
        if code != R_OK:
            rejected += 1
    return rejected


@njit(cache=True, nogil=True)
def apply_order_events(events, cmd_seq, cmd_kind, tab, used, leaves, open_lots):
    """Move reservations to the ``leaves`` reported by matching events; return events applied.

    ``cmd_seq``/``cmd_kind``: the matched commands' sequence numbers
    (ascending) and kinds, to tell a rejected NEW (release its reservation)
    from a rejected cancel or amend (nothing to release).  Orders the table
    does not know (liquidation orders) are skipped.  Complexity: O(events).
    """
    n = 0
    for e in range(events.size):
        ev = events[e]
        k = ev.kind
        if k == E_TRADE:
            n += table_set_leaves(tab, used, leaves, open_lots, ev.account, ev.instrument, ev.order_id, ev.leaves)
            n += table_set_leaves(tab, used, leaves, open_lots, ev.maker_account, ev.instrument, ev.maker_order_id,
                                  ev.maker_leaves)
        elif k == E_REJECTED:
            j = np.searchsorted(cmd_seq, ev.seq)
            if j < cmd_seq.size and cmd_seq[j] == ev.seq and cmd_kind[j] == K_NEW:
                n += table_set_leaves(tab, used, leaves, open_lots, ev.account, ev.instrument, ev.order_id, 0)
        elif k >= 1 and k <= 7:  # accepted, cancelled, amended, triggered, replenished
            n += table_set_leaves(tab, used, leaves, open_lots, ev.account, ev.instrument, ev.order_id, ev.leaves)
    return n
