"""Spot instruments: the conversion table and the hold an order places at entry.

A spot fill exchanges base for quote between two accounts' balances (the
ledger's ``SPOT_TRADE`` transaction); nothing is margined.  An order holds,
from entry until it is filled or cancelled, what it may have to pay:

* a buy: ``price * lots * quote_per_tick_lot`` quote minor units plus the
  largest fee it can be charged (``ceil(notional * fee_bps / 10**4)`` with
  ``fee_bps = max(taker, maker, 0)``), at its limit price.  A market (or
  stop-market) buy has no limit: it is held at the instrument's
  ``max_price`` (the price band bounds any fill), and refused
  (``INVALID_ORDER_TYPE``) when the instrument has none;
* a sell: ``lots * base_per_lot`` base minor units.

The hold of an order is always ``hold_amount`` of its open quantity at its
limit, so it shrinks with every fill and cancel and is gone at zero leaves;
a buy filled below its limit (price improvement) releases the difference.

Option buys hold too: a buy order on an option holds its premium at its
limit plus the fee cap, in the option's settlement currency, exactly as a
spot buy holds its quote (``option_hold_rows``); option sells are margined
(``shardex.risk.options``).

Spot table (``spot``, int64 ``[n_instruments, S_COLS]``), columns:
``S_MODE`` (``MODE_SPOT`` 1 for spot, ``MODE_OPTION`` 2 for an option whose
buys hold their premium, ``MODE_MARGIN`` 0 for a margined derivative, whose
row is otherwise 0), ``S_BASE``/``S_QUOTE`` currency indices (an option: its
settlement currency in ``S_QUOTE``), ``S_BASE_LOT`` base minor units per
lot, ``S_QUOTE_TL`` quote minor units per tick per lot, ``S_MKT_PRICE`` the
hold price of a market buy (ticks, 0: refused), ``S_FEE_BPS`` the fee rate
held with a buy.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import numpy as np
from numba import njit

from shardex.instruments import Instrument, InstrumentKind

__all__ = ["HOLD_LIMIT", "MODE_MARGIN", "MODE_OPTION", "MODE_SPOT", "S_COLS", "hold_amount", "hold_currency",
           "option_hold_rows", "spot_table"]

S_MODE = 0
S_BASE = 1
S_QUOTE = 2
S_BASE_LOT = 3
S_QUOTE_TL = 4
S_MKT_PRICE = 5
S_FEE_BPS = 6
S_COLS = 7

MODE_MARGIN = 0
MODE_SPOT = 1
MODE_OPTION = 2

#: Largest notional a hold may reach, minor units: a hold plus its fee then
#: stays below 2**63 and sums of a few holds do not overflow either.
HOLD_LIMIT = 1 << 60
SIDE_BUY = 0


def whole_minor_units(what: str, value: Decimal) -> int:
    """``value`` (minor units) as an int; ``ValueError`` naming ``what`` unless it is a positive whole number."""
    if value != value.to_integral_value() or value <= 0:
        raise ValueError(f"{what} is {value} minor units, not a positive whole number")
    return int(value)


def spot_table(instruments: Sequence[Instrument], currencies: Sequence[str], decimals: Sequence[int],
               taker_fee_bps: int, maker_fee_bps: int) -> np.ndarray:
    """Build the spot table for ``instruments`` (rows of derivatives stay 0).

    Raises ``ValueError`` for a spot instrument whose base or quote is not a
    ledger currency (or both are the same), or whose lot (base) or tick·lot
    (quote) is not a whole number of minor units.  Complexity: O(instruments).
    """
    tab = np.zeros((len(instruments), S_COLS), np.int64)
    for x in instruments:
        if x.kind != InstrumentKind.SPOT:
            continue
        if x.base not in currencies or x.quote not in currencies or x.base == x.quote:
            raise ValueError(f"{x.symbol}: base {x.base!r} and quote {x.quote!r} must be two of the ledger's "
                             f"currencies {tuple(currencies)}")
        b, q = currencies.index(x.base), currencies.index(x.quote)
        lot = Decimal(x.lot_size) * Decimal(x.contract_size)
        row = tab[x.id]
        row[S_MODE] = MODE_SPOT
        row[S_BASE], row[S_QUOTE] = b, q
        row[S_BASE_LOT] = whole_minor_units(f"{x.symbol}: one lot", lot * Decimal(10) ** decimals[b])
        row[S_QUOTE_TL] = whole_minor_units(f"{x.symbol}: one tick on one lot", Decimal(x.tick_size) * lot
                                 * Decimal(10) ** decimals[q])
        row[S_MKT_PRICE] = 0 if x.max_price is None else x.max_price
        row[S_FEE_BPS] = max(taker_fee_bps, maker_fee_bps, 0)
    return tab


def option_hold_rows(tab: np.ndarray, instruments: Sequence[Instrument], ccy: np.ndarray, mult: np.ndarray,
                     taker_fee_bps: int, maker_fee_bps: int) -> None:
    """Fill the rows of the options in ``tab``: their buys hold premium in currency ``ccy[i]``.

    ``mult[i]``: minor units of the settlement currency per tick per lot.
    A market buy is held at ``max_price`` (refused without one), as on spot.
    """
    for x in instruments:
        if x.kind != InstrumentKind.OPTION:
            continue
        row = tab[x.id]
        row[S_MODE] = MODE_OPTION
        row[S_QUOTE] = ccy[x.id]
        row[S_QUOTE_TL] = mult[x.id]
        row[S_MKT_PRICE] = 0 if x.max_price is None else x.max_price
        row[S_FEE_BPS] = max(taker_fee_bps, maker_fee_bps, 0)


@njit(cache=True, nogil=True)
def hold_currency(row, side):
    """Currency an order holds: quote for a buy, base for a sell."""
    return row[S_QUOTE] if side == SIDE_BUY else row[S_BASE]


@njit(cache=True, nogil=True)
def hold_amount(row, side, price, lots):
    """Minor units an order of ``lots`` at ``price`` ticks holds; -1 if above ``HOLD_LIMIT``.

    Buy: notional plus the fee cap, rounded up (the ledger truncates the fee
    it charges, so the hold always covers it).  Sell: the base amount.
    Computed without forming a product that could overflow.  O(1).
    """
    if lots <= 0:
        return 0
    if side != SIDE_BUY:
        bl = row[S_BASE_LOT]
        if bl > HOLD_LIMIT // lots:
            return -1
        return bl * lots
    ml = row[S_QUOTE_TL]
    if ml > HOLD_LIMIT // lots:
        return -1
    ml *= lots
    if price <= 0 or price > HOLD_LIMIT // ml:
        return -1
    n = price * ml
    bps = row[S_FEE_BPS]
    fee = (n // 10_000) * bps + ((n % 10_000) * bps + 9_999) // 10_000
    return n + fee
