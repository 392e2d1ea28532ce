"""The margin model of the ledger: linear (USDT-margined) perpetuals, cross margin.

One function, ``linear_margin``, computes an account's equity, initial and
maintenance margin from its positions.  The settlement kernels call it after
every change to an account, and withdrawals consult it for the free balance.
The risk layer replaces the model by providing a function with the same
signature and units here (tiers by position size, portfolio margin); the
kernels that call it recompile, nothing else changes.

Instrument table (``inst``, int64 ``[n_instruments, INST_COLS]``), one row per
instrument, columns:

* ``INST_MULT`` -- contract multiplier: minor units of the settlement
  currency per tick per lot (BTC-PERP with tick 0.1 USDT, lot 0.001 BTC and
  USDT in 1e-6 units: 0.1 * 0.001 * 1e6 = 100).
* ``INST_IM_BPS``, ``INST_MM_BPS`` -- initial and maintenance margin rates,
  basis points of the notional at the mark.
* ``INST_CCY`` -- settlement currency index (the ledger's margin currency
  for linear contracts; any currency for premium-style ones).
* ``INST_KIND`` -- how a trade settles and how a position counts in equity:

  - ``KIND_LINEAR`` (0): futures-style (perpetuals, dated futures): a trade
    moves no cash, realized PnL is paid as positions close, equity counts
    the unrealized PnL ``(qty * mark - cost) * mult``;
  - ``KIND_PREMIUM`` (1): premium-style (options) in the margin currency:
    the buyer pays the premium ``price * qty * mult`` to the seller at the
    trade, equity counts the position's value ``qty * mark * mult`` (long
    options add, short options subtract);
  - ``KIND_PREMIUM_OTHER`` (2): premium-style, settled in another currency
    (an inverse option paid in the coin): outside the margin currency's
    equity; the risk layer values it in its own currency.

Position rows (``positions[account]``, int64 ``[n_instruments, 3]``):
``POS_QTY`` lots (signed), ``POS_COST`` the signed entry cost in tick-lots
(average entry price = cost / qty), ``POS_RPNL`` realized PnL in tick-lots.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "INST_CCY",
    "INST_COLS",
    "INST_IM_BPS",
    "INST_KIND",
    "INST_MM_BPS",
    "INST_MULT",
    "KIND_LINEAR",
    "KIND_PREMIUM",
    "KIND_PREMIUM_OTHER",
    "POS_COST",
    "POS_QTY",
    "POS_RPNL",
    "bps_ceil",
    "linear_margin",
]

INST_MULT = 0
INST_IM_BPS = 1
INST_MM_BPS = 2
INST_CCY = 3
INST_KIND = 4
INST_COLS = 5

KIND_LINEAR = 0
KIND_PREMIUM = 1
KIND_PREMIUM_OTHER = 2

POS_QTY = 0
POS_COST = 1
POS_RPNL = 2


@njit(cache=True, nogil=True, inline="always")
def bps_ceil(x, bps):
    """``ceil(x * bps / 10_000)`` for ``x, bps >= 0``, without forming ``x * bps`` (which overflows int64 for
    notionals above ~1e15 minor units: 10 M USDT in 1e-8 units at 10 %).

    Plain arithmetic: ``bps_ceil.py_func`` computes the same elementwise on numpy arrays.
    """
    return (x // 10_000) * bps + ((x % 10_000) * bps + 9_999) // 10_000


@njit(cache=True, nogil=True)
def linear_margin(pos_row: np.ndarray, balance: int, marks: np.ndarray, inst: np.ndarray) -> tuple[int, int, int]:
    """Return ``(equity, initial, maintenance)`` of one account in the margin currency, minor units.

    ``equity = balance + sum((qty * mark - cost) * mult)`` over linear
    positions (unrealized PnL at the mark) ``+ sum(qty * mark * mult)`` over
    premium-style positions in the margin currency (their value; the
    premium was paid at the trade); positions settled in another currency
    (``KIND_PREMIUM_OTHER``) are left out.  Each margin is
    ``ceil(|qty| * mark * mult * rate_bps / 10000)`` summed over the
    positions counted, rounded up so that the venue never under-margins by a
    rounding unit.

    Complexity: O(n_instruments).  Valid while ``|qty * mark * mult| * rate``
    stays below 2**63 (1e14 minor units of notional at a 10% rate).
    """
    upnl = 0
    im = 0
    mm = 0
    for i in range(pos_row.shape[0]):
        q = pos_row[i, POS_QTY]
        if q == 0:
            continue
        kind = inst[i, INST_KIND]
        if kind == KIND_PREMIUM_OTHER:
            continue
        mult = inst[i, INST_MULT]
        mark = marks[i]
        if kind == KIND_LINEAR:
            upnl += (q * mark - pos_row[i, POS_COST]) * mult
        else:
            upnl += q * mark * mult
        notional = abs(q) * mark * mult
        im += bps_ceil(notional, inst[i, INST_IM_BPS])
        mm += bps_ceil(notional, inst[i, INST_MM_BPS])
    return balance + upnl, im, mm
