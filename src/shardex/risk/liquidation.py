"""Liquidation: who is below maintenance margin, at what price to close, whom to deleverage.

Kernels only; ``shardex.risk.engine.RiskExchange`` runs the steps (see
docs/risk.md, "Liquidation"):

1. ``below_maintenance`` -- accounts with a position whose equity is below
   their maintenance margin, in account order, checked per margin pool
   (``pool_below``: the margin currency's pool, and each inverse option
   coin's); a liquidation closes the positions of the pool that fell short.
2. The account's orders are cancelled; each position is closed by an IOC
   limit order at ``close_prices``: the bankruptcy price (where the
   account's equity, shared over its positions by notional, reaches zero),
   pushed past it by what the insurance fund can absorb.
3. What the book could not take is auto-deleveraged at the bankruptcy
   price against ``adl_ranking``: opposite positions by profit and leverage.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from shardex.lowlevel import borrow
from shardex.ledger.margin import POS_COST, POS_QTY
from shardex.risk.margin import account_margin, pool_equity
from shardex.risk.options import O_CCY

__all__ = ["adl_ranking", "below_maintenance", "close_prices", "pool_below"]


@njit(cache=True, nogil=True)
def pool_below(a, ccy, positions, open_lots, balances, margin, marks, mult, tiers, n_tiers, opt, mccy):
    """``(below, equity, maintenance)`` of account ``a``'s ``ccy`` pool; ``below`` needs a position in it.

    Complexity: O(n_instruments * tiers).
    """
    has = False
    for i in range(positions.shape[1]):
        if positions[a, i, POS_QTY] != 0 and opt[i, O_CCY] == ccy:
            has = True
            break
    eq = pool_equity(a, ccy, balances, positions, margin, marks, mult, opt, mccy)
    _im, mm = account_margin(positions[a], open_lots[a], marks, mult, tiers, n_tiers, opt, ccy, -1, 0, 0)
    return has and eq < mm, eq, mm


@njit(cache=True, nogil=True)
def below_maintenance(positions, open_lots, balances, margin, marks, mult, tiers, n_tiers, opt, mccy, skip_mccy):
    """Accounts below maintenance (see ``_below_maintenance``), on borrowed views of the arrays.

    The scan calls a helper per account and pool with eight arrays; borrowed
    views spare those calls numba's atomic reference counting.
    """
    return _below_maintenance(borrow(positions), borrow(open_lots), borrow(balances), borrow(margin), borrow(marks),
                              borrow(mult), borrow(tiers), borrow(n_tiers), borrow(opt), mccy, borrow(skip_mccy))


@njit(cache=True, nogil=True)
def _below_maintenance(positions, open_lots, balances, margin, marks, mult, tiers, n_tiers, opt, mccy, skip_mccy):
    """Accounts (ascending) with a pool holding a position whose equity is below its maintenance margin.

    ``skip_mccy[a]`` != 0: leave account ``a``'s margin-currency pool to the
    caller (a portfolio-margin account).  Complexity:
    O(n_accounts * n_currencies * n_instruments * tiers).
    """
    out = np.empty(positions.shape[0], np.int64)
    n = 0
    for a in range(positions.shape[0]):
        has = False
        for i in range(positions.shape[1]):
            if positions[a, i, POS_QTY] != 0:
                has = True
                break
        if not has:
            continue
        for c in range(balances.shape[1]):
            if c == mccy and skip_mccy[a] != 0:
                continue
            below, _eq, _mm = pool_below(a, c, positions, open_lots, balances, margin, marks, mult, tiers, n_tiers,
                                         opt, mccy)
            if below:
                out[n] = a
                n += 1
                break
    return out[:n]


@njit(cache=True, nogil=True)
def close_prices(pos_row, equity, fund, marks, mult):
    """``(bankruptcy, limit)`` ticks per instrument for closing every position of one account.

    The equity (and the fund's balance) are shared over the positions in
    proportion to their notional at the mark.  For a long of ``q`` lots the
    bankruptcy price is ``mark - equity_share / (q * mult)``, rounded up (a
    sale at or above it leaves equity >= 0), and the order's limit is lower
    by ``fund_share / (q * mult)``; mirrored for a short.  Prices are kept
    >= 1 tick.  Instruments without a position get 0.  Complexity:
    O(n_instruments).
    """
    n = pos_row.shape[0]
    bp = np.zeros(n, np.int64)
    lim = np.zeros(n, np.int64)
    total = 0.0
    for i in range(n):
        total += float(abs(pos_row[i, POS_QTY]) * marks[i] * mult[i])
    for i in range(n):
        q = pos_row[i, POS_QTY]
        if q == 0:
            continue
        notional = abs(q) * marks[i] * mult[i]
        # Shares by notional; the last rounding unit does not matter (rounded toward safety below).
        e_share = int(float(equity) * (float(notional) / total))
        f_share = int(float(fund) * (float(notional) / total))
        per_tick = abs(q) * mult[i]
        if q > 0:
            b = marks[i] - (e_share // per_tick)  # floor of the share: the price rounds up
            lm = b - f_share // per_tick
        else:
            b = marks[i] + (e_share // per_tick)
            lm = b + f_share // per_tick
        bp[i] = max(b, 1)
        lim[i] = max(lm, 1)
    return bp, lim


@njit(cache=True, nogil=True)
def adl_ranking(positions, margin, marks, mult, i, side_sign, exclude):
    """Accounts holding a position of sign ``side_sign`` in ``i``, best ADL candidate first.

    The score is the venues' (Binance, Bybit): for a profitable position
    ``pnl_ratio * leverage``, for a losing one ``pnl_ratio / leverage``, with
    ``pnl_ratio = unrealized PnL / |entry cost|`` and ``leverage =
    notional / equity`` (equity floored at one minor unit).  Ties go to the
    lower account id.  ``exclude`` (the liquidated account) is left out.
    Complexity: O(n_accounts log n_accounts).
    """
    n_acc = positions.shape[0]
    cand = np.empty(n_acc, np.int64)
    score = np.empty(n_acc, np.float64)
    n = 0
    for a in range(n_acc):
        q = positions[a, i, POS_QTY]
        if a == exclude or q == 0 or (q > 0) != (side_sign > 0):
            continue
        cost = positions[a, i, POS_COST]
        upnl = float((q * marks[i] - cost) * mult[i])
        ratio = upnl / float(max(abs(cost) * mult[i], 1))
        lev = float(abs(q) * marks[i] * mult[i]) / float(max(margin[a, 0], 1))
        cand[n] = a
        score[n] = ratio * lev if upnl > 0 else ratio / max(lev, 1e-12)
        n += 1
    cand = cand[:n]
    score = score[:n]
    # Stable sort by descending score keeps ascending ids among equal scores.
    order = np.argsort(-score, kind="mergesort")
    return cand[order]
