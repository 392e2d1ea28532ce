"""Options on the book: the option table, standard margin of short options, and the expiry value.

An option instrument (``InstrumentKind.OPTION`` with ``strike``,
``option_type``, ``underlying`` and ``expiry_ns``) is European and settled in
cash.  Its premium is quoted in ticks of the option and paid in full at the
trade in its **settlement currency**: the margin currency (a *linear* option,
premium in USDT) or the coin ``base`` (an *inverse* option, ``inverse=True``,
premium in BTC as on Deribit).  The underlying price ``S`` is the mark of the
``underlying`` instrument (a perpetual or future of the same venue, in its
ticks); the strike ``K`` is kept in the same ticks.

Standard margin of a short option (Deribit's published rule for its BTC and
ETH options, "Margin requirements -- options": short call initial margin
``max(0.15 - OTM amount / underlying mark, 0.1) + mark price of the option``,
maintenance ``0.075 + mark price``, in coins per contract; short put initial
``max(max(0.15 - OTM / underlying, 0.1) + mark, maintenance)``, maintenance
``max(0.075, 0.075 * mark) + mark``; for linear options the same rates apply
to the underlying price in USD).  Per lot, minor units of the settlement
currency, rates configurable in ``OptionMargin``::

    otm  = max(K - S, 0)  (call)        max(S - K, 0)  (put)
    IM   = U(max(base * S - otm, floor * S)) + V
    MM   = U(maint * S) + V
    puts: MM = max(U(maint * S), ceil(maint * V)) + V,  IM = max(IM, MM)

where ``V = mark * multiplier`` is the option's value per lot and ``U(x)``
the value of ``x`` underlying ticks on one lot, rounded up to a minor unit:
``x * O_NUM`` for a linear option (``O_NUM``: minor units per underlying
tick per lot), ``x * O_NUM / S`` for an inverse one (``O_NUM``: coin minor
units per lot, so that the rates apply to one coin per contract).  A long
option needs no margin beyond the premium it paid: its initial margin is its
value ``V`` (its value is in equity but frees nothing for new risk), its
maintenance margin 0.

Option table (``opt``, int64 ``[n_instruments, O_COLS]``, one row for every
instrument, options or not):

* ``O_CCY`` -- the margin pool the instrument belongs to: its settlement
  currency (the margin currency for perpetuals, futures and linear options;
  the coin for inverse options; -1 for spot, which is never margined);
* ``O_TYPE`` -- ``OT_NONE`` (0), ``OT_CALL`` (1), ``OT_PUT`` (2);
* ``O_UNDER``, ``O_STRIKE`` -- underlying instrument index and strike, ticks
  of the underlying;
* ``O_NUM``, ``O_INV`` -- see ``U`` above (``O_INV`` 1 for inverse);
* ``O_BASE_BPS``, ``O_FLOOR_BPS``, ``O_MM_BPS`` -- the rates, bps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from numba import njit

from shardex.instruments import Instrument, InstrumentKind, OptionType
from shardex.risk.spot import whole_minor_units

__all__ = ["O_COLS", "OptionMargin", "expiry_value", "option_lot_margin", "option_table"]

O_CCY = 0
O_TYPE = 1
O_UNDER = 2
O_STRIKE = 3
O_NUM = 4
O_INV = 5
O_BASE_BPS = 6
O_FLOOR_BPS = 7
O_MM_BPS = 8
O_COLS = 9

OT_NONE = 0
OT_CALL = 1
OT_PUT = 2


@dataclass(frozen=True)
class OptionMargin:
    """Standard margin rates of short options, bps of the underlying price (Deribit's by default).

    Parameters
    ----------
    base_bps
        Initial margin before the out-of-the-money reduction (15 %).
    floor_bps
        Floor of the initial margin (10 %).
    maint_bps
        Maintenance margin (7.5 %).
    """

    base_bps: int = 1500
    floor_bps: int = 1000
    maint_bps: int = 750

    def __post_init__(self) -> None:
        if not 0 < self.maint_bps <= self.floor_bps <= self.base_bps <= 10_000:
            raise ValueError(f"need 0 < maint_bps <= floor_bps <= base_bps <= 10000, got {self}")


def option_table(instruments: Sequence[Instrument], currencies: Sequence[str], decimals: Sequence[int], mccy: int,
                 rates: OptionMargin) -> np.ndarray:
    """Build ``opt`` for ``instruments`` (ids ``0..n-1``); validate every option against the venue.

    Raises ``ValueError`` (naming the instrument) for an option without
    strike, type, underlying or expiry, an underlying that is missing, an
    option or spot, a dated future expiring before the option, a strike off
    the underlying's tick grid, an inverse option
    whose ``base`` is not a ledger currency other than the margin currency,
    or a lot whose underlying value is not a whole number of minor units.
    Complexity: O(instruments).
    """
    n = len(instruments)
    opt = np.zeros((n, O_COLS), np.int64)
    for x in instruments:
        row = opt[x.id]
        row[O_CCY] = -1 if x.kind == InstrumentKind.SPOT else mccy
        if x.kind != InstrumentKind.OPTION:
            continue
        if not x.is_option or x.underlying is None or x.expiry_ns <= 0:
            raise ValueError(f"{x.symbol}: an option on the book needs strike, option_type, underlying and expiry_ns")
        if not 0 <= x.underlying < n or instruments[x.underlying].kind in (InstrumentKind.OPTION, InstrumentKind.SPOT):
            raise ValueError(f"{x.symbol}: underlying {x.underlying} must be a perpetual or future of this venue")
        u = instruments[x.underlying]
        if u.kind == InstrumentKind.FUTURE and u.expiry_ns and x.expiry_ns > u.expiry_ns:
            raise ValueError(f"{x.symbol}: expires after its underlying future {u.symbol}")
        strike = Decimal(x.strike) / Decimal(u.tick_size)
        if strike != strike.to_integral_value():
            raise ValueError(f"{x.symbol}: strike {x.strike} is not on the tick grid {u.tick_size} of {u.symbol}")
        lot = Decimal(x.lot_size) * Decimal(x.contract_size)
        if x.inverse:
            if x.base not in currencies or currencies.index(x.base) == mccy:
                raise ValueError(f"{x.symbol}: an inverse option settles in its coin base={x.base!r}, which must be "
                                 f"a ledger currency other than the margin currency {currencies[mccy]!r}")
            ccy = currencies.index(x.base)
            num = whole_minor_units(f"{x.symbol}: one lot", lot * Decimal(10) ** decimals[ccy])
        else:
            ccy = mccy
            num = whole_minor_units(f"{x.symbol}: one underlying tick on one lot",
                         lot * Decimal(u.tick_size) * Decimal(10) ** decimals[ccy])
        row[O_CCY] = ccy
        row[O_TYPE] = OT_CALL if x.option_type == OptionType.CALL else OT_PUT
        row[O_UNDER] = u.id
        row[O_STRIKE] = int(strike)
        row[O_NUM] = num
        row[O_INV] = int(x.inverse)
        row[O_BASE_BPS], row[O_FLOOR_BPS], row[O_MM_BPS] = rates.base_bps, rates.floor_bps, rates.maint_bps
    return opt


@njit(cache=True, nogil=True, inline="always")
def _under_value(x, num, inv, s):
    """``ceil(x * num / (10_000 * d))`` minor units, ``d = s`` if inverse else 1; ``x >= 0``, ``s > 0``.

    ``x`` is an underlying amount in ticks times 10,000 (a rate in bps times
    a price); never forms ``x * num`` for an inverse option.
    """
    if inv:
        y = (x // s) * num + ((x % s) * num + s - 1) // s  # ceil(x * num / s), exactly
    else:
        y = x * num
    return (y + 9_999) // 10_000


@njit(cache=True, nogil=True)
def option_lot_margin(i, marks, mult, opt):
    """``(initial, maintenance)`` margin of one short lot of option ``i``, minor units (module doc).

    Reads the option's mark and its underlying's mark.  O(1).
    """
    row = opt[i]
    s = marks[row[O_UNDER]]
    k = row[O_STRIKE]
    v = marks[i] * mult[i]
    call = row[O_TYPE] == OT_CALL
    otm = max(k - s, 0) if call else max(s - k, 0)
    x = max(row[O_BASE_BPS] * s - 10_000 * otm, row[O_FLOOR_BPS] * s)
    num = row[O_NUM]
    inv = row[O_INV] != 0
    im = _under_value(x, num, inv, s) + v
    mm_u = _under_value(row[O_MM_BPS] * s, num, inv, s)
    if call:
        return im, mm_u + v
    mm = max(mm_u, (v * row[O_MM_BPS] + 9_999) // 10_000) + v
    return max(im, mm), mm


def expiry_value(opt_row: np.ndarray, settlement: int) -> tuple[int, int]:
    """``(num, den)``: one lot's cash value at expiry, ``num / den`` minor units, at ``settlement`` ticks.

    Linear: ``intrinsic * O_NUM / 1`` (exact); inverse: ``intrinsic * O_NUM
    / S`` (the intrinsic value paid in the coin), with ``intrinsic =
    max(S - K, 0)`` for a call, ``max(K - S, 0)`` for a put, ticks of the
    underlying.  The ledger credits ``floor(qty * num / den)``
    (``shardex.ledger.option_expiry_txns``).
    """
    s, k = int(settlement), int(opt_row[O_STRIKE])
    intrinsic = max(s - k, 0) if opt_row[O_TYPE] == OT_CALL else max(k - s, 0)
    return intrinsic * int(opt_row[O_NUM]), s if opt_row[O_INV] else 1
