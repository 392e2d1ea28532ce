"""The margin model of the ledger: linear (USDT-margined) perpetuals, cross margin.

One function, ``linear_margin``, computes an account's equity, initial and
maintenance margin from its positions.  The settlement kernels call it after
every change to an account, and withdrawals consult it for the free balance.
The risk layer replaces the model by providing a function with the same
signature and units here (tiers by position size, portfolio margin); the
kernels that call it recompile, nothing else changes.

Instrument table (``inst``, int64 ``[n_instruments, 4]``), one row per
instrument, columns:

* ``INST_MULT`` -- contract multiplier: minor units of the settlement
  currency per tick per lot (BTC-PERP with tick 0.1 USDT, lot 0.001 BTC and
  USDT in 1e-6 units: 0.1 * 0.001 * 1e6 = 100).
* ``INST_IM_BPS``, ``INST_MM_BPS`` -- initial and maintenance margin rates,
  basis points of the notional at the mark.
* ``INST_CCY`` -- settlement currency index (the ledger's margin currency).

Position rows (``positions[account]``, int64 ``[n_instruments, 3]``):
``POS_QTY`` lots (signed), ``POS_COST`` the signed entry cost in tick-lots
(average entry price = cost / qty), ``POS_RPNL`` realized PnL in tick-lots.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "INST_CCY",
    "INST_IM_BPS",
    "INST_MM_BPS",
    "INST_MULT",
    "POS_COST",
    "POS_QTY",
    "POS_RPNL",
    "linear_margin",
]

INST_MULT = 0
INST_IM_BPS = 1
INST_MM_BPS = 2
INST_CCY = 3

POS_QTY = 0
POS_COST = 1
POS_RPNL = 2


@njit(cache=True, nogil=True)
def linear_margin(pos_row: np.ndarray, balance: int, marks: np.ndarray, inst: np.ndarray) -> tuple[int, int, int]:
    """Return ``(equity, initial, maintenance)`` of one account, minor units.

    ``equity = balance + sum((qty * mark - cost) * mult)`` (unrealized PnL at
    the mark); each margin is ``ceil(|qty| * mark * mult * rate_bps / 10000)``
    summed over the positions, rounded up so that the venue never
    under-margins by a rounding unit.

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
        mult = inst[i, INST_MULT]
        mark = marks[i]
        upnl += (q * mark - pos_row[i, POS_COST]) * mult
        notional = abs(q) * mark * mult
        im += (notional * inst[i, INST_IM_BPS] + 9999) // 10000
        mm += (notional * inst[i, INST_MM_BPS] + 9999) // 10000
    return balance + upnl, im, mm
