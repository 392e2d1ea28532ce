"""Tiered margin: initial and maintenance margin by position notional, with open orders.

The ledger keeps a flat margin model (one rate per instrument, no tiers,
no open orders; ``shardex.ledger.margin``) and its equity column.  The risk
layer reads the ledger's positions, marks and equity and computes its own
requirement on top, so the ledger's kernels and invariants stay untouched.

Tiers follow the leverage brackets of the large USDT-margined venues
(Binance USDⓈ-M "leverage and margin" table): the bracket is chosen by the
position's notional at the mark; initial margin is ``notional * im_bps``
(``im_bps = 10000 / max leverage``) and maintenance margin
``notional * mm_bps - cum``, where ``cum`` (the "maintenance amount") makes
the maintenance margin continuous across brackets.

Tier table (``tiers``, int64 ``[n_instruments, MAX_TIERS, 4]``), columns:
``T_UPPER`` notional upper bound (minor units, exclusive; the last tier is
unbounded), ``T_IM_BPS``, ``T_MM_BPS``, ``T_CUM`` (minor units).

Open orders (``open_lots``, int64 ``[n_accounts, n_instruments, 2]``): lots
of resting buy and sell orders.  The initial margin of an instrument covers
the worse of the two ways the orders can fill:
``max(|qty + buys|, |qty - sells|)`` lots at the mark.

Options (``shardex.risk.options``) are margined by their own rule: a short
option carries the standard margin per lot (``option_lot_margin``), counted
on ``max(sells - qty, 0)`` lots for the initial margin (every open sell
filled) and on the short position for maintenance; a long option's initial
margin is its value (``qty * mark * mult``), its maintenance margin 0.  Buy
orders on options hold their premium instead (``shardex.risk.spot``).

Margin pools: every instrument belongs to the pool of its settlement
currency (``opt[i, O_CCY]``).  An account's equity and margin are computed
per pool (``account_margin(..., ccy)``, ``pool_equity``): the margin
currency's pool holds perpetuals, futures and linear options; an inverse
option's coin (BTC) has a pool of its own, as Deribit keeps one margin
account per currency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit

from shardex.ledger.margin import POS_COST, POS_QTY, bps_ceil
from shardex.risk.options import O_CCY, O_TYPE, OT_NONE, option_lot_margin

__all__ = [
    "BINANCE_BTCUSDT_BRACKETS",
    "MAX_TIERS",
    "MarginTiers",
    "account_margin",
    "instrument_margin",
    "pool_equity",
    "tier_table",
]

MAX_TIERS = 12
T_UPPER = 0
T_IM_BPS = 1
T_MM_BPS = 2
T_CUM = 3

#: Binance USDⓈ-M BTCUSDT leverage brackets as published in 2023 (notional
#: bound in USDT, max leverage, maintenance rate in bps).  A model of the
#: shape, not a live copy: venues revise them.
BINANCE_BTCUSDT_BRACKETS: tuple[tuple[int | None, int, int], ...] = (
    (50_000, 125, 40),
    (250_000, 100, 50),
    (3_000_000, 50, 100),
    (15_000_000, 20, 250),
    (30_000_000, 10, 500),
    (80_000_000, 5, 1000),
    (100_000_000, 4, 1250),
    (200_000_000, 3, 1500),
    (300_000_000, 2, 2500),
    (None, 1, 5000),
)


@dataclass(frozen=True)
class MarginTiers:
    """Margin brackets of one instrument, by position notional in minor units.

    Parameters
    ----------
    upper
        Exclusive notional upper bound of each tier but the last (minor units
        of the margin currency), strictly increasing; ``len(upper) ==
        len(im_bps) - 1``.
    im_bps, mm_bps
        Initial and maintenance margin rates per tier, basis points of the
        notional; non-decreasing, ``0 < mm_bps <= im_bps <= 10000``.

    ``cum`` (the maintenance amount) is derived so that maintenance margin
    is continuous: ``cum[k] = cum[k-1] + upper[k-1] * (mm_bps[k] - mm_bps[k-1]) / 10000``.
    """

    upper: tuple[int, ...]
    im_bps: tuple[int, ...]
    mm_bps: tuple[int, ...]

    def __post_init__(self) -> None:
        n = len(self.im_bps)
        if not 1 <= n <= MAX_TIERS or len(self.mm_bps) != n or len(self.upper) != n - 1:
            raise ValueError(f"need 1..{MAX_TIERS} tiers with len(upper) == tiers - 1, got {self}")
        if any(b <= a for a, b in zip(self.upper, self.upper[1:])) or any(u <= 0 for u in self.upper):
            raise ValueError(f"tier bounds must be positive and strictly increasing, got {self.upper}")
        for k in range(n):
            if not 0 < self.mm_bps[k] <= self.im_bps[k] <= 10_000:
                raise ValueError(f"tier {k}: need 0 < mm_bps <= im_bps <= 10000, got {self.mm_bps[k]}, {self.im_bps[k]}")
            if k and (self.mm_bps[k] < self.mm_bps[k - 1] or self.im_bps[k] < self.im_bps[k - 1]):
                raise ValueError("tier rates must not decrease with the notional")
        for k in range(1, n):
            if self.upper[k - 1] * (self.mm_bps[k] - self.mm_bps[k - 1]) % 10_000:
                raise ValueError(f"tier {k}: the maintenance amount is not a whole number of minor units")

    @classmethod
    def flat(cls, im_bps: int, mm_bps: int) -> MarginTiers:
        """One tier: the ledger's flat model."""
        return cls((), (im_bps,), (mm_bps,))

    @classmethod
    def from_brackets(cls, brackets: Sequence[tuple[int | None, int, int]], currency_decimals: int) -> MarginTiers:
        """Build from venue brackets ``(notional bound in whole currency units or None, max leverage, mm_bps)``.

        ``im_bps`` is ``ceil(10000 / leverage)``.
        """
        scale = 10**currency_decimals
        upper = tuple(int(b) * scale for b, _, _ in brackets[:-1])
        im = tuple(-(-10_000 // lev) for _, lev, _ in brackets)
        mm = tuple(m for _, _, m in brackets)
        return cls(upper, im, mm)

    @property
    def cum(self) -> tuple[int, ...]:
        """Maintenance amount per tier, minor units."""
        out = [0]
        for k in range(1, len(self.mm_bps)):
            out.append(out[-1] + self.upper[k - 1] * (self.mm_bps[k] - self.mm_bps[k - 1]) // 10_000)
        return tuple(out)


def tier_table(tiers: Sequence[MarginTiers]) -> tuple[np.ndarray, np.ndarray]:
    """``(table, n_tiers)`` arrays for the kernels, one row block per instrument."""
    table = np.zeros((max(len(tiers), 1), MAX_TIERS, 4), np.int64)
    n = np.zeros(max(len(tiers), 1), np.int64)
    for i, t in enumerate(tiers):
        n[i] = len(t.im_bps)
        cum = t.cum
        for k in range(n[i]):
            table[i, k, T_UPPER] = t.upper[k] if k < len(t.upper) else np.iinfo(np.int64).max
            table[i, k, T_IM_BPS] = t.im_bps[k]
            table[i, k, T_MM_BPS] = t.mm_bps[k]
            table[i, k, T_CUM] = cum[k]
    return table, n


@njit(cache=True, nogil=True)
def instrument_margin(lots, mark, mult, tiers_i, n_tiers):
    """``(initial, maintenance)`` margin of ``lots`` (>= 0) at ``mark`` ticks, minor units.

    The tier is the first whose bound exceeds the notional
    ``lots * mark * mult``.  Complexity: O(tiers).
    """
    if lots == 0:
        return 0, 0
    notional = lots * mark * mult
    k = 0
    while k < n_tiers - 1 and notional >= tiers_i[k, T_UPPER]:
        k += 1
    im = bps_ceil(notional, tiers_i[k, T_IM_BPS])
    mm = bps_ceil(notional, tiers_i[k, T_MM_BPS]) - tiers_i[k, T_CUM]
    return im, mm


@njit(cache=True, nogil=True)
def account_margin(pos_row, open_row, marks, mult, tiers, n_tiers, opt, ccy, extra_i, extra_buy, extra_sell):
    """``(initial incl. open orders, maintenance)`` of one account's ``ccy`` pool, minor units.

    ``pos_row``: the ledger's ``positions[account]``; ``open_row``:
    ``open_lots[account]``; ``opt``: the option table (its ``O_CCY`` column
    picks the instruments of the pool).  ``extra_buy``/``extra_sell`` lots
    are added to instrument ``extra_i``'s open orders (the order being
    checked; ``-1``: none).  Maintenance margin counts positions only.
    Complexity: O(n_instruments * tiers).
    """
    im_total = 0
    mm_total = 0
    for i in range(pos_row.shape[0]):
        if opt[i, O_CCY] != ccy:
            continue
        q = pos_row[i, POS_QTY]
        b = open_row[i, 0]
        s = open_row[i, 1]
        if i == extra_i:
            b += extra_buy
            s += extra_sell
        if q == 0 and b == 0 and s == 0:
            continue
        if opt[i, O_TYPE] != OT_NONE:
            short_worst = max(s - q, 0)
            if short_worst > 0 or q < 0:
                im_lot, mm_lot = option_lot_margin(i, marks, mult, opt)
                im_total += short_worst * im_lot
                mm_total += max(-q, 0) * mm_lot
            im_total += max(q, 0) * marks[i] * mult[i]
            continue
        worst = max(abs(q + b), abs(q - s))
        im, _ = instrument_margin(worst, marks[i], mult[i], tiers[i], n_tiers[i])
        _, mm = instrument_margin(abs(q), marks[i], mult[i], tiers[i], n_tiers[i])
        im_total += im
        mm_total += mm
    return im_total, mm_total


@njit(cache=True, nogil=True)
def pool_equity(a, ccy, balances, positions, margin, marks, mult, opt, mccy):
    """Equity of account ``a`` in its ``ccy`` pool, minor units.

    The margin currency: the ledger's equity column.  Another currency: its
    balance plus the value of the positions settled in it (``qty * mark *
    mult`` for options, unrealized PnL for a linear instrument).  O(n_instruments).
    """
    if ccy == mccy:
        return margin[a, 0]
    e = balances[a, ccy]
    for i in range(positions.shape[1]):
        q = positions[a, i, POS_QTY]
        if q == 0 or opt[i, O_CCY] != ccy:
            continue
        if opt[i, O_TYPE] != OT_NONE:
            e += q * marks[i] * mult[i]
        else:
            e += (q * marks[i] - positions[a, i, POS_COST]) * mult[i]
    return e
