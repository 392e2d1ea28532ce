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
   sell below it) must not exceed its equity minus its holds -- unless the
   order does not raise the initial margin at all (it reduces exposure),
   which is always allowed.  Else ``INSUFFICIENT_MARGIN``.  Equity, margin
   and holds are those of the margin pool of the instrument's settlement
   currency (the margin currency, or an inverse option's coin).
4. Accepted: its lots are reserved (``OrderTable``, ``open_lots``), so the
   next order of the same account in the batch sees them.

An AMEND that raises an order's quantity is margin-checked for the
increase.  CANCEL and MASS_CANCEL pass.  A rejected command changes nothing.

A NEW order on a **spot** instrument (``shardex.risk.spot``) is not
margined: after step 1, a reduce-only spot order is refused
(``REDUCE_ONLY_VIOLATION``: there is no position), a market buy on an
instrument without ``max_price`` is refused (``INVALID_ORDER_TYPE``), a buy
limit at or below zero is refused (``INVALID_PRICE``, its hold would be
meaningless), and the order's hold must fit the free balance of the held
currency -- balance minus holds, and in the margin currency also no more
than equity minus initial margin minus holds -- else
``INSUFFICIENT_BALANCE``.  Accepted: the hold is added to ``holds``.  A spot
AMEND may only lower the quantity at the same price (``INVALID_COMMAND``
otherwise): an increase would need a hold that matching might then refuse.
Derivative orders see the spot holds in the margin currency as spent
equity.

An **option** (``shardex.risk.options``): a NEW sell goes through steps 2-4
with the option's standard margin in its pool.  A NEW buy needs no margin
but holds its premium, as a spot buy holds its quote: ``price × lots ×
multiplier`` plus the fee cap, in the settlement currency (a market buy at
the instrument's ``max_price``, refused without one), which must fit the
pool's free balance (``spot_free``), else ``INSUFFICIENT_MARGIN``; a
reduce-only buy must also pass step 2.  Its lots are reserved as well.  An
option buy AMEND follows the spot rule (lower the quantity only).

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

from shardex.lowlevel import borrow
from shardex.ledger.margin import POS_QTY
from shardex.risk.margin import account_margin, pool_equity
from shardex.risk.options import O_CCY
from shardex.risk.orders import table_find, table_insert, table_set_leaves
from shardex.risk.spot import MODE_OPTION, MODE_SPOT, S_MKT_PRICE, S_MODE, S_QUOTE, hold_amount, hold_currency
from shardex.schema import Reason

__all__ = ["RESERVED_ORDER_ID", "apply_order_events", "pretrade", "spot_free"]

#: Order ids at or above this are the risk layer's (liquidation orders).
RESERVED_ORDER_ID = 1 << 62

K_NEW = 1
K_AMEND = 3
OT_MARKET = 1
OT_STOP_MARKET = 2
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
R_BALANCE = int(Reason.INSUFFICIENT_BALANCE)
R_ORDER_TYPE = int(Reason.INVALID_ORDER_TYPE)
R_PRICE = int(Reason.INVALID_PRICE)


@njit(cache=True, nogil=True)
def _margin_ok(a, i, side, lots, price, positions, open_lots, balances, holds, margin, marks, mult, tiers, n_tiers,
               opt, mccy, im0_over, im1_over):
    """Whether ``a`` can carry ``lots`` more on ``side`` of ``i`` (see the module doc, step 3).

    Equity and margin are those of the pool of ``i``'s settlement currency;
    the pool's holds (spot orders, option buys) are spent equity.
    ``im0_over``/``im1_over`` (>= 0) replace the margin-currency pool's
    initial margin before/after the order (a portfolio-margin account).
    """
    ccy = opt[i, O_CCY]
    if im0_over >= 0 and ccy == mccy:
        im0, im1 = im0_over, im1_over
    else:
        im0, _ = account_margin(positions[a], open_lots[a], marks, mult, tiers, n_tiers, opt, ccy, -1, 0, 0)
        if side == SIDE_BUY:
            im1, _ = account_margin(positions[a], open_lots[a], marks, mult, tiers, n_tiers, opt, ccy, i, lots, 0)
        else:
            im1, _ = account_margin(positions[a], open_lots[a], marks, mult, tiers, n_tiers, opt, ccy, i, 0, lots)
    if im1 <= im0:
        return True
    loss = 0
    if price > 0:  # a market order's fill price is unknown: its margin at the mark stands for it
        gap = price - marks[i] if side == SIDE_BUY else marks[i] - price
        if gap > 0:
            loss = gap * lots * mult[i]
    eq = pool_equity(a, ccy, balances, positions, margin, marks, mult, opt, mccy)
    return eq - holds[a, ccy] - im1 - loss >= 0


@njit(cache=True, nogil=True)
def spot_free(a, ccy, balances, holds, positions, open_lots, margin, marks, mult, tiers, n_tiers, opt, mccy, im_over):
    """Free balance of ``ccy``: ``min(balance - holds, pool equity - pool initial margin - holds)``.

    ``im_over`` >= 0 replaces the initial margin of the margin-currency pool
    (a portfolio-margin account).  A currency no instrument settles in has
    no margin: its free balance is ``balance - holds``.
    """
    h = holds[a, ccy]
    if im_over >= 0 and ccy == mccy:
        im = im_over
    else:
        im, _ = account_margin(positions[a], open_lots[a], marks, mult, tiers, n_tiers, opt, ccy, -1, 0, 0)
    eq = pool_equity(a, ccy, balances, positions, margin, marks, mult, opt, mccy)
    return min(balances[a, ccy] - h, eq - im - h)


@njit(cache=True, nogil=True)
def _hold_price(c, row):
    """``(code, price)`` a buy holds at: its limit, or ``S_MKT_PRICE`` for a market buy."""
    p = c.price
    if c.otype == OT_MARKET or c.otype == OT_STOP_MARKET:
        p = row[S_MKT_PRICE]
        if p <= 0:
            return R_ORDER_TYPE, 0
    elif p <= 0:
        return R_PRICE, 0
    return R_OK, p


@njit(cache=True, nogil=True)
def _spot_new(c, a, i, spot, balances, holds, positions, open_lots, margin, marks, mult, tiers, n_tiers, opt, mccy,
              im_over):
    """``(code, hold price)`` of a NEW spot order (module doc, spot paragraph)."""
    row = spot[i]
    if c.flags & FLAG_REDUCE_ONLY:
        return R_REDUCE_ONLY, 0
    p = c.price
    if c.side == SIDE_BUY:
        code, p = _hold_price(c, row)
        if code != R_OK:
            return code, 0
    h = hold_amount(row, c.side, p, c.qty)
    ccy = hold_currency(row, c.side)
    if h < 0 or h > spot_free(a, ccy, balances, holds, positions, open_lots, margin, marks, mult, tiers, n_tiers, opt,
                              mccy, im_over):
        return R_BALANCE, 0
    return R_OK, p


@njit(cache=True, nogil=True)
def _reduce_only_ok(side, lots, q):
    """A reduce-only order must be opposite to the position ``q`` and no larger."""
    return (side == SIDE_BUY and q < 0 and lots <= -q) or (side != SIDE_BUY and q > 0 and lots <= q)


# The public kernels below hand a dozen arrays to a helper per command or
# event; numba would bump each array's reference count with an atomic add on
# every such call.  They run on borrowed views (no reference-count handle;
# the caller owns the arrays for the whole call) instead.


@njit(cache=True, nogil=True)
def pretrade(cmds, codes, tab, used, leaves, open_lots, positions, margin, marks, mult, tiers, n_tiers,
             inst_state, n_acc, spot, balances, holds, mccy, opt, im_over):
    """Check a batch of order commands in row order (see ``_pretrade``); return how many were rejected."""
    return _pretrade(borrow(cmds), borrow(codes), borrow(tab), borrow(used), borrow(leaves), borrow(open_lots),
                     borrow(positions), borrow(margin), borrow(marks), borrow(mult), borrow(tiers), borrow(n_tiers),
                     borrow(inst_state), n_acc, borrow(spot), borrow(balances), borrow(holds), mccy, borrow(opt),
                     borrow(im_over))


@njit(cache=True, nogil=True)
def _pretrade(cmds, codes, tab, used, leaves, open_lots, positions, margin, marks, mult, tiers, n_tiers,
              inst_state, n_acc, spot, balances, holds, mccy, opt, im_over):
    """Check a batch of order commands in row order; fill ``codes``; return how many were rejected.

    Accepted NEW orders are reserved in the table (the caller made room for
    ``len(cmds)`` inserts); spot orders and option buys add their hold to
    ``holds`` (int64 ``[n_accounts, n_currencies]``).  ``im_over`` (int64
    ``[len(cmds), 2]``): per command, the account's margin-currency initial
    margin before and after the order when the caller computed it (a
    portfolio-margin account), -1 to use the standard model.  Complexity:
    O(n * n_instruments * tiers).
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
        io0 = im_over[t, 0]
        io1 = im_over[t, 1]
        if a < 0 or a >= n_acc:
            code = R_UNKNOWN_ACCOUNT
        elif i < 0 or i >= n_inst:
            code = R_UNKNOWN_INSTRUMENT
        elif inst_state[i] == ST_EXPIRED:
            code = R_EXPIRY
        elif c.order_id >= RESERVED_ORDER_ID:
            code = R_INVALID_COMMAND
        elif k == K_NEW:
            mode = spot[i, S_MODE]
            good = c.qty > 0 and (c.side == 0 or c.side == 1)
            if table_find(tab, used, a, i, c.order_id) >= 0:
                code = R_DUPLICATE
            elif good and mode == MODE_SPOT:
                code, p = _spot_new(c, a, i, spot, balances, holds, positions, open_lots, margin, marks, mult, tiers,
                                    n_tiers, opt, mccy, io0)
                if code == R_OK:
                    table_insert(tab, used, leaves, a, i, c.order_id, c.side, c.qty, p)
                    holds[a, hold_currency(spot[i], c.side)] += hold_amount(spot[i], c.side, p, c.qty)
            elif good and mode == MODE_OPTION and c.side == SIDE_BUY:
                # an option buy holds its premium at its limit (plus the fee cap) in the settlement currency
                p = 0
                if c.flags & FLAG_REDUCE_ONLY and not _reduce_only_ok(c.side, c.qty, positions[a, i, POS_QTY]):
                    code = R_REDUCE_ONLY
                else:
                    code, p = _hold_price(c, spot[i])
                if code == R_OK:
                    row = spot[i]
                    h = hold_amount(row, SIDE_BUY, p, c.qty)
                    if h < 0 or h > spot_free(a, row[S_QUOTE], balances, holds, positions, open_lots, margin, marks,
                                              mult, tiers, n_tiers, opt, mccy, io1):
                        code = R_MARGIN
                if code == R_OK:
                    table_insert(tab, used, leaves, a, i, c.order_id, c.side, c.qty, p)
                    holds[a, spot[i, S_QUOTE]] += h
                    open_lots[a, i, c.side] += c.qty
            elif good:
                if c.flags & FLAG_REDUCE_ONLY:
                    if not _reduce_only_ok(c.side, c.qty, positions[a, i, POS_QTY]):
                        code = R_REDUCE_ONLY
                elif not _margin_ok(a, i, c.side, c.qty, c.price, positions, open_lots, balances, holds, margin,
                                    marks, mult, tiers, n_tiers, opt, mccy, io0, io1):
                    code = R_MARGIN
                if code == R_OK:
                    table_insert(tab, used, leaves, a, i, c.order_id, c.side, c.qty, 0)
                    open_lots[a, i, c.side] += c.qty
            # qty <= 0 or a bad side: matching rejects it with its own reason; nothing reserved.
        else:  # AMEND: check the increase only; the AMENDED event moves the reservation
            s = table_find(tab, used, a, i, c.order_id)
            mode = spot[i, S_MODE]
            if s >= 0 and (mode == MODE_SPOT or (mode == MODE_OPTION and tab[s, 3] == SIDE_BUY)):
                if c.qty > leaves[s] or (c.price != 0 and c.price != tab[s, 4]):
                    code = R_INVALID_COMMAND
            elif s >= 0 and c.qty > leaves[s]:
                side = tab[s, 3]
                if not _reduce_only_ok(side, c.qty, positions[a, i, POS_QTY]) and not _margin_ok(
                        a, i, side, c.qty - leaves[s], c.price, positions, open_lots, balances, holds, margin, marks,
                        mult, tiers, n_tiers, opt, mccy, io0, io1):
                    code = R_MARGIN
        codes[t] = code
        if code != R_OK:
            rejected += 1
    return rejected


@njit(cache=True, nogil=True)
def apply_order_events(events, cmd_seq, cmd_kind, tab, used, leaves, open_lots, spot, holds):
    """Move reservations to the ``leaves`` reported by matching events (see ``_apply_order_events``)."""
    return _apply_order_events(borrow(events), borrow(cmd_seq), borrow(cmd_kind), borrow(tab), borrow(used),
                               borrow(leaves), borrow(open_lots), borrow(spot), borrow(holds))


@njit(cache=True, nogil=True)
def _apply_order_events(events, cmd_seq, cmd_kind, tab, used, leaves, open_lots, spot, holds):
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
            n += table_set_leaves(tab, used, leaves, open_lots, spot, holds, ev.account, ev.instrument, ev.order_id, ev.leaves)
            n += table_set_leaves(tab, used, leaves, open_lots, spot, holds, ev.maker_account, ev.instrument, ev.maker_order_id,
                                  ev.maker_leaves)
        elif k == E_REJECTED:
            j = np.searchsorted(cmd_seq, ev.seq)
            if j < cmd_seq.size and cmd_seq[j] == ev.seq and cmd_kind[j] == K_NEW:
                n += table_set_leaves(tab, used, leaves, open_lots, spot, holds, ev.account, ev.instrument, ev.order_id, 0)
        elif k >= 1 and k <= 7:  # accepted, cancelled, amended, triggered, replenished
            n += table_set_leaves(tab, used, leaves, open_lots, spot, holds, ev.account, ev.instrument, ev.order_id, ev.leaves)
    return n
